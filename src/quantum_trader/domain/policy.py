"""The policy document: risk modes, per-mode limits, trading state, allowed symbols.

One risk-mode vocabulary: SAFE, NORMAL, AGGRESSIVE, CRITICAL (CRITICAL means REDUCING: only
orders that shrink a position). Limits tighten monotonically from AGGRESSIVE through NORMAL and
SAFE to CRITICAL: a safer mode never allows more than a riskier one. A Policy is validated when
it is made, so an invalid policy cannot exist, let alone be stored.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from quantum_trader.domain.errors import ConfigError


class RiskMode(StrEnum):
    """How much risk the system may take, from most to least."""

    AGGRESSIVE = "aggressive"
    NORMAL = "normal"
    SAFE = "safe"
    CRITICAL = "critical"


# From riskiest to safest: each mode's limits must be at most the previous one's.
MODE_ORDER = (RiskMode.AGGRESSIVE, RiskMode.NORMAL, RiskMode.SAFE, RiskMode.CRITICAL)


class TradingState(StrEnum):
    """Whether new orders may be sent: all, only position-reducing ones, or none."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class ModeLimits:
    """The limits of one risk mode. Fractions are of equity; notional is in USDT.

    ``max_risk_per_trade`` bounds the loss if the trade's stop is hit (or, without a stop, its
    margin: notional / leverage) as a fraction of equity. ``size_scale`` multiplies every
    strategy size in this mode.
    """

    max_leverage: float
    max_risk_per_trade: float
    max_position_notional: float
    max_open_positions: int
    max_symbol_exposure: float
    max_gross_exposure: float
    max_daily_loss: float
    max_drawdown: float
    min_confidence: float
    size_scale: float

    def __post_init__(self) -> None:
        checks: list[tuple[str, float, float, float]] = [
            ("max_leverage", self.max_leverage, 1.0, 125.0),
            ("max_risk_per_trade", self.max_risk_per_trade, 0.0, 1.0),
            ("max_position_notional", self.max_position_notional, 0.0, 1e12),
            ("max_open_positions", self.max_open_positions, 0.0, 10_000.0),
            ("max_symbol_exposure", self.max_symbol_exposure, 0.0, 100.0),
            ("max_gross_exposure", self.max_gross_exposure, 0.0, 1000.0),
            ("max_daily_loss", self.max_daily_loss, 0.0, 1.0),
            ("max_drawdown", self.max_drawdown, 0.0, 1.0),
            ("min_confidence", self.min_confidence, 0.0, 1.0),
            ("size_scale", self.size_scale, 0.0, 10.0),
        ]
        for name, value, low, high in checks:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"policy limit {name} must be a number, got {value!r}")
            if not (math.isfinite(value) and low <= value <= high):
                raise ConfigError(f"policy limit {name}={value!r} is outside [{low:g}, {high:g}]")
        if not isinstance(self.max_open_positions, int):
            got = self.max_open_positions
            raise ConfigError(f"policy limit max_open_positions must be an integer, got {got!r}")


# The direction in which each limit is "looser": caps loosen upward, min_confidence downward.
_LOOSER_WHEN_HIGHER = {f.name: f.name != "min_confidence" for f in fields(ModeLimits)}


# Safer modes cut size (size_scale, exposure, risk per trade) rather than leverage, so a
# strategy configured at 10x keeps trading smaller in SAFE instead of being refused outright.
DEFAULT_LIMITS: dict[RiskMode, ModeLimits] = {
    RiskMode.AGGRESSIVE: ModeLimits(20.0, 0.03, 1_000_000.0, 12, 1.5, 4.0, 0.08, 0.30, 0.50, 1.0),
    RiskMode.NORMAL: ModeLimits(10.0, 0.02, 500_000.0, 10, 1.0, 3.0, 0.05, 0.20, 0.55, 1.0),
    RiskMode.SAFE: ModeLimits(10.0, 0.01, 250_000.0, 5, 0.5, 1.5, 0.03, 0.15, 0.60, 0.5),
    RiskMode.CRITICAL: ModeLimits(10.0, 0.005, 100_000.0, 3, 0.25, 0.5, 0.02, 0.10, 0.70, 0.25),
}


