"""Position sizing: the agent through its guard, every fallback cause, and the policy's caps."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trader.ai.sizing import (
    CAP_SAFETY,
    BanditSizingAgent,
    FallbackCause,
    PositionSizer,
    RuleBasedSizer,
    SizingAction,
    SizingState,
    TableEntry,
    VolatilityRegime,
    all_state_keys,
    state_key,
)
from quantum_trader.domain.errors import ConfigError
from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.policy import ModeLimits, Policy, RiskMode, TradingState
from quantum_trader.observability.audit.records import AuditEventType
from quantum_trader.observability.metrics.aggregator import MetricsAggregator
from quantum_trader.risk.guard import AccountView, OrderIntent, RiskGuard, RiskReason
from quantum_trader.testing.fakes import RecordingAuditRecorder

STATE = SizingState(
    volatility=0.02, reference_volatility=0.02, confidence=0.7, drawdown=0.01, equity=10_000.0
)
NORMAL = Policy()


class FakeClock:
    """A monotonic clock that only moves when an agent spends time."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedAgent:
    """Returns ``action`` (or raises ``error``), spending ``spend_secs`` of the fake clock."""

    def __init__(
        self,
        action: object = None,
        *,
        trained: bool = True,
        error: Exception | None = None,
        clock: FakeClock | None = None,
        spend_secs: float = 0.0,
    ) -> None:
        self.action = action
        self._trained = trained
        self.error = error
        self.clock = clock
        self.spend_secs = spend_secs

    @property
    def trained(self) -> bool:
        return self._trained

    def act(self, state: SizingState, mode: RiskMode) -> SizingAction | None:
        if self.clock is not None:
            self.clock.now += self.spend_secs
        if self.error is not None:
            raise self.error
        return self.action  # type: ignore[return-value]


def _sizer(
    agent: object, clock: FakeClock | None = None
) -> tuple[PositionSizer, MetricsAggregator, RecordingAuditRecorder]:
    metrics, audit = MetricsAggregator(), RecordingAuditRecorder()
    sizer = PositionSizer(
        agent,  # type: ignore[arg-type]
        deadline_secs=0.005,
        monotonic=clock or FakeClock(),
        metrics=metrics,
        audit=audit,
    )
    return sizer, metrics, audit


def _fallbacks(metrics: MetricsAggregator) -> dict[str, float]:
    return {labels[0]: v for labels, v in metrics._counters["sizing_fallbacks_total"].items()}


# ---------------------------------------------------------------- rule-based sizer


def test_rule_sizer_when_hand_computed_targets_volatility_within_risk_cap() -> None:
    fraction, leverage = RuleBasedSizer(target_volatility=0.01, liquidation_buffer=5).size(
        STATE, NORMAL
    )
    # raw 0.01 / 0.02 = 0.5; needs leverage 0.5 / 0.02 = 25, liquidation buffer allows
    # 1 / (5 * 0.02) = 10 = NORMAL's cap; risk per trade then caps the fraction at 0.02 * 10.
    assert leverage == 10.0
    assert fraction == pytest.approx(0.2 * CAP_SAFETY)


def test_rule_sizer_when_volatility_low_stays_within_exposure_cap() -> None:
    calm = replace(STATE, volatility=0.001, reference_volatility=0.002)
    fraction, _ = RuleBasedSizer().size(calm, NORMAL)
    assert fraction <= NORMAL.active_limits.max_symbol_exposure


def test_rule_sizer_when_stop_given_caps_by_stop_distance() -> None:
    stopped = replace(STATE, stop_distance=0.05)
    fraction, _ = RuleBasedSizer().size(stopped, NORMAL)
    assert fraction == pytest.approx(0.02 / 0.05 * CAP_SAFETY)


@pytest.mark.parametrize(
    "policy",
    [
        Policy(mode=RiskMode.CRITICAL),
        Policy(state=TradingState.REDUCING),
        Policy(state=TradingState.HALTED),
    ],
)
def test_sizer_when_policy_allows_no_entries_sizes_zero(policy: Policy) -> None:
    sizer, _, _ = _sizer(ScriptedAgent(SizingAction(1.0, 2.0)))
    assert sizer.size(STATE, policy).fraction == 0.0


