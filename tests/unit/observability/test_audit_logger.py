"""AuditLogger: the chain, day files, durability modes, several writers, failing closed."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import orjson
import pytest

from quantum_trader.domain.clock import NANOS_PER_DAY, NANOS_PER_SECOND, ManualClock
from quantum_trader.domain.errors import AuditUnavailableError, ConfigError
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.records import (
    GENESIS_HASH,
    RECORD_FIELDS,
    AuditEventType,
    Durability,
    day_files,
)
from quantum_trader.observability.audit.verify import verify_audit_dir
from quantum_trader.testing.processes import append_audit_records

T0 = 1_750_000_000 * NANOS_PER_SECOND  # 2025-06-15T15:06:40Z


def records(directory: Path) -> list[dict[str, object]]:
    out = []
    for path in day_files(directory):
        out.extend(orjson.loads(line) for line in path.read_bytes().splitlines())
    return out


def logger(tmp_path: Path, clock: ManualClock, **kw: object) -> AuditLogger:
    kw.setdefault("retention_days", None)
    return AuditLogger(tmp_path, clock, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", list(Durability))
def test_append_when_any_durability_writes_chained_records_that_verify(
    tmp_path: Path, mode: Durability
) -> None:
    clock = ManualClock(T0)
    with logger(tmp_path, clock, durability=mode) as audit:
        audit.trade_decision(
            actor="sma_cross", symbol="BTCUSDT", side="buy", quantity=0.05, price=107348.7
        )
        clock.advance(NANOS_PER_SECOND)
        audit.trade_executed(
            actor="sim",
            symbol="BTCUSDT",
            side="buy",
            quantity=0.05,
            price=107350.0,
            fee=2.147,
            client_order_id="bt-0000001",
        )
    recs = records(tmp_path)
    assert [r["seq"] for r in recs] == [1, 2]
    assert list(recs[0]) == list(RECORD_FIELDS)
    assert recs[0]["prev_hash"] == GENESIS_HASH
    assert recs[1]["prev_hash"] == recs[0]["hash"]
    assert recs[0]["ts"] == "2025-06-15T15:06:40.000000Z"
    assert recs[1]["event_type"] == "trade.executed"
    assert recs[1]["metadata"] == {  # type: ignore[comparison-overlap]
        "side": "buy",
        "quantity": 0.05,
        "price": 107350.0,
        "fee": 2.147,
        "client_order_id": "bt-0000001",
    }
    result = verify_audit_dir(tmp_path)
    assert result.ok, result.problem
    assert result.records == 2


def test_append_when_buffered_writes_nothing_until_flush(tmp_path: Path) -> None:
    audit = logger(tmp_path, ManualClock(T0), durability=Durability.BUFFERED)
    audit.append(AuditEventType.CONFIG_UPDATED, actor="ops", action="update_config")
    assert records(tmp_path) == []
    assert audit.pending == 1
    audit.flush()
    assert len(records(tmp_path)) == 1
    audit.close()


def test_append_when_group_mode_record_is_readable_at_once(tmp_path: Path) -> None:
    with logger(tmp_path, ManualClock(T0), durability=Durability.GROUP) as audit:
        audit.append("risk.blocked", actor="risk_guard", action="deny_order", reason="leverage")
        assert [r["reason"] for r in records(tmp_path)] == ["leverage"]


def test_metadata_when_keys_clash_with_field_names_stays_nested(tmp_path: Path) -> None:
    with logger(tmp_path, ManualClock(T0)) as audit:
        audit.append(
            "config.updated",
            actor="ops",
            action="x",
            metadata={"seq": 99, "hash": "fake", "actor": "eve"},
        )
    (rec,) = records(tmp_path)
    assert rec["seq"] == 1
    assert rec["actor"] == "ops"
    assert rec["metadata"] == {"seq": 99, "hash": "fake", "actor": "eve"}
    assert verify_audit_dir(tmp_path).ok


def test_append_when_unknown_event_type_raises(tmp_path: Path) -> None:
    with (
        logger(tmp_path, ManualClock(T0)) as audit,
        pytest.raises(ValueError, match=r"trade\.teleported"),
    ):
        audit.append("trade.teleported", actor="x", action="y")


def test_chain_when_day_changes_continues_in_next_day_file(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    with logger(tmp_path, clock) as audit:
        audit.append("system.state_changed", actor="engine", action="start")
        clock.advance(NANOS_PER_DAY)
        audit.append("system.state_changed", actor="engine", action="stop")
    files = [p.name for p in day_files(tmp_path)]
    assert files == ["audit-2025-06-15.jsonl", "audit-2025-06-16.jsonl"]
    first, second = records(tmp_path)
    assert second["prev_hash"] == first["hash"]
    assert verify_audit_dir(tmp_path).ok


def test_two_loggers_when_sharing_a_folder_keep_one_chain(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    a = logger(tmp_path, clock, durability=Durability.FSYNC)
    b = logger(tmp_path, clock, durability=Durability.GROUP)
    for i in range(20):
        (a if i % 3 else b).append("trade.decision", actor=f"w{i % 3}", action="decide")
    a.close()
    b.close()
    assert [r["seq"] for r in records(tmp_path)] == list(range(1, 21))
    assert verify_audit_dir(tmp_path).ok


def test_processes_when_writing_concurrently_never_interleave_or_break_chain(
    tmp_path: Path,
) -> None:
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=append_audit_records, args=(str(tmp_path), f"p{k}", 300, T0))
        for k in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    recs = records(tmp_path)
    assert [r["seq"] for r in recs] == list(range(1, 901))
    for k in range(3):  # each writer's own records stay in its order
        mine = [r["metadata"]["i"] for r in recs if r["actor"] == f"p{k}"]  # type: ignore[index]
        assert mine == list(range(300))
    assert verify_audit_dir(tmp_path).ok


def test_append_when_disk_full_fails_closed_and_keeps_records_for_retry(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    audit = logger(tmp_path, clock, durability=Durability.FSYNC)
    audit.append("trade.decision", actor="s", action="decide", metadata={"n": 1})
    day = day_files(tmp_path)[0]
    clock.advance(NANOS_PER_DAY)  # the next day's file is on a full disk
    full = tmp_path / "audit-2025-06-16.jsonl"
    full.symlink_to("/dev/full")
    with pytest.raises(AuditUnavailableError, match="No space left on device"):
        audit.append("trade.decision", actor="s", action="decide", metadata={"n": 2})
    assert not audit.healthy
    assert audit.pending == 1
    with pytest.raises(AuditUnavailableError):
        audit.append("trade.decision", actor="s", action="decide", metadata={"n": 3})
    assert audit.pending == 2
    # Space comes back: the queued records are written, in order, by the next append.
    full.unlink()
    audit._fds.clear()  # the descriptor to /dev/full went with the symlink
    audit.append("trade.decision", actor="s", action="decide", metadata={"n": 4})
    audit.close()
    assert audit.healthy
    assert [r["metadata"]["n"] for r in records(tmp_path)] == [1, 2, 3, 4]  # type: ignore[index]
    assert day.exists()
    assert verify_audit_dir(tmp_path).ok


def test_append_when_permission_denied_fails_closed_naming_the_cause(tmp_path: Path) -> None:
    def deny(path: Path) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    audit = logger(tmp_path, ManualClock(T0), durability=Durability.FSYNC, opener=deny)
    with pytest.raises(AuditUnavailableError, match="Permission denied"):
        audit.append("trade.decision", actor="s", action="decide")
    assert audit.failures == 1
    assert audit.failure is not None
    assert "audit-2025-06-15.jsonl" not in os.listdir(tmp_path)


def test_retention_when_files_expire_deletes_them_audits_it_and_still_verifies(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    with logger(tmp_path, clock) as audit:
        for _ in range(5):
            audit.append("trade.decision", actor="s", action="decide")
            clock.advance(30 * NANOS_PER_DAY)
    assert len(day_files(tmp_path)) == 5
    clock.advance(0)
    with AuditLogger(tmp_path, clock, retention_days=90) as audit:  # cleanup runs at start-up
        pass
    names = [p.name for p in day_files(tmp_path)]
    assert len(names) == 4  # 150 days from T0: files older than 90 days are gone
    recs = records(tmp_path)
    cut = recs[-1]
    assert cut["action"] == "audit.retention_cleanup"
    assert cut["metadata"]["deleted_files"] == ["audit-2025-06-15.jsonl", "audit-2025-07-15.jsonl"]  # type: ignore[index]
    result = verify_audit_dir(tmp_path)
    assert result.ok, result.problem
    assert result.first_seq == 3


def test_verify_when_oldest_file_removed_without_retention_record_fails(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    with logger(tmp_path, clock) as audit:
        for _ in range(3):
            audit.append("trade.decision", actor="s", action="decide")
            clock.advance(NANOS_PER_DAY)
    day_files(tmp_path)[0].unlink()
    result = verify_audit_dir(tmp_path)
    assert not result.ok
    assert "no retention record explains the cut" in str(result.problem)


def test_verify_when_hmac_key_used_rejects_chain_rebuilt_without_it(tmp_path: Path) -> None:
    with logger(tmp_path, ManualClock(T0), key=b"secret") as audit:
        audit.append("trade.decision", actor="s", action="decide")
    assert verify_audit_dir(tmp_path, key=b"secret").ok
    assert not verify_audit_dir(tmp_path).ok
    assert not verify_audit_dir(tmp_path, key=b"guess").ok


def test_logger_when_bad_settings_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="retention_days"):
        AuditLogger(tmp_path, ManualClock(T0), retention_days=0)


def test_retention_when_every_file_expires_restarts_chain_at_the_deletion_record(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    with logger(tmp_path, clock) as audit:
        audit.append("trade.decision", actor="s", action="decide")
        audit.append("trade.decision", actor="s", action="decide")
    clock.advance(200 * NANOS_PER_DAY)
    with AuditLogger(tmp_path, clock, retention_days=90):
        pass
    recs = records(tmp_path)
    assert [r["action"] for r in recs] == ["audit.retention_cleanup"]
    assert recs[0]["seq"] == 3
    result = verify_audit_dir(tmp_path)
    assert result.ok, result.problem
