"""The audit recording interface: ``append`` plus one typed helper per event type.

Every writer (the in-process AuditLogger, the BackgroundAuditLogger that writes from a child
process) implements ``append``, ``flush``, ``close`` and ``healthy``; the typed helpers here are
shared, so a record means the same thing whoever writes it.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from quantum_trader.observability.audit.records import AuditEventType

# One record before it is chained: (ts_ns, event_type, actor, action, target, reason, outcome,
# metadata, trace_id); ts_ns None means "now" by the writer's clock. Builders below make the
# hot kinds; writers take them in bulk.
AuditTuple = tuple[int | None, str, str, str, str, str, str, Mapping[str, Any], str]

_DECISION = AuditEventType.TRADE_DECISION.value
_EXECUTED = AuditEventType.TRADE_EXECUTED.value
_CLOSED = AuditEventType.TRADE_CLOSED.value


def decision_record(
    ts_ns: int | None,
    actor: str,
    symbol: str,
    side: str,
    quantity: float,
    price: float,
    reason: str = "",
    metadata: Mapping[str, Any] | None = None,
    trace_id: str = "",
) -> AuditTuple:
    """A ``trade.decision`` record: ``actor`` decided to trade ``quantity`` at about ``price``."""
    meta = {"side": side, "quantity": quantity, "price": price}
    if metadata:
        meta.update(metadata)
    return (ts_ns, _DECISION, actor, f"decide_{side}", symbol, reason, "decided", meta, trace_id)


def executed_record(
    ts_ns: int | None,
    actor: str,
    symbol: str,
    side: str,
    quantity: float,
    price: float,
    fee: float,
    client_order_id: str,
    outcome: str = "filled",
    reason: str = "",
    metadata: Mapping[str, Any] | None = None,
    trace_id: str = "",
) -> AuditTuple:
    """A ``trade.executed`` record: a fill, or a rejection (``outcome='rejected'``, reason code)."""
    meta = {
        "side": side,
        "quantity": quantity,
        "price": price,
        "fee": fee,
        "client_order_id": client_order_id,
    }
    if metadata:
        meta.update(metadata)
    return (ts_ns, _EXECUTED, actor, f"execute_{side}", symbol, reason, outcome, meta, trace_id)


def closed_record(
    ts_ns: int | None,
    actor: str,
    symbol: str,
    trade_id: str,
    side: str,
    quantity: float,
    entry_price: float,
    exit_price: float,
    realized_pnl: float,
    fees: float,
    funding: float,
    outcome: str = "closed",
    metadata: Mapping[str, Any] | None = None,
    trace_id: str = "",
) -> AuditTuple:
    """A ``trade.closed`` record: a round trip ended (``closed`` or ``liquidated``)."""
    meta = {
        "trade_id": trade_id,
        "side": side,
        "quantity": quantity,
        "entry_price": entry_price,
        "exit_price": exit_price,
        "realized_pnl": realized_pnl,
        "fees": fees,
        "funding": funding,
        "net_pnl": realized_pnl - fees + funding,
    }
    if metadata:
        meta.update(metadata)
    return (ts_ns, _CLOSED, actor, "close_trade", symbol, "", outcome, meta, trace_id)


class AuditRecorder(abc.ABC):
    """Anything that records audit events; raises AuditUnavailableError when it cannot."""

    @abc.abstractmethod
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
        """Record one event (time from the writer's clock unless ``ts_ns`` is given)."""

    def append_many(self, records: Sequence[AuditTuple]) -> None:
        """Record several events given as tuples (``*_record`` builders), in order.

        Writers that can, take them in one step (a backtest's hot path); this default appends
        them one by one.
        """
        for ts, et, actor, action, target, reason, outcome, metadata, trace_id in records:
            self.append(
                et,
                actor=actor,
                action=action,
                target=target,
                reason=reason,
                outcome=outcome,
                metadata=metadata,
                trace_id=trace_id,
                ts_ns=ts,
            )

    @abc.abstractmethod
    def flush(self) -> None:
        """Write everything recorded so far."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release resources."""

    @property
    @abc.abstractmethod
    def healthy(self) -> bool:
        """False while records cannot be written: nothing may trade then."""

    def trade_decision(
        self,
        *,
        actor: str,
        symbol: str,
        side: str,
        quantity: float,
        price: float,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
        trace_id: str = "",
        ts_ns: int | None = None,
    ) -> None:
        """A strategy decided to trade ``quantity`` of ``symbol`` at about ``price``."""
        self.append_many(
            (
                decision_record(
                    ts_ns,
                    actor,
                    symbol,
                    side,
                    quantity,
                    price,
                    reason,
                    metadata,
                    trace_id,
                ),
            )
        )

    def trade_executed(
        self,
        *,
        actor: str,
        symbol: str,
        side: str,
        quantity: float,
        price: float,
        fee: float,
        client_order_id: str,
        outcome: str = "filled",
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
        trace_id: str = "",
        ts_ns: int | None = None,
    ) -> None:
        """An order filled (or was rejected: ``outcome='rejected'`` with a reason code)."""
        self.append_many(
            (
                executed_record(
                    ts_ns,
                    actor,
                    symbol,
                    side,
                    quantity,
                    price,
                    fee,
                    client_order_id,
                    outcome,
                    reason,
                    metadata,
                    trace_id,
                ),
            )
        )

    def trade_closed(
        self,
        *,
        actor: str,
        symbol: str,
        trade_id: str,
        side: str,
        quantity: float,
        entry_price: float,
        exit_price: float,
        realized_pnl: float,
        fees: float,
        funding: float,
        outcome: str = "closed",
        metadata: Mapping[str, Any] | None = None,
        trace_id: str = "",
        ts_ns: int | None = None,
    ) -> None:
        """A round trip ended (``outcome`` ``closed`` or ``liquidated``)."""
        self.append_many(
            (
                closed_record(
                    ts_ns,
                    actor,
                    symbol,
                    trade_id,
                    side,
                    quantity,
                    entry_price,
                    exit_price,
                    realized_pnl,
                    fees,
                    funding,
                    outcome,
                    metadata,
                    trace_id,
                ),
            )
        )

    def risk_blocked(
        self,
        *,
        actor: str,
        symbol: str,
        reason_code: str,
        detail: str = "",
        metadata: Mapping[str, Any] | None = None,
        trace_id: str = "",
    ) -> None:
        """The RiskGuard denied an order intent; ``reason_code`` is its enum value."""
        self.append(
            AuditEventType.RISK_BLOCKED,
            actor=actor,
            action="deny_order",
            target=symbol,
            reason=reason_code,
            outcome="denied",
            metadata={"detail": detail, **(metadata or {})},
            trace_id=trace_id,
        )

    def emergency_triggered(
        self,
        *,
        actor: str,
        reason: str,
        severity: str,
        positions_closed: list[str],
        orders_canceled: int,
        metadata: Mapping[str, Any] | None = None,
        trace_id: str = "",
    ) -> None:
        """The Emergency Stop System activated."""
        self.append(
            AuditEventType.EMERGENCY_TRIGGERED,
            actor=actor,
            action="emergency_stop",
            target="trading",
            reason=reason,
            outcome="halted",
            metadata={
                "severity": severity,
                "positions_closed": positions_closed,
                "orders_canceled": orders_canceled,
                **(metadata if metadata else {}),
            },
            trace_id=trace_id,
        )

    def emergency_recovered(
        self, *, actor: str, reason: str, new_state: str, metadata: Mapping[str, Any] | None = None
    ) -> None:
        """A person reset the Emergency Stop System."""
        self.append(
            AuditEventType.EMERGENCY_RECOVERED,
            actor=actor,
            action="emergency_reset",
            target="trading",
            reason=reason,
            outcome=new_state,
            metadata=metadata,
        )

    def model_promoted(
        self,
        *,
        actor: str,
        model: str,
        version: str,
        reason: str,
        forced: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """A model version became active."""
        self.append(
            AuditEventType.MODEL_PROMOTED,
            actor=actor,
            action="promote_model",
            target=f"{model}:{version}",
            reason=reason,
            outcome="forced" if forced else "gated",
            metadata=metadata,
        )

    def model_demoted(
        self,
        *,
        actor: str,
        model: str,
        version: str,
        reason: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """A model version was demoted or rolled back."""
        self.append(
            AuditEventType.MODEL_DEMOTED,
            actor=actor,
            action="demote_model",
            target=f"{model}:{version}",
            reason=reason,
            outcome="demoted",
            metadata=metadata,
        )

    def policy_changed(
        self,
        *,
        actor: str,
        reason: str,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        version: int,
        trace_id: str = "",
    ) -> None:
        """The policy document changed from ``old`` to ``new`` (now at ``version``)."""
        self.append(
            AuditEventType.POLICY_CHANGED,
            actor=actor,
            action="update_policy",
            target="policy",
            reason=reason,
            outcome=f"version_{version}",
            metadata={"old": old, "new": new},
            trace_id=trace_id,
        )

    def system_state_changed(
        self,
        *,
        actor: str,
        component: str,
        old: str,
        new: str,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """A component or the system changed state."""
        self.append(
            AuditEventType.SYSTEM_STATE_CHANGED,
            actor=actor,
            action="change_state",
            target=component,
            reason=reason,
            outcome=new,
            metadata={"old": old, "new": new, **(metadata or {})},
        )

    def config_updated(
        self, *, actor: str, section: str, changes: Mapping[str, Any], reason: str = ""
    ) -> None:
        """Configuration changed (``changes`` maps key to [old, new]; never include secrets)."""
        self.append(
            AuditEventType.CONFIG_UPDATED,
            actor=actor,
            action="update_config",
            target=section,
            reason=reason,
            outcome="applied",
            metadata={"changes": changes},
        )