def test_sizer_when_confidence_below_minimum_sizes_zero() -> None:
    sizer, _, _ = _sizer(ScriptedAgent(SizingAction(1.0, 2.0)))
    assert sizer.size(replace(STATE, confidence=0.5), NORMAL).fraction == 0.0


def test_sizing_state_when_invalid_raises() -> None:
    with pytest.raises(ConfigError, match="confidence"):
        replace(STATE, confidence=1.5)
    with pytest.raises(ConfigError, match="stop_distance"):
        replace(STATE, stop_distance=0.0)


def test_state_key_when_read_names_regime_buckets_and_mode() -> None:
    assert STATE.regime is VolatilityRegime.NORMAL
    assert replace(STATE, volatility=0.05).regime is VolatilityRegime.HIGH
    assert replace(STATE, volatility=0.01).regime is VolatilityRegime.LOW
    assert state_key(STATE.regime, 0.7, 0.01, RiskMode.SAFE) == "normal|c2|d0|safe"
    assert len(all_state_keys()) == 3 * 4 * 4 * 4


# ---------------------------------------------------------------- agent and fallbacks


def test_sizer_when_agent_behaves_uses_its_action_capped() -> None:
    sizer, metrics, audit = _sizer(ScriptedAgent(SizingAction(0.5, 2.0)))
    decision = sizer.size(STATE, NORMAL)
    assert decision.source == "agent"
    assert decision.cause is None
    assert decision.leverage == 2.0
    # 0.5 (raw) * 0.5 = 0.25, capped by risk per trade 0.02 * 2 = 0.04
    assert decision.fraction == pytest.approx(0.04 * CAP_SAFETY)
    assert _fallbacks(metrics) == {}
    assert audit.records == []


@pytest.mark.parametrize(
    ("agent", "cause", "detail"),
    [
        (None, FallbackCause.MISSING, "no sizing agent"),
        (ScriptedAgent(SizingAction(1, 2), trained=False), FallbackCause.UNTRAINED, "not trained"),
        (ScriptedAgent(None), FallbackCause.UNTRAINED, "no action for this state"),
        (ScriptedAgent(error=RuntimeError("boom")), FallbackCause.ERROR, "RuntimeError: boom"),
        (ScriptedAgent(SizingAction(math.nan, 2)), FallbackCause.OUT_OF_BOUNDS, "not finite"),
        (ScriptedAgent(SizingAction(-0.5, 2)), FallbackCause.OUT_OF_BOUNDS, "outside [0, 2]"),
        (ScriptedAgent(SizingAction(3.0, 2)), FallbackCause.OUT_OF_BOUNDS, "multiplier 3.0"),
        (ScriptedAgent(SizingAction(1, 50)), FallbackCause.OUT_OF_BOUNDS, "leverage 50"),
        (ScriptedAgent(SizingAction(1, 0.5)), FallbackCause.OUT_OF_BOUNDS, "leverage 0.5"),
        (ScriptedAgent((1.0, 2.0)), FallbackCause.OUT_OF_BOUNDS, "not a SizingAction"),
    ],
)
def test_sizer_when_agent_fails_falls_back_counts_and_audits_cause(
    agent: object, cause: FallbackCause, detail: str
) -> None:
    sizer, metrics, audit = _sizer(agent)
    decision = sizer.size(STATE, NORMAL, symbol="BTCUSDT", ts_ns=42)
    expected = RuleBasedSizer().size(STATE, NORMAL)
    assert decision.source == "rule"
    assert decision.cause is cause
    assert detail in decision.detail
    assert (decision.fraction, decision.leverage) == expected
    assert _fallbacks(metrics) == {cause.value: 1.0}
    (record,) = audit.of(AuditEventType.SYSTEM_STATE_CHANGED)
    assert record["action"] == "sizing_fallback"
    assert record["reason"] == cause.value
    assert record["target"] == "BTCUSDT"
    assert record["ts_ns"] == 42
    assert detail in record["metadata"]["detail"]
    assert sizer.fallbacks == {cause: 1}


