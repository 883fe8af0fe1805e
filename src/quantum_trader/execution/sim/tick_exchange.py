"""TickExchange: the simulated exchange matching on replayed ticks instead of bars.

Everything a venue does besides matching stays as in ``SimulatedExchange``: instrument filters
and the margin check at submission, duplicate client order ids, the account's bookings,
funding and liquidation. Matching is the ``TickMatcher``'s (``execution.sim.ticks``): a market
order fills at the touch of the first quote after it arrives, resting limits fill as maker on
prints at their price, stops trigger on prints. ``on_event`` feeds one replayed capture event
and books the fills it causes.
"""

from __future__ import annotations

from quantum_trader.data.ws_capture import CaptureEvent
from quantum_trader.domain.errors import InvalidOrderError
from quantum_trader.domain.orders import Order, OrderStatus
from quantum_trader.domain.trading import Fill
from quantum_trader.execution.sim.costs import FeeModel, SlippageModel
from quantum_trader.execution.sim.exchange import SimulatedExchange
from quantum_trader.execution.sim.ticks import TickMatcher
from quantum_trader.portfolio.account import Account


class TickExchange(SimulatedExchange):
    """A ``SimulatedExchange`` whose orders are matched by a ``TickMatcher`` on ticks."""

    def __init__(
        self,
        account: Account,
        *,
        fees: FeeModel | None = None,
        slippage: SlippageModel | None = None,
        latency_ns: int = 0,
    ) -> None:
        """Match with ``latency_ns`` between an order's time and its arrival at the book."""
        super().__init__(account, fees=fees, slippage=slippage)
        self.matcher = TickMatcher(
            fees=self.fees,
            slippage=self.slippage,
            instruments=self.instruments,
            latency_ns=latency_ns,
            position=lambda symbol: self.account.positions[symbol].quantity,
        )

    def _book(self, order: Order, *, intrabar: bool) -> None:
        self.matcher.submit(order)

    def on_event(self, event: CaptureEvent) -> list[Fill]:
        """Meet one replayed event (quote or print); book and return the fills it caused."""
        fills = self.matcher.on_event(event)
        for fill in fills:
            self.account.apply_fill(fill)
            self.fills.append(fill)
        return fills

    def cancel(self, client_order_id: str, ts_ns: int) -> Order | None:
        """Cancel an open order; return it, or None if unknown or no longer open."""
        return self.matcher.cancel(client_order_id, ts_ns)

    def cancel_all(self, ts_ns: int, symbol: str | None = None) -> list[Order]:
        """Cancel every open order (of ``symbol`` if given); return those canceled."""
        return self.matcher.cancel_all(ts_ns, symbol)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders that can still fill."""
        return self.matcher.open_orders(symbol)

    def has_awaiting(self, symbol: str | None = None) -> bool:
        """True when orders wait to meet the market (of ``symbol``, or of any symbol)."""
        return bool(self.matcher.open_orders(symbol))

    def book_of(self, order: Order) -> str:
        """``"awaiting"`` while the order is open at the matcher, else ``""``."""
        return "awaiting" if order.status.is_open else ""

    def restore(self, order: Order, book: str) -> None:
        """Put back an order that was open when its venue's state was saved."""
        self.orders[order.client_order_id] = order
        if not order.status.is_open:
            return
        if order.status is not OrderStatus.ACCEPTED:
            raise InvalidOrderError(
                f"order {order.client_order_id}: a tick venue restores accepted orders only, "
                f"this one is {order.status.value}",
                reason="restore",
            )
        self.matcher.submit(order)

    def on_open(self, *args: object, **kwargs: object) -> None:
        """Bars do not drive a tick venue: feed ``on_event``."""
        raise InvalidOrderError("a tick exchange is driven by on_event, not bars", reason="bars")

    on_bar = on_open
