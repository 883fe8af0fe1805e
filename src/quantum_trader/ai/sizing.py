"""Position sizing: an RL agent proposes, a rule-based sizer stands by, the policy caps both.

``PositionSizer.size(state, policy)`` returns how large a new position may be — ``fraction``
(notional as a fraction of equity, >= 0; the strategy gives the side) and ``leverage`` — and
where that came from:

1. The **agent** (``SizingAgent``) maps the discretised state to an action: a size multiplier
   on the rule-based fraction and a leverage. The sizer calls it through a guard: it falls
   back to the rule-based sizer when the agent is **missing**, **untrained** (overall, or for
   this state), **raises**, is **slower than the deadline** (measured with the injected
   monotonic clock; the late answer is discarded), or returns something **out of bounds**
   (NaN, infinite, negative, a multiplier above ``max_multiplier``, a leverage below 1 or
   above the policy's cap). Each fallback increments ``sizing_fallbacks_total{reason}`` and
   is audited (``system.state_changed``, action ``sizing_fallback``, reason the cause code).
2. The **rule-based sizer** (``RuleBasedSizer``) targets a daily volatility per position:
   ``fraction = target_volatility / volatility``, and picks the least leverage that lets the
   policy's risk-per-trade limit hold, never so much that the liquidation distance ``1 /
   leverage`` is within ``liquidation_buffer`` daily moves.
3. **Caps** (``cap_sizing``) apply to whichever answer: ``size_scale`` of the active mode
   multiplies the fraction, then the fraction is held within max risk per trade (the stop
   distance, or without a stop the margin ``fraction / leverage``, as the RiskGuard counts it),
   max symbol and gross exposure and max position notional; leverage within ``1..max_leverage``;
   nothing at all when the policy does not allow new entries (REDUCING, HALTED, CRITICAL mode)
   or the confidence is below the mode's minimum. So no sizing ever exceeds the policy,
   whatever the agent does. ``size_scale`` is applied here: do not apply it again downstream.

The agent implemented here is ``BanditSizingAgent`` (trained by ``ai.sizing_training``).
Floats throughout: sizes are fractions, rounded to the instrument's lot when an order is made.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from quantum_trader.domain.errors import ConfigError
from quantum_trader.domain.policy import ModeLimits, Policy, RiskMode, TradingState
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.audit.records import AuditEventType
from quantum_trader.observability.metrics.recorder import MetricsRecorder

# Keeps a capped size strictly inside the limit after float rounding (the guard compares >).
CAP_SAFETY = 1.0 - 1e-9
MIN_VOLATILITY = 1e-4
LOW_REGIME_RATIO = 0.75
HIGH_REGIME_RATIO = 1.5
CONFIDENCE_EDGES = (0.55, 0.65, 0.75)
DRAWDOWN_EDGES = (0.02, 0.05, 0.10)
AGENT_FORMAT = 1


class VolatilityRegime(StrEnum):
    """How the symbol's current volatility compares with its usual level."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class FallbackCause(StrEnum):
    """Why the rule-based sizer replaced the agent (the metric's ``reason`` label)."""

    MISSING = "agent_missing"
    UNTRAINED = "agent_untrained"
    ERROR = "agent_error"
    TIMEOUT = "agent_timeout"
    OUT_OF_BOUNDS = "agent_out_of_bounds"


