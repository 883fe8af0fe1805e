"""Orders and the one state table every order-status change goes through.

An order is an entity: its status changes, but only through ``Order.apply``, which looks the
change up in ``TRANSITIONS`` and raises IllegalTransitionError for anything the table lacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from quantum_trader.domain.errors import IllegalTransitionError, InvalidOrderError


class OrderSide(StrEnum):
    """Buy or sell."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is OrderSide.BUY else -1

    @staticmethod
    def of(signed_qty: float) -> OrderSide:
        """Return the side that moves a position by ``signed_qty``."""
        return OrderSide.BUY if signed_qty > 0 else OrderSide.SELL


class OrderType(StrEnum):
    """How an order executes."""

    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"


class TimeInForce(StrEnum):
    """How long an order may rest: GTC, immediate-or-cancel, fill-or-kill, post-only (GTX)."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    GTX = "gtx"


class OrderStatus(StrEnum):
    """Where an order is in its life."""

    INITIALIZED = "initialized"
    ACCEPTED = "accepted"
    TRIGGERED = "triggered"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        """True while the order can still fill."""
        return self in _OPEN


class OrderTrigger(StrEnum):
    """What happens to an order."""

    ACCEPT = "accept"
    REJECT = "reject"
    TRIGGER = "trigger"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCEL = "cancel"
    EXPIRE = "expire"


_OPEN = frozenset({OrderStatus.ACCEPTED, OrderStatus.TRIGGERED, OrderStatus.PARTIALLY_FILLED})

S, T = OrderStatus, OrderTrigger
TRANSITIONS: dict[tuple[OrderStatus, OrderTrigger], OrderStatus] = {
    (S.INITIALIZED, T.ACCEPT): S.ACCEPTED,
    (S.INITIALIZED, T.REJECT): S.REJECTED,
    (S.ACCEPTED, T.TRIGGER): S.TRIGGERED,
    (S.ACCEPTED, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.ACCEPTED, T.FILL): S.FILLED,
    (S.ACCEPTED, T.CANCEL): S.CANCELED,
    (S.ACCEPTED, T.EXPIRE): S.EXPIRED,
    (S.TRIGGERED, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.TRIGGERED, T.FILL): S.FILLED,
    (S.TRIGGERED, T.CANCEL): S.CANCELED,
    (S.TRIGGERED, T.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, T.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, T.CANCEL): S.CANCELED,
    (S.PARTIALLY_FILLED, T.EXPIRE): S.EXPIRED,
}
del S, T


@dataclass(slots=True)
class Order:
    """An order: what was asked (fixed at creation) and how far it got (changed by ``apply``)."""

    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: float
    ts_init: int
    price: float | None = None
    trigger_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    tag: str = ""
    status: OrderStatus = OrderStatus.INITIALIZED
    filled_qty: float = 0.0
    avg_fill_price: float = 0.0
    reject_reason: str = ""
    history: list[tuple[int, OrderStatus]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.quantity) and self.quantity > 0):
            raise InvalidOrderError(
                f"order {self.client_order_id}: quantity must be > 0, got {self.quantity}",
                reason="qty",
            )
        if self.type is OrderType.LIMIT and not _positive(self.price):
            raise InvalidOrderError(
                f"order {self.client_order_id}: a limit order needs a price > 0", reason="price"
            )
        if self.type is OrderType.STOP_MARKET and not _positive(self.trigger_price):
            raise InvalidOrderError(
                f"order {self.client_order_id}: a stop order needs a trigger price > 0",
                reason="trigger_price",
            )
        if self.time_in_force is TimeInForce.GTX and self.type is not OrderType.LIMIT:
            raise InvalidOrderError(
                f"order {self.client_order_id}: post-only (GTX) applies to limit orders only",
                reason="time_in_force",
            )

    @property
    def remaining_qty(self) -> float:
        """Quantity still to fill."""
        return self.quantity - self.filled_qty

    @property
    def signed_remaining(self) -> float:
        """Remaining quantity with the side's sign."""
        return self.side.sign * self.remaining_qty

    def apply(self, trigger: OrderTrigger, ts_ns: int) -> OrderStatus:
        """Move the order through the state table; raise IllegalTransitionError if not allowed."""
        new = TRANSITIONS.get((self.status, trigger))
        if new is None:
            raise IllegalTransitionError(self.client_order_id, self.status.value, trigger.value)
        self.status = new
        self.history.append((ts_ns, new))
        return new

    def record_fill(self, qty: float, price: float, ts_ns: int) -> OrderStatus:
        """Add a fill of ``qty`` at ``price`` and move to (partially) filled."""
        if qty <= 0 or qty > self.remaining_qty + 1e-12:
            raise InvalidOrderError(
                f"order {self.client_order_id}: fill of {qty} exceeds remaining "
                f"{self.remaining_qty}",
                reason="overfill",
            )
        total = self.filled_qty + qty
        self.avg_fill_price = (self.avg_fill_price * self.filled_qty + price * qty) / total
        self.filled_qty = total
        done = self.remaining_qty <= 1e-12 * max(1.0, self.quantity)
        return self.apply(OrderTrigger.FILL if done else OrderTrigger.PARTIAL_FILL, ts_ns)


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0