@dataclass(frozen=True, slots=True)
class Policy:
    """A version of the policy document. Build new versions with ``changed``."""

    version: int = 1
    mode: RiskMode = RiskMode.NORMAL
    state: TradingState = TradingState.ACTIVE
    limits: dict[RiskMode, ModeLimits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    allowed_symbols: frozenset[str] = frozenset()
    max_orders_per_window: int = 60
    order_window_secs: float = 60.0
    max_price_age_secs: float = 120.0
    max_price_deviation: float = 0.10
    updated_at_ns: int = 0
    updated_by: str = "default"
    reason: str = "initial policy"

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or self.version < 1:
            raise ConfigError(f"policy version must be an integer >= 1, got {self.version!r}")
        object.__setattr__(self, "mode", _enum(RiskMode, self.mode, "mode"))
        object.__setattr__(self, "state", _enum(TradingState, self.state, "state"))
        missing = [m.value for m in RiskMode if m not in self.limits]
        if missing:
            raise ConfigError(f"policy has no limits for mode(s): {', '.join(missing)}")
        _check_monotonic(self.limits)
        for sym in self.allowed_symbols:
            if not (
                isinstance(sym, str) and sym.isalnum() and sym.isupper() and 2 <= len(sym) <= 20
            ):
                raise ConfigError(f"allowed symbol {sym!r} is not an exchange symbol like BTCUSDT")
        if not isinstance(self.max_orders_per_window, int) or self.max_orders_per_window < 1:
            raise ConfigError("max_orders_per_window must be an integer >= 1")
        for name in ("order_window_secs", "max_price_age_secs"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be > 0, got {value!r}")
        if not (0 < self.max_price_deviation <= 1):
            raise ConfigError(
                f"max_price_deviation must be in (0, 1], got {self.max_price_deviation!r}"
            )

    @property
    def active_limits(self) -> ModeLimits:
        """The limits of the active mode."""
        return self.limits[self.mode]

    @property
    def effective_state(self) -> TradingState:
        """The trading state, with CRITICAL mode meaning at least REDUCING."""
        if self.mode is RiskMode.CRITICAL and self.state is TradingState.ACTIVE:
            return TradingState.REDUCING
        return self.state

    def symbol_allowed(self, symbol: str) -> bool:
        """True when ``symbol`` may be traded (an empty allow-list allows every symbol)."""
        return not self.allowed_symbols or symbol in self.allowed_symbols

    def changed(self, *, actor: str, reason: str, ts_ns: int, **changes: Any) -> Policy:
        """The next version with ``changes`` applied; ConfigError if the result is invalid."""
        if not actor or not reason:
            raise ConfigError("a policy change needs an actor and a reason")
        unknown = set(changes) - {f.name for f in fields(Policy)} | (
            set(changes) & {"version", "updated_at_ns", "updated_by", "reason"}
        )
        if unknown:
            raise ConfigError(f"not a policy setting: {', '.join(sorted(unknown))}")
        return replace(
            self,
            version=self.version + 1,
            updated_at_ns=ts_ns,
            updated_by=actor,
            reason=reason,
            **changes,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for stores, the API and the audit trail)."""
        data = asdict(self)
        data["mode"] = self.mode.value
        data["state"] = self.state.value
        data["limits"] = {m.value: asdict(lim) for m, lim in self.limits.items()}
        data["allowed_symbols"] = sorted(self.allowed_symbols)
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Policy:
        """Rebuild a policy from ``to_dict`` output; ConfigError names what is wrong."""
        try:
            raw_limits = data["limits"]
            limits = {
                _enum(RiskMode, m, "mode"): ModeLimits(**lim) for m, lim in raw_limits.items()
            }
            rest = {k: v for k, v in data.items() if k != "limits"}
            rest["allowed_symbols"] = frozenset(rest.get("allowed_symbols", ()))
            return Policy(limits=limits, **rest)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"invalid policy document: {exc}") from exc


def _enum(kind: type[RiskMode] | type[TradingState], value: object, name: str) -> Any:
    try:
        return kind(str(value))
    except ValueError:
        valid = ", ".join(v.value for v in kind)
        raise ConfigError(f"policy {name} {value!r} is not one of: {valid}") from None


def _check_monotonic(limits: dict[RiskMode, ModeLimits]) -> None:
    for looser, tighter in itertools.pairwise(MODE_ORDER):
        a, b = limits[looser], limits[tighter]
        for name, higher_is_looser in _LOOSER_WHEN_HIGHER.items():
            va, vb = getattr(a, name), getattr(b, name)
            if (vb > va) if higher_is_looser else (vb < va):
                raise ConfigError(
                    f"limits must tighten from {looser.value} to {tighter.value}: "
                    f"{name} is {va} in {looser.value} but {vb} in {tighter.value}"
                )
