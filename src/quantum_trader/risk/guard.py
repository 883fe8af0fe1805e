"""RiskGuard: the pre-trade gate every order intent passes before it may reach an exchange.

Checks run in a fixed order and the first failure decides, with an enum reason code:

 0. the ESS's own reduce-only closes are approved at once: nothing may keep it from flattening
 1. trading state: HALTED denies everything else; REDUCING
    (or CRITICAL mode) denies anything that would open or grow a position
 2. symbol allowed
 3. price sane (finite, > 0, within ``max_price_deviation`` of the last mark) and fresh
    (the last price is at most ``max_price_age_secs`` old)
 4. model confidence >= the mode's minimum
 5. leverage, 6. risk per trade, 7. position notional, 8. open positions,
 9. per-symbol exposure, 10. gross exposure, 11. daily loss
12. order rate (orders approved in the sliding window)

Orders that only reduce a position skip 4–12: getting out must always be possible. The policy is
read through ``policy()`` on every intent, so a change takes effect on the next one. A denial is
a value, not an exception; an exception inside a check denies with GUARD_ERROR (fail closed).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.policy import Policy, TradingState

NANOS = 1_000_000_000


class RiskReason(StrEnum):
    """Why the guard decided as it did."""

    APPROVED = "approved"
    TRADING_HALTED = "trading_halted"
    REDUCE_ONLY = "reduce_only"
    SYMBOL_NOT_ALLOWED = "symbol_not_allowed"
    PRICE_INVALID = "price_invalid"
    PRICE_STALE = "price_stale"
    LOW_CONFIDENCE = "low_confidence"
    LEVERAGE = "leverage"
    RISK_PER_TRADE = "risk_per_trade"
    POSITION_NOTIONAL = "position_notional"
    OPEN_POSITIONS = "open_positions"
    SYMBOL_EXPOSURE = "symbol_exposure"
    GROSS_EXPOSURE = "gross_exposure"
    DAILY_LOSS = "daily_loss"
    ORDER_RATE = "order_rate"
    GUARD_ERROR = "guard_error"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a strategy (or the ESS) wants to do, before any order exists."""

    symbol: str
    side: OrderSide
    quantity: float
    price: float
    ts_ns: int
    leverage: float = 1.0
    confidence: float = 1.0
    stop_price: float | None = None
    emergency: bool = False
    strategy: str = ""


@dataclass(frozen=True, slots=True)
class AccountView:
    """The account as the guard needs it: equity, positions (signed quantity) and marks.

    ``mark_ts_ns`` is when each mark was last updated (for the staleness check).
    """

    equity: float
    day_start_equity: float
    positions: Mapping[str, float]
    marks: Mapping[str, float]
    mark_ts_ns: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The guard's answer for one intent."""

    approved: bool
    reason: RiskReason
    detail: str = ""


_APPROVED = RiskDecision(True, RiskReason.APPROVED)


