"""The exchange behind ``FakeBinanceUsdm``: symbols, mark prices, one wallet, positions, orders.

Each handler takes the request's parameters and returns the JSON answer, or raises
BinanceFailure with Binance's HTTP status, code and message. Amounts are ``Decimal`` and are
written the way Binance writes them (strings, no trailing zeros). The server calls the
handlers under its lock, one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from quantum_trader.domain.clock import Clock

_NS_PER_MS: Final = 1_000_000
_INTERVAL_MS: Final = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
_FUNDING_MS: Final = 8 * 3_600_000
_TAKER_FEE: Final = Decimal("0.0004")


class BinanceFailure(Exception):
    """An error answer: HTTP status and Binance's ``{"code", "msg"}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


@dataclass(frozen=True, slots=True)
class FakeSymbol:
    """One perpetual the fake lists: its filters, mark price and leverage bracket."""

    symbol: str
    base: str
    tick_size: str
    step_size: str
    min_qty: str
    min_notional: str
    mark: str
    maint_margin_ratio: str = "0.004"
    max_leverage: int = 125
    funding_rate: str = "0.00010000"

    def exchange_info(self) -> dict[str, Any]:
        """This symbol as ``exchangeInfo`` lists it."""
        return {
            "symbol": self.symbol,
            "pair": self.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "baseAsset": self.base,
            "quoteAsset": "USDT",
            "marginAsset": "USDT",
            "pricePrecision": _places(self.tick_size),
            "quantityPrecision": _places(self.step_size),
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": self.tick_size,
                    "maxPrice": "4529764",
                    "tickSize": self.tick_size,
                },
                {
                    "filterType": "LOT_SIZE",
                    "stepSize": self.step_size,
                    "minQty": self.min_qty,
                    "maxQty": "1000",
                },
                {"filterType": "MIN_NOTIONAL", "notional": self.min_notional},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        }


DEFAULT_SYMBOLS: Final = (
    FakeSymbol("BTCUSDT", "BTC", "0.10", "0.001", "0.001", "100", "60000.00"),
    FakeSymbol("ETHUSDT", "ETH", "0.01", "0.001", "0.001", "20", "3000.00"),
)


