"""The safety core wired for a backtest: the same policy service, RiskGuard, ESS and coordinator
that paper and live use, fed by the engine's exact mark-to-market equity and its clock.

The engine asks this object three things: may this order intent go out (``check``), did a bar's
equity breach a limit (``on_equity``, ``breach_limits``), and what happens on a rejected order,
stale data or a coordinator cycle. Everything the safety core does is collected in
``events`` for the report and audited by the components themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from quantum_trader.domain.clock import NANOS_PER_DAY, Clock
from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.policy import Policy, RiskMode
from quantum_trader.engine.settings import RiskSettings
from quantum_trader.engine.stores import StateStores, open_state_stores
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.metrics.recorder import MetricsRecorder
from quantum_trader.risk.coordinator import Coordinator
from quantum_trader.risk.drawdown import DrawdownReading, utc_day
from quantum_trader.risk.ess import (
    DailyLossEvaluator,
    DrawdownEvaluator,
    EmergencyStopSystem,
    ExecutionErrorsEvaluator,
    FlattenExecutor,
    HealthEvaluator,
    StaleDataEvaluator,
)
from quantum_trader.risk.guard import AccountView, OrderIntent, RiskDecision, RiskGuard
from quantum_trader.risk.health import Subsystem, SubsystemHealth, SystemHealth
from quantum_trader.risk.policy_service import PolicyService


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """One action of the safety core, for the report (see ``RISK_EVENT_COLUMNS``)."""

    ts_ns: int
    kind: str
    symbol: str
    reason: str
    detail: str


class BacktestSafety:
    """RiskGuard + ESS + coordinator + policy service for one run."""

    def __init__(
        self,
        settings: RiskSettings,
        *,
        clock: Clock,
        executor: FlattenExecutor,
        audit: AuditRecorder | None,
        metrics: MetricsRecorder | None = None,
        state_db: Path | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.events: list[RiskEvent] = []
        self.stores: StateStores = open_state_stores(state_db)
        self.policy = PolicyService(self.stores.policy, clock, audit, metrics)
        self._seed_policy(settings.policy())
        self.guard = RiskGuard(self.policy.current, on_denied=self._denied)
        self._audit = audit
        ess = settings.ess
        self.errors = ExecutionErrorsEvaluator(ess.max_execution_errors, ess.error_window_secs)
        self.ess = EmergencyStopSystem(
            self.stores.ess,
            self.policy,
            executor,
            clock,
            audit,
            metrics,
            max_flatten_attempts=ess.max_flatten_attempts,
            evaluators=[
                DrawdownEvaluator(),
                DailyLossEvaluator(),
                self.errors,
                StaleDataEvaluator(ess.stale_data_secs),
                HealthEvaluator(),
            ],
        )
        self.coordinator = (
            Coordinator(
                self.policy,
                self.ess,
                clock,
                audit,
                metrics,
                up_cycles=settings.coordinator.up_cycles,
            )
            if settings.coordinator.enabled
            else None
        )
        self.ess_enabled = ess.enabled
        # The simulated subsystems' health: all healthy, execution degraded by recent rejections.
        healthy = [
            SubsystemHealth.at(s, SystemHealth.HEALTHY)
            for s in Subsystem
            if s is not Subsystem.EXECUTION
        ]
        self._reports = {
            flag: (*healthy, SubsystemHealth.at(Subsystem.EXECUTION, level, "recent rejections"))
            for flag, level in ((False, SystemHealth.HEALTHY), (True, SystemHealth.DEGRADED))
        }
        latch = self.ess.state()
        # A run that starts latched (a shared state database) trades nothing; say why.
        self.latched_at_start = latch.reason if latch.active else None
        self._limits_of: Policy | None = None
        self._scale_of: Policy | None = None
        self._scale = 1.0
        self._limits = (0.0, 0.0)
        self.peak = 0.0
        self.day = ""
        self._day_number = -1
        self.day_start = 0.0
        self._emergency_seen = self.ess.is_active()

    def _seed_policy(self, start: Policy) -> None:
        """Store the configured starting policy unless the store already holds a changed one."""
        stored = self.policy.current()
        if stored.version == 1 and stored.updated_by == "default":
            self.stores.policy.compare_and_set(1, replace(start, version=2))
            self.policy.refresh()

    def close(self) -> None:
        """Release the state stores."""
        self.stores.close()

    # ----------------------------------------------------------------- orders
    @property
    def halted(self) -> bool:
        """True while the ESS latch is set."""
        return self._emergency_seen

    def size_scale(self) -> float:
        """The active mode's size multiplier."""
        policy = self.policy.current()
        if policy is not self._scale_of:
            self._scale_of = policy
            self._scale = policy.limits[policy.mode].size_scale
        return self._scale

    def check(self, intent: OrderIntent, account: AccountView) -> RiskDecision:
        """The RiskGuard's decision on ``intent`` (denials are audited and recorded)."""
        return self.guard.check(intent, account)

    def _denied(self, intent: OrderIntent, decision: RiskDecision) -> None:
        self.events.append(
            RiskEvent(
                intent.ts_ns, "risk_blocked", intent.symbol, decision.reason.value, decision.detail
            )
        )
        if self._audit is not None:
            self._audit.risk_blocked(
                actor="risk-guard",
                symbol=intent.symbol,
                reason_code=decision.reason.value,
                detail=decision.detail,
                metadata={
                    "side": intent.side.value,
                    "quantity": intent.quantity,
                    "price": intent.price,
                    "strategy": intent.strategy,
                },
            )

    # ----------------------------------------------------------------- limits
    def limits(self) -> tuple[float, float]:
        """The active mode's (max_drawdown, max_daily_loss)."""
        policy = self.policy.current()
        # Asked on every bar; the policy object only changes when a new version is stored.
        if policy is not self._limits_of:
            lim = policy.active_limits
            self._limits_of = policy
            self._limits = (lim.max_drawdown, lim.max_daily_loss)
        return self._limits

    def on_equity(self, equity: float, ts_ns: int) -> bool:
        """Take a bar's closing equity (``ts_ns``: the bar's open); True if it breaches a limit.

        The peak and start-of-day equity move with it. Feeding the same bar twice changes
        nothing, so a caller may look ahead with it and then process the bar as usual.
        """
        day_number = ts_ns // NANOS_PER_DAY
        if day_number != self._day_number:
            self._day_number = day_number
            self.day = utc_day(ts_ns)
            self.day_start = equity
        if equity > self.peak:
            self.peak = equity
        if self._emergency_seen or not self.ess_enabled:
            return False
        max_dd, max_dl = self.limits()
        peak, start = self.peak, self.day_start
        return (peak > 0 and (peak - equity) >= max_dd * peak) or (
            start > 0 and (start - equity) >= max_dl * start
        )

    def reading(self, equity: float, ts_ns: int) -> DrawdownReading:
        """The drawdown reading for ``equity`` against the tracked peak and day start."""
        return DrawdownReading.measure(equity, self.peak, self.day_start, self.day, ts_ns)

    def evaluate(
        self, *, ts_ns: int, equity: float | None = None, last_data_ns: int | None = None
    ) -> bool:
        """Run the ESS evaluators; True if this activated the ESS (never when it is disabled)."""
        if self._emergency_seen or not self.ess_enabled:
            return False
        reading = self.reading(equity, ts_ns) if equity is not None else None
        activation = self.ess.check(drawdown=reading, last_market_data_ns=last_data_ns, ts_ns=ts_ns)
        if activation is None or not self.ess.is_active():
            return False
        self._emergency_seen = True
        state = self.ess.state()
        code, _, detail = state.reason.partition(": ")
        self.events.append(RiskEvent(ts_ns, "emergency_stop", "", code, detail))
        return True

    def on_rejection(self, ts_ns: int) -> bool:
        """Count a venue rejection; True if it activated the ESS (too many errors)."""
        self.errors.record_reject(ts_ns)
        return self.evaluate(ts_ns=ts_ns)

    # ----------------------------------------------------------------- coordinator
    def cycle(self, equity: float, ts_ns: int, recent_rejections: int) -> None:
        """One coordinator cycle: health of the simulated subsystems and the drawdown."""
        if self.coordinator is None or self._emergency_seen:
            return
        reports = self._reports[bool(recent_rejections)]
        result = self.coordinator.cycle(reports, self.reading(equity, ts_ns), ts_ns)
        if result.mode_after is not result.mode_before:
            self.events.append(
                RiskEvent(
                    ts_ns,
                    "mode_changed",
                    "",
                    f"{result.mode_before.value}->{result.mode_after.value}",
                    f"stress {result.stress:.2f}, health {result.health.system.value}",
                )
            )
        if result.emergency_triggered:
            self._emergency_seen = self.ess.is_active()

    def note_mode_change(self, ts_ns: int, before: RiskMode, after: RiskMode, why: str) -> None:
        """Record a mode change made outside the coordinator (a scheduled change)."""
        self.events.append(
            RiskEvent(ts_ns, "mode_changed", "", f"{before.value}->{after.value}", why)
        )


