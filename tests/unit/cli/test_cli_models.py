"""``qtrader models`` and ``qtrader train-sizer`` through typer's CliRunner: exit codes, audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from quantum_trader.ai.sizing import BanditSizingAgent
from quantum_trader.cli.models import models_app
from quantum_trader.cli.sizer import train_sizer
from quantum_trader.observability.audit.verify import verify_audit_dir
from quantum_trader.testing.models import oos_labels, predictions_with_skill, write_model_artifact

LABELS = oos_labels(400, seed=11)


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(models_app, name="models")
    root.command("train-sizer")(train_sizer)
    return root


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    registry, audit_dir = tmp_path / "runs" / "models", tmp_path / "runs" / "audit"
    monkeypatch.setenv("QT_MODEL_REGISTRY", str(registry))
    monkeypatch.setenv("QT_AUDIT_DIR", str(audit_dir))
    monkeypatch.setenv("COLUMNS", "200")
    return registry, audit_dir


def _run(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _artifact(tmp_path: Path, version: str, skill: float) -> Path:
    oos = predictions_with_skill(LABELS, skill, seed=2, noise=0.05)
    return write_model_artifact(tmp_path / "artifacts", version, oos)


def _audit(audit_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(audit_dir.glob("audit-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _promotable(app: typer.Typer, tmp_path: Path, version: str, skill: float) -> None:
    assert _run(app, "models", "register", str(_artifact(tmp_path, version, skill))).exit_code == 0
    assert _run(app, "models", "shadow", version, "--actor", "alice").exit_code == 0


def test_register_then_list_when_artifact_valid_shows_candidate(
    app: typer.Typer, paths: tuple[Path, Path], tmp_path: Path
) -> None:
    result = _run(app, "models", "register", str(_artifact(tmp_path, "v1", 0.1)))
    assert result.exit_code == 0, result.output
    assert "registered model v1 as candidate" in result.output
    listed = _run(app, "models", "list", "--json")
    assert [m["status"] for m in json.loads(listed.output)] == ["candidate"]
    assert "v1" in _run(app, "models", "list").output


def test_register_when_artifact_malformed_exits_2_with_one_line(
    app: typer.Typer, paths: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = _artifact(tmp_path, "v1", 0.1)
    (folder / "manifest.json").write_text("{}")
    result = _run(app, "models", "register", str(folder))
    assert result.exit_code == 2
    assert "configuration error:" in result.output
    assert "missing 'version'" in result.output
    assert "Traceback" not in result.output


def test_show_when_version_unknown_exits_2(app: typer.Typer, paths: tuple[Path, Path]) -> None:
    result = _run(app, "models", "show", "nope")
    assert result.exit_code == 2
    assert "no model version 'nope'" in result.output


def test_promote_when_gate_passes_prints_figures_and_audits(
    app: typer.Typer, paths: tuple[Path, Path], tmp_path: Path
) -> None:
    _, audit_dir = paths
    _promotable(app, tmp_path, "v1", 0.2)
    result = _run(
        app,
        "models", "promote", "v1", "--actor", "alice", "--reason", "beats baseline",
        "--min-shadow-secs", "0", "--min-shadow-predictions", "0", "--bootstrap", "300",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "PROMOTED" in result.output
    assert "p-value" in result.output
    assert "paired OOS samples (n)" in result.output
    (record,) = [r for r in _audit(audit_dir) if r["event_type"] == "model.promoted"]
    assert record["outcome"] == "gated"
    assert record["metadata"]["comparison"]["n"] == 400
    assert verify_audit_dir(audit_dir).ok
    assert "active" in _run(app, "models", "show", "v1").output


def test_promote_when_shadow_too_short_exits_1_with_reason(
    app: typer.Typer, paths: tuple[Path, Path], tmp_path: Path
) -> None:
    _, audit_dir = paths
    _promotable(app, tmp_path, "v1", 0.2)
    result = _run(app, "models", "promote", "v1", "--actor", "alice", "--reason", "eager")
    assert result.exit_code == 1
    assert "REFUSED" in result.output
    assert "refused:" in result.output
    assert "required 86400s" in result.output
    assert [r["outcome"] for r in _audit(audit_dir)] == ["refused"]


def test_promote_when_forced_without_reason_exits_2(
    app: typer.Typer, paths: tuple[Path, Path], tmp_path: Path
) -> None:
    _promotable(app, tmp_path, "v1", 0.2)
    result = _run(app, "models", "promote", "v1", "--actor", "a", "--reason", "", "--force")
    assert result.exit_code == 2
    assert "needs a reason" in result.output


def test_promote_when_bad_gate_setting_exits_2(
    app: typer.Typer, paths: tuple[Path, Path], tmp_path: Path
) -> None:
    _promotable(app, tmp_path, "v1", 0.2)
    result = _run(
        app, "models", "promote", "v1", "--actor", "a", "--reason", "r", "--metric", "auc"
    )
    assert result.exit_code == 2
    assert "gate metric 'auc'" in result.output


def test_rollback_when_two_activations_restores_and_when_none_exits_1(
    app: typer.Typer, paths: tuple[Path, Path], tmp_path: Path
) -> None:
    _, audit_dir = paths
    assert _run(app, "models", "rollback", "--actor", "a", "--reason", "r").exit_code == 1
    for version in ("v1", "v2"):
        _run(app, "models", "register", str(_artifact(tmp_path, version, 0.1)))
        forced = _run(
            app, "models", "promote", version, "--actor", "bob", "--reason", "hotfix", "--force"
        )
        assert forced.exit_code == 0, forced.output
        assert "FORCED" in forced.output
    result = _run(app, "models", "rollback", "--actor", "bob", "--reason", "v2 is wrong")
    assert result.exit_code == 0, result.output
    assert "v2 retired, v1 active again" in result.output
    kinds = [(r["event_type"], r["outcome"]) for r in _audit(audit_dir)]
    assert kinds[-2:] == [("model.demoted", "demoted"), ("model.promoted", "forced")]


def test_list_when_registry_corrupt_exits_1_naming_the_file(
    app: typer.Typer, paths: tuple[Path, Path], tmp_path: Path
) -> None:
    registry, _ = paths
    _run(app, "models", "register", str(_artifact(tmp_path, "v1", 0.1)))
    (registry / "registry.json").write_text("[")
    result = _run(app, "models", "list")
    assert result.exit_code == 1
    assert "registry.json is corrupt" in result.output


def test_train_sizer_when_synthetic_market_writes_a_loadable_agent(
    app: typer.Typer, tmp_path: Path
) -> None:
    config = tmp_path / "qt.toml"
    config.write_text("[backtest]\nsynthetic_bars = 4000\n")
    out = tmp_path / "sizer.json"
    result = _run(
        app, "train-sizer", "--out", str(out), "--symbols", "BTCUSDT", "--config", str(config),
        "--param", "fast=5", "--param", "slow=20", "--min-samples", "10", "--bootstrap", "50",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC DATA" in result.output
    agent = BanditSizingAgent.load(out)
    assert agent.trained
    assert agent.meta["strategy"] == "sma_cross"
    assert agent.meta["report"]["episodes"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--param", "fast"], "KEY=VALUE"), (["--timeframe", "1x"], "timeframe")],
)
def test_train_sizer_when_input_bad_exits_2(
    app: typer.Typer, tmp_path: Path, args: list[str], message: str
) -> None:
    result = _run(app, "train-sizer", "--out", str(tmp_path / "s.json"), *args)
    assert result.exit_code == 2
    assert message in result.output
