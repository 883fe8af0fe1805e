"""Fills, positions, trades and account snapshots.

Money in this module is float64, rounded to the instrument grid where orders are made; accounting
tests compare with hand-computed values to 1e-9 relative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from quantum_trader.domain.orders import OrderSide


class Liquidity(StrEnum):
    """Whether a fill added liquidity (maker) or took it (taker)."""

    MAKER = "maker"
    TAKER = "taker"


class MarginMode(StrEnum):
    """Cross: one wallet backs every position. Isolated: each position has its own margin."""

    CROSS = "cross"
    ISOLATED = "isolated"


class TradeStatus(StrEnum):
    """Where a round-trip trade is."""

    OPEN = "open"
    CLOSED = "closed"
    LIQUIDATED = "liquidated"


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of (part of) an order."""

    client_order_id: str
    symbol: str
    side: OrderSide
    quantity: float
    price: float
    fee: float
    liquidity: Liquidity
    ts_event: int
    liquidation: bool = False

    @property
    def signed_qty(self) -> float:
        """Quantity with the side's sign: + for buys, - for sells."""
        return self.side.sign * self.quantity


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """A funding settlement: ``amount`` > 0 was received, < 0 was paid."""

    symbol: str
    rate: float
    mark_price: float
    position_qty: float
    amount: float
    ts_event: int


@dataclass(slots=True)
class Position:
    """A one-way net position: ``quantity`` > 0 long, < 0 short, 0 flat.

    ``isolated_margin`` is the margin locked for this position in isolated mode (0 in cross).
    """

    symbol: str
    quantity: float = 0.0
    entry_price: float = 0.0
    leverage: float = 1.0
    margin_mode: MarginMode = MarginMode.CROSS
    isolated_margin: float = 0.0
    realized_pnl: float = 0.0

    @property
    def is_flat(self) -> bool:
        """True when no quantity is held."""
        return self.quantity == 0.0

    def unrealized_pnl(self, price: float) -> float:
        """Profit or loss if the position were closed at ``price``, before fees."""
        return self.quantity * (price - self.entry_price)


@dataclass(slots=True)
class Trade:
    """A round trip: opens when a flat position gets quantity, closes when it is flat again.

    A reversal closes one trade and opens the next. ``quantity`` is the largest absolute size the
    trade reached; ``realized_pnl`` is gross of fees and funding, which are kept apart, so
    ``net_pnl = realized_pnl - fees + funding``.
    """

    trade_id: str
    symbol: str
    side: OrderSide
    quantity: float
    entry_price: float
    entry_ts: int
    strategy: str = ""
    model_version: str = ""
    exit_price: float = 0.0
    exit_ts: int = 0
    status: TradeStatus = TradeStatus.OPEN
    realized_pnl: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    client_order_ids: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    # Quantity-weighted sum of exit prices, so partial exits give the right average.
    _exit_value: float = 0.0
    _exit_qty: float = 0.0

    @property
    def net_pnl(self) -> float:
        """Realized PnL after fees and funding."""
        return self.realized_pnl - self.fees + self.funding

    def add_exit(self, qty: float, price: float) -> None:
        """Record that ``qty`` (absolute) left the position at ``price``."""
        first = self._exit_qty == 0.0
        self._exit_value += qty * price
        self._exit_qty += qty
        # qty * price / qty can be one ulp off price: keep a single exit price exactly.
        if first or price == self.exit_price:
            self.exit_price = price
        else:
            self.exit_price = self._exit_value / self._exit_qty


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """The account at one moment."""

    ts_event: int
    wallet_balance: float
    unrealized_pnl: float
    equity: float
    initial_margin: float
    maintenance_margin: float
    available_balance: float
