"""The model registry: status table, immutable artifacts, gated and forced promotion, rollback."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pandas as pd
import pytest

from quantum_trader.ai.gate import GateConfig
from quantum_trader.ai.registry import (
    TRANSITIONS,
    ModelRegistry,
    ModelStatus,
    ModelTransitionError,
    ModelTrigger,
    ModelVersionExistsError,
    UnknownModelError,
    next_status,
)
from quantum_trader.ai.registry_files import ArtifactError
from quantum_trader.ai.shadow import ShadowOutcome, ShadowPrediction
from quantum_trader.domain.clock import NANOS_PER_HOUR, ManualClock
from quantum_trader.domain.errors import ConfigError, IntegrityError
from quantum_trader.observability.audit.records import AuditEventType
from quantum_trader.testing.fakes import RecordingAuditRecorder
from quantum_trader.testing.models import (
    START_NS,
    oos_labels,
    predictions_with_skill,
    register_artifacts,
    write_model_artifact,
)

GATE = GateConfig(
    min_samples=100,
    n_bootstrap=300,
    seed=1,
    min_shadow_secs=3600,
    min_shadow_predictions=20,
    max_shadow_decay=0.2,
)
LABELS = oos_labels(600, seed=7)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_NS)


@pytest.fixture
def audit() -> RecordingAuditRecorder:
    return RecordingAuditRecorder()


@pytest.fixture
def registry(tmp_path: Path, clock: ManualClock, audit: RecordingAuditRecorder) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry", clock, audit, gate=GATE)


def _artifact(tmp_path: Path, version: str, skill: float, *, seed: int = 1) -> Path:
    oos = predictions_with_skill(LABELS, skill, seed=seed, noise=0.05)
    return write_model_artifact(tmp_path / "artifacts", version, oos)


def _rows(n: int) -> list[tuple[int, str, int]]:
    head = LABELS.iloc[:n]
    return [
        (int(ts), str(sym), int(label))
        for ts, sym, label in zip(head["ts_ns"], head["symbol"], head["label"], strict=True)
    ]


def _shadow(registry: ModelRegistry, clock: ManualClock, version: str, n: int = 30) -> None:
    """Put ``version`` in shadow, log ``n`` good predictions with outcomes, let an hour pass."""
    registry.start_shadow(version, actor="alice")
    rows = _rows(n)
    registry.record_shadow_predictions(
        version, [ShadowPrediction(ts, sym, 0.7 if label else 0.3) for ts, sym, label in rows]
    )
    registry.record_shadow_outcomes(
        version, [ShadowOutcome(ts, sym, label) for ts, sym, label in rows]
    )
    clock.advance(NANOS_PER_HOUR)


def _promote_first(registry: ModelRegistry, clock: ManualClock, tmp_path: Path) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.15))
    _shadow(registry, clock, "v1")
    assert registry.promote("v1", actor="alice", reason="first model").promoted


# ---------------------------------------------------------------- transition table


@pytest.mark.parametrize("status", list(ModelStatus))
@pytest.mark.parametrize("trigger", list(ModelTrigger))
def test_transition_table_when_pair_listed_moves_else_raises(
    status: ModelStatus, trigger: ModelTrigger
) -> None:
    expected = TRANSITIONS.get((status, trigger))
    if expected is None:
        with pytest.raises(ModelTransitionError, match=f"cannot {trigger.value}"):
            next_status("v1", status, trigger)
    else:
        assert next_status("v1", status, trigger) is expected


def test_transition_table_when_read_has_one_way_into_active_from_each_status() -> None:
    into_active = {s for (s, _), new in TRANSITIONS.items() if new is ModelStatus.ACTIVE}
    assert into_active == {ModelStatus.CANDIDATE, ModelStatus.SHADOW, ModelStatus.RETIRED}
    assert (ModelStatus.CANDIDATE, ModelTrigger.PROMOTE) not in TRANSITIONS


# ---------------------------------------------------------------- register


def test_register_when_artifact_valid_copies_it_as_read_only_candidate(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    record = registry.register(_artifact(tmp_path, "v1", 0.1))
    assert record.status is ModelStatus.CANDIDATE
    assert record.horizon == 1
    assert record.features == ("ret_1", "vol_20")
    copy = registry.artifact_path("v1")
    assert (copy / "manifest.json").stat().st_mode & 0o222 == 0
    assert registry.verify("v1") == copy
    assert [r.version for r in registry.records()] == ["v1"]


def test_register_when_version_exists_refuses_and_keeps_the_original(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    first = registry.register(_artifact(tmp_path, "v1", 0.1))
    other = write_model_artifact(
        tmp_path / "other", "v1", predictions_with_skill(LABELS, 0.3), horizon=3
    )
    with pytest.raises(ModelVersionExistsError, match="immutable"):
        registry.register(other)
    assert registry.get("v1") == first
    registry.verify("v1")


def test_register_when_orphan_copy_left_by_a_crash_replaces_it(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    orphan = registry.artifact_path("v1")
    orphan.mkdir(parents=True)
    (orphan / "junk").write_text("half-copied")
    registry.register(_artifact(tmp_path, "v1", 0.1))
    assert not (orphan / "junk").exists()
    registry.verify("v1")


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no_manifest", "manifest.json is missing"),
        ("bad_json", "not valid JSON"),
        ("no_horizon", "missing 'horizon'"),
        ("bad_version", "must be letters"),
        ("no_oos", "oos_predictions.parquet is missing"),
        ("bad_oos", "prob_up"),
    ],
)
def test_register_when_artifact_malformed_raises_artifact_error(
    registry: ModelRegistry, tmp_path: Path, breakage: str, message: str
) -> None:
    folder = _artifact(tmp_path, "v1", 0.1)
    manifest = json.loads((folder / "manifest.json").read_text())
    if breakage == "no_manifest":
        (folder / "manifest.json").unlink()
    elif breakage == "bad_json":
        (folder / "manifest.json").write_text("{")
    elif breakage == "no_horizon":
        del manifest["horizon"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    elif breakage == "bad_version":
        manifest["version"] = "../escape"
        (folder / "manifest.json").write_text(json.dumps(manifest))
    elif breakage == "no_oos":
        (folder / "oos_predictions.parquet").unlink()
    else:
        bad = predictions_with_skill(LABELS, 0.1)
        bad.loc[0, "prob_up"] = 2.0
        bad.to_parquet(folder / "oos_predictions.parquet")
    with pytest.raises(ArtifactError, match=message):
        registry.register(folder)
    assert registry.records() == []


def test_verify_when_artifact_changed_after_registration_raises_integrity_error(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.1))
    manifest = registry.artifact_path("v1") / "manifest.json"
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace('"horizon": 1', '"horizon": 2'))
    with pytest.raises(IntegrityError, match="was modified"):
        registry.verify("v1")


def test_get_when_version_unknown_raises_config_error(registry: ModelRegistry) -> None:
    with pytest.raises(UnknownModelError, match="no model version 'nope'"):
        registry.get("nope")


# ---------------------------------------------------------------- gate


def test_promote_when_first_model_beats_baseline_after_shadow_activates_and_audits(
    registry: ModelRegistry, clock: ManualClock, tmp_path: Path, audit: RecordingAuditRecorder
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.15))
    _shadow(registry, clock, "v1")
    result = registry.promote("v1", actor="alice", reason="beats baseline")
    assert result.promoted
    assert not result.forced
    assert result.comparison is not None
    assert result.comparison.reference == "baseline"
    assert result.comparison.p_value < 0.05
    assert registry.active_version() == "v1"
    assert registry.get("v1").status is ModelStatus.ACTIVE
    (record,) = audit.of(AuditEventType.MODEL_PROMOTED)
    assert record["outcome"] == "gated"
    assert record["target"] == "ensemble:v1"
    figures = record["metadata"]["comparison"]
    assert {"delta", "ci_low", "ci_high", "p_value", "n"} <= set(figures)
    assert figures["n"] == 600
    assert registry.get("v1").gate_decisions[-1]["promoted"] is True


def test_promote_when_candidate_clearly_better_than_active_supersedes_it(
    registry: ModelRegistry, clock: ManualClock, tmp_path: Path, audit: RecordingAuditRecorder
) -> None:
    _promote_first(registry, clock, tmp_path)
    registry.register(_artifact(tmp_path, "v2", 0.3, seed=2))
    _shadow(registry, clock, "v2")
    result = registry.promote("v2", actor="bob", reason="better")
    assert result.promoted
    assert result.previous_active == "v1"
    assert result.comparison is not None
    assert result.comparison.reference == "v1"
    assert registry.get("v1").status is ModelStatus.RETIRED
    assert registry.active_version() == "v2"
    (demoted,) = audit.of(AuditEventType.MODEL_DEMOTED)
    assert demoted["target"] == "ensemble:v1"


def test_promote_when_candidate_equals_active_refuses_with_p_value(
    registry: ModelRegistry, clock: ManualClock, tmp_path: Path, audit: RecordingAuditRecorder
) -> None:
    _promote_first(registry, clock, tmp_path)
    registry.register(_artifact(tmp_path, "v2", 0.15))  # same predictions as v1
    _shadow(registry, clock, "v2")
    result = registry.promote("v2", actor="bob", reason="retrained")
    assert not result.promoted
    assert result.comparison is not None
    assert result.comparison.delta == 0.0
    assert result.comparison.p_value == 1.0
    assert "p=1.0000" in result.reason
    assert registry.active_version() == "v1"
    assert registry.get("v2").status is ModelStatus.SHADOW
    refused = audit.of(AuditEventType.MODEL_PROMOTED)[-1]
    assert refused["outcome"] == "refused"
    assert refused["metadata"]["comparison"]["p_value"] == 1.0


def test_promote_when_shadow_period_not_elapsed_refuses(
    registry: ModelRegistry, clock: ManualClock, tmp_path: Path
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.15))
    _shadow(registry, clock, "v1")
    registry.register(_artifact(tmp_path, "v2", 0.3, seed=2))
    registry.start_shadow("v2", actor="alice")
    clock.advance(NANOS_PER_HOUR // 2)
    result = registry.promote("v2", actor="alice", reason="eager")
    assert not result.promoted
    assert result.shadow is not None
    assert not result.shadow.passed
    assert "shadow period 1800s < required 3600s" in result.reason
    assert result.comparison is not None
    assert result.comparison.passed  # figures still shown
    assert registry.get("v2").status is ModelStatus.SHADOW


def test_promote_when_too_few_shadow_predictions_refuses(
    registry: ModelRegistry, clock: ManualClock, tmp_path: Path
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.15))
    _shadow(registry, clock, "v1", n=5)
    result = registry.promote("v1", actor="alice", reason="eager")
    assert not result.promoted
    assert "5 shadow predictions < required 20" in result.reason


def test_promote_when_shadow_predictions_decay_refuses(
    registry: ModelRegistry, clock: ManualClock, tmp_path: Path
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.15))
    registry.start_shadow("v1", actor="alice")
    rows = _rows(30)
    registry.record_shadow_predictions(
        "v1", [ShadowPrediction(ts, sym, 0.2 if label else 0.8) for ts, sym, label in rows]
    )
    registry.record_shadow_outcomes(
        "v1", [ShadowOutcome(ts, sym, label) for ts, sym, label in rows]
    )
    clock.advance(NANOS_PER_HOUR)
    result = registry.promote("v1", actor="alice", reason="live is wrong")
    assert not result.promoted
    assert "shadow log_loss" in result.reason


def test_promote_when_candidate_not_in_shadow_raises_transition_error(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.15))
    with pytest.raises(ModelTransitionError, match="cannot promote in status 'candidate'"):
        registry.promote("v1", actor="alice", reason="skip shadow")


def test_promote_when_forced_bypasses_gate_and_audits_actor_and_reason(
    registry: ModelRegistry, tmp_path: Path, audit: RecordingAuditRecorder
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.0))  # no skill at all
    result = registry.promote("v1", actor="carol", reason="incident 42 hotfix", force=True)
    assert result.promoted
    assert result.forced
    assert registry.active_version() == "v1"
    (record,) = audit.of(AuditEventType.MODEL_PROMOTED)
    assert record["outcome"] == "forced"
    assert record["actor"] == "carol"
    assert record["reason"] == "incident 42 hotfix"
    assert record["metadata"]["forced"] is True
    assert record["metadata"]["comparison"]["p_value"] is not None
    history = registry.get("v1").history[-1]
    assert history["trigger"] == "force_promote"
    assert history["actor"] == "carol"


@pytest.mark.parametrize(("actor", "reason"), [("", "why"), ("carol", " ")])
def test_promote_when_forced_without_actor_or_reason_raises(
    registry: ModelRegistry, tmp_path: Path, actor: str, reason: str
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.1))
    with pytest.raises(ConfigError, match=r"needs an? (actor|reason)"):
        registry.promote("v1", actor=actor, reason=reason, force=True)
    assert registry.get("v1").status is ModelStatus.CANDIDATE


def test_record_shadow_when_version_not_in_shadow_raises(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.1))
    with pytest.raises(ModelTransitionError, match="record shadow predictions"):
        registry.record_shadow_predictions("v1", [ShadowPrediction(1, "BTCUSDT", 0.6)])


def test_shadow_log_when_line_torn_skips_and_counts_it(
    registry: ModelRegistry, clock: ManualClock, tmp_path: Path
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.1))
    _shadow(registry, clock, "v1", n=10)
    with registry.shadow_log("v1").path.open("ab") as handle:
        handle.write(b'{"kind":"predic')
    summary = registry.shadow_log("v1").summary()
    assert summary.predictions == 10
    assert summary.resolved == 10
    assert summary.accuracy == 1.0
    assert summary.skipped_lines == 1


# ---------------------------------------------------------------- rollback


def test_rollback_when_two_activations_restores_previous_and_retires_current(
    registry: ModelRegistry, clock: ManualClock, tmp_path: Path, audit: RecordingAuditRecorder
) -> None:
    _promote_first(registry, clock, tmp_path)
    registry.register(_artifact(tmp_path, "v2", 0.3, seed=2))
    registry.promote("v2", actor="bob", reason="hotfix", force=True)
    retired, restored = registry.rollback(actor="bob", reason="v2 misbehaves live")
    assert (retired, restored) == ("v2", "v1")
    assert registry.active_version() == "v1"
    assert registry.get("v2").status is ModelStatus.RETIRED
    assert registry.get("v1").history[-1]["trigger"] == "restore"
    demoted = audit.of(AuditEventType.MODEL_DEMOTED)[-1]
    assert demoted["target"] == "ensemble:v2"
    assert demoted["reason"] == "v2 misbehaves live"
    assert audit.of(AuditEventType.MODEL_PROMOTED)[-1]["target"] == "ensemble:v1"
    with pytest.raises(ModelTransitionError, match="no earlier active version"):
        registry.rollback(actor="bob", reason="again")


def test_rollback_when_nothing_active_raises(registry: ModelRegistry) -> None:
    with pytest.raises(ModelTransitionError, match="roll back"):
        registry.rollback(actor="bob", reason="oops")


# ---------------------------------------------------------------- storage


def test_registry_when_index_corrupt_raises_integrity_error_and_loses_nothing(
    registry: ModelRegistry, clock: ManualClock, tmp_path: Path
) -> None:
    _promote_first(registry, clock, tmp_path)
    index = registry.index_path
    index.write_text('{"format": 1, "models": ')
    with pytest.raises(IntegrityError, match=r"registry\.json is corrupt") as info:
        registry.register(_artifact(tmp_path, "v2", 0.2))
    assert str(index) in str(info.value)
    assert "registry.json.prev" in str(info.value)
    with pytest.raises(IntegrityError):
        registry.active_version()
    assert index.read_text() == '{"format": 1, "models": '
    assert not registry.artifact_path("v2").exists()
    assert (registry.artifact_path("v1") / "manifest.json").exists()
    previous = json.loads(index.with_name("registry.json.prev").read_text())
    assert "v1" in previous["models"]


def test_registry_when_index_names_unknown_active_raises_integrity_error(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.1))
    data = json.loads(registry.index_path.read_text())
    data["active"] = "ghost"
    registry.index_path.write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="ghost"):
        registry.records()


def test_registry_when_writers_race_keeps_every_registration(
    tmp_path: Path, clock: ManualClock
) -> None:
    root = tmp_path / "registry"
    sources = [_artifact(tmp_path, f"v{i}", 0.1) for i in range(8)]
    errors: list[BaseException] = []

    def register(source: Path) -> None:
        try:
            ModelRegistry(root, clock).register(source)  # one registry object per writer
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    reader = ModelRegistry(root, clock)
    assert sorted(r.version for r in reader.records()) == sorted(f"v{i}" for i in range(8))
    assert json.loads(reader.index_path.read_text())["revision"] == 8


def test_evaluate_when_called_changes_nothing(
    registry: ModelRegistry, clock: ManualClock, tmp_path: Path
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.15))
    _shadow(registry, clock, "v1")
    before = registry.index_path.read_bytes()
    assert registry.evaluate("v1").promoted
    assert registry.index_path.read_bytes() == before


def test_oos_predictions_when_read_back_equal_what_was_registered(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    registry.register(_artifact(tmp_path, "v1", 0.1))
    oos = registry.oos_predictions("v1")
    expected = predictions_with_skill(LABELS, 0.1, seed=1, noise=0.05)
    pd.testing.assert_series_equal(
        oos["prob_up"], expected["prob_up"].sort_index(), check_names=False
    )


def test_registry_when_processes_race_keeps_every_registration(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    sources = [str(_artifact(tmp_path, f"p{i}", 0.1)) for i in range(6)]
    ctx = multiprocessing.get_context("spawn")
    processes = [
        ctx.Process(target=register_artifacts, args=(str(root), sources[i::2])) for i in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    reader = ModelRegistry(root, ManualClock(START_NS))
    assert sorted(r.version for r in reader.records()) == sorted(f"p{i}" for i in range(6))
    assert json.loads(reader.index_path.read_text())["revision"] == 6