@dataclass(frozen=True, slots=True)
class SizingState:
    """What the sizer knows when a position is about to open.

    Attributes:
        volatility: The symbol's recent daily volatility (standard deviation of daily returns,
            0.03 is 3 %).
        reference_volatility: Its usual daily volatility (e.g. a longer trailing average); the
            ratio of the two is the volatility regime.
        confidence: The signal's calibrated confidence, 0..1.
        drawdown: The account's drawdown from its peak, 0..1.
        equity: Account equity in USDT (> 0).
        stop_distance: Distance to the protective stop as a fraction of price, if there is one.
    """

    volatility: float
    reference_volatility: float
    confidence: float
    drawdown: float
    equity: float
    stop_distance: float | None = None

    def __post_init__(self) -> None:
        checks = (
            ("volatility", self.volatility, 0.0, math.inf),
            ("reference_volatility", self.reference_volatility, 0.0, math.inf),
            ("confidence", self.confidence, 0.0, 1.0),
            ("drawdown", self.drawdown, 0.0, 1.0),
            ("equity", self.equity, 0.0, math.inf),
        )
        for name, value, low, high in checks:
            if not (
                isinstance(value, int | float) and math.isfinite(value) and low <= value <= high
            ):
                raise ConfigError(f"sizing state {name}={value!r} is outside [{low}, {high}]")
        stop = self.stop_distance
        if stop is not None and not (math.isfinite(stop) and 0.0 < stop < 1.0):
            raise ConfigError(f"sizing state stop_distance={stop!r} must be within (0, 1)")

    @property
    def regime(self) -> VolatilityRegime:
        """The volatility regime: the current level against the usual one."""
        ratio = self.volatility / max(self.reference_volatility, MIN_VOLATILITY)
        if ratio < LOW_REGIME_RATIO:
            return VolatilityRegime.LOW
        if ratio > HIGH_REGIME_RATIO:
            return VolatilityRegime.HIGH
        return VolatilityRegime.NORMAL


def bucket(value: float, edges: tuple[float, ...]) -> int:
    """Return how many of the ascending ``edges`` are <= ``value`` (0..len(edges))."""
    return sum(1 for edge in edges if value >= edge)


def state_key(regime: VolatilityRegime, confidence: float, drawdown: float, mode: RiskMode) -> str:
    """Return the discrete state's key: ``<regime>|c<bucket>|d<bucket>|<mode>``."""
    c = bucket(confidence, CONFIDENCE_EDGES)
    d = bucket(drawdown, DRAWDOWN_EDGES)
    return f"{regime.value}|c{c}|d{d}|{mode.value}"


def all_state_keys() -> list[str]:
    """Every discrete state, in a fixed order."""
    return [
        f"{regime.value}|c{c}|d{d}|{mode.value}"
        for regime in VolatilityRegime
        for c in range(len(CONFIDENCE_EDGES) + 1)
        for d in range(len(DRAWDOWN_EDGES) + 1)
        for mode in RiskMode
    ]


@dataclass(frozen=True, slots=True)
class SizingAction:
    """An agent's answer: multiply the rule-based fraction by ``multiplier``; use ``leverage``."""

    multiplier: float
    leverage: float


@dataclass(frozen=True, slots=True)
class SizingDecision:
    """The size to open with, where it came from, and why a fallback happened if one did."""

    fraction: float
    leverage: float
    source: str
    cause: FallbackCause | None = None
    state: str = ""
    detail: str = ""


class SizingAgent(Protocol):
    """Anything that maps a sizing state to an action (None: no opinion on this state)."""

    @property
    def trained(self) -> bool:
        """Whether the agent learned anything at all."""
        ...

    def act(self, state: SizingState, mode: RiskMode) -> SizingAction | None:
        """Return the action for ``state`` in risk mode ``mode``, or None if untrained there."""
        ...


def entries_allowed(policy: Policy, confidence: float) -> bool:
    """Return True when the policy lets a new position open at ``confidence``."""
    if policy.effective_state is not TradingState.ACTIVE:
        return False
    return confidence >= policy.active_limits.min_confidence


def cap_sizing(
    fraction: float, leverage: float, state: SizingState, policy: Policy
) -> tuple[float, float]:
    """Apply the active mode's ``size_scale`` and hold ``(fraction, leverage)`` within its caps.

    Returns ``(0.0, 1.0)`` when no new entry is allowed. Raises nothing for finite inputs.
    """
    if not entries_allowed(policy, state.confidence):
        return 0.0, 1.0
    lim: ModeLimits = policy.active_limits
    leverage = min(max(leverage, 1.0), lim.max_leverage)
    fraction = max(fraction, 0.0) * lim.size_scale
    risk_cap = (
        lim.max_risk_per_trade / state.stop_distance
        if state.stop_distance is not None
        else lim.max_risk_per_trade * leverage
    )
    caps = (
        risk_cap,
        lim.max_symbol_exposure,
        lim.max_gross_exposure,
        lim.max_position_notional / state.equity if state.equity > 0 else 0.0,
    )
    capped = min(fraction, *caps) * CAP_SAFETY
    if not _within(capped, leverage, state, lim):
        return 0.0, leverage  # float underflow at extreme limits: nothing rather than too much
    return capped, leverage


