"""Model sync: a worker's watcher picks up promotions and rollbacks written by another process."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from quantum_trader.ai.artifact import load_artifact
from quantum_trader.ai.registry import ModelRecord, ModelRegistry
from quantum_trader.ai.sync import ModelWatcher
from quantum_trader.domain.clock import ManualClock
from quantum_trader.engine.training import TrainRun
from quantum_trader.testing.models import (
    START_NS,
    oos_labels,
    predictions_with_skill,
    write_model_artifact,
)

LABELS = oos_labels(300, seed=3)


class Loader:
    """Loads a "model" (its manifest) and counts calls; fails for versions in ``broken``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.broken: set[str] = set()

    def __call__(self, path: Path, record: ModelRecord) -> dict[str, object]:
        self.calls.append(record.version)
        if record.version in self.broken:
            raise RuntimeError("weights unreadable")
        manifest: dict[str, object] = json.loads((path / "manifest.json").read_text())
        return manifest


Setup = tuple[ModelRegistry, ModelRegistry, Loader, ModelWatcher[dict[str, object]]]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    """An operator's registry object and a worker's, on one folder, and the worker's watcher."""
    clock = ManualClock(START_NS)
    root = tmp_path / "registry"
    operator = ModelRegistry(root, clock)
    for i in (1, 2, 3):
        oos = predictions_with_skill(LABELS, 0.1 * i)
        operator.register(write_model_artifact(tmp_path / "artifacts", f"v{i}", oos))
    worker = ModelRegistry(root, clock)
    loader = Loader()
    return operator, worker, loader, ModelWatcher(worker, loader)


def test_watcher_when_nothing_active_serves_nothing(setup: Setup) -> None:
    _, _, loader, watcher = setup
    result = watcher.poll()
    assert result.checked
    assert not result.swapped
    assert watcher.served is None
    assert loader.calls == []


def test_watcher_when_another_registry_promotes_swaps_without_restart(setup: Setup) -> None:
    operator, _, loader, watcher = setup
    watcher.poll()
    operator.promote("v1", actor="ops", reason="first", force=True)
    result = watcher.poll()
    assert result.swapped
    assert result.version == "v1"
    assert watcher.served is not None
    assert watcher.served.model["version"] == "v1"
    operator.promote("v2", actor="ops", reason="better", force=True)
    assert watcher.poll().version == "v2"
    assert loader.calls == ["v1", "v2"]


def test_watcher_when_registry_unchanged_does_not_reread(setup: Setup) -> None:
    operator, worker, loader, watcher = setup
    operator.promote("v1", actor="ops", reason="first", force=True)
    watcher.poll()
    reads = 0
    original = worker.active_version

    def counting() -> str | None:
        nonlocal reads
        reads += 1
        return original()

    worker.active_version = counting  # type: ignore[method-assign]
    for _ in range(100):
        assert not watcher.poll().checked
    assert reads == 0
    assert loader.calls == ["v1"]


def test_watcher_when_load_fails_keeps_old_model_and_reports(setup: Setup) -> None:
    operator, _, loader, watcher = setup
    operator.promote("v1", actor="ops", reason="first", force=True)
    watcher.poll()
    loader.broken.add("v2")
    operator.promote("v2", actor="ops", reason="next", force=True)
    result = watcher.poll()
    assert not result.swapped
    assert "loading model v2 failed: RuntimeError: weights unreadable" in result.error
    assert watcher.served is not None
    assert watcher.served.version == "v1"
    assert watcher.stale
    assert watcher.failed_version == "v2"
    watcher.poll()
    assert loader.calls == ["v1", "v2"]  # not retried until the registry changes again
    operator.rollback(actor="ops", reason="v2 broken")
    result = watcher.poll()
    assert not result.swapped
    assert result.version == "v1"
    assert not watcher.stale


def test_watcher_when_artifact_tampered_refuses_to_load_it(setup: Setup) -> None:
    operator, _, loader, watcher = setup
    path = operator.artifact_path("v1") / "manifest.json"
    path.chmod(0o644)
    path.write_text(path.read_text() + " ")
    operator.promote("v1", actor="ops", reason="first", force=True)
    result = watcher.poll()
    assert "was modified" in result.error
    assert watcher.served is None
    assert loader.calls == []


def test_watcher_when_rollback_elsewhere_swaps_back(setup: Setup) -> None:
    operator, _, _, watcher = setup
    operator.promote("v1", actor="ops", reason="first", force=True)
    operator.promote("v2", actor="ops", reason="next", force=True)
    assert watcher.poll().version == "v2"
    operator.rollback(actor="ops", reason="bad")
    assert watcher.poll().version == "v1"


def test_watchers_when_several_workers_share_the_folder_each_pick_up_promotion(
    setup: Setup,
    tmp_path: Path,
) -> None:
    operator, _, _, _ = setup
    workers = [
        ModelWatcher(ModelRegistry(tmp_path / "registry", ManualClock(START_NS)), Loader())
        for _ in range(3)
    ]
    operator.promote("v3", actor="ops", reason="go", force=True)
    assert [w.poll().version for w in workers] == ["v3", "v3", "v3"]


def test_watcher_when_polled_from_threads_loads_once(setup: Setup) -> None:
    operator, _, loader, watcher = setup
    operator.promote("v1", actor="ops", reason="first", force=True)
    threads = [threading.Thread(target=watcher.poll) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loader.calls == ["v1"]
    assert watcher.served is not None
    assert watcher.served.version == "v1"


def test_watcher_when_index_corrupt_keeps_serving_and_reports(setup: Setup) -> None:
    operator, _, _, watcher = setup
    operator.promote("v1", actor="ops", reason="first", force=True)
    watcher.poll()
    operator.index_path.write_text("{not json")
    result = watcher.poll()
    assert "corrupt" in result.error
    assert watcher.served is not None
    assert watcher.served.version == "v1"


def test_watcher_when_real_trained_artifact_promoted_serves_it_through_load_artifact(
    trained: TrainRun, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "registry", ManualClock(START_NS))
    record = registry.register(trained.settings.out)
    assert record.version == trained.version
    assert record.horizon == 10
    decision = registry.evaluate(record.version)  # against the naive baseline: figures exist
    assert decision.comparison is not None
    assert decision.comparison.reference == "baseline"
    assert decision.comparison.n > 0
    watcher = ModelWatcher(registry, lambda path, _record: load_artifact(path))
    registry.promote(record.version, actor="ops", reason="first model", force=True)
    assert watcher.poll().swapped
    assert watcher.served is not None
    assert watcher.served.model.version == trained.version
