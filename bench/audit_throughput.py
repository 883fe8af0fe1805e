"""Audit log throughput per durability mode, and the cost of verify per million records.

    .venv/bin/python bench/audit_throughput.py [--records 200000] [--fsync-records 2000]

Appends trade.executed records (the common kind, ~420 bytes) through the typed helper, closes
the logger (which flushes), and prints appends per second; then verifies the buffered folder and
scales its time to one million records. Writes to a temporary folder on the disk that holds the
system's temp directory (set TMPDIR to measure another disk).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from quantum_trader.domain.clock import ManualClock
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.records import Durability
from quantum_trader.observability.audit.verify import verify_audit_dir

T0 = 1_750_000_000_000_000_000


def _append(directory: Path, mode: Durability, n: int) -> float:
    clock = ManualClock(T0)
    audit = AuditLogger(directory, clock, durability=mode, retention_days=None, group_commit_ms=5)
    started = time.perf_counter()
    for i in range(n):
        clock.advance(20_000_000_000)
        audit.trade_executed(
            actor="sim-exchange",
            symbol="BTCUSDT",
            side="buy",
            quantity=0.05,
            price=107348.7,
            fee=2.147,
            client_order_id=f"bt-{i:07d}",
            metadata={"liquidity": "taker"},
        )
    audit.close()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--fsync-records", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for mode, n in (
            (Durability.BUFFERED, args.records),
            (Durability.GROUP, args.records),
            (Durability.FSYNC, args.fsync_records),
        ):
            elapsed = _append(root / mode.value, mode, n)
            print(
                f"{mode.value:>8}: {n:>9,} appends in {elapsed:7.3f} s = {n / elapsed:>10,.0f} /s"
            )
        started = time.perf_counter()
        result = verify_audit_dir(root / Durability.BUFFERED.value)
        elapsed = time.perf_counter() - started
        assert result.ok, result.problem
        per_million = elapsed / result.records * 1_000_000
        print(
            f"  verify: {result.records:,} records in {elapsed:.3f} s "
            f"= {per_million:.2f} s per million records"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
