"""The backtest writes its audit trail, and fails closed when it cannot."""

from __future__ import annotations

from pathlib import Path

import orjson

from quantum_trader.domain.clock import ManualClock
from quantum_trader.engine.backtest import BacktestEngine
from quantum_trader.engine.settings import BacktestSettings
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.records import Durability, day_files
from quantum_trader.observability.audit.verify import verify_audit_dir
from quantum_trader.testing.builders import ScriptedStrategy, candles, symbol_data

SYM = "TESTUSDT"


def _records(directory: Path) -> list[dict[str, object]]:
    return [orjson.loads(x) for p in day_files(directory) for x in p.read_bytes().splitlines()]


def _run(
    tmp_path: Path, durability: Durability, targets: list[float]
) -> tuple[object, AuditLogger]:
    clock = ManualClock()
    audit = AuditLogger(tmp_path, clock, durability=durability, retention_days=None)
    settings = BacktestSettings(symbols=(SYM,), cash=10_000.0)
    prices = [100.0 + i for i in range(len(targets))]
    market = {SYM: symbol_data(SYM, candles(prices))}
    result = BacktestEngine(
        settings, ScriptedStrategy({SYM: targets}), market, audit=audit, clock=clock
    ).run()
    return result, audit


def test_backtest_when_audited_records_every_decision_execution_and_close(tmp_path: Path) -> None:
    result, audit = _run(tmp_path, Durability.BUFFERED, [1, 1, -1, -1, 0, 0, 2, 2])
    audit.close()
    recs = _records(tmp_path)
    kinds = [r["event_type"] for r in recs]
    # decisions at bars 0, 2, 4, 6; each fills at the next open; trades close at bars 3 and 5
    assert kinds.count("trade.decision") == 4
    assert kinds.count("trade.executed") == 4
    assert kinds.count("trade.closed") == 2
    assert kinds[0] == kinds[-1] == "system.state_changed"
    assert [r["outcome"] for r in recs if r["event_type"] == "trade.closed"] == ["closed", "closed"]
    first_exec = next(r for r in recs if r["event_type"] == "trade.executed")
    assert first_exec["ts"] == "2025-01-01T00:01:00.000000Z"  # the data's time, not the wall clock
    assert first_exec["metadata"]["price"] == 101.0  # type: ignore[index]
    ts = [r["ts"] for r in recs]
    assert ts == sorted(ts)
    assert verify_audit_dir(tmp_path).ok
    assert result.summary["halted"] is None  # type: ignore[attr-defined]


def test_backtest_when_audit_cannot_be_written_sends_no_further_orders(tmp_path: Path) -> None:
    # The day file sits on a full disk: the first write fails.
    (tmp_path / "audit-2025-01-01.jsonl").symlink_to("/dev/full")
    result, audit = _run(tmp_path, Durability.FSYNC, [1, 1, -1, -1, 1, 1])
    assert result.fills.empty  # type: ignore[attr-defined]
    halted = result.summary["halted"]  # type: ignore[attr-defined]
    assert "No space left on device" in halted
    reasons = set(result.rejected_orders["reason"])  # type: ignore[attr-defined]
    assert reasons == {"audit_unavailable"}
    assert not audit.healthy
    assert audit.pending > 0  # nothing acknowledged was lost: the records wait in memory
