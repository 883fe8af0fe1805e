"""Tick-level matching for the simulated exchange: orders met by best bid/ask quotes and trades.

:class:`TickMatcher` holds orders and, fed quotes (best bid/ask) and trade prints in the order
they happen, returns the fills they cause. Its rules:

* **Arrival.** An order is live from ``order.ts_init + latency_ns``; quotes and trades stamped
  earlier do not touch it. Every ``ts_ns`` given to the matcher and every order's ``ts_init``
  must be on one clock (the exchange's time in a replay).
* **Market.** Fills in full at the first quote at or after its arrival: a buy at the best ask, a
  sell at the best bid, then the :class:`SlippageModel` if one is given, as taker. The quote's
  size is not a cap and the book is not walked: the best price is the fill price.
* **Limit.** Meets the first quote after its arrival like a market order if it crosses it (a buy
  at or above the ask fills at the ask, as taker); post-only (GTX) then expires instead, and IOC
  or FOK that do not cross expire. Otherwise it rests, and fills at its limit price as **maker**
  when a trade prints at or below it (buy) or at or above it (sell), for at most the printed
  quantity (partial fills follow); with ``fill_at_touch=False`` the print must go through the
  price. A quote whose ask falls below a resting buy (bid above a resting sell) means the market
  traded through it: the rest fills at the limit, as maker.
* **Stop-market.** Triggers on the first trade at or after its arrival at or beyond its trigger
  price (buy: price >= trigger; sell: price <= trigger), then fills like a market order at the
  first quote at or after the trigger.
* **Reduce-only.** With a ``position`` callback the quantity is clipped to the position at fill
  time, and an order that would open or grow a position expires (reason ``reduce_only``). The
  position the matcher sees is the callback's plus the fills it returned in the same call, so the
  caller must book every returned fill before the next call.

Margin, instrument filters and duplicate checks belong to the venue that uses this matcher: it
checks an order before :meth:`TickMatcher.submit`, and books the returned fills into its
account. Money is float64; fill prices come from the quotes and trades as given, or from
:meth:`SlippageModel.apply` (rounded to the instrument's tick).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from quantum_trader.data.ws_capture import BookTicker, CaptureEvent, Trade
from quantum_trader.domain.errors import InvalidOrderError
from quantum_trader.domain.instruments import Instrument, resolve_instrument
from quantum_trader.domain.orders import Order, OrderStatus, OrderTrigger, OrderType, TimeInForce
from quantum_trader.domain.trading import Fill, Liquidity
from quantum_trader.execution.sim.costs import FeeModel, SlippageModel

__all__ = ["Quote", "TickMatcher"]


@dataclass(frozen=True, slots=True)
class Quote:
    """The best bid and ask of a symbol at ``ts_event``."""

    bid: float
    ask: float
    ts_event: int


class TickMatcher:
    """Hold orders and match them against quotes and trades; see the module docstring.

    Args:
        fees: maker/taker fee rates; the default :class:`FeeModel`.
        slippage: taker slippage applied to market, crossing-limit and stop fills.
        instruments: tick grids for slippage rounding; a symbol missing here is resolved with
            :func:`resolve_instrument` at its first fill.
        latency_ns: time from an order's ``ts_init`` to its arrival at the matching engine.
        fill_at_touch: a resting limit fills on a print at its price (True) or only through it.
        position: signed position of a symbol, for reduce-only clipping (None: not clipped).
    """

    def __init__(
        self,
        *,
        fees: FeeModel | None = None,
        slippage: SlippageModel | None = None,
        instruments: Mapping[str, Instrument] | None = None,
        latency_ns: int = 0,
        fill_at_touch: bool = True,
        position: Callable[[str], float] | None = None,
    ) -> None:
        if latency_ns < 0:
            raise ValueError(f"latency_ns must be >= 0, got {latency_ns}")
        self.fees = fees or FeeModel()
        self.slippage = slippage
        self._instruments = dict(instruments or {})
        self.latency_ns = latency_ns
        self.fill_at_touch = fill_at_touch
        self._position = position
        self._orders: dict[str, Order] = {}
        # Orders that meet the next quote (market, new limits, triggered stops), resting limits,
        # and stops waiting for their trigger, per symbol, oldest first.
        self._awaiting: dict[str, list[Order]] = {}
        self._limits: dict[str, list[Order]] = {}
        self._stops: dict[str, list[Order]] = {}
        self._arrival: dict[str, int] = {}
        self._quotes: dict[str, Quote] = {}
        self._delta: dict[str, float] = {}  # position change from fills of the current call

    # ----------------------------------------------------------------- orders
    def submit(self, order: Order) -> Order:
        """Take an order (new, or already accepted by the venue) and hold it until it fills.

        Raises:
            InvalidOrderError: the client order id is already held, or the order is not open.
        """
        if order.client_order_id in self._orders:
            raise InvalidOrderError(
                f"order {order.client_order_id}: client order id already in use",
                reason="duplicate_client_order_id",
            )
        if order.status is OrderStatus.INITIALIZED:
            order.apply(OrderTrigger.ACCEPT, order.ts_init)
        elif order.status is not OrderStatus.ACCEPTED:
            raise InvalidOrderError(
                f"order {order.client_order_id}: cannot match an order in status "
                f"{order.status.value!r}",
                reason="status",
            )
        self._orders[order.client_order_id] = order
        self._arrival[order.client_order_id] = order.ts_init + self.latency_ns
        book = self._stops if order.type is OrderType.STOP_MARKET else self._awaiting
        book.setdefault(order.symbol, []).append(order)
        return order

    def cancel(self, client_order_id: str, ts_ns: int) -> Order | None:
        """Cancel a held open order; return it, or None if unknown or no longer open."""
        order = self._orders.get(client_order_id)
        if order is None or not order.status.is_open:
            return None
        order.apply(OrderTrigger.CANCEL, ts_ns)
        for book in (self._awaiting, self._limits, self._stops):
            orders = book.get(order.symbol)
            if orders and order in orders:
                orders.remove(order)
        return order

    def cancel_all(self, ts_ns: int, symbol: str | None = None) -> list[Order]:
        """Cancel every open order (of ``symbol`` if given); return those canceled."""
        canceled = [
            o for o in self.open_orders(symbol) if self.cancel(o.client_order_id, ts_ns) is not None
        ]
        return canceled

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders that can still fill: those awaiting a quote, resting limits, then stops."""
        symbols = [symbol] if symbol is not None else sorted(self._awaiting.keys() | self._stops)
        return [
            o
            for s in symbols
            for book in (self._awaiting, self._limits, self._stops)
            for o in book.get(s, ())
            if o.status.is_open
        ]

    def quote(self, symbol: str) -> Quote | None:
        """The last quote seen for ``symbol``, or None."""
        return self._quotes.get(symbol)

    # ----------------------------------------------------------------- market data
    def on_event(self, event: CaptureEvent) -> list[Fill]:
        """Feed one replayed capture event: bookTicker is a quote, a trade a print.

        The event's exchange time is used, or its receive time where the exchange sent none
        (spot bookTicker). Depth events cause no fills here and return ``[]``.
        """
        if isinstance(event, BookTicker):
            ts = event.ts_event if event.ts_event is not None else event.ts_recv
            return self.on_quote(event.symbol, event.bid_price, event.ask_price, ts)
        if isinstance(event, Trade):
            return self.on_trade(event.symbol, event.price, event.quantity, event.ts_event)
        return []

    def on_quote(self, symbol: str, bid: float, ask: float, ts_ns: int) -> list[Fill]:
        """Record the best bid/ask and return the fills it causes."""
        self._quotes[symbol] = Quote(bid, ask, ts_ns)
        awaiting = self._awaiting.get(symbol)
        limits = self._limits.get(symbol)
        if not awaiting and not limits:
            return []
        self._delta.clear()
        fills: list[Fill] = []
        if limits:
            self._limits[symbol] = [
                o for o in limits if not self._through_quote(o, bid, ask, ts_ns, fills)
            ]
        if awaiting:
            self._awaiting[symbol] = [
                o for o in awaiting if not self._meet_quote(o, bid, ask, ts_ns, fills)
            ]
        return fills

    def on_trade(self, symbol: str, price: float, quantity: float, ts_ns: int) -> list[Fill]:
        """Match resting limits and stop triggers against a print; return the fills."""
        limits = self._limits.get(symbol)
        stops = self._stops.get(symbol)
        if not limits and not stops:
            return []
        self._delta.clear()
        fills: list[Fill] = []
        if limits:
            left = quantity
            still: list[Order] = []
            for order in limits:
                if left > 0.0 and self._arrival[order.client_order_id] <= ts_ns:
                    left -= self._print(order, price, left, ts_ns, fills)
                if order.status.is_open:
                    still.append(order)
            self._limits[symbol] = still
        if stops:
            waiting: list[Order] = []
            for order in stops:
                if self._arrival[order.client_order_id] <= ts_ns and self._stop_hit(order, price):
                    order.apply(OrderTrigger.TRIGGER, ts_ns)
                    self._arrival[order.client_order_id] = ts_ns
                    self._awaiting.setdefault(symbol, []).append(order)
                else:
                    waiting.append(order)
            self._stops[symbol] = waiting
        return fills

    # ----------------------------------------------------------------- rules
    def _meet_quote(
        self, order: Order, bid: float, ask: float, ts_ns: int, fills: list[Fill]
    ) -> bool:
        """Handle an order meeting its first quote; True when it leaves the awaiting list."""
        if self._arrival[order.client_order_id] > ts_ns:
            return False
        buy = order.side.sign > 0
        touch = ask if buy else bid
        if order.type is not OrderType.LIMIT:  # market, or a triggered stop
            self._fill(order, self._taker_price(order, touch), Liquidity.TAKER, ts_ns, fills)
            return True
        limit = order.price
        assert limit is not None
        crosses = touch <= limit if buy else touch >= limit
        if crosses and order.time_in_force is TimeInForce.GTX:
            order.reject_reason = "post_only: the order would take liquidity"
            order.apply(OrderTrigger.EXPIRE, ts_ns)
        elif crosses:
            self._fill(order, self._taker_price(order, touch), Liquidity.TAKER, ts_ns, fills)
        elif order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            order.apply(OrderTrigger.EXPIRE, ts_ns)
        else:
            self._limits.setdefault(order.symbol, []).append(order)
        return True

    def _through_quote(
        self, order: Order, bid: float, ask: float, ts_ns: int, fills: list[Fill]
    ) -> bool:
        """Fill a resting limit the quote has moved through; True when it is no longer open."""
        if not order.status.is_open:
            return True
        limit = order.price
        assert limit is not None
        through = ask < limit if order.side.sign > 0 else bid > limit
        if through and self._arrival[order.client_order_id] <= ts_ns:
            self._fill(order, limit, Liquidity.MAKER, ts_ns, fills)
        return not order.status.is_open

    def _print(
        self, order: Order, price: float, available: float, ts_ns: int, fills: list[Fill]
    ) -> float:
        """Fill a resting limit from a print of ``available`` at ``price``; return qty used."""
        limit = order.price
        assert limit is not None
        if order.side.sign > 0:
            hit = price <= limit if self.fill_at_touch else price < limit
        else:
            hit = price >= limit if self.fill_at_touch else price > limit
        if not hit:
            return 0.0
        return self._fill(order, limit, Liquidity.MAKER, ts_ns, fills, cap=available)

    @staticmethod
    def _stop_hit(order: Order, price: float) -> bool:
        trigger = order.trigger_price
        assert trigger is not None
        return price >= trigger if order.side.sign > 0 else price <= trigger

    def _taker_price(self, order: Order, price: float) -> float:
        if self.slippage is None:
            return price
        instrument = self._instruments.get(order.symbol)
        if instrument is None:
            instrument = resolve_instrument(order.symbol, price)
            self._instruments[order.symbol] = instrument
        return self.slippage.apply(instrument, price, buy=order.side.sign > 0)

    def _fill(
        self,
        order: Order,
        price: float,
        liquidity: Liquidity,
        ts_ns: int,
        fills: list[Fill],
        *,
        cap: float | None = None,
    ) -> float:
        """Fill as much of ``order`` as allowed at ``price``; return the quantity filled."""
        qty = order.remaining_qty if cap is None else min(order.remaining_qty, cap)
        clipped = False
        if order.reduce_only and self._position is not None:
            held = self._position(order.symbol) + self._delta.get(order.symbol, 0.0)
            if held == 0.0 or (held > 0) == (order.side.sign > 0):
                order.reject_reason = "reduce_only: the order would open or grow a position"
                order.apply(OrderTrigger.EXPIRE, ts_ns)
                return 0.0
            if abs(held) < qty:
                qty, clipped = abs(held), True
        fee = self.fees.fee(qty, price, liquidity)
        fills.append(
            Fill(order.client_order_id, order.symbol, order.side, qty, price, fee, liquidity, ts_ns)
        )
        self._delta[order.symbol] = self._delta.get(order.symbol, 0.0) + order.side.sign * qty
        order.record_fill(qty, price, ts_ns)
        if clipped and order.status.is_open:
            # A clipped reduce-only order is done once the position is flat.
            order.apply(OrderTrigger.CANCEL, ts_ns)
        return qty
