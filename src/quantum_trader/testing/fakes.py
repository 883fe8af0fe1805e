"""Shipped fakes: recorders that keep what they are given, for tests and examples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quantum_trader.domain.errors import AuditUnavailableError
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.audit.records import AuditEventType


class RecordingAuditRecorder(AuditRecorder):
    """Keeps every audit record in ``records``; set ``fail`` to make ``append`` fail closed.

    ``log``, when given, receives ``"audit <event type>"`` per record, so a test can check the
    order of audit writes among other calls.
    """

    def __init__(self, log: list[str] | None = None) -> None:
        self.records: list[dict[str, Any]] = []
        self.log = log if log is not None else []
        self.fail = False

    @property
    def healthy(self) -> bool:
        """False while ``fail`` is set."""
        return not self.fail

    def append(
        self,
        event_type: AuditEventType | str,
        *,
        actor: str,
        action: str,
        target: str = "",
        reason: str = "",
        outcome: str = "",
        metadata: Mapping[str, Any] | None = None,
        trace_id: str = "",
        ts_ns: int | None = None,
    ) -> None:
        """Keep the record, or raise AuditUnavailableError while ``fail`` is set."""
        if self.fail:
            raise AuditUnavailableError("disk full")
        kind = AuditEventType(event_type).value
        self.log.append(f"audit {kind}")
        self.records.append(
            {
                "event_type": kind,
                "actor": actor,
                "action": action,
                "target": target,
                "reason": reason,
                "outcome": outcome,
                "metadata": dict(metadata or {}),
                "trace_id": trace_id,
                "ts_ns": ts_ns,
            }
        )

    def of(self, kind: AuditEventType) -> list[dict[str, Any]]:
        """The records of one event type, in order."""
        return [r for r in self.records if r["event_type"] == kind.value]

    def flush(self) -> None:
        """Nothing to write."""

    def close(self) -> None:
        """Nothing to release."""