def test_sizer_when_agent_slower_than_deadline_discards_answer_as_timeout() -> None:
    clock = FakeClock()
    slow = ScriptedAgent(SizingAction(1.0, 2.0), clock=clock, spend_secs=0.006)
    sizer, metrics, _ = _sizer(slow, clock)
    decision = sizer.size(STATE, NORMAL)
    assert decision.cause is FallbackCause.TIMEOUT
    assert "6.000 ms > 5.000 ms" in decision.detail
    assert _fallbacks(metrics) == {"agent_timeout": 1.0}
    slow.spend_secs = 0.004
    assert sizer.size(STATE, NORMAL).source == "agent"


def test_sizer_when_fallbacks_repeat_counts_each() -> None:
    sizer, metrics, audit = _sizer(None)
    for _ in range(3):
        sizer.size(STATE, NORMAL)
    assert _fallbacks(metrics) == {"agent_missing": 3.0}
    assert len(audit.records) == 3


def test_sizer_when_audit_unavailable_raises_so_caller_does_not_trade() -> None:
    sizer, _, audit = _sizer(None)
    audit.fail = True
    with pytest.raises(Exception, match="disk full"):
        sizer.size(STATE, NORMAL)


# ---------------------------------------------------------------- the policy is never exceeded

finite = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
anything = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 1000), st.just(True)
)


@st.composite
def mode_limits(draw: st.DrawFn) -> ModeLimits:
    return ModeLimits(
        max_leverage=draw(st.floats(1.0, 125.0)),
        max_risk_per_trade=draw(st.floats(0.0, 1.0)),
        max_position_notional=draw(st.floats(0.0, 1e7)),
        max_open_positions=draw(st.integers(1, 50)),
        max_symbol_exposure=draw(st.floats(0.0, 100.0)),
        max_gross_exposure=draw(st.floats(0.0, 1000.0)),
        max_daily_loss=0.5,
        max_drawdown=0.5,
        min_confidence=draw(st.floats(0.0, 1.0)),
        size_scale=draw(st.floats(0.0, 10.0)),
    )