def _within(fraction: float, leverage: float, state: SizingState, lim: ModeLimits) -> bool:
    """Check ``fraction`` the way the RiskGuard will (the same products, in the same order)."""
    risk = (
        fraction * state.stop_distance if state.stop_distance is not None else fraction / leverage
    )
    return (
        math.isfinite(fraction)
        and fraction >= 0.0
        and risk <= lim.max_risk_per_trade
        and fraction <= lim.max_symbol_exposure
        and fraction <= lim.max_gross_exposure
        and fraction * state.equity <= lim.max_position_notional
    )


@dataclass(frozen=True, slots=True)
class RuleBasedSizer:
    """Volatility-targeted sizing, the fallback that needs no training.

    Attributes:
        target_volatility: Daily equity volatility one position may add (0.01 = 1 %/day).
        liquidation_buffer: The liquidation distance ``1 / leverage`` must exceed this many
            daily moves.
        max_fraction: Largest fraction before the policy caps (a sanity bound).
    """

    target_volatility: float = 0.01
    liquidation_buffer: float = 5.0
    max_fraction: float = 5.0

    def __post_init__(self) -> None:
        for name in ("target_volatility", "liquidation_buffer", "max_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"rule-based sizer {name} must be > 0, got {value!r}")

    def raw_fraction(self, state: SizingState) -> float:
        """The volatility-targeted fraction before any multiplier or cap."""
        return min(
            self.target_volatility / max(state.volatility, MIN_VOLATILITY), self.max_fraction
        )

    def safe_leverage(self, state: SizingState) -> float:
        """The most leverage whose liquidation distance keeps ``liquidation_buffer`` daily moves."""
        return max(1.0, 1.0 / (self.liquidation_buffer * max(state.volatility, MIN_VOLATILITY)))

    def propose(self, state: SizingState, policy: Policy) -> tuple[float, float]:
        """Return ``(fraction, leverage)`` before the policy caps."""
        lim = policy.active_limits
        fraction = self.raw_fraction(state) * lim.size_scale
        if state.stop_distance is not None:
            needed = 1.0
        else:
            needed = fraction / lim.max_risk_per_trade if lim.max_risk_per_trade > 0 else 1.0
        leverage = min(max(needed, 1.0), self.safe_leverage(state), lim.max_leverage)
        return self.raw_fraction(state), leverage

    def size(self, state: SizingState, policy: Policy) -> tuple[float, float]:
        """Return the capped ``(fraction, leverage)``."""
        fraction, leverage = self.propose(state, policy)
        return cap_sizing(fraction, leverage, state, policy)


class PositionSizer:
    """The sizing front door: the agent when it behaves, the rule-based sizer otherwise."""

    def __init__(
        self,
        agent: SizingAgent | None,
        rule: RuleBasedSizer | None = None,
        *,
        deadline_secs: float = 0.005,
        max_multiplier: float = 2.0,
        monotonic: Callable[[], float] = time.perf_counter,
        metrics: MetricsRecorder | None = None,
        audit: AuditRecorder | None = None,
        actor: str = "sizer",
    ) -> None:
        """Wire the sizer.

        Args:
            agent: The learned agent (None: every decision falls back, cause ``agent_missing``).
            rule: The fallback (default ``RuleBasedSizer()``).
            deadline_secs: Longest an agent call may take; a slower answer is discarded.
            max_multiplier: Largest size multiplier an agent may return.
            monotonic: The clock the deadline is measured with (inject a fake in tests).
            metrics: Counts fallbacks in ``sizing_fallbacks_total{reason}``.
            audit: Records each fallback with its cause; AuditUnavailableError propagates, so a
                caller that cannot audit does not trade (fail closed).
            actor: The audit actor.
        """
        if not (math.isfinite(deadline_secs) and deadline_secs > 0):
            raise ConfigError(f"sizing deadline_secs must be > 0, got {deadline_secs!r}")
        if not (math.isfinite(max_multiplier) and max_multiplier > 0):
            raise ConfigError(f"sizing max_multiplier must be > 0, got {max_multiplier!r}")
        self.agent = agent
        self.rule = rule or RuleBasedSizer()
        self.deadline_secs = deadline_secs
        self.max_multiplier = max_multiplier
        self._monotonic = monotonic
        self._metrics = metrics
        self._audit = audit
        self._actor = actor
        self.fallbacks: dict[FallbackCause, int] = {}

    def size(
        self, state: SizingState, policy: Policy, *, symbol: str = "", ts_ns: int | None = None
    ) -> SizingDecision:
        """Return the capped size for a new position on ``symbol`` in ``state``."""
        key = state_key(state.regime, state.confidence, state.drawdown, policy.mode)
        proposal, cause, detail = self._ask_agent(state, policy)
        if proposal is not None:
            base, _ = self.rule.propose(state, policy)
            fraction, leverage = cap_sizing(
                base * proposal.multiplier, proposal.leverage, state, policy
            )
            return SizingDecision(fraction, leverage, "agent", None, key)
        assert cause is not None
        fraction, leverage = self.rule.size(state, policy)
        self._record_fallback(cause, detail, key, symbol, ts_ns)
        return SizingDecision(fraction, leverage, "rule", cause, key, detail)

    def _ask_agent(
        self, state: SizingState, policy: Policy
    ) -> tuple[SizingAction | None, FallbackCause | None, str]:
        agent = self.agent
        if agent is None:
            return None, FallbackCause.MISSING, "no sizing agent loaded"
        try:
            if not agent.trained:
                return None, FallbackCause.UNTRAINED, "the agent is not trained"
            started = self._monotonic()
            action = agent.act(state, policy.mode)
            elapsed = self._monotonic() - started
        except Exception as exc:  # any agent failure means the fallback
            return None, FallbackCause.ERROR, f"{type(exc).__name__}: {exc}"
        if elapsed > self.deadline_secs:
            return (
                None,
                FallbackCause.TIMEOUT,
                f"agent took {elapsed * 1e3:.3f} ms > {self.deadline_secs * 1e3:.3f} ms",
            )
        if action is None:
            return None, FallbackCause.UNTRAINED, "the agent has no action for this state"
        problem = self._out_of_bounds(action, policy)
        if problem:
            return None, FallbackCause.OUT_OF_BOUNDS, problem
        return action, None, ""

    def _out_of_bounds(self, action: object, policy: Policy) -> str:
        if not isinstance(action, SizingAction):
            return f"agent returned {type(action).__name__}, not a SizingAction"
        m, lev = action.multiplier, action.leverage
        for name, value in (("multiplier", m), ("leverage", lev)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"{name} {value!r} is not a number"
            if not math.isfinite(value):
                return f"{name} {value!r} is not finite"
        if not 0.0 <= m <= self.max_multiplier:
            return f"multiplier {m!r} outside [0, {self.max_multiplier:g}]"
        max_leverage = policy.active_limits.max_leverage
        if not 1.0 <= lev <= max_leverage:
            return f"leverage {lev!r} outside [1, {max_leverage:g}] (policy {policy.mode.value})"
        return ""

    def _record_fallback(
        self, cause: FallbackCause, detail: str, key: str, symbol: str, ts_ns: int | None
    ) -> None:
        self.fallbacks[cause] = self.fallbacks.get(cause, 0) + 1
        if self._metrics is not None:
            self._metrics.record_sizing_fallback(cause)
        if self._audit is not None:
            self._audit.append(
                AuditEventType.SYSTEM_STATE_CHANGED,
                actor=self._actor,
                action="sizing_fallback",
                target=symbol or "sizing",
                reason=cause.value,
                outcome="rule_based",
                metadata={"cause": cause.value, "detail": detail, "state": key},
                ts_ns=ts_ns,
            )


# ---------------------------------------------------------------- the learned agent


@dataclass(frozen=True, slots=True)
class TableEntry:
    """What the agent learned for one state: the action and the evidence behind it."""

    action: SizingAction
    samples: int
    mean_reward: float
    lower_reward: float
    level: str


class BanditSizingAgent:
    """A pessimistic contextual bandit over discretised states: one learned action per state.

    Why a contextual bandit and not Q-learning: the size of one trade barely changes the next
    trade's state (the market does not react to our size; drawdown moves little per trade), so
    the problem has no meaningful state transitions to learn and a one-step bandit is the
    honest model. Better still, a backtest trade's return and adverse excursion let every
    action's reward be computed counterfactually, so the bandit learns with full feedback from
    offline data instead of exploring with real money. To resist overfitting it picks, per
    state, the action with the best *lower* bootstrap quantile of reward (pessimism under
    uncertainty), backs off to coarser states when a state has too few trades, and otherwise
    says "untrained here" so the rule-based sizer decides.
    """

    def __init__(
        self, table: Mapping[str, TableEntry], *, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Serve ``table`` (state key → entry); ``meta`` records how it was trained."""
        self.table = dict(table)
        self.meta = dict(meta or {})

    @property
    def trained(self) -> bool:
        """True when at least one state has an action."""
        return bool(self.table)

    def act(self, state: SizingState, mode: RiskMode) -> SizingAction | None:
        """Return the learned action for ``state`` in ``mode`` (None: not trained there)."""
        entry = self.table.get(state_key(state.regime, state.confidence, state.drawdown, mode))
        return None if entry is None else entry.action

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written by ``save``."""
        return {
            "format": AGENT_FORMAT,
            "kind": "pessimistic_contextual_bandit",
            "meta": self.meta,
            "table": {
                key: {
                    "multiplier": e.action.multiplier,
                    "leverage": e.action.leverage,
                    "samples": e.samples,
                    "mean_reward": e.mean_reward,
                    "lower_reward": e.lower_reward,
                    "level": e.level,
                }
                for key, e in sorted(self.table.items())
            },
        }

    def save(self, path: Path) -> None:
        """Write the table as JSON to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True), encoding="utf-8")

    @staticmethod
    def load(path: Path, *, max_multiplier: float = 2.0) -> BanditSizingAgent:
        """Read a table written by ``save``; ConfigError names the file and what is wrong."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"sizing agent file {path} does not exist") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"sizing agent file {path} is not valid JSON: {exc}") from None
        try:
            return BanditSizingAgent.from_dict(data, max_multiplier=max_multiplier)
        except ConfigError as exc:
            raise ConfigError(f"sizing agent file {path}: {exc}") from None

    @staticmethod
    def from_dict(data: object, *, max_multiplier: float = 2.0) -> BanditSizingAgent:
        """Validate and rebuild an agent from ``to_dict`` output."""
        if not isinstance(data, dict) or data.get("format") != AGENT_FORMAT:
            raise ConfigError(f"not a format-{AGENT_FORMAT} sizing agent")
        raw = data.get("table")
        if not isinstance(raw, dict):
            raise ConfigError("'table' must be an object of state → action")
        known = set(all_state_keys())
        table: dict[str, TableEntry] = {}
        for key, entry in raw.items():
            if key not in known:
                raise ConfigError(f"unknown state {key!r}")
            try:
                m, lev = float(entry["multiplier"]), float(entry["leverage"])
                item = TableEntry(
                    SizingAction(m, lev),
                    int(entry["samples"]),
                    float(entry["mean_reward"]),
                    float(entry["lower_reward"]),
                    str(entry["level"]),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"state {key!r}: malformed entry ({exc})") from None
            if not (math.isfinite(m) and 0.0 <= m <= max_multiplier):
                raise ConfigError(f"state {key!r}: multiplier {m!r} outside [0, {max_multiplier}]")
            if not (math.isfinite(lev) and 1.0 <= lev <= 125.0):
                raise ConfigError(f"state {key!r}: leverage {lev!r} outside [1, 125]")
            table[key] = item
        meta = data.get("meta", {})
        return BanditSizingAgent(table, meta=meta if isinstance(meta, dict) else {})
