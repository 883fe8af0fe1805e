"""``qtrader ess`` through typer's CliRunner: status, trigger, reset, exit codes, audit trail,
and a running engine seeing (and enforcing) a latch the command line set."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from quantum_trader.cli.ess import NO_EXCHANGE_NOTE, ess_app
from quantum_trader.domain.clock import ManualClock
from quantum_trader.domain.policy import TradingState
from quantum_trader.engine.stores import open_state_stores
from quantum_trader.observability.audit.verify import verify_audit_dir
from quantum_trader.risk.ess import EmergencyStopSystem, NoVenueExecutor
from quantum_trader.risk.policy_service import PolicyService
from quantum_trader.stores.ports import EssState


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(ess_app, name="ess")
    return root


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    state_db, audit_dir = tmp_path / "runs" / "state.db", tmp_path / "runs" / "audit"
    monkeypatch.setenv("QT_STATE_DB", str(state_db))
    monkeypatch.setenv("QT_AUDIT_DIR", str(audit_dir))
    monkeypatch.setenv("COLUMNS", "200")
    return state_db, audit_dir


def _run(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, ["ess", *args])


def _audit(audit_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(audit_dir.glob("audit-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _trading_state(state_db: Path) -> TradingState:
    with open_state_stores(state_db) as stores:
        return stores.policy.get().state


def test_status_when_no_database_shows_inactive_without_creating_it(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, _ = paths
    result = _run(app, "status")
    assert result.exit_code == 0, result.output
    assert "emergency stop: inactive" in result.output
    assert "no state database" in result.output
    assert not state_db.exists()


def test_trigger_when_inactive_latches_halts_and_audits(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, audit_dir = paths
    result = _run(app, "trigger", "--actor", "alice", "--reason", "exchange incident")
    assert result.exit_code == 0, result.output
    assert "emergency stop ACTIVE: trading halted by alice: exchange incident" in result.output
    assert NO_EXCHANGE_NOTE in result.output
    assert _trading_state(state_db) is TradingState.HALTED
    records = _audit(audit_dir)
    assert [r["event_type"] for r in records] == ["policy.changed", "emergency.triggered"]
    triggered = records[1]
    assert (triggered["actor"], triggered["reason"]) == ("alice", "manual")
    assert triggered["metadata"]["detail"] == "exchange incident"
    assert triggered["metadata"]["note"] == NO_EXCHANGE_NOTE
    assert triggered["metadata"]["orders_canceled"] == 0
    assert verify_audit_dir(audit_dir).ok

    status = _run(app, "status")
    assert status.exit_code == 0, status.output
    out = status.output
    assert "emergency stop: ACTIVE" in out
    assert "reason:           manual: exchange incident" in out
    assert "activated by:     alice" in out
    assert re.search(r"activated at:     \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z", out)
    assert "activations:      1" in out


def test_trigger_when_already_active_counts_ignored_and_exits_0(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    _, audit_dir = paths
    _run(app, "trigger", "--actor", "alice", "--reason", "first")
    again = _run(app, "trigger", "--actor", "bob", "--reason", "second")
    assert again.exit_code == 0, again.output
    assert "already active" in again.output
    assert "(manual: first)" in again.output
    assert "1 so far" in again.output
    assert [r["event_type"] for r in _audit(audit_dir)].count("emergency.triggered") == 1
    status = _run(app, "status", "--json")
    assert json.loads(status.output)["ignored_triggers"] == 1


@pytest.mark.parametrize(
    "args",
    [
        ["trigger", "--reason", "r"],
        ["trigger", "--actor", "a"],
        ["reset", "--reason", "r"],
        ["reset", "--actor", "a"],
    ],
)
def test_command_when_actor_or_reason_missing_exits_2(
    app: typer.Typer, paths: tuple[Path, Path], args: list[str]
) -> None:
    result = _run(app, *args)
    assert result.exit_code == 2
    assert "Missing option" in result.output


def test_reset_when_actor_blank_exits_2_with_one_line(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    _run(app, "trigger", "--actor", "alice", "--reason", "x")
    result = _run(app, "reset", "--actor", "  ", "--reason", "ok")
    assert result.exit_code == 2
    assert "configuration error" in result.output
    assert "actor and a reason" in result.output
    assert "Traceback" not in result.output


def test_reset_when_not_active_says_nothing_to_reset(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    result = _run(app, "reset", "--actor", "alice", "--reason", "why not")
    assert result.exit_code == 0, result.output
    assert "not active: nothing to reset" in result.output


def test_reset_when_active_clears_latch_resumes_reducing_and_audits(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, audit_dir = paths
    _run(app, "trigger", "--actor", "alice", "--reason", "incident")
    result = _run(app, "reset", "--actor", "bob", "--reason", "incident over")
    assert result.exit_code == 0, result.output
    assert "reset by bob: incident over; trading state now reducing" in result.output
    assert _trading_state(state_db) is TradingState.REDUCING
    recovered = [r for r in _audit(audit_dir) if r["event_type"] == "emergency.recovered"]
    assert [(r["actor"], r["reason"], r["outcome"]) for r in recovered] == [
        ("bob", "incident over", "reducing")
    ]
    assert verify_audit_dir(audit_dir).ok
    status = _run(app, "status")
    assert "emergency stop: inactive" in status.output
    assert "by bob: incident over" in status.output


def test_reset_when_resume_active_sets_active(app: typer.Typer, paths: tuple[Path, Path]) -> None:
    state_db, _ = paths
    _run(app, "trigger", "--actor", "alice", "--reason", "x")
    result = _run(app, "reset", "--actor", "bob", "--reason", "ok", "--resume", "active")
    assert result.exit_code == 0, result.output
    assert _trading_state(state_db) is TradingState.ACTIVE


def test_reset_when_resume_invalid_exits_2(app: typer.Typer, paths: tuple[Path, Path]) -> None:
    result = _run(app, "reset", "--actor", "bob", "--reason", "ok", "--resume", "halted")
    assert result.exit_code == 2


def test_commands_when_paths_given_as_options_use_them(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QT_STATE_DB", raising=False)
    monkeypatch.delenv("QT_AUDIT_DIR", raising=False)
    db, audit = tmp_path / "x.db", tmp_path / "trail"
    result = _run(
        app,
        "trigger",
        "--actor",
        "a",
        "--reason",
        "r",
        "--state-db",
        str(db),
        "--audit-dir",
        str(audit),
    )
    assert result.exit_code == 0, result.output
    assert db.exists()
    assert list(audit.glob("audit-*.jsonl"))
    assert "ACTIVE" in _run(app, "status", "--state-db", str(db)).output


def test_status_when_database_unreadable_exits_1(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, _ = paths
    state_db.parent.mkdir(parents=True)
    state_db.write_bytes(b"this is not a sqlite database, not at all" * 10)
    result = _run(app, "status")
    assert result.exit_code == 1
    assert "not a SQLite database" in result.output
    assert "Traceback" not in result.output


class EngineExecutor:
    """The running engine's executor: it can reach the exchange."""

    def __init__(self) -> None:
        self.positions = {"BTCUSDT": 0.25}
        self.canceled = 0

    def cancel_all_orders(self) -> int:
        self.canceled += 2
        return 2

    def open_positions(self) -> Mapping[str, float]:
        return dict(self.positions)

    def close_position(self, symbol: str, quantity: float) -> bool:
        self.positions.pop(symbol)
        return True


