"""A USDT-margined futures account: wallet, one-way positions, margin, funding, liquidation.

Money is float64 (see STYLE.md §4): order prices and quantities arrive already on the
instrument's grid, and the accounting below is exact arithmetic on those values, so tests compare
with hand-computed figures to 1e-9 relative.

Rules, each pinned to a hand-computed case in tests/unit/portfolio:

* Wallet balance = cash + realized PnL - fees + funding. Equity = wallet + unrealized PnL.
* A fill that grows a position moves the entry to the quantity-weighted average; one that
  shrinks it realizes ``closed_qty * (price - entry)`` (sign flipped for shorts); one that crosses
  zero closes the position and opens the rest at the fill price.
* Funding at a funding time: ``amount = -quantity * mark_price * rate``; longs pay a positive
  rate, shorts receive it.
* Initial margin of a position = notional / leverage. Cross: an order that adds exposure is
  rejected if, after the fill and its fee, total initial margin would exceed equity. Isolated:
  it is rejected if the margin it locks plus its fee exceeds the free wallet (wallet minus
  margin locked in other isolated positions, plus unrealized PnL of cross positions).
* Maintenance margin = notional * the instrument's maintenance-margin rate.
* Isolated liquidation when isolated margin + unrealized PnL <= maintenance margin, at the price
  where that equality holds. Cross liquidation when equity <= total maintenance margin. Either
  way the trader loses the margin that backed the positions (isolated: that position's margin;
  cross: the whole wallet): the position closes at the liquidation price and the remainder of
  the margin is charged as the liquidation clearance fee, as on Binance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from quantum_trader.domain.errors import ConfigError, InsufficientMarginError
from quantum_trader.domain.instruments import Instrument
from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.trading import (
    AccountSnapshot,
    Fill,
    FundingPayment,
    Liquidity,
    MarginMode,
    Position,
    Trade,
    TradeStatus,
)


class Account:
    """The account of one trader at one venue, driven by fills and funding."""

    def __init__(
        self,
        cash: float,
        instruments: Mapping[str, Instrument],
        *,
        leverage: float = 1.0,
        margin_mode: MarginMode = MarginMode.CROSS,
        strategy: str = "",
    ) -> None:
        if not (math.isfinite(cash) and cash > 0):
            raise ConfigError(f"starting cash must be > 0, got {cash}")
        if not (math.isfinite(leverage) and leverage >= 1):
            raise ConfigError(f"leverage must be >= 1, got {leverage}")
        for inst in instruments.values():
            if leverage > inst.max_leverage:
                raise ConfigError(
                    f"leverage {leverage:g} exceeds {inst.symbol}'s maximum {inst.max_leverage:g}"
                )
        self.instruments = dict(instruments)
        self.starting_cash = cash
        self.wallet = cash
        self.leverage = leverage
        self.margin_mode = margin_mode
        self.strategy = strategy
        self.positions: dict[str, Position] = {
            s: Position(symbol=s, leverage=leverage, margin_mode=margin_mode) for s in instruments
        }
        self.fees_total = 0.0
        self.funding_total = 0.0
        self.realized_total = 0.0
        # Losses beyond the account's equity in a liquidation, absorbed by the venue's insurance
        # fund; keeps ``wallet == cash + realized - fees + funding + insurance_cover`` exact.
        self.insurance_cover = 0.0
        self.open_trades: dict[str, Trade] = {}
        self.closed_trades: list[Trade] = []
        self._trade_seq = 0

    # ----------------------------------------------------------------- valuation
    def unrealized_pnl(self, marks: Mapping[str, float]) -> float:
        """Sum of unrealized PnL of open positions at ``marks``."""
        total = 0.0
        for sym, pos in self.positions.items():
            if pos.quantity:
                total += pos.quantity * (marks[sym] - pos.entry_price)
        return total

    def equity(self, marks: Mapping[str, float]) -> float:
        """Wallet balance plus unrealized PnL at ``marks``."""
        return self.wallet + self.unrealized_pnl(marks)

    def initial_margin(self, marks: Mapping[str, float]) -> float:
        """Initial margin of every open position at ``marks`` (locked margin for isolated)."""
        total = 0.0
        for sym, pos in self.positions.items():
            if pos.quantity:
                if pos.margin_mode is MarginMode.ISOLATED:
                    total += pos.isolated_margin
                else:
                    total += abs(pos.quantity) * marks[sym] / pos.leverage
        return total

    def maintenance_margin(self, marks: Mapping[str, float]) -> float:
        """Maintenance margin of every open position at ``marks``."""
        total = 0.0
        for sym, pos in self.positions.items():
            if pos.quantity:
                total += (
                    abs(pos.quantity) * marks[sym] * self.instruments[sym].maintenance_margin_rate
                )
        return total

    def snapshot(self, marks: Mapping[str, float], ts_ns: int) -> AccountSnapshot:
        """Return the account's figures at ``marks``."""
        upnl = self.unrealized_pnl(marks)
        im = self.initial_margin(marks)
        return AccountSnapshot(
            ts_event=ts_ns,
            wallet_balance=self.wallet,
            unrealized_pnl=upnl,
            equity=self.wallet + upnl,
            initial_margin=im,
            maintenance_margin=self.maintenance_margin(marks),
            available_balance=self.wallet + upnl - im,
        )

    # ----------------------------------------------------------------- margin
    def check_margin(
        self, symbol: str, signed_qty: float, price: float, fee: float, marks: Mapping[str, float]
    ) -> None:
        """Raise InsufficientMarginError if a fill of ``signed_qty`` at ``price`` is unaffordable.

        Fills that only reduce exposure always pass: a trader must always be able to get out.
        """
        pos = self.positions[symbol]
        q0 = pos.quantity
        q1 = q0 + signed_qty
        if abs(q1) <= abs(q0) and (q0 == 0 or q1 * q0 >= 0):
            return
        if pos.margin_mode is MarginMode.ISOLATED:
            added = abs(q1) - (abs(q0) if q1 * q0 > 0 else 0.0)
            required = added * price / pos.leverage + fee
            available = self._free_wallet(marks)
            if q0 and q1 * q0 < 0:
                # A reversal first closes the old position, freeing its margin and realizing PnL.
                available += pos.isolated_margin + q0 * (price - pos.entry_price)
        else:
            required = 0.0
            for sym, p in self.positions.items():
                q = q1 if sym == symbol else p.quantity
                if q:
                    mark = price if sym == symbol else marks[sym]
                    required += abs(q) * mark / p.leverage
            # Equity after the fill: the fill itself moves no value except its fee.
            available = self.equity(marks) - fee
        if required > available + 1e-9:
            raise InsufficientMarginError(
                f"{symbol}: insufficient margin for {signed_qty:+g} @ {price:g}: "
                f"required {required:.2f}, available {available:.2f}",
                required=required,
                available=available,
            )

    def _free_wallet(self, marks: Mapping[str, float]) -> float:
        free = self.wallet
        for sym, p in self.positions.items():
            if p.quantity:
                if p.margin_mode is MarginMode.ISOLATED:
                    free -= p.isolated_margin
                else:
                    free += p.quantity * (marks[sym] - p.entry_price)
                    free -= abs(p.quantity) * marks[sym] / p.leverage
        return free

    # ----------------------------------------------------------------- fills
    def apply_fill(self, fill: Fill) -> float:
        """Book a fill: move the position, realize PnL, charge the fee, update the trade ledger.

        Returns the realized PnL of the fill (gross of its fee).
        """
        pos = self.positions[fill.symbol]
        inst = self.instruments[fill.symbol]
        q0 = pos.quantity
        dq = fill.signed_qty
        price = fill.price
        realized = 0.0
        closed = 0.0
        if q0 == 0.0 or (q0 > 0) == (dq > 0):
            q1 = inst.snap_qty(q0 + dq)
            pos.entry_price = (q0 * pos.entry_price + dq * price) / q1
            if pos.margin_mode is MarginMode.ISOLATED:
                pos.isolated_margin += abs(dq) * price / pos.leverage
        else:
            closed = min(abs(dq), abs(q0))
            realized = closed * (price - pos.entry_price) * (1.0 if q0 > 0 else -1.0)
            q1 = inst.snap_qty(q0 + dq)
            if pos.margin_mode is MarginMode.ISOLATED:
                pos.isolated_margin *= (abs(q0) - closed) / abs(q0)
            if q1 == 0.0:
                pos.entry_price = 0.0
                pos.isolated_margin = 0.0
            elif (q1 > 0) != (q0 > 0):
                pos.entry_price = price
                if pos.margin_mode is MarginMode.ISOLATED:
                    pos.isolated_margin = abs(q1) * price / pos.leverage
        pos.quantity = q1
        pos.realized_pnl += realized
        self.wallet += realized - fill.fee
        self.realized_total += realized
        self.fees_total += fill.fee
        self._book_trade(fill, q0, q1, closed, realized)
        return realized

    def _book_trade(self, fill: Fill, q0: float, q1: float, closed: float, realized: float) -> None:
        trade = self.open_trades.get(fill.symbol)
        opened = abs(fill.quantity) - closed
        fee_close = fill.fee * closed / fill.quantity if closed else 0.0
        if trade is not None and closed:
            trade.realized_pnl += realized
            trade.fees += fee_close
            trade.add_exit(closed, fill.price)
            trade.client_order_ids.append(fill.client_order_id)
            if q1 == 0.0 or (q1 > 0) != (q0 > 0):
                trade.status = TradeStatus.LIQUIDATED if fill.liquidation else TradeStatus.CLOSED
                trade.exit_ts = fill.ts_event
                self.closed_trades.append(trade)
                del self.open_trades[fill.symbol]
                trade = None
        if opened > 1e-15:
            if trade is None:
                self._trade_seq += 1
                trade = Trade(
                    trade_id=f"T{self._trade_seq:06d}",
                    symbol=fill.symbol,
                    side=OrderSide.BUY if q1 > 0 else OrderSide.SELL,
                    quantity=abs(q1),
                    entry_price=self.positions[fill.symbol].entry_price,
                    entry_ts=fill.ts_event,
                    strategy=self.strategy,
                )
                self.open_trades[fill.symbol] = trade
            else:
                trade.quantity = max(trade.quantity, abs(q1))
                trade.entry_price = self.positions[fill.symbol].entry_price
            trade.fees += fill.fee - fee_close
            if not trade.client_order_ids or trade.client_order_ids[-1] != fill.client_order_id:
                trade.client_order_ids.append(fill.client_order_id)

    # ----------------------------------------------------------------- funding
    def apply_funding(
        self, symbol: str, rate: float, mark_price: float, ts_ns: int
    ) -> FundingPayment | None:
        """Settle funding for ``symbol``; return the payment, or None when flat."""
        pos = self.positions[symbol]
        if pos.quantity == 0.0:
            return None
        amount = -pos.quantity * mark_price * rate
        self.wallet += amount
        self.funding_total += amount
        trade = self.open_trades.get(symbol)
        if trade is not None:
            trade.funding += amount
        return FundingPayment(symbol, rate, mark_price, pos.quantity, amount, ts_ns)

    # ----------------------------------------------------------------- liquidation
    def isolated_liquidation_price(self, symbol: str) -> float:
        """Price at which an isolated position's margin + unrealized PnL meets maintenance.

        Returns NaN for a flat or cross position. Long: ``(q*e - M) / (q*(1 - mmr))``;
        short: ``(M + q*e) / (q*(1 + mmr))`` with q = |quantity|.
        """
        pos = self.positions[symbol]
        if pos.quantity == 0.0 or pos.margin_mode is not MarginMode.ISOLATED:
            return math.nan
        mmr = self.instruments[symbol].maintenance_margin_rate
        q = abs(pos.quantity)
        if pos.quantity > 0:
            return max(0.0, (q * pos.entry_price - pos.isolated_margin) / (q * (1.0 - mmr)))
        return (pos.isolated_margin + q * pos.entry_price) / (q * (1.0 + mmr))

    def liquidate_isolated(self, symbol: str, ts_ns: int) -> Fill:
        """Close an isolated position at its liquidation price; the trader loses its margin."""
        pos = self.positions[symbol]
        price = self.isolated_liquidation_price(symbol)
        margin = pos.isolated_margin
        pnl = pos.quantity * (price - pos.entry_price)
        # What is left of the margin after the loss is the clearance fee: total loss == margin.
        fee = max(0.0, margin + pnl)
        fill = Fill(
            client_order_id=f"liquidation-{symbol}-{ts_ns}",
            symbol=symbol,
            side=OrderSide.SELL if pos.quantity > 0 else OrderSide.BUY,
            quantity=abs(pos.quantity),
            price=price,
            fee=fee,
            liquidity=Liquidity.TAKER,
            ts_event=ts_ns,
            liquidation=True,
        )
        self.apply_fill(fill)
        return fill

    def liquidate_cross(self, prices: Mapping[str, float], ts_ns: int) -> list[Fill]:
        """Close every cross position at ``prices``; what equity remains is the clearance fee.

        The wallet ends at zero (a negative equity is absorbed by the venue's insurance fund, as
        on Binance, so the trader never owes more than the account held).
        """
        open_syms = [
            s for s, p in self.positions.items() if p.quantity and p.margin_mode is MarginMode.CROSS
        ]
        remaining = self.wallet + sum(
            self.positions[s].quantity * (prices[s] - self.positions[s].entry_price)
            for s in open_syms
        )
        remaining = max(0.0, remaining)
        notional = sum(abs(self.positions[s].quantity) * prices[s] for s in open_syms)
        fills = []
        for s in open_syms:
            pos = self.positions[s]
            share = abs(pos.quantity) * prices[s] / notional if notional else 0.0
            fill = Fill(
                client_order_id=f"liquidation-{s}-{ts_ns}",
                symbol=s,
                side=OrderSide.SELL if pos.quantity > 0 else OrderSide.BUY,
                quantity=abs(pos.quantity),
                price=prices[s],
                fee=remaining * share,
                liquidity=Liquidity.TAKER,
                ts_event=ts_ns,
                liquidation=True,
            )
            self.apply_fill(fill)
            fills.append(fill)
        if self.wallet < 0.0:
            # Insurance fund: the loss beyond the account's equity is not the trader's.
            self.insurance_cover -= self.wallet
            self.wallet = 0.0
        return fills

    def all_trades(self) -> list[Trade]:
        """Closed trades in closing order, then open trades by symbol."""
        return [*self.closed_trades, *(self.open_trades[s] for s in sorted(self.open_trades))]
