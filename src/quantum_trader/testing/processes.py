"""Entry points for tests that run real child processes (importable by spawned workers)."""

from __future__ import annotations

from pathlib import Path

from quantum_trader.domain.clock import ManualClock
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.records import Durability


def append_audit_records(directory: str, actor: str, count: int, start_ns: int) -> None:
    """Append ``count`` trade.decision records as ``actor`` to the audit folder ``directory``."""
    clock = ManualClock(start_ns)
    with AuditLogger(
        Path(directory), clock, durability=Durability.GROUP, retention_days=None
    ) as audit:
        for i in range(count):
            audit.append("trade.decision", actor=actor, action="decide", metadata={"i": i})
