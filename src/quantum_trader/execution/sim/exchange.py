"""The simulated USDT-M perpetuals exchange, driven bar by bar (or tick by tick) by a runner.

Matching rules on bar data (no look-ahead: an order submitted at a bar's close first meets the
next bar's open):

* Market: fills in full at the next open, plus slippage, as taker.
* Limit: if the next open already crosses the limit it fills at the open as taker (post-only GTX
  expires instead); IOC/FOK that do not fill there expire. Otherwise it rests and fills at the
  limit price as maker in the first bar whose low (buy) / high (sell) touches it.
* Stop-market: triggers at the open if the open is already through the trigger (fills at the
  open), else in the first bar whose high (buy) / low (sell) reaches it (fills at the trigger);
  plus slippage, as taker.
* Reduce-only: quantity is clipped to the position at fill time; if it would open or grow a
  position it expires with reason ``reduce_only``.
* Margin is checked at submission against the reference price (the last known price), and again
  when a resting order fills; a failure rejects (or, for a resting order, expires) the order with
  reason ``insufficient_margin``. Instrument filters reject with their own reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from quantum_trader.domain.errors import InsufficientMarginError, InvalidOrderError
from quantum_trader.domain.orders import Order, OrderTrigger, OrderType, TimeInForce
from quantum_trader.domain.trading import Fill, FundingPayment, Liquidity
from quantum_trader.execution.sim.costs import FeeModel, SlippageModel
from quantum_trader.portfolio.account import Account


class SimulatedExchange:
    """Accepts orders, matches them against bar prices, and books fills into an Account."""

    def __init__(
        self,
        account: Account,
        *,
        fees: FeeModel | None = None,
        slippage: SlippageModel | None = None,
    ) -> None:
        self.account = account
        self.instruments = account.instruments
        self.fees = fees or FeeModel()
        self.slippage = slippage or SlippageModel()
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.rejected: list[Order] = []
        self.funding_payments: list[FundingPayment] = []
        self._awaiting_open: dict[str, list[Order]] = {s: [] for s in self.instruments}
        self._resting: dict[str, list[Order]] = {s: [] for s in self.instruments}
        # Symbols with orders waiting for the next open: asked on every bar, kept up to date.
        self._awaiting_symbols: set[str] = set()

    # ----------------------------------------------------------------- orders
    def submit(self, order: Order, marks: Mapping[str, float], *, intrabar: bool = False) -> Order:
        """Accept or reject ``order``; accepted orders wait for the next price they can meet.

        ``marks`` holds the last known price of every symbol with a position, and of the
        order's symbol (the reference price for its margin check). An order submitted
        ``intrabar`` (after the current bar's open was handled) is a limit or stop order that
        rests at once and meets the rest of the current bar.
        """
        if intrabar and order.type is OrderType.MARKET:
            raise InvalidOrderError(
                f"order {order.client_order_id}: a market order cannot be placed intrabar",
                reason="intrabar_market",
            )
        ts = order.ts_init
        if order.client_order_id in self.orders:
            return self._reject(order, ts, "duplicate_client_order_id")
        self.orders[order.client_order_id] = order
        inst = self.instruments.get(order.symbol)
        if inst is None:
            return self._reject(order, ts, "unknown_symbol")
        ref = order.price if order.type is OrderType.LIMIT else order.trigger_price
        ref = ref if ref is not None else marks[order.symbol]
        try:
            inst.check_order(order.quantity, ref, reduce_only=order.reduce_only)
            if not order.reduce_only:
                fee = self.fees.fee(order.quantity, ref, Liquidity.TAKER)
                self.account.check_margin(
                    order.symbol, order.side.sign * order.quantity, ref, fee, marks
                )
        except (InvalidOrderError, InsufficientMarginError) as exc:
            return self._reject(order, ts, exc.reason, str(exc))
        order.apply(OrderTrigger.ACCEPT, ts)
        self._book(order, intrabar=intrabar)
        return order

    def _book(self, order: Order, *, intrabar: bool) -> None:
        """Hold an accepted order until the prices it can meet arrive (the matching model)."""
        if intrabar:
            self._resting[order.symbol].append(order)
        else:
            self._awaiting_open[order.symbol].append(order)
            self._awaiting_symbols.add(order.symbol)

    def cancel(self, client_order_id: str, ts_ns: int) -> Order | None:
        """Cancel an open order; return it, or None if it is unknown or no longer open."""
        order = self.orders.get(client_order_id)
        if order is None or not order.status.is_open:
            return None
        order.apply(OrderTrigger.CANCEL, ts_ns)
        self._drop(order)
        return order

    def cancel_all(self, ts_ns: int, symbol: str | None = None) -> list[Order]:
        """Cancel every open order (of ``symbol`` if given); return those canceled."""
        symbols = [symbol] if symbol is not None else list(self.instruments)
        canceled: list[Order] = []
        for s in symbols:
            for order in [*self._awaiting_open[s], *self._resting[s]]:
                order.apply(OrderTrigger.CANCEL, ts_ns)
                canceled.append(order)
            self._awaiting_open[s].clear()
            self._resting[s].clear()
            self._awaiting_symbols.discard(s)
        return canceled

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders that can still fill, oldest first."""
        symbols = [symbol] if symbol is not None else list(self.instruments)
        return [o for s in symbols for o in (*self._awaiting_open[s], *self._resting[s])]

    def has_awaiting(self, symbol: str | None = None) -> bool:
        """True when orders wait for the next open (of ``symbol``, or of any symbol)."""
        if symbol is not None:
            return symbol in self._awaiting_symbols
        return bool(self._awaiting_symbols)

    def has_resting(self, symbol: str) -> bool:
        """True when limit or stop orders rest for ``symbol``."""
        return bool(self._resting[symbol])

    def resting(self, symbol: str) -> list[Order]:
        """Resting limit and stop orders for ``symbol``."""
        return list(self._resting[symbol])

    def book_of(self, order: Order) -> str:
        """Where an open order waits: ``"awaiting"`` (the next open), ``"resting"``, or ``""``."""
        if order in self._awaiting_open[order.symbol]:
            return "awaiting"
        if order in self._resting[order.symbol]:
            return "resting"
        return ""

    def restore(self, order: Order, book: str) -> None:
        """Put back an order that was open when its state was saved (a paper venue restarting).

        ``book`` is what ``book_of`` said then: ``"awaiting"`` or ``"resting"``; an order that is
        not open is only remembered (its id stays taken).
        """
        self.orders[order.client_order_id] = order
        if not order.status.is_open:
            return
        if book == "awaiting":
            self._awaiting_open[order.symbol].append(order)
            self._awaiting_symbols.add(order.symbol)
        elif book == "resting":
            self._resting[order.symbol].append(order)
        else:
            raise InvalidOrderError(
                f"order {order.client_order_id}: cannot restore an open order to book {book!r}",
                reason="restore",
            )

    # ----------------------------------------------------------------- matching
    def on_open(self, symbol: str, price: float, ts_ns: int, marks: Mapping[str, float]) -> None:
        """Meet the orders waiting for this bar's open at ``price``."""
        waiting = self._awaiting_open[symbol]
        if not waiting:
            return
        self._awaiting_open[symbol] = []
        self._awaiting_symbols.discard(symbol)
        for order in waiting:
            if order.type is OrderType.MARKET:
                self._fill_taker(order, price, ts_ns, marks)
            elif order.type is OrderType.LIMIT:
                crosses = price <= order.price if order.side.sign > 0 else price >= order.price  # type: ignore[operator]
                if crosses and order.time_in_force is TimeInForce.GTX:
                    order.reject_reason = "post_only: the order would take liquidity"
                    order.apply(OrderTrigger.EXPIRE, ts_ns)
                elif crosses:
                    self._fill(order, price, Liquidity.TAKER, ts_ns, marks)
                elif order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
                    order.apply(OrderTrigger.EXPIRE, ts_ns)
                else:
                    self._resting[symbol].append(order)
            else:
                trig = order.trigger_price
                assert trig is not None
                through = price >= trig if order.side.sign > 0 else price <= trig
                if through:
                    order.apply(OrderTrigger.TRIGGER, ts_ns)
                    self._fill_taker(order, price, ts_ns, marks)
                else:
                    self._resting[symbol].append(order)

    def on_bar(
        self, symbol: str, high: float, low: float, ts_ns: int, marks: Mapping[str, float]
    ) -> None:
        """Match resting orders against a bar's range (after its open was handled)."""
        resting = self._resting[symbol]
        if not resting:
            return
        still: list[Order] = []
        for order in resting:
            if not order.status.is_open:
                continue
            buy = order.side.sign > 0
            if order.type is OrderType.LIMIT:
                limit = order.price
                assert limit is not None
                if (low <= limit) if buy else (high >= limit):
                    self._fill(order, limit, Liquidity.MAKER, ts_ns, marks)
                else:
                    still.append(order)
            else:
                trig = order.trigger_price
                assert trig is not None
                if (high >= trig) if buy else (low <= trig):
                    order.apply(OrderTrigger.TRIGGER, ts_ns)
                    self._fill_taker(order, trig, ts_ns, marks)
                else:
                    still.append(order)
        self._resting[symbol] = still

    def trigger_price_bounds(self, symbol: str) -> tuple[float, float]:
        """Highest buy-side and lowest sell-side price at which a resting order would act.

        A bar whose low stays above the first and whose high stays below the second cannot
        touch any resting order, so a runner may skip it.
        """
        buy_level = -float("inf")
        sell_level = float("inf")
        for o in self._resting[symbol]:
            level = o.price if o.type is OrderType.LIMIT else o.trigger_price
            assert level is not None
            # A buy limit acts when price falls to it; a buy stop when price rises to it.
            falls_to = (o.type is OrderType.LIMIT) == (o.side.sign > 0)
            if falls_to:
                buy_level = max(buy_level, level)
            else:
                sell_level = min(sell_level, level)
        return buy_level, sell_level

    # ----------------------------------------------------------------- funding, liquidation
    def settle_funding(
        self, symbol: str, rate: float, mark_price: float, ts_ns: int
    ) -> FundingPayment | None:
        """Settle one funding event for ``symbol``."""
        payment = self.account.apply_funding(symbol, rate, mark_price, ts_ns)
        if payment is not None:
            self.funding_payments.append(payment)
        return payment

    def liquidate_isolated(self, symbol: str, ts_ns: int) -> Fill:
        """Cancel ``symbol``'s orders, then liquidate its isolated position."""
        self.cancel_all(ts_ns, symbol)
        fill = self.account.liquidate_isolated(symbol, ts_ns)
        self.fills.append(fill)
        return fill

    def liquidate_cross(self, prices: Mapping[str, float], ts_ns: int) -> list[Fill]:
        """Cancel every order, then liquidate every cross position at ``prices``."""
        self.cancel_all(ts_ns)
        fills = self.account.liquidate_cross(prices, ts_ns)
        self.fills.extend(fills)
        return fills

    # ----------------------------------------------------------------- internals
    def _fill_taker(
        self, order: Order, price: float, ts_ns: int, marks: Mapping[str, float]
    ) -> None:
        inst = self.instruments[order.symbol]
        self._fill(
            order,
            self.slippage.apply(inst, price, buy=order.side.sign > 0),
            Liquidity.TAKER,
            ts_ns,
            marks,
        )

    def _fill(
        self,
        order: Order,
        price: float,
        liquidity: Liquidity,
        ts_ns: int,
        marks: Mapping[str, float],
    ) -> None:
        qty = order.remaining_qty
        if order.reduce_only:
            held = self.account.positions[order.symbol].quantity
            if held == 0.0 or (held > 0) == (order.side.sign > 0):
                order.reject_reason = "reduce_only: the order would open or grow a position"
                order.apply(OrderTrigger.EXPIRE, ts_ns)
                self.rejected.append(order)
                return
            qty = min(qty, abs(held))
        fee = self.fees.fee(qty, price, liquidity)
        if not order.reduce_only and order.type is not OrderType.MARKET:
            try:
                self.account.check_margin(order.symbol, order.side.sign * qty, price, fee, marks)
            except InsufficientMarginError as exc:
                order.reject_reason = f"{exc.reason}: {exc}"
                order.apply(OrderTrigger.EXPIRE, ts_ns)
                self.rejected.append(order)
                return
        fill = Fill(
            order.client_order_id, order.symbol, order.side, qty, price, fee, liquidity, ts_ns
        )
        if qty < order.remaining_qty:
            # A clipped reduce-only order is done once the position is flat.
            order.record_fill(qty, price, ts_ns)
            if order.status.is_open:
                order.apply(OrderTrigger.CANCEL, ts_ns)
        else:
            order.record_fill(qty, price, ts_ns)
        self.account.apply_fill(fill)
        self.fills.append(fill)

    def _reject(self, order: Order, ts_ns: int, reason: str, detail: str = "") -> Order:
        order.reject_reason = f"{reason}: {detail}" if detail else reason
        order.apply(OrderTrigger.REJECT, ts_ns)
        self.rejected.append(order)
        return order

    def _drop(self, order: Order) -> None:
        for book in (self._awaiting_open[order.symbol], self._resting[order.symbol]):
            if order in book:
                book.remove(order)
        if not self._awaiting_open[order.symbol]:
            self._awaiting_symbols.discard(order.symbol)