class FakeUsdmBook:
    """The fake's state and its answers to the fapi endpoints (module docstring)."""

    def __init__(
        self, symbols: tuple[FakeSymbol, ...], wallet: str, leverage: int, clock: Clock
    ) -> None:
        """Start with ``wallet`` USDT, no position, no order, every symbol at ``leverage``."""
        self.clock = clock
        self.symbols = {s.symbol: s for s in symbols}
        self.marks = {s.symbol: Decimal(s.mark) for s in symbols}
        self.wallet = Decimal(wallet)
        self.leverage = dict.fromkeys(self.symbols, leverage)
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}  # qty (signed), entry
        self.orders: dict[int, dict[str, Any]] = {}
        self.by_client_id: dict[str, int] = {}
        self._next_order_id = 1000

    def set_mark(self, symbol: str, price: str) -> None:
        """Move the mark price; resting limit orders it crosses fill at their limit price."""
        mark = Decimal(price)
        self.marks[symbol] = mark
        for order in self.orders.values():
            if order["symbol"] != symbol or order["status"] != "NEW":
                continue
            limit = Decimal(order["price"])
            if (order["side"] == "BUY" and mark <= limit) or (
                order["side"] == "SELL" and mark >= limit
            ):
                self._fill(order, limit)

    def orders_with_client_id(self, client_order_id: str) -> list[dict[str, Any]]:
        """Every order held with this client order id (at most one, if all is well)."""
        return [o for o in self.orders.values() if o["clientOrderId"] == client_order_id]

    # ----------------------------------------------------------------- market data
    def _time(self, params: dict[str, str]) -> Any:
        return {"serverTime": self.clock.now_ns() // _NS_PER_MS}

    def _exchange_info(self, params: dict[str, str]) -> Any:
        return {
            "timezone": "UTC",
            "serverTime": self.clock.now_ns() // _NS_PER_MS,
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                },
            ],
            "assets": [{"asset": "USDT", "marginAvailable": True}],
            "symbols": [s.exchange_info() for s in self.symbols.values()],
        }

    def _klines(self, params: dict[str, str]) -> Any:
        spec = self._symbol(params)
        step = _INTERVAL_MS.get(params.get("interval", ""))
        if step is None:
            raise BinanceFailure(400, -1120, "Invalid interval.")
        limit = min(int(params.get("limit", "500")), 1500)
        now_ms = self.clock.now_ns() // _NS_PER_MS
        start = int(params.get("startTime", now_ms - limit * step))
        first = -(-start // step) * step
        rows = []
        base = Decimal(spec.mark)
        tick = Decimal(spec.tick_size)

        def px(value: Decimal) -> str:
            return _s(value.quantize(tick))

        for k in range(limit):
            t = first + k * step
            if t > now_ms:
                break
            # A deterministic wave: the same open time always gives the same bar.
            drift = Decimal(int(1000 * math.sin(t / step / 7.0))) / Decimal(100_000)
            o = base * (1 + drift)
            c = o * Decimal("1.0005")
            rows.append(
                [t, px(o), px(c * Decimal("1.001")), px(o * Decimal("0.999")), px(c), "12.5",
                 t + step - 1, "750000", 100, "6.0", "360000", "0"]
            )  # fmt: skip
        return rows

    def _premium_index(self, params: dict[str, str]) -> Any:
        now_ms = self.clock.now_ns() // _NS_PER_MS

        def one(spec: FakeSymbol) -> dict[str, Any]:
            mark = self.marks[spec.symbol]
            return {
                "symbol": spec.symbol,
                "markPrice": _s(mark),
                "indexPrice": _s(mark),
                "estimatedSettlePrice": _s(mark),
                "lastFundingRate": spec.funding_rate,
                "interestRate": "0.00010000",
                "nextFundingTime": (now_ms // _FUNDING_MS + 1) * _FUNDING_MS,
                "time": now_ms,
            }

        if "symbol" in params:
            return one(self._symbol(params))
        return [one(s) for s in self.symbols.values()]

    def _funding_rate(self, params: dict[str, str]) -> Any:
        spec = self._symbol(params)
        limit = min(int(params.get("limit", "100")), 1000)
        now_ms = self.clock.now_ns() // _NS_PER_MS
        start = int(params.get("startTime", now_ms - limit * _FUNDING_MS))
        first = -(-start // _FUNDING_MS) * _FUNDING_MS
        return [
            {
                "symbol": spec.symbol,
                "fundingTime": t,
                "fundingRate": spec.funding_rate,
                "markPrice": _s(self.marks[spec.symbol]),
            }
            for t in range(first, now_ms + 1, _FUNDING_MS)
        ][:limit]

    # ----------------------------------------------------------------- account
    def _account(self, params: dict[str, str]) -> Any:
        upnl = sum((self._upnl(s) for s in self.positions), Decimal(0))
        initial = self._position_margin() + self._order_margin()
        maint = sum(
            (
                abs(q) * self.marks[s] * Decimal(self.symbols[s].maint_margin_ratio)
                for s, (q, _e) in self.positions.items()
            ),
            Decimal(0),
        )
        available = self.wallet + upnl - initial
        return {
            "totalInitialMargin": _s(initial),
            "totalMaintMargin": _s(maint),
            "totalWalletBalance": _s(self.wallet),
            "totalUnrealizedProfit": _s(upnl),
            "totalMarginBalance": _s(self.wallet + upnl),
            "totalPositionInitialMargin": _s(self._position_margin()),
            "totalOpenOrderInitialMargin": _s(self._order_margin()),
            "totalCrossWalletBalance": _s(self.wallet),
            "totalCrossUnPnl": _s(upnl),
            "availableBalance": _s(available),
            "maxWithdrawAmount": _s(available),
            "assets": [
                {
                    "asset": "USDT",
                    "walletBalance": _s(self.wallet),
                    "unrealizedProfit": _s(upnl),
                    "marginBalance": _s(self.wallet + upnl),
                    "maintMargin": _s(maint),
                    "initialMargin": _s(initial),
                    "positionInitialMargin": _s(self._position_margin()),
                    "openOrderInitialMargin": _s(self._order_margin()),
                    "crossWalletBalance": _s(self.wallet),
                    "crossUnPnl": _s(upnl),
                    "availableBalance": _s(available),
                    "maxWithdrawAmount": _s(available),
                    "updateTime": self.clock.now_ns() // _NS_PER_MS,
                }
            ],
            "positions": [],
        }

    def _position_risk(self, params: dict[str, str]) -> Any:
        rows = []
        for symbol, (qty, entry) in sorted(self.positions.items()):
            if qty == 0 or ("symbol" in params and params["symbol"] != symbol):
                continue
            mark = self.marks[symbol]
            notional = qty * mark
            rows.append(
                {
                    "symbol": symbol,
                    "positionSide": "BOTH",
                    "positionAmt": _s(qty),
                    "entryPrice": _s(entry),
                    "breakEvenPrice": _s(entry),
                    "markPrice": _s(mark),
                    "unRealizedProfit": _s(self._upnl(symbol)),
                    "liquidationPrice": "0",
                    "isolatedMargin": "0",
                    "notional": _s(notional),
                    "marginAsset": "USDT",
                    "isolatedWallet": "0",
                    "initialMargin": _s(abs(notional) / self.leverage[symbol]),
                    "maintMargin": _s(
                        abs(notional) * Decimal(self.symbols[symbol].maint_margin_ratio)
                    ),
                    "positionInitialMargin": _s(abs(notional) / self.leverage[symbol]),
                    "openOrderInitialMargin": "0",
                    "adl": 1,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "updateTime": self.clock.now_ns() // _NS_PER_MS,
                }
            )
        return rows

    def _leverage_bracket(self, params: dict[str, str]) -> Any:
        return [
            {
                "symbol": s.symbol,
                "brackets": [
                    {
                        "bracket": 1,
                        "initialLeverage": s.max_leverage,
                        "notionalCap": 50000,
                        "notionalFloor": 0,
                        "maintMarginRatio": float(s.maint_margin_ratio),
                        "cum": 0.0,
                    }
                ],
            }
            for s in self.symbols.values()
            if params.get("symbol", s.symbol) == s.symbol
        ]

    def _set_leverage(self, params: dict[str, str]) -> Any:
        spec = self._symbol(params)
        leverage = int(params.get("leverage", "0"))
        if not 1 <= leverage <= spec.max_leverage:
            raise BinanceFailure(400, -4028, f"Leverage {leverage} is not valid")
        self.leverage[spec.symbol] = leverage
        return {"symbol": spec.symbol, "leverage": leverage, "maxNotionalValue": "50000"}

    # ----------------------------------------------------------------- orders
    def _new_order(self, params: dict[str, str]) -> Any:
        spec = self._symbol(params)
        cid = params.get("newClientOrderId") or f"fake-{self._next_order_id}"
        if cid in self.by_client_id:
            raise BinanceFailure(400, -4116, "ClientOrderId is duplicated.")
        side, kind = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL") or kind not in ("MARKET", "LIMIT"):
            raise BinanceFailure(400, -1116, "Invalid orderType.")
        qty = self._decimal(params, "quantity", _places(spec.step_size))
        if qty % Decimal(spec.step_size) or qty < Decimal(spec.min_qty):
            raise BinanceFailure(400, -1013, "Filter failure: LOT_SIZE")
        price = Decimal(0)
        if kind == "LIMIT":
            price = self._decimal(params, "price", _places(spec.tick_size))
            if price <= 0 or price % Decimal(spec.tick_size):
                raise BinanceFailure(400, -4014, "Price not increased by tick size.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        mark = self.marks[spec.symbol]
        notional = qty * (price or mark)
        held = self.positions.get(spec.symbol, (Decimal(0), Decimal(0)))[0]
        sign = 1 if side == "BUY" else -1
        if reduce_only and (held == 0 or (held > 0) == (sign > 0)):
            raise BinanceFailure(400, -2022, "ReduceOnly Order is rejected.")
        if not reduce_only and notional < Decimal(spec.min_notional):
            raise BinanceFailure(
                400,
                -4164,
                f"Order's notional must be no smaller than {spec.min_notional} "
                "(unless you choose reduce only).",
            )
        tif = params.get("timeInForce", "GTC")
        crosses = kind == "MARKET" or (price >= mark if sign > 0 else price <= mark)
        if tif == "GTX" and crosses:
            raise BinanceFailure(
                400,
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will be "
                "rejected.",
            )
        closes = held != 0 and (held > 0) != (sign > 0) and qty <= abs(held)
        if not reduce_only and not closes:
            self._check_margin(spec.symbol, notional)
        now_ms = self.clock.now_ns() // _NS_PER_MS
        order_id = self._next_order_id
        self._next_order_id += 1
        order: dict[str, Any] = {
            "orderId": order_id,
            "symbol": spec.symbol,
            "status": "NEW",
            "clientOrderId": cid,
            "price": _s(price),
            "avgPrice": "0",
            "origQty": _s(qty),
            "executedQty": "0",
            "cumQty": "0",
            "cumQuote": "0",
            "timeInForce": tif,
            "type": kind,
            "reduceOnly": reduce_only,
            "closePosition": False,
            "side": side,
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": kind,
            "time": now_ms,
            "updateTime": now_ms,
        }
        self.orders[order_id] = order
        self.by_client_id[cid] = order_id
        if crosses:
            self._fill(order, mark)
        elif tif in ("IOC", "FOK"):
            order["status"] = "EXPIRED"
        return dict(order)

    def _check_margin(self, symbol: str, notional: Decimal) -> None:
        needed = notional / self.leverage[symbol]
        upnl = sum((self._upnl(s) for s in self.positions), Decimal(0))
        free = self.wallet + upnl - self._position_margin() - self._order_margin()
        if needed > free:
            raise BinanceFailure(400, -2019, "Margin is insufficient.")

    def _fill(self, order: dict[str, Any], price: Decimal) -> None:
        symbol = order["symbol"]
        sign = 1 if order["side"] == "BUY" else -1
        qty = Decimal(order["origQty"])
        held, entry = self.positions.get(symbol, (Decimal(0), Decimal(0)))
        if order["reduceOnly"]:
            qty = min(qty, abs(held))
        delta = sign * qty
        if held == 0 or (held > 0) == (delta > 0):
            new = held + delta
            entry = (held * entry + delta * price) / new
        else:
            closed = min(abs(delta), abs(held))
            self.wallet += closed * (price - entry) * (1 if held > 0 else -1)
            new = held + delta
            if new != 0 and (new > 0) != (held > 0):
                entry = price
        self.wallet -= qty * price * _TAKER_FEE
        self.positions[symbol] = (new, entry if new != 0 else Decimal(0))
        order.update(
            status="FILLED",
            avgPrice=_s(price),
            executedQty=_s(qty),
            cumQty=_s(qty),
            cumQuote=_s(qty * price),
            updateTime=self.clock.now_ns() // _NS_PER_MS,
        )

    def _find(self, params: dict[str, str]) -> dict[str, Any] | None:
        self._symbol(params)
        if "orderId" in params:
            return self.orders.get(int(params["orderId"]))
        cid = params.get("origClientOrderId")
        if cid is None:
            raise BinanceFailure(
                400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both empty."
            )
        oid = self.by_client_id.get(cid)
        return None if oid is None else self.orders[oid]

    def _query_order(self, params: dict[str, str]) -> Any:
        order = self._find(params)
        if order is None or order["symbol"] != params["symbol"]:
            raise BinanceFailure(400, -2013, "Order does not exist.")
        return dict(order)

    def _cancel_order(self, params: dict[str, str]) -> Any:
        order = self._find(params)
        if order is None or order["status"] != "NEW":
            raise BinanceFailure(400, -2011, "Unknown order sent.")
        order["status"] = "CANCELED"
        order["updateTime"] = self.clock.now_ns() // _NS_PER_MS
        return dict(order)

    def _open_orders(self, params: dict[str, str]) -> Any:
        symbol = params.get("symbol")
        return [
            dict(o)
            for o in self.orders.values()
            if o["status"] == "NEW" and symbol in (None, o["symbol"])
        ]

    def _cancel_all(self, params: dict[str, str]) -> Any:
        spec = self._symbol(params)
        for order in self.orders.values():
            if order["symbol"] == spec.symbol and order["status"] == "NEW":
                order["status"] = "CANCELED"
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # ----------------------------------------------------------------- helpers
    def _symbol(self, params: dict[str, str]) -> FakeSymbol:
        spec = self.symbols.get(params.get("symbol", ""))
        if spec is None:
            raise BinanceFailure(400, -1121, "Invalid symbol.")
        return spec

    @staticmethod
    def _decimal(params: dict[str, str], name: str, places: int) -> Decimal:
        try:
            value = Decimal(params[name])
        except (KeyError, ArithmeticError) as exc:
            raise BinanceFailure(400, -1102, f"Mandatory parameter '{name}' was not sent.") from exc
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            raise BinanceFailure(
                400, -1111, "Precision is over the maximum defined for this asset."
            )
        return value

    def _upnl(self, symbol: str) -> Decimal:
        qty, entry = self.positions.get(symbol, (Decimal(0), Decimal(0)))
        return qty * (self.marks[symbol] - entry)

    def _position_margin(self) -> Decimal:
        return sum(
            (abs(q) * self.marks[s] / self.leverage[s] for s, (q, _e) in self.positions.items()),
            Decimal(0),
        )

    def _order_margin(self) -> Decimal:
        return sum(
            (
                Decimal(o["origQty"]) * Decimal(o["price"]) / self.leverage[o["symbol"]]
                for o in self.orders.values()
                if o["status"] == "NEW" and not o["reduceOnly"]
            ),
            Decimal(0),
        )


def _s(value: Decimal) -> str:
    """A decimal as Binance writes numbers: a plain string, trailing zeros dropped."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def _places(step: str) -> int:
    exponent = Decimal(step).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


Handler = Callable[[FakeUsdmBook, dict[str, str]], Any]
ROUTES: Final[dict[tuple[str, str], tuple[Handler, bool]]] = {
    ("GET", "/fapi/v1/ping"): (lambda fake, params: {}, False),
    ("GET", "/fapi/v1/time"): (FakeUsdmBook._time, False),
    ("GET", "/fapi/v1/exchangeInfo"): (FakeUsdmBook._exchange_info, False),
    ("GET", "/fapi/v1/klines"): (FakeUsdmBook._klines, False),
    ("GET", "/fapi/v1/premiumIndex"): (FakeUsdmBook._premium_index, False),
    ("GET", "/fapi/v1/fundingRate"): (FakeUsdmBook._funding_rate, False),
    ("GET", "/fapi/v3/account"): (FakeUsdmBook._account, True),
    ("GET", "/fapi/v2/account"): (FakeUsdmBook._account, True),
    ("GET", "/fapi/v3/positionRisk"): (FakeUsdmBook._position_risk, True),
    ("GET", "/fapi/v2/positionRisk"): (FakeUsdmBook._position_risk, True),
    ("GET", "/fapi/v1/leverageBracket"): (FakeUsdmBook._leverage_bracket, True),
    ("POST", "/fapi/v1/leverage"): (FakeUsdmBook._set_leverage, True),
    ("POST", "/fapi/v1/order"): (FakeUsdmBook._new_order, True),
    ("GET", "/fapi/v1/order"): (FakeUsdmBook._query_order, True),
    ("DELETE", "/fapi/v1/order"): (FakeUsdmBook._cancel_order, True),
    ("GET", "/fapi/v1/openOrders"): (FakeUsdmBook._open_orders, True),
    ("DELETE", "/fapi/v1/allOpenOrders"): (FakeUsdmBook._cancel_all, True),
}
