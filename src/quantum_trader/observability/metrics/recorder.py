"""The metrics recording interface: three primitives plus one typed helper per event.

``MetricsLogger`` (Prometheus, live and paper) and ``MetricsAggregator`` (plain dicts,
backtests) implement ``increment``, ``set_value`` and ``observe``; the helpers here are shared,
so a helper updates the same series whichever recorder it runs on.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from quantum_trader.observability.metrics.catalogue import (
    CATALOGUE_BY_NAME,
    RISK_MODES,
    TRADING_STATES,
)

LabelValues = tuple[str, ...]
"""Label values in the order of the spec's labels; StrEnum members are accepted."""

_LATENCY = CATALOGUE_BY_NAME["latency_seconds"]
_RISK_MODE = CATALOGUE_BY_NAME["risk_mode"].labels[0]
_TRADING_STATE = CATALOGUE_BY_NAME["trading_state"].labels[0]


class MetricsTimer:
    """Time a block with a monotonic clock and record the elapsed seconds on exit.

    The elapsed time is recorded even when the block raises: slow failures matter too.
    """

    __slots__ = ("_monotonic", "_record", "_start", "elapsed_seconds")

    def __init__(
        self,
        record: Callable[[float], None],
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Record through ``record(seconds)``, reading time from ``monotonic``."""
        self._record = record
        self._monotonic = monotonic
        self._start = 0.0
        self.elapsed_seconds: float | None = None

    def __enter__(self) -> Self:
        """Start the clock."""
        self._start = self._monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the clock and record the elapsed seconds; never suppresses an exception."""
        elapsed = self._monotonic() - self._start
        self.elapsed_seconds = elapsed
        self._record(elapsed)


class MetricsRecorder(abc.ABC):
    """Anything that records metrics of the catalogue; label values are checked once each."""

    def __init__(self, *, monotonic: Callable[[], float] = time.perf_counter) -> None:
        """Use ``monotonic`` for ``time`` (inject a fake clock in tests)."""
        self.monotonic = monotonic

    @abc.abstractmethod
    def increment(self, name: str, amount: float = 1.0, labels: LabelValues = ()) -> None:
        """Add ``amount`` (>= 0) to counter ``name``; ValueError if negative or a label is bad."""

    @abc.abstractmethod
    def set_value(self, name: str, value: float, labels: LabelValues = ()) -> None:
        """Set gauge ``name`` to ``value``; ValueError for a bad label."""

    @abc.abstractmethod
    def observe(self, name: str, value: float, labels: LabelValues = ()) -> None:
        """Add one observation to histogram ``name``; ValueError for a bad label."""

    def time(self, operation: str) -> MetricsTimer:
        """Return a timer recording into ``latency_seconds{operation}`` when its block ends."""
        labels = (operation,)
        _LATENCY.check_labels(labels)  # fail where the timer is made, not when it stops
        return MetricsTimer(
            lambda seconds: self.observe("latency_seconds", seconds, labels), self.monotonic
        )

    # Trading

    def record_trade(self, symbol: str, side: str) -> None:
        """Count a round-trip trade opened on ``symbol`` with entry ``side``."""
        self.increment("trades_total", 1.0, (symbol, side))

    def record_order(self, symbol: str, side: str, order_type: str, outcome: str) -> None:
        """Count an order that ended as ``outcome``: filled, canceled, rejected or expired."""
        self.increment("orders_total", 1.0, (symbol, side, order_type, outcome))

    def record_order_rejection(self, reason: str) -> None:
        """Count an order the venue rejected, by reason code."""
        self.increment("order_rejections_total", 1.0, (reason,))

    def record_fill(self, symbol: str, liquidity: str, fee_usdt: float = 0.0) -> None:
        """Count a fill and add its fee (USDT, >= 0)."""
        self.increment("fills_total", 1.0, (symbol, liquidity))
        if fee_usdt:
            self.record_fee(fee_usdt)

    def record_fee(self, fee_usdt: float) -> None:
        """Add a fee paid, in USDT; ValueError if negative."""
        if fee_usdt < 0.0:
            raise ValueError(f"fee_usdt must be >= 0, got {fee_usdt}")
        self.increment("fees_usdt_total", fee_usdt)

    def record_funding(self, amount_usdt: float) -> None:
        """Add a funding payment seen from the account: positive received, negative paid."""
        if amount_usdt > 0.0:
            self.increment("funding_received_usdt_total", amount_usdt)
        elif amount_usdt < 0.0:
            self.increment("funding_paid_usdt_total", -amount_usdt)

    # Account

    def set_equity(self, equity_usdt: float) -> None:
        """Set the mark-to-market equity, in USDT."""
        self.set_value("equity_usdt", equity_usdt)

    def set_drawdown(self, drawdown_ratio: float) -> None:
        """Set the drawdown from the equity peak, as a ratio (0.1 is 10 %)."""
        self.set_value("drawdown_ratio", drawdown_ratio)

    def set_realized_pnl(self, realized_pnl_usdt: float) -> None:
        """Set the realized PnL since start, in USDT."""
        self.set_value("realized_pnl_usdt", realized_pnl_usdt)

    def set_unrealized_pnl(self, unrealized_pnl_usdt: float) -> None:
        """Set the unrealized PnL of open positions, in USDT."""
        self.set_value("unrealized_pnl_usdt", unrealized_pnl_usdt)

    def set_position(self, symbol: str, quantity: float) -> None:
        """Set the signed position size on ``symbol`` (0 when flat)."""
        self.set_value("position_quantity", quantity, (symbol,))

    # Latency and models

    def record_latency(self, operation: str, seconds: float) -> None:
        """Observe how long ``operation`` took, in seconds."""
        self.observe("latency_seconds", seconds, (operation,))

    def record_model_prediction(self, model: str, direction: str, confidence: float) -> None:
        """Count a prediction of ``model`` and observe its confidence; ValueError outside 0..1."""
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence must be within 0..1, got {confidence}")
        self.increment("model_predictions_total", 1.0, (model, direction))
        self.observe("model_confidence", confidence)

    def record_sizing_fallback(self, reason: str) -> None:
        """Count a switch from the RL sizing agent to the rule-based sizer, by reason code."""
        self.increment("sizing_fallbacks_total", 1.0, (reason,))

    # Risk and safety

    def record_risk_denial(self, reason: str) -> None:
        """Count an order intent the RiskGuard denied, by reason code."""
        self.increment("risk_denials_total", 1.0, (reason,))

    def record_emergency_stop(self, reason: str) -> None:
        """Count an emergency stop activation and mark the stop as latched."""
        self.increment("emergency_stops_total", 1.0, (reason,))
        self.set_value("emergency_stop_active", 1.0)

    def set_emergency_stop_active(self, active: bool) -> None:
        """Set whether the emergency stop is latched (after a reset, or on start-up)."""
        self.set_value("emergency_stop_active", 1.0 if active else 0.0)

    def set_risk_mode(self, mode: str) -> None:
        """Mark ``mode`` as the active risk mode (1) and every other mode inactive (0)."""
        active = _RISK_MODE.check(mode)
        for candidate in RISK_MODES:
            self.set_value("risk_mode", 1.0 if candidate == active else 0.0, (candidate,))

    def record_risk_mode_transition(self, from_mode: str, to_mode: str) -> None:
        """Count a risk mode change and make ``to_mode`` the active mode."""
        self.increment("risk_mode_transitions_total", 1.0, (from_mode, to_mode))
        self.set_risk_mode(to_mode)

    def set_trading_state(self, state: str) -> None:
        """Mark ``state`` (active, reducing, halted) as current and the others as not."""
        current = _TRADING_STATE.check(state)
        for candidate in TRADING_STATES:
            self.set_value("trading_state", 1.0 if candidate == current else 0.0, (candidate,))

    def set_subsystem_health(self, *, critical: int, degraded: int) -> None:
        """Set how many subsystems the coordinator scores CRITICAL and DEGRADED."""
        if critical < 0 or degraded < 0:
            raise ValueError(f"subsystem counts must be >= 0, got {critical}, {degraded}")
        self.set_value("subsystems_critical", float(critical))
        self.set_value("subsystems_degraded", float(degraded))

    def record_policy_change(self, actor_kind: str) -> None:
        """Count a policy change by ``actor_kind`` (human, ai_hfos, system)."""
        self.increment("policy_changes_total", 1.0, (actor_kind,))

    # Audit

    def record_audit_record(self, event_type: str) -> None:
        """Count an audit record written, by event type."""
        self.increment("audit_records_total", 1.0, (event_type,))

    def record_audit_write_failure(self) -> None:
        """Count a failed audit write and mark the audit log unhealthy."""
        self.increment("audit_write_failures_total")
        self.set_value("audit_healthy", 0.0)

    def set_audit_healthy(self, healthy: bool) -> None:
        """Set whether the audit log can be written."""
        self.set_value("audit_healthy", 1.0 if healthy else 0.0)

    # Backtest

    def record_bars(self, count: int = 1) -> None:
        """Count market data bars processed."""
        self.increment("bars_processed_total", float(count))

    def set_backtest_speed(self, bars_per_second: float) -> None:
        """Set the throughput of the last backtest, in bars per second."""
        self.set_value("backtest_bars_per_second", bars_per_second)