class RiskGuard:
    """Decides on order intents against the current policy; keeps the order-rate window."""

    def __init__(
        self,
        policy: Callable[[], Policy],
        *,
        on_denied: Callable[[OrderIntent, RiskDecision], None] | None = None,
    ) -> None:
        self._policy = policy
        self._on_denied = on_denied
        self._sent: deque[int] = deque()
        self.denials: dict[RiskReason, int] = {}
        # Derived from the policy once per policy object (a new version is a new object).
        self._seen: Policy | None = None
        self._state = TradingState.ACTIVE
        self._max_age_ns = 0.0
        self._window_ns = 0.0

    def check(self, intent: OrderIntent, account: AccountView) -> RiskDecision:
        """Approve or deny ``intent``; an approval counts towards the order-rate window."""
        try:
            decision = self._check(intent, account)
        except Exception as exc:  # the guard fails closed on anything
            decision = RiskDecision(False, RiskReason.GUARD_ERROR, f"{type(exc).__name__}: {exc}")
        if not decision.approved:
            self.denials[decision.reason] = self.denials.get(decision.reason, 0) + 1
            if self._on_denied is not None:
                self._on_denied(intent, decision)
        return decision

    def _check(self, intent: OrderIntent, account: AccountView) -> RiskDecision:  # noqa: C901 - one check per line, in order
        policy = self._policy()
        if policy is not self._seen:
            self._seen = policy
            self._state = policy.effective_state
            self._max_age_ns = policy.max_price_age_secs * NANOS
            self._window_ns = policy.order_window_secs * NANOS
        held = account.positions.get(intent.symbol, 0.0)
        signed = intent.quantity if intent.side is OrderSide.BUY else -intent.quantity
        after = held + signed
        reducing = held != 0.0 and abs(after) <= abs(held) + 1e-12 and after * held >= 0.0

        if intent.emergency and reducing:
            # The ESS getting out: stale or odd prices are the usual reason it is acting, so no
            # later check may keep a position open.
            return _APPROVED
        state = self._state
        if state is TradingState.HALTED:
            return RiskDecision(False, RiskReason.TRADING_HALTED, "trading is halted")
        if state is TradingState.REDUCING and not reducing:
            return RiskDecision(
                False, RiskReason.REDUCE_ONLY, "only orders that reduce a position are allowed"
            )
        if policy.allowed_symbols and intent.symbol not in policy.allowed_symbols:
            return RiskDecision(
                False, RiskReason.SYMBOL_NOT_ALLOWED, f"{intent.symbol} is not allowed"
            )
        price = intent.price
        mark = account.marks.get(intent.symbol)
        if not (
            math.isfinite(price)
            and price > 0
            and intent.quantity > 0
            and math.isfinite(intent.quantity)
        ):
            return RiskDecision(
                False, RiskReason.PRICE_INVALID, f"price {price} / quantity {intent.quantity}"
            )
        if mark is None or not mark > 0:
            return RiskDecision(
                False, RiskReason.PRICE_INVALID, f"no mark price for {intent.symbol}"
            )
        if abs(price - mark) > policy.max_price_deviation * mark:
            return RiskDecision(
                False,
                RiskReason.PRICE_INVALID,
                f"price {price} is more than {policy.max_price_deviation:.0%} from mark {mark}",
            )
        age = intent.ts_ns - account.mark_ts_ns.get(intent.symbol, -(2**62))
        if age > self._max_age_ns:
            return RiskDecision(
                False, RiskReason.PRICE_STALE, f"last price is {age / NANOS:.0f}s old"
            )
        if reducing:
            return _APPROVED

        lim = policy.limits[policy.mode]
        if intent.confidence < lim.min_confidence:
            return RiskDecision(
                False,
                RiskReason.LOW_CONFIDENCE,
                f"confidence {intent.confidence:.2f} < {lim.min_confidence:.2f}",
            )
        if intent.leverage > lim.max_leverage:
            return RiskDecision(
                False, RiskReason.LEVERAGE, f"leverage {intent.leverage:g} > {lim.max_leverage:g}"
            )
        equity = account.equity
        if not equity > 0:
            return RiskDecision(False, RiskReason.RISK_PER_TRADE, f"equity is {equity:.2f}")
        added = abs(after) - abs(held) if after * held > 0 else abs(after)
        stop_distance = (
            abs(price - intent.stop_price)
            if intent.stop_price is not None
            else price / max(intent.leverage, 1.0)
        )
        risk = added * stop_distance / equity
        if risk > lim.max_risk_per_trade:
            return RiskDecision(
                False, RiskReason.RISK_PER_TRADE, f"risk {risk:.2%} > {lim.max_risk_per_trade:.2%}"
            )
        notional_after = abs(after) * price
        if notional_after > lim.max_position_notional:
            return RiskDecision(
                False,
                RiskReason.POSITION_NOTIONAL,
                f"position {notional_after:,.0f} > {lim.max_position_notional:,.0f}",
            )
        positions = account.positions
        if held == 0.0:
            open_now = sum(1 for q in positions.values() if q != 0.0)
            if open_now + 1 > lim.max_open_positions:
                return RiskDecision(
                    False,
                    RiskReason.OPEN_POSITIONS,
                    f"{open_now} open, max {lim.max_open_positions}",
                )
        exposure = notional_after / equity
        if exposure > lim.max_symbol_exposure:
            return RiskDecision(
                False,
                RiskReason.SYMBOL_EXPOSURE,
                f"{exposure:.2f}x equity > {lim.max_symbol_exposure:g}x",
            )
        marks = account.marks
        gross = notional_after
        for sym, q in positions.items():
            if q != 0.0 and sym != intent.symbol:
                gross += abs(q) * marks.get(sym, 0.0)
        if gross / equity > lim.max_gross_exposure:
            return RiskDecision(
                False,
                RiskReason.GROSS_EXPOSURE,
                f"{gross / equity:.2f}x equity > {lim.max_gross_exposure:g}x",
            )
        start = account.day_start_equity
        if start > 0 and (start - equity) / start >= lim.max_daily_loss:
            return RiskDecision(
                False,
                RiskReason.DAILY_LOSS,
                f"down {(start - equity) / start:.2%} today, max {lim.max_daily_loss:.2%}",
            )
        window = self._window_ns
        sent = self._sent
        while sent and intent.ts_ns - sent[0] >= window:
            sent.popleft()
        if len(sent) >= policy.max_orders_per_window:
            return RiskDecision(
                False, RiskReason.ORDER_RATE, f"{len(sent)} orders in {policy.order_window_secs:g}s"
            )
        sent.append(intent.ts_ns)
        return _APPROVED