@st.composite
def agents(draw: st.DrawFn) -> tuple[object, FakeClock]:
    clock = FakeClock()
    kind = draw(st.sampled_from(["none", "action", "raise", "slow", "untrained", "garbage"]))
    if kind == "none":
        return None, clock
    action = SizingAction(draw(anything), draw(anything))
    if kind == "raise":
        return ScriptedAgent(error=ValueError("x")), clock
    if kind == "slow":
        return ScriptedAgent(action, clock=clock, spend_secs=draw(st.floats(0.0, 1.0))), clock
    if kind == "untrained":
        return ScriptedAgent(action, trained=False), clock
    if kind == "garbage":
        return ScriptedAgent(draw(st.sampled_from([None, "big", 3.0, (1, 2)]))), clock
    return ScriptedAgent(action), clock


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limits=mode_limits(),
    mode=st.sampled_from(list(RiskMode)),
    volatility=st.floats(0.0, 5.0),
    reference=st.floats(0.0, 5.0),
    confidence=st.floats(0.0, 1.0),
    drawdown=st.floats(0.0, 1.0),
    equity=st.floats(1.0, 1e9),
    stop=st.one_of(st.none(), st.floats(1e-6, 0.999)),
    agent_and_clock=agents(),
    target=st.floats(1e-4, 10.0),
)
def test_sizing_when_anything_goes_never_exceeds_the_policy(
    limits: ModeLimits,
    mode: RiskMode,
    volatility: float,
    reference: float,
    confidence: float,
    drawdown: float,
    equity: float,
    stop: float | None,
    agent_and_clock: tuple[object, FakeClock],
    target: float,
) -> None:
    policy = Policy(mode=mode, limits=dict.fromkeys(RiskMode, limits))
    state = SizingState(volatility, reference, confidence, drawdown, equity, stop)
    agent, clock = agent_and_clock
    sizer = PositionSizer(
        agent,  # type: ignore[arg-type]
        RuleBasedSizer(target_volatility=target),
        monotonic=clock,
        metrics=MetricsAggregator(),
        audit=RecordingAuditRecorder(),
    )
    decision = sizer.size(state, policy, symbol="BTCUSDT")
    f, lev = decision.fraction, decision.leverage
    assert math.isfinite(f)
    assert f >= 0.0
    assert 1.0 <= lev <= limits.max_leverage
    if mode is RiskMode.CRITICAL or confidence < limits.min_confidence:
        assert f == 0.0
    risk = f * stop if stop is not None else f / lev
    assert risk <= limits.max_risk_per_trade
    assert f <= limits.max_symbol_exposure
    assert f <= limits.max_gross_exposure
    assert f * equity <= limits.max_position_notional
    if f > 0.0:
        # The real RiskGuard must approve the sized order on every sizing check.
        price = 100.0
        intent = OrderIntent(
            "BTCUSDT",
            OrderSide.BUY,
            f * equity / price,
            price,
            ts_ns=1,
            leverage=lev,
            confidence=confidence,
            stop_price=None if stop is None else price * (1 - stop),
        )
        view = AccountView(equity, equity, {}, {"BTCUSDT": price}, {"BTCUSDT": 1})
        decision_guard = RiskGuard(lambda: policy).check(intent, view)
        assert decision_guard.reason not in {
            RiskReason.LEVERAGE,
            RiskReason.RISK_PER_TRADE,
            RiskReason.POSITION_NOTIONAL,
            RiskReason.SYMBOL_EXPOSURE,
            RiskReason.GROSS_EXPOSURE,
        }, decision_guard.detail


# ---------------------------------------------------------------- the bandit agent and its file


def _agent() -> BanditSizingAgent:
    key = state_key(STATE.regime, STATE.confidence, STATE.drawdown, RiskMode.NORMAL)
    return BanditSizingAgent(
        {key: TableEntry(SizingAction(1.5, 3.0), 40, 0.001, 0.0002, "regime")}, meta={"seed": 1}
    )


def test_bandit_agent_when_state_known_acts_else_has_no_opinion() -> None:
    agent = _agent()
    assert agent.act(STATE, RiskMode.NORMAL) == SizingAction(1.5, 3.0)
    assert agent.act(STATE, RiskMode.SAFE) is None
    assert not BanditSizingAgent({}).trained


def test_bandit_agent_when_saved_and_loaded_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "sizer.json"
    _agent().save(path)
    loaded = BanditSizingAgent.load(path)
    assert loaded.table == _agent().table
    assert loaded.meta == {"seed": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ('{"format": 9, "table": {}}', "format-1"),
        ('{"format": 1, "table": {"nowhere": {}}}', "unknown state"),
        (
            '{"format": 1, "table": {"normal|c2|d0|normal": {"multiplier": 9, "leverage": 2, '
            '"samples": 1, "mean_reward": 0, "lower_reward": 0, "level": "all"}}}',
            "multiplier 9.0 outside",
        ),
        (
            '{"format": 1, "table": {"normal|c2|d0|normal": {"multiplier": 1, "leverage": NaN, '
            '"samples": 1, "mean_reward": 0, "lower_reward": 0, "level": "all"}}}',
            "leverage nan outside",
        ),
        ('{"format": 1, "table": {"normal|c2|d0|normal": {"multiplier": 1}}}', "malformed"),
    ],
)
def test_bandit_agent_when_file_invalid_raises_naming_it(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "sizer.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        BanditSizingAgent.load(path)
    assert str(path) in str(info.value)


def test_bandit_agent_when_file_missing_raises() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        BanditSizingAgent.load(Path("/nonexistent/sizer.json"))
