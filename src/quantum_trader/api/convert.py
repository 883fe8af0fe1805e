"""From the domain's and the read model's values to the API's response models."""

from __future__ import annotations

import datetime as dt
from typing import Any

from quantum_trader.api.schemas import (
    EssStateModel,
    LimitsModel,
    OrderModel,
    PolicyModel,
    PositionModel,
    RiskModeHistoryItem,
    RiskModeResponse,
    StatusResponse,
    TradeModel,
    WorkerModel,
)
from quantum_trader.api.service import Position, Snapshot, from_ns
from quantum_trader.domain.clock import NANOS_PER_SECOND
from quantum_trader.domain.policy import Policy
from quantum_trader.stores.ports import EssState
from quantum_trader.stores.trades import TradeRecord

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _at(ts_ns: int) -> dt.datetime:
    return from_ns(ts_ns) or _EPOCH


def ess_model(state: EssState) -> EssStateModel:
    """The latch as the API shows it."""
    return EssStateModel(
        active=state.active,
        state="ACTIVE" if state.active else "INACTIVE",
        reason=state.reason,
        severity=state.severity,
        activated_at=from_ns(state.activated_at_ns),
        activated_by=state.activated_by,
        reset_at=from_ns(state.reset_at_ns),
        reset_by=state.reset_by,
        reset_reason=state.reset_reason,
        activations=state.activations,
        ignored_triggers=state.ignored_triggers,
    )


def policy_model(policy: Policy) -> PolicyModel:
    """A policy version as the API shows it."""
    data = policy.to_dict()
    return PolicyModel(
        version=policy.version,
        mode=policy.mode,
        state=policy.state,
        effective_state=policy.effective_state,
        limits={m: LimitsModel(**lim) for m, lim in data["limits"].items()},
        allowed_symbols=data["allowed_symbols"],
        max_orders_per_window=policy.max_orders_per_window,
        order_window_secs=policy.order_window_secs,
        max_price_age_secs=policy.max_price_age_secs,
        max_price_deviation=policy.max_price_deviation,
        updated_at=from_ns(policy.updated_at_ns),
        updated_by=policy.updated_by,
        reason=policy.reason,
    )


def risk_mode_model(policy: Policy) -> RiskModeResponse:
    """The mode part of a policy version."""
    return RiskModeResponse(
        mode=policy.mode,
        trading_state=policy.state,
        effective_trading_state=policy.effective_state,
        version=policy.version,
        updated_at=from_ns(policy.updated_at_ns),
        updated_by=policy.updated_by,
        reason=policy.reason,
    )


def history_item(policy: Policy, older: Policy | None) -> RiskModeHistoryItem:
    """One version of the mode history (``older``: the version before it, if known)."""
    return RiskModeHistoryItem(
        version=policy.version,
        mode=policy.mode,
        trading_state=policy.state,
        effective_trading_state=policy.effective_state,
        mode_changed=older is None or older.mode is not policy.mode,
        updated_at=from_ns(policy.updated_at_ns),
        updated_by=policy.updated_by,
        reason=policy.reason,
    )


def status_model(snap: Snapshot) -> StatusResponse:
    """The ``/status`` document of a snapshot."""
    workers = sorted(snap.workers.values(), key=lambda w: w.worker)
    policy = snap.policy
    point = snap.last_point
    return StatusResponse(
        as_of=_at(snap.as_of_ns),
        risk_mode=policy.mode if policy else None,
        trading_state=policy.state if policy else None,
        effective_trading_state=policy.effective_state if policy else None,
        policy_version=policy.version if policy else None,
        ess=ess_model(snap.ess) if snap.ess is not None else None,
        stores_reachable=snap.stores_reachable,
        bus_connected=snap.bus_connected,
        expected_workers=list(snap.expected),
        workers=[
            WorkerModel(
                worker=w.worker,
                last_heartbeat=_at(w.heartbeat_ns),
                heartbeat_age_secs=max(0.0, (snap.as_of_ns - w.heartbeat_ns) / NANOS_PER_SECOND),
                stale=snap.is_stale(w),
                market_time=_at(w.market_ts_ns),
                equity=w.equity,
                wallet=w.wallet,
                unrealized_pnl=w.unrealized_total,
                realized_pnl=w.realized,
                fees=w.fees,
                funding=w.funding,
                open_positions=len(w.positions),
                open_orders=w.open_orders,
                halted=w.halted,
                pending_trade_writes=w.pending_trade_writes,
            )
            for w in workers
        ],
        total_equity=point.equity if point else None,
        unrealized_pnl=sum(w.unrealized_total for w in workers),
        realized_pnl=sum(w.realized for w in workers),
        fees=sum(w.fees for w in workers),
        funding=sum(w.funding for w in workers),
        peak_equity=snap.peak_equity,
        drawdown=point.drawdown if point else None,
        max_drawdown=snap.max_drawdown,
        open_positions=sum(len(w.positions) for w in workers),
        open_orders=sum(w.open_orders for w in workers),
        orders_seen=snap.orders_seen,
        fills_seen=snap.fills_seen,
    )


def position_model(p: Position) -> PositionModel:
    """One open position."""
    return PositionModel(
        symbol=p.symbol,
        worker=p.worker,
        side="long" if p.quantity > 0 else "short",
        quantity=p.quantity,
        entry_price=p.entry_price,
        mark_price=p.mark_price,
        notional=abs(p.quantity) * p.mark_price if p.mark_price is not None else None,
        unrealized_pnl=p.unrealized_pnl,
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def order_model(order: dict[str, Any]) -> OrderModel:
    """An order event's payload."""
    market = order.get("market_ts")
    return OrderModel(
        worker=_text(order.get("worker")),
        client_order_id=_text(order.get("client_order_id")),
        symbol=_text(order.get("symbol")),
        side=_text(order.get("side")),
        quantity=_number(order.get("quantity")),
        reduce_only=bool(order.get("reduce_only")),
        status=_text(order.get("status")),
        reason=_text(order.get("reason")),
        market_time=from_ns(market) if isinstance(market, int) else None,
        published_at=_at(int(order.get("ts_ns", 0))),
    )


def trade_model(record: TradeRecord) -> TradeModel:
    """A stored trade."""
    return TradeModel(
        trade_id=record.trade_id,
        worker=str(record.metadata.get("worker", "")),
        symbol=record.symbol,
        side=record.side.value,
        quantity=record.quantity,
        entry_price=record.entry_price,
        entry_time=_at(record.entry_ts_ns),
        exit_price=record.exit_price,
        exit_time=from_ns(record.exit_ts_ns) if record.exit_ts_ns is not None else None,
        status=record.status.value,
        realized_pnl=record.realized_pnl,
        fees=record.fees,
        funding=record.funding,
        net_pnl=record.realized_pnl - record.fees + record.funding,
        strategy=record.strategy,
        model_version=record.model_version,
        client_order_ids=list(record.client_order_ids),
    )
