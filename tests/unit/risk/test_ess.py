"""Emergency Stop System: evaluator thresholds, activation order, bounded flatten retries,
the latch across restarts, ignored repeat triggers, reset, and one activation per breach."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain.clock import NANOS_PER_SECOND, ManualClock
from quantum_trader.domain.errors import (
    AuditUnavailableError,
    ConfigError,
    ConflictError,
    IntegrityError,
    TransientError,
)
from quantum_trader.domain.policy import Policy, RiskMode, TradingState
from quantum_trader.observability.audit.records import AuditEventType
from quantum_trader.observability.metrics.recorder import LabelValues, MetricsRecorder
from quantum_trader.risk.drawdown import DrawdownMonitor, DrawdownReading
from quantum_trader.risk.ess import (
    Activation,
    DailyLossEvaluator,
    DrawdownEvaluator,
    EmergencyStopSystem,
    EssInputs,
    EssReason,
    ExecutionErrorsEvaluator,
    HealthEvaluator,
    Severity,
    StaleDataEvaluator,
    Trigger,
    default_evaluators,
)
from quantum_trader.risk.health import Subsystem, SubsystemHealth, SystemHealth, assess
from quantum_trader.risk.policy_service import PolicyService
from quantum_trader.stores.memory import (
    InMemoryEquityMarksStore,
    InMemoryEssStateStore,
    InMemoryPolicyStore,
)
from quantum_trader.stores.ports import EssState
from quantum_trader.testing.fakes import RecordingAuditRecorder

T0 = 1_700_000_000 * NANOS_PER_SECOND
S = NANOS_PER_SECOND


# ---------------------------------------------------------------- fakes


class Crash(BaseException):
    """Stands in for kill -9 in the middle of a step (not an Exception: nothing catches it)."""


class FakeEssStore:
    def __init__(self, log: list[str] | None = None) -> None:
        self.state = EssState()
        self.log = log if log is not None else []
        self.fail_save = False
        self.fail_load = False

    def load(self) -> EssState:
        if self.fail_load:
            raise IntegrityError("database is locked")
        return self.state

    def save(self, state: EssState) -> None:
        if self.fail_save:
            raise IntegrityError("disk full")
        self.log.append(f"store.save active={state.active}")
        self.state = state


class FakePolicy:
    def __init__(self, log: list[str] | None = None, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.log = log if log is not None else []
        self.conflicts = 0
        self.calls: list[tuple[str, str, str]] = []

    def current(self) -> Policy:
        return self.policy

    def set_mode(self, mode: RiskMode, *, actor: str, reason: str) -> Policy:
        self.log.append(f"policy.set_mode {mode}")
        self.calls.append((str(mode), actor, reason))
        self.policy = replace(self.policy, mode=mode)
        return self.policy

    def set_state(self, state: TradingState, *, actor: str, reason: str) -> Policy:
        if self.conflicts:
            self.conflicts -= 1
            self.log.append("policy.set_state conflict")
            raise ConflictError("policy changed since you read it")
        self.log.append(f"policy.set_state {state}")
        self.calls.append((str(state), actor, reason))
        self.policy = replace(self.policy, state=state)
        return self.policy


Outcome = bool | BaseException


class FakeExecutor:
    def __init__(
        self,
        log: list[str] | None = None,
        positions: dict[str, float] | None = None,
        orders: int = 0,
        outcomes: dict[str, list[Outcome]] | None = None,
    ) -> None:
        self.log = log if log is not None else []
        self.positions = dict(positions or {})
        self.orders = orders
        self.outcomes = outcomes or {}
        self.cancel_error: Exception | None = None

    def cancel_all_orders(self) -> int:
        self.log.append("executor.cancel_all_orders")
        if self.cancel_error is not None:
            raise self.cancel_error
        canceled, self.orders = self.orders, 0
        return canceled

    def open_positions(self) -> Mapping[str, float]:
        self.log.append("executor.open_positions")
        return dict(self.positions)

    def close_position(self, symbol: str, quantity: float) -> bool:
        self.log.append(f"executor.close {symbol} {quantity:g}")
        script = self.outcomes.get(symbol)
        outcome: Outcome = script.pop(0) if script else True
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome:
            self.positions.pop(symbol, None)
        return outcome


FakeAudit = RecordingAuditRecorder  # the shipped fake, under its short local name


class FakeMetrics(MetricsRecorder):
    def __init__(self, log: list[str] | None = None) -> None:
        super().__init__()
        self.counters: dict[tuple[str, LabelValues], float] = {}
        self.gauges: dict[tuple[str, LabelValues], float] = {}
        self.log = log if log is not None else []

    def increment(self, name: str, amount: float = 1.0, labels: LabelValues = ()) -> None:
        key = (name, tuple(str(v) for v in labels))
        self.log.append(f"metrics {name}")
        self.counters[key] = self.counters.get(key, 0.0) + amount

    def set_value(self, name: str, value: float, labels: LabelValues = ()) -> None:
        self.gauges[(name, tuple(str(v) for v in labels))] = value

    def observe(self, name: str, value: float, labels: LabelValues = ()) -> None:
        raise AssertionError("the ESS observes no histogram")


@dataclass
class Rig:
    log: list[str] = field(default_factory=list)
    clock: ManualClock = field(default_factory=lambda: ManualClock(T0))

    def __post_init__(self) -> None:
        self.store = FakeEssStore(self.log)
        self.policy = FakePolicy(self.log)
        self.executor = FakeExecutor(self.log)
        self.audit = FakeAudit(self.log)
        self.metrics = FakeMetrics(self.log)

    def ess(self, **kw: Any) -> EmergencyStopSystem:
        return EmergencyStopSystem(
            self.store, self.policy, self.executor, self.clock, self.audit, self.metrics, **kw
        )


def reading(
    equity: float, peak: float = 10_000.0, day_start: float = 10_000.0, ts: int = T0
) -> DrawdownReading:
    return DrawdownReading(
        equity, peak, (peak - equity) / peak, day_start, (day_start - equity) / day_start, "d", ts
    )


def inputs(**kw: Any) -> EssInputs:
    return EssInputs(ts_ns=kw.pop("ts_ns", T0), **kw)


# ---------------------------------------------------------------- evaluators


def test_drawdown_evaluator_when_drawdown_reaches_limit_exactly_fires() -> None:
    monitor = DrawdownMonitor(InMemoryEquityMarksStore(), ManualClock(T0))
    monitor.update(10_000.0)
    below = monitor.update(8_000.01)  # (10000 - 8000.01) / 10000 = 0.199999 < 0.2
    at = monitor.update(8_000.0)  # (10000 - 8000) / 10000 = 0.2 exactly
    assert at.drawdown == 0.2
    evaluator = DrawdownEvaluator(0.2)
    assert evaluator.evaluate(inputs(drawdown=below)) is None
    trigger = evaluator.evaluate(inputs(drawdown=at))
    assert trigger is not None
    assert (trigger.reason_code, trigger.severity) == (EssReason.DRAWDOWN, Severity.CRITICAL)
    assert "20.00%" in trigger.detail


def test_drawdown_evaluator_when_no_limit_given_uses_active_mode_limit() -> None:
    evaluator = DrawdownEvaluator()
    safe = Policy(mode=RiskMode.SAFE)  # SAFE max_drawdown 0.15, NORMAL 0.20
    assert evaluator.evaluate(inputs(drawdown=reading(8_500.01), policy=Policy())) is None
    assert evaluator.evaluate(inputs(drawdown=reading(8_500.01), policy=safe)) is None
    assert evaluator.evaluate(inputs(drawdown=reading(8_500.0), policy=safe)) is not None


def test_drawdown_evaluator_when_no_limit_and_no_policy_raises() -> None:
    with pytest.raises(ValueError, match="no max_drawdown limit"):
        DrawdownEvaluator().evaluate(inputs(drawdown=reading(5_000.0)))


def test_drawdown_evaluator_when_breach_continues_fires_once_and_rearms_after_clear() -> None:
    evaluator = DrawdownEvaluator(0.1)
    fired = [
        evaluator.evaluate(inputs(drawdown=reading(e))) is not None
        for e in (9_500.0, 9_000.0, 8_000.0, 8_500.0, 9_100.0, 8_900.0)
    ]
    assert fired == [False, True, False, False, False, True]
    assert evaluator.in_breach


def test_drawdown_evaluator_when_no_reading_keeps_state_and_returns_none() -> None:
    evaluator = DrawdownEvaluator(0.1)
    assert evaluator.evaluate(inputs(drawdown=reading(8_000.0))) is not None
    assert evaluator.evaluate(inputs()) is None
    assert evaluator.in_breach


def test_daily_loss_evaluator_when_loss_reaches_limit_exactly_fires() -> None:
    evaluator = DailyLossEvaluator()  # NORMAL max_daily_loss 0.05
    policy = Policy()
    # (10000 - 9500.01) / 10000 < 0.05; (10000 - 9500) / 10000 == 0.05
    assert evaluator.evaluate(inputs(drawdown=reading(9_500.01), policy=policy)) is None
    trigger = evaluator.evaluate(inputs(drawdown=reading(9_500.0), policy=policy))
    assert trigger == Trigger(
        EssReason.DAILY_LOSS,
        Severity.CRITICAL,
        "daily loss 5.00% >= limit 5.00% (equity 9500.00, day start 10000.00)",
    )


def test_daily_loss_evaluator_when_explicit_limit_ignores_policy() -> None:
    evaluator = DailyLossEvaluator(0.02)
    assert evaluator.evaluate(inputs(drawdown=reading(9_800.0), policy=Policy())) is not None
    assert DailyLossEvaluator().evaluate(inputs()) is None


def test_execution_errors_evaluator_when_tenth_error_within_window_fires() -> None:
    evaluator = ExecutionErrorsEvaluator(max_errors=10, window_secs=60)
    for i in range(9):
        evaluator.record_error(T0 + i * S)
    assert evaluator.evaluate(inputs(ts_ns=T0 + 9 * S)) is None
    assert evaluator.recent(T0 + 9 * S) == 9
    evaluator.record_reject(T0 + 9 * S)
    trigger = evaluator.evaluate(inputs(ts_ns=T0 + 9 * S))
    assert trigger is not None
    assert (trigger.reason_code, trigger.severity) == (EssReason.EXECUTION_ERRORS, Severity.HIGH)
    assert (evaluator.errors_total, evaluator.rejects_total) == (9, 1)


def test_execution_errors_evaluator_when_oldest_exactly_window_old_still_counts() -> None:
    at_edge = ExecutionErrorsEvaluator(max_errors=3, window_secs=60)
    past_edge = ExecutionErrorsEvaluator(max_errors=3, window_secs=60)
    for evaluator in (at_edge, past_edge):
        for ts in (T0, T0 + 30 * S, T0 + 59 * S):
            evaluator.record_error(ts)
    assert at_edge.evaluate(inputs(ts_ns=T0 + 60 * S)) is not None
    assert past_edge.evaluate(inputs(ts_ns=T0 + 60 * S + 1)) is None


def test_execution_errors_evaluator_when_errors_age_out_rearms() -> None:
    evaluator = ExecutionErrorsEvaluator(max_errors=2, window_secs=10)
    evaluator.record_error(T0)
    evaluator.record_error(T0 + S)
    assert evaluator.evaluate(inputs(ts_ns=T0 + S)) is not None
    assert evaluator.evaluate(inputs(ts_ns=T0 + 2 * S)) is None  # same breach
    assert evaluator.evaluate(inputs(ts_ns=T0 + 20 * S)) is None  # aged out: re-armed
    evaluator.record_error(T0 + 21 * S)
    evaluator.record_error(T0 + 22 * S)
    assert evaluator.evaluate(inputs(ts_ns=T0 + 22 * S)) is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_errors": 0}, "max_errors"),
        ({"max_errors": True}, "max_errors"),
        ({"window_secs": 0.0}, "window_secs"),
        ({"window_secs": math.nan}, "window_secs"),
    ],
)
def test_execution_errors_evaluator_when_config_invalid_raises(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ExecutionErrorsEvaluator(**kwargs)


def test_stale_data_evaluator_when_age_reaches_max_exactly_fires() -> None:
    evaluator = StaleDataEvaluator(max_age_secs=30)
    last = T0
    assert evaluator.evaluate(inputs(ts_ns=T0 + 30 * S - 1, last_market_data_ns=last)) is None
    trigger = evaluator.evaluate(inputs(ts_ns=T0 + 30 * S, last_market_data_ns=last))
    assert trigger == Trigger(
        EssReason.STALE_MARKET_DATA,
        Severity.HIGH,
        "last market data 30.000s old >= 30s allowed",
    )
    assert evaluator.evaluate(inputs(ts_ns=T0 + 31 * S)) is None  # no data time: not evaluated
    with pytest.raises(ConfigError, match="max_age_secs"):
        StaleDataEvaluator(0)


def _health(**levels: SystemHealth) -> Any:
    reports = [SubsystemHealth.at(s, SystemHealth.OPTIMAL) for s in Subsystem]
    reports += [SubsystemHealth.at(Subsystem(k), v, detail=f"{k} probe") for k, v in levels.items()]
    return assess(reports)


def test_health_evaluator_when_emergency_fires_and_critical_does_not_by_default() -> None:
    evaluator = HealthEvaluator()
    assert evaluator.evaluate(inputs(health=_health(stores=SystemHealth.CRITICAL))) is None
    trigger = evaluator.evaluate(inputs(health=_health(bus=SystemHealth.EMERGENCY)))
    assert trigger is not None
    assert (trigger.reason_code, trigger.severity) == (
        EssReason.SUBSYSTEM_CRITICAL,
        Severity.EMERGENCY,
    )
    assert "bus=emergency (bus probe)" in trigger.detail
    assert evaluator.evaluate(inputs()) is None


def test_health_evaluator_when_configured_for_critical_fires_on_critical() -> None:
    evaluator = HealthEvaluator(trigger_at=SystemHealth.CRITICAL)
    assert evaluator.evaluate(inputs(health=_health(models=SystemHealth.CRITICAL))) is None
    trigger = evaluator.evaluate(inputs(health=_health(stores=SystemHealth.CRITICAL)))
    assert trigger is not None
    assert trigger.severity is Severity.CRITICAL
    with pytest.raises(ConfigError, match="critical or emergency"):
        HealthEvaluator(trigger_at=SystemHealth.DEGRADED)


# ---------------------------------------------------------------- activation


def test_trigger_when_inactive_latches_halts_cancels_then_flattens_in_order() -> None:
    rig = Rig()
    rig.executor.positions = {"ETHUSDT": -2.0, "BTCUSDT": 0.5, "SOLUSDT": 0.0}
    rig.executor.orders = 4
    activation = rig.ess().trigger(EssReason.DRAWDOWN, Severity.CRITICAL, "dd 21%")
    assert rig.log == [
        "store.save active=True",
        "policy.set_state halted",
        "executor.cancel_all_orders",
        "executor.open_positions",
        "executor.close BTCUSDT 0.5",
        "executor.close ETHUSDT -2",
        "audit emergency.triggered",
        "metrics emergency_stops_total",
    ]
    assert activation.activated
    assert activation.stop.orders_canceled == 4
    assert activation.stop.positions_closed == ("BTCUSDT", "ETHUSDT")
    assert rig.policy.calls == [("halted", "ess", "emergency stop: drawdown: dd 21%")]
    assert rig.store.state == EssState(
        active=True,
        reason="drawdown: dd 21%",
        severity="critical",
        activated_at_ns=T0,
        activated_by="ess",
        activations=1,
    )
    (record,) = rig.audit.of(AuditEventType.EMERGENCY_TRIGGERED)
    assert record["reason"] == "drawdown"
    assert record["metadata"]["severity"] == "critical"
    assert record["metadata"]["positions_closed"] == ["BTCUSDT", "ETHUSDT"]
    assert record["metadata"]["orders_canceled"] == 4
    assert record["metadata"]["failed_closes"] == []
    assert record["metadata"]["detail"] == "dd 21%"
    assert rig.metrics.counters[("emergency_stops_total", ("drawdown",))] == 1.0
    assert rig.metrics.gauges[("emergency_stop_active", ())] == 1.0


def test_trigger_when_latch_set_before_flatten_a_crash_mid_flatten_restarts_latched() -> None:
    rig = Rig()
    rig.executor.positions = {"BTCUSDT": 1.0, "ETHUSDT": 3.0}
    rig.executor.outcomes = {"ETHUSDT": [Crash()]}
    with pytest.raises(Crash):
        rig.ess().trigger(EssReason.DAILY_LOSS)
    assert rig.audit.records == []  # died before the audit record
    restarted = Rig(log=[])
    restarted.store.state = rig.store.state  # the same durable store after the restart
    restarted.executor.positions = dict(rig.executor.positions)
    ess = restarted.ess()
    assert ess.is_active()
    report = ess.enforce()
    assert report is not None
    assert report.positions_closed == ("ETHUSDT",)
    assert restarted.executor.positions == {}
    assert restarted.policy.policy.state is TradingState.HALTED
    (record,) = restarted.audit.of(AuditEventType.SYSTEM_STATE_CHANGED)
    assert (record["outcome"], record["reason"]) == ("enforced", "daily_loss")
    assert restarted.store.state.activations == 1  # enforcing is not a new activation


def test_enforce_when_not_latched_does_nothing() -> None:
    rig = Rig()
    assert rig.ess().enforce() is None
    assert rig.log == []


def test_trigger_when_close_keeps_failing_retries_up_to_max_and_reports_failure() -> None:
    rig = Rig()
    rig.executor.positions = {"BTCUSDT": 0.5, "ETHUSDT": -2.0}
    rig.executor.outcomes = {
        "BTCUSDT": [False, TransientError("timeout"), True],
        "ETHUSDT": [False, False, TransientError("exchange down"), True],
    }
    activation = rig.ess(max_flatten_attempts=3).trigger(EssReason.MANUAL, detail="test")
    closes = [line for line in rig.log if line.startswith("executor.close")]
    assert closes == ["executor.close BTCUSDT 0.5"] * 3 + ["executor.close ETHUSDT -2"] * 3
    assert activation.stop.positions_closed == ("BTCUSDT",)
    assert [(f.symbol, f.attempts) for f in activation.stop.failed_closes] == [("ETHUSDT", 3)]
    (record,) = rig.audit.of(AuditEventType.EMERGENCY_TRIGGERED)
    meta = record["metadata"]
    assert meta["positions_closed"] == ["BTCUSDT"]
    assert meta["failed_closes"] == [
        {
            "symbol": "ETHUSDT",
            "quantity": -2.0,
            "attempts": 3,
            "error": "TransientError: exchange down",
        }
    ]
    assert [
        (a["symbol"], a["attempt"], a["filled"], a["error"]) for a in meta["flatten_attempts"]
    ] == [
        ("BTCUSDT", 1, False, "not filled"),
        ("BTCUSDT", 2, False, "TransientError: timeout"),
        ("BTCUSDT", 3, True, ""),
        ("ETHUSDT", 1, False, "not filled"),
        ("ETHUSDT", 2, False, "not filled"),
        ("ETHUSDT", 3, False, "TransientError: exchange down"),
    ]


def test_trigger_when_max_attempts_is_one_never_retries() -> None:
    rig = Rig()
    rig.executor.positions = {"BTCUSDT": 1.0}
    rig.executor.outcomes = {"BTCUSDT": [False, True]}
    activation = rig.ess(max_flatten_attempts=1).trigger(EssReason.MANUAL, detail="x")
    assert len(activation.stop.attempts) == 1
    assert activation.stop.failed_closes[0].attempts == 1


@pytest.mark.parametrize("attempts", [0, -1, True])
def test_ess_when_max_flatten_attempts_invalid_raises(attempts: Any) -> None:
    with pytest.raises(ConfigError, match="max_flatten_attempts"):
        Rig().ess(max_flatten_attempts=attempts)


def test_trigger_when_a_step_raises_still_runs_the_next_steps() -> None:
    rig = Rig()
    rig.executor.positions = {"BTCUSDT": 1.0}
    rig.executor.cancel_error = TransientError("cancel timed out")
    rig.store.fail_save = True
    activation = rig.ess().trigger(EssReason.MANUAL, detail="x")
    assert activation.stop.positions_closed == ("BTCUSDT",)
    assert rig.policy.policy.state is TradingState.HALTED
    assert activation.stop.errors == (
        "persisting the latch failed: IntegrityError: disk full",
        "cancel_all_orders failed: TransientError: cancel timed out",
    )
    (record,) = rig.audit.of(AuditEventType.EMERGENCY_TRIGGERED)
    assert record["metadata"]["errors"] == list(activation.stop.errors)


def test_trigger_when_halt_conflicts_retries_then_halts() -> None:
    rig = Rig()
    rig.policy.conflicts = 2
    rig.ess().trigger(EssReason.MANUAL, detail="x")
    assert rig.log[1:4] == [
        "policy.set_state conflict",
        "policy.set_state conflict",
        "policy.set_state halted",
    ]


def test_trigger_when_halt_keeps_conflicting_records_error_and_flattens() -> None:
    rig = Rig()
    rig.policy.conflicts = 99
    rig.executor.positions = {"BTCUSDT": 1.0}
    activation = rig.ess().trigger(EssReason.MANUAL, detail="x")
    assert rig.log.count("policy.set_state conflict") == 3
    assert activation.stop.errors[0].startswith("halting failed: ConflictError")
    assert activation.stop.positions_closed == ("BTCUSDT",)


def test_trigger_when_audit_unavailable_raises_after_latch_and_metrics() -> None:
    rig = Rig()
    rig.audit.fail = True
    ess = rig.ess()
    with pytest.raises(AuditUnavailableError):
        ess.trigger(EssReason.MANUAL, detail="x")
    assert ess.is_active()
    assert rig.metrics.counters[("emergency_stops_total", ("manual",))] == 1.0


def test_trigger_when_latch_unreadable_activates_anyway() -> None:
    rig = Rig()
    rig.store.fail_load = True
    ess = rig.ess()
    assert ess.is_active()  # fail closed
    activation = ess.trigger(EssReason.MANUAL, detail="x")
    assert activation.activated
    assert (
        activation.stop.errors[0] == "reading the latch failed: IntegrityError: database is locked"
    )
    assert rig.policy.policy.state is TradingState.HALTED


def test_trigger_when_already_active_counts_and_runs_nothing() -> None:
    rig = Rig()
    rig.executor.positions = {"BTCUSDT": 1.0}
    ess = rig.ess()
    ess.trigger(EssReason.DRAWDOWN, detail="first")
    rig.log.clear()
    rig.executor.positions = {"BTCUSDT": 1.0}
    repeat = ess.trigger(EssReason.DAILY_LOSS, detail="second")
    again = ess.trigger(EssReason.MANUAL, detail="third", actor="alice")
    assert not repeat.activated
    assert not again.activated
    assert rig.log == ["store.save active=True", "store.save active=True"]  # counters only
    assert rig.store.state.ignored_triggers == 2
    assert rig.store.state.activations == 1
    assert rig.store.state.reason == "drawdown: first"
    assert len(rig.audit.of(AuditEventType.EMERGENCY_TRIGGERED)) == 1


def test_trigger_manual_when_actor_or_reason_missing_raises() -> None:
    ess = Rig().ess()
    with pytest.raises(ConfigError, match="actor and a reason"):
        ess.trigger_manual("", "why")
    with pytest.raises(ConfigError, match="actor and a reason"):
        ess.trigger_manual("alice", "  ")
    activation = ess.trigger_manual("alice", "fat finger", metadata={"ticket": "OPS-1"})
    assert (activation.actor, activation.trigger.reason_code) == ("alice", EssReason.MANUAL)


def test_ess_when_built_sets_gauge_from_stored_latch() -> None:
    rig = Rig()
    rig.store.state = EssState(active=True, reason="manual")
    rig.ess()
    assert rig.metrics.gauges[("emergency_stop_active", ())] == 1.0


# ---------------------------------------------------------------- evaluation


def test_check_when_several_fire_triggers_first_and_updates_all() -> None:
    rig = Rig()
    drawdown, daily = DrawdownEvaluator(0.1), DailyLossEvaluator(0.05)
    ess = rig.ess(evaluators=[drawdown, daily])
    activation = ess.check(drawdown=reading(8_000.0))
    assert isinstance(activation, Activation)
    assert activation.trigger.reason_code is EssReason.DRAWDOWN
    assert drawdown.in_breach
    assert daily.in_breach
    assert rig.store.state.ignored_triggers == 0


def test_check_when_nothing_fires_returns_none() -> None:
    rig = Rig()
    ess = rig.ess()
    assert len(ess.evaluators) == len(default_evaluators())
    assert ess.check(drawdown=reading(9_990.0), last_market_data_ns=T0, health=_health()) is None
    assert rig.log == []


def test_check_when_restarted_latch_holds_through_healthy_evaluations() -> None:
    store = InMemoryEssStateStore()
    first = Rig()
    first.store = store  # type: ignore[assignment]
    first.ess().check(drawdown=reading(7_000.0))  # drawdown 30% >= 20%
    assert store.load().active
    second = Rig()
    second.store = store  # type: ignore[assignment]
    restarted = second.ess()
    assert restarted.is_active()
    for _ in range(200):
        second.clock.advance(S)
        restarted.check(
            drawdown=reading(10_000.0, ts=second.clock.now_ns()),
            last_market_data_ns=second.clock.now_ns(),
            health=_health(),
        )
    assert restarted.is_active()
    assert store.load().active


# ---------------------------------------------------------------- reset


def test_reset_when_actor_or_reason_missing_raises() -> None:
    rig = Rig()
    ess = rig.ess()
    ess.trigger(EssReason.MANUAL, detail="x")
    for actor, reason in (("", "r"), ("a", ""), ("  ", "r")):
        with pytest.raises(ConfigError, match="actor and a reason"):
            ess.reset(actor, reason)
    assert ess.is_active()


def test_reset_when_not_active_does_nothing_and_returns_false() -> None:
    rig = Rig()
    assert rig.ess().reset("alice", "why") is False
    assert rig.log == []


def test_reset_when_active_clears_latch_resumes_reducing_and_audits_recovery() -> None:
    rig = Rig()
    ess = rig.ess()
    ess.trigger(EssReason.DRAWDOWN, detail="dd")
    rig.clock.advance(60 * S)
    rig.log.clear()
    assert ess.reset("alice", "positions checked")
    assert rig.log == [
        "store.save active=False",
        "policy.set_state reducing",
        "audit emergency.recovered",
    ]
    assert not ess.is_active()
    assert rig.policy.policy.state is TradingState.REDUCING
    assert rig.policy.calls[-1] == (
        "reducing",
        "alice",
        "emergency stop reset: positions checked",
    )
    state = rig.store.state
    assert (state.reset_at_ns, state.reset_by, state.reset_reason) == (
        T0 + 60 * S,
        "alice",
        "positions checked",
    )
    (record,) = rig.audit.of(AuditEventType.EMERGENCY_RECOVERED)
    assert (record["actor"], record["reason"], record["outcome"]) == (
        "alice",
        "positions checked",
        "reducing",
    )
    assert record["metadata"]["previous_reason"] == "drawdown: dd"
    assert rig.metrics.gauges[("emergency_stop_active", ())] == 0.0


def test_reset_when_resume_active_requested_sets_active() -> None:
    rig = Rig()
    ess = rig.ess()
    ess.trigger(EssReason.MANUAL, detail="x")
    ess.reset("alice", "all clear", TradingState.ACTIVE)
    assert rig.policy.policy.state is TradingState.ACTIVE


def test_trigger_when_reset_then_new_breach_activates_again() -> None:
    rig = Rig()
    ess = rig.ess(evaluators=[DrawdownEvaluator(0.1)])
    assert ess.check(drawdown=reading(8_000.0)) is not None
    ess.reset("alice", "ok")
    assert ess.check(drawdown=reading(8_000.0)) is None  # the same breach: no second stop
    assert ess.check(drawdown=reading(9_500.0)) is None  # cleared: re-armed
    activation = ess.check(drawdown=reading(8_900.0))
    assert activation is not None
    assert activation.activated
    assert rig.store.state.activations == 2


# ---------------------------------------------------------------- with the real service


def test_trigger_when_wired_to_policy_service_halts_and_audits_policy_change() -> None:
    clock = ManualClock(T0)
    audit = FakeAudit()
    service = PolicyService(InMemoryPolicyStore(), clock, audit)
    ess = EmergencyStopSystem(InMemoryEssStateStore(), service, FakeExecutor(), clock, audit)
    ess.trigger(EssReason.STALE_MARKET_DATA, Severity.HIGH, "no data 300s")
    assert service.current().state is TradingState.HALTED
    assert [r["event_type"] for r in audit.records] == ["policy.changed", "emergency.triggered"]
    assert audit.records[0]["actor"] == "ess"
    ess.reset("alice", "feed back")
    assert service.current().state is TradingState.REDUCING


# ---------------------------------------------------------------- property


@settings(max_examples=150, deadline=None)
@given(
    returns=st.lists(
        st.floats(min_value=-0.06, max_value=0.06, allow_nan=False), min_size=1, max_size=120
    ),
    resets=st.lists(st.booleans(), min_size=120, max_size=120),
)
def test_ess_when_random_equity_path_activates_once_per_breach_episode_until_reset(
    returns: list[float], resets: list[bool]
) -> None:
    limit = 0.1
    clock = ManualClock(T0)
    monitor = DrawdownMonitor(InMemoryEquityMarksStore(), clock)
    store = InMemoryEssStateStore()
    audit = FakeAudit()
    ess = EmergencyStopSystem(
        store, FakePolicy(), FakeExecutor(), clock, audit, evaluators=[DrawdownEvaluator(limit)]
    )
    # Reference model: plain Python over the same path.
    equity, peak = 10_000.0, 0.0
    in_breach = latched = False
    episodes_unlatched = episodes_latched = 0
    for step, r in enumerate(returns):
        clock.advance(60 * S)
        equity *= 1.0 + r
        peak = max(peak, equity)
        breached = (peak - equity) / peak >= limit
        if breached and not in_breach:
            if latched:
                episodes_latched += 1
            else:
                episodes_unlatched += 1
                latched = True
        in_breach = breached
        ess.check(drawdown=monitor.update(equity))
        assert ess.is_active() == latched
        if resets[step] and latched:
            assert ess.reset("alice", "reviewed")
            latched = False
    state = store.load()
    assert state.activations == episodes_unlatched
    assert state.ignored_triggers == episodes_latched
    assert len(audit.of(AuditEventType.EMERGENCY_TRIGGERED)) == episodes_unlatched


def test_ess_when_no_audit_or_metrics_still_triggers_and_resets() -> None:
    rig = Rig()
    ess = EmergencyStopSystem(rig.store, rig.policy, rig.executor, rig.clock)
    assert ess.trigger(EssReason.MANUAL, detail="x").activated
    assert ess.enforce() is not None
    assert ess.reset("alice", "ok")
    assert rig.log[-2:] == ["store.save active=False", "policy.set_state reducing"]


def test_enforce_when_latch_unreadable_still_stops() -> None:
    rig = Rig()
    rig.executor.positions = {"BTCUSDT": 1.0}
    ess = rig.ess()
    rig.store.fail_load = True
    report = ess.enforce()
    assert report is not None
    assert report.positions_closed == ("BTCUSDT",)
    (record,) = rig.audit.of(AuditEventType.SYSTEM_STATE_CHANGED)
    assert record["reason"] == "unreadable latch"


class BrokenPolicy(FakePolicy):
    def set_state(self, state: TradingState, *, actor: str, reason: str) -> Policy:
        raise AuditUnavailableError("policy audit unavailable")


def test_trigger_when_halt_or_positions_raise_records_errors_and_continues() -> None:
    rig = Rig()
    rig.policy = BrokenPolicy(rig.log)

    def broken_positions() -> Mapping[str, float]:
        raise TransientError("positions endpoint down")

    rig.executor.open_positions = broken_positions  # type: ignore[method-assign]
    activation = rig.ess().trigger(EssReason.MANUAL, detail="x")
    assert activation.stop.errors == (
        "halting failed: AuditUnavailableError: policy audit unavailable",
        "open_positions failed: TransientError: positions endpoint down",
    )
    assert "executor.cancel_all_orders" in rig.log