def test_trigger_when_engine_runs_engine_sees_latch_and_flattens(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, _ = paths
    with open_state_stores(state_db) as stores:  # the engine's process, started before
        clock = ManualClock(1)
        executor = EngineExecutor()
        ess = EmergencyStopSystem(
            stores.ess, PolicyService(stores.policy, clock), executor, clock, evaluators=()
        )
        assert not ess.is_active()
        assert _run(app, "trigger", "--actor", "alice", "--reason", "stop").exit_code == 0
        assert ess.is_active()  # read from the shared store on every call
        report = ess.enforce()
        assert report is not None
        assert (report.orders_canceled, report.positions_closed) == (2, ("BTCUSDT",))
        assert executor.positions == {}


def test_trigger_when_reason_blank_exits_2_and_writes_nothing(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, audit_dir = paths
    result = _run(app, "trigger", "--actor", "alice", "--reason", " ")
    assert result.exit_code == 2
    assert "actor and a reason" in result.output
    assert _audit(audit_dir) == []
    with open_state_stores(state_db) as stores:
        assert not stores.ess.load().active


def test_status_when_latch_has_no_time_shows_dash(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, _ = paths
    with open_state_stores(state_db) as stores:
        stores.ess.save(EssState(active=True, reason="manual: imported", activated_by="ops"))
    result = _run(app, "status")
    assert result.exit_code == 0, result.output
    assert "activated at:     -" in result.output


def test_no_exchange_executor_when_asked_reaches_nothing() -> None:
    executor = NoVenueExecutor()
    assert executor.cancel_all_orders() == 0
    assert executor.open_positions() == {}
    assert executor.close_position("BTCUSDT", 1.0) is False