def account_view(
    equity: float,
    day_start: float,
    positions: Mapping[str, float],
    marks: Mapping[str, float],
    mark_ts: Mapping[str, int],
) -> AccountView:
    """Build the guard's view of the account."""
    return AccountView(equity, day_start if day_start > 0 else equity, positions, marks, mark_ts)


def intent_for(
    symbol: str,
    signed_qty: float,
    price: float,
    ts_ns: int,
    *,
    leverage: float,
    stop_loss: float | None,
    strategy: str,
    emergency: bool = False,
    confidence: float = 1.0,
) -> OrderIntent:
    """The intent for an order of ``signed_qty`` (a protective stop sets its stop price).

    ``confidence`` is the model's confidence in the decision (1.0 for rule-based strategies).
    """
    side = OrderSide.BUY if signed_qty > 0 else OrderSide.SELL
    stop = None
    if stop_loss is not None:
        stop = price * (1.0 - stop_loss) if signed_qty > 0 else price * (1.0 + stop_loss)
    return OrderIntent(
        symbol=symbol,
        side=side,
        quantity=abs(signed_qty),
        price=price,
        ts_ns=ts_ns,
        leverage=leverage,
        confidence=confidence,
        stop_price=stop,
        emergency=emergency,
        strategy=strategy,
    )
