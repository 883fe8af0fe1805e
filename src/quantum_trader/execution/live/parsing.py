"""Parsers of Binance USDT-M REST payloads into the package's types.

The adapter calls ccxt's raw (implicit) endpoints, so ccxt signs, paces and classifies errors
but never interprets a successful answer: every byte of it passes through these functions.
Each one checks types and ranges field by field and raises ExchangePayloadError naming the
field as a path (``symbols[3].filters.LOT_SIZE.stepSize``) for anything missing, of the wrong
type, not finite, or out of range — never a KeyError or TypeError from deep inside.

Numbers: Binance sends decimals as strings; they are read with ``Decimal`` first, so a hostile
``"NaN"``, ``"1e999"`` or ``"0x10"`` is refused with a field name, and grid values (tick, lot,
minimum notional) keep their exact decimal meaning before they become the floats that
``Instrument`` uses (money in the live adapter is float64 on the instrument's grid, as in the
rest of the package; order quantities and prices are sent as exact decimal strings).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from quantum_trader.domain.errors import ExchangePayloadError, InvalidOrderError
from quantum_trader.domain.instruments import ContractType, Instrument
from quantum_trader.domain.orders import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from quantum_trader.domain.trading import AccountSnapshot, MarginMode

NS_PER_MS: Final = 1_000_000

ORDER_STATUS: Final[dict[str, OrderStatus]] = {
    "NEW": OrderStatus.ACCEPTED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
    "REJECTED": OrderStatus.REJECTED,
}
ORDER_TYPE: Final[dict[str, OrderType]] = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "STOP_MARKET": OrderType.STOP_MARKET,
}

# GTD (good till a date) is read as GTC: the order rests, which is what the state table needs.
TIME_IN_FORCE: Final[dict[str, TimeInForce]] = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
    "GTX": TimeInForce.GTX,
    "GTD": TimeInForce.GTC,
}


@dataclass(frozen=True, slots=True)
class AssetBalance:
    """One margin asset of the futures account."""

    asset: str
    wallet_balance: float
    unrealized_pnl: float
    margin_balance: float
    available_balance: float


@dataclass(frozen=True, slots=True)
class LivePosition:
    """One open position as the exchange reports it (one-way mode: ``quantity`` is signed)."""

    symbol: str
    quantity: float
    entry_price: float
    mark_price: float
    unrealized_pnl: float
    liquidation_price: float
    margin_mode: MarginMode
    ts_event: int


@dataclass(frozen=True, slots=True)
class Kline:
    """One candle; ``ts_event`` is its open time."""

    ts_event: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class FundingRate:
    """The current funding rate and mark price of a perpetual (``premiumIndex``)."""

    symbol: str
    rate: float
    mark_price: float
    index_price: float
    next_funding_ts: int
    ts_event: int


@dataclass(frozen=True, slots=True)
class FundingRecord:
    """One past funding settlement (``fundingRate``)."""

    symbol: str
    rate: float
    ts_event: int


class _Fields:
    """Typed reads from one JSON object, naming ``where`` in every error."""

    __slots__ = ("data", "where")

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ExchangePayloadError(
                f"{where or 'answer'}: expected an object, got {_kind(data)}", field=where
            )
        self.data = data
        self.where = where

    def path(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def raw(self, name: str) -> Any:
        if name not in self.data:
            raise ExchangePayloadError(f"{self.path(name)}: missing", field=self.path(name))
        return self.data[name]

    def text(self, name: str) -> str:
        value = self.raw(name)
        if not isinstance(value, str) or not value:
            raise ExchangePayloadError(
                f"{self.path(name)}: expected a non-empty string, got {_kind(value)}",
                field=self.path(name),
            )
        return value

    def decimal(self, name: str, *, positive: bool = False, non_negative: bool = False) -> Decimal:
        return _decimal(self.raw(name), self.path(name), positive, non_negative)

    def number(self, name: str, *, positive: bool = False, non_negative: bool = False) -> float:
        return float(self.decimal(name, positive=positive, non_negative=non_negative))

    def integer(self, name: str) -> int:
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ExchangePayloadError(
                f"{self.path(name)}: expected a non-negative integer, got {_kind(value)}",
                field=self.path(name),
            )
        return int(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise ExchangePayloadError(
                f"{self.path(name)}: expected true or false, got {_kind(value)}",
                field=self.path(name),
            )
        return value

    def choice(self, name: str, table: Mapping[str, Any]) -> Any:
        value = self.text(name)
        if value not in table:
            raise ExchangePayloadError(
                f"{self.path(name)}: unknown value {value[:40]!r}", field=self.path(name)
            )
        return table[value]


def _kind(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


def _decimal(value: object, where: str, positive: bool, non_negative: bool) -> Decimal:
    # Binance writes numbers as strings; a bare JSON number is accepted too (some fields are).
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ExchangePayloadError(f"{where}: expected a number, got {_kind(value)}", field=where)
    try:
        number = Decimal(value.strip() if isinstance(value, str) else repr(value))
    except InvalidOperation:
        raise ExchangePayloadError(
            f"{where}: expected a decimal number, got {_kind(value)}", field=where
        ) from None
    if not number.is_finite() or not math.isfinite(float(number)):
        raise ExchangePayloadError(f"{where}: not a finite number: {_kind(value)}", field=where)
    if positive and number <= 0:
        raise ExchangePayloadError(f"{where}: must be > 0, got {number}", field=where)
    if non_negative and number < 0:
        raise ExchangePayloadError(f"{where}: must be >= 0, got {number}", field=where)
    return number


def _list(value: object, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise ExchangePayloadError(
            f"{where or 'answer'}: expected a list, got {_kind(value)}", field=where
        )
    return value


def parse_instruments(
    payload: object, brackets: object | None = None, *, quote: str = "USDT"
) -> dict[str, Instrument]:
    """Read ``exchangeInfo`` (and optionally ``leverageBracket``) into instruments by symbol.

    Only perpetuals in status TRADING quoted in ``quote`` are kept. Tick, lot, minimum quantity
    and minimum notional come from the PRICE_FILTER, LOT_SIZE and MIN_NOTIONAL filters; the
    maintenance-margin rate and maximum leverage from the first leverage bracket when given,
    else from ``maintMarginPercent`` and a leverage of 20.
    """
    info = _Fields(payload, "")
    first_bracket = _first_brackets(brackets) if brackets is not None else {}
    out: dict[str, Instrument] = {}
    for i, raw in enumerate(_list(info.raw("symbols"), "symbols")):
        entry = _Fields(raw, f"symbols[{i}]")
        if entry.data.get("contractType") != "PERPETUAL" or entry.data.get("status") != "TRADING":
            continue
        if entry.data.get("quoteAsset") != quote:
            continue
        symbol = entry.text("symbol")
        filters: dict[str, _Fields] = {}
        for j, item in enumerate(_list(entry.raw("filters"), entry.path("filters"))):
            f = _Fields(item, f"{entry.path('filters')}[{j}]")
            kind = f.text("filterType")
            filters[kind] = _Fields(f.data, f"{entry.path('filters')}.{kind}")
        for needed in ("PRICE_FILTER", "LOT_SIZE", "MIN_NOTIONAL"):
            if needed not in filters:
                raise ExchangePayloadError(
                    f"{entry.path('filters')}: no {needed} filter for {symbol}",
                    field=f"{entry.path('filters')}.{needed}",
                )
        mmr, leverage = first_bracket.get(symbol, (None, 20.0))
        if mmr is None:
            mmr = entry.number("maintMarginPercent", positive=True) / 100.0
        out[symbol] = Instrument(
            symbol=symbol,
            base=entry.text("baseAsset"),
            quote=quote,
            tick_size=filters["PRICE_FILTER"].number("tickSize", positive=True),
            lot_size=filters["LOT_SIZE"].number("stepSize", positive=True),
            min_qty=filters["LOT_SIZE"].number("minQty", positive=True),
            min_notional=filters["MIN_NOTIONAL"].number("notional", non_negative=True),
            contract_type=ContractType.PERPETUAL,
            maintenance_margin_rate=mmr,
            max_leverage=leverage,
        )
    return out


def _first_brackets(payload: object) -> dict[str, tuple[float | None, float]]:
    out: dict[str, tuple[float | None, float]] = {}
    for i, raw in enumerate(_list(payload, "leverageBracket")):
        entry = _Fields(raw, f"leverageBracket[{i}]")
        tiers = _list(entry.raw("brackets"), entry.path("brackets"))
        if not tiers:
            raise ExchangePayloadError(
                f"{entry.path('brackets')}: empty", field=entry.path("brackets")
            )
        first = _Fields(tiers[0], f"{entry.path('brackets')}[0]")
        out[entry.text("symbol")] = (
            first.number("maintMarginRatio", positive=True),
            first.number("initialLeverage", positive=True),
        )
    return out


def parse_account(
    payload: object, ts_event: int
) -> tuple[AccountSnapshot, dict[str, AssetBalance]]:
    """Read ``/fapi/v3/account`` into the account totals and the balance of every asset."""
    acct = _Fields(payload, "")
    wallet = acct.number("totalWalletBalance")
    upnl = acct.number("totalUnrealizedProfit")
    snapshot = AccountSnapshot(
        ts_event=ts_event,
        wallet_balance=wallet,
        unrealized_pnl=upnl,
        equity=acct.number("totalMarginBalance"),
        initial_margin=acct.number("totalInitialMargin", non_negative=True),
        maintenance_margin=acct.number("totalMaintMargin", non_negative=True),
        available_balance=acct.number("availableBalance"),
    )
    balances: dict[str, AssetBalance] = {}
    for i, raw in enumerate(_list(acct.raw("assets"), "assets")):
        entry = _Fields(raw, f"assets[{i}]")
        asset = entry.text("asset")
        balances[asset] = AssetBalance(
            asset=asset,
            wallet_balance=entry.number("walletBalance"),
            unrealized_pnl=entry.number("unrealizedProfit"),
            margin_balance=entry.number("marginBalance"),
            available_balance=entry.number("availableBalance"),
        )
    return snapshot, balances


def parse_positions(payload: object) -> list[LivePosition]:
    """Read ``/fapi/v3/positionRisk`` into the open (non-zero) one-way positions."""
    out = []
    for i, raw in enumerate(_list(payload, "positionRisk")):
        entry = _Fields(raw, f"positionRisk[{i}]")
        qty = entry.number("positionAmt")
        side = entry.data.get("positionSide", "BOTH")
        if side != "BOTH":
            raise ExchangePayloadError(
                f"{entry.path('positionSide')}: {side!r}: hedge mode is not supported, "
                "switch the account to one-way mode",
                field=entry.path("positionSide"),
            )
        if qty == 0.0:
            continue
        isolated = (
            entry.number("isolatedWallet", non_negative=True)
            if "isolatedWallet" in entry.data
            else 0.0
        )
        out.append(
            LivePosition(
                symbol=entry.text("symbol"),
                quantity=qty,
                entry_price=entry.number("entryPrice", non_negative=True),
                mark_price=entry.number("markPrice", non_negative=True),
                unrealized_pnl=entry.number("unRealizedProfit"),
                liquidation_price=entry.number("liquidationPrice", non_negative=True),
                margin_mode=MarginMode.ISOLATED if isolated > 0 else MarginMode.CROSS,
                ts_event=entry.integer("updateTime") * NS_PER_MS,
            )
        )
    return out


def parse_order(payload: object, where: str = "order") -> Order:
    """Read one order answer (new, query, cancel, open orders) into an ``Order`` as it stands.

    The order's status is the exchange's, so it is set directly (this is a snapshot of the
    venue's state table, not a change of ours); ``history`` holds that one observation.
    """
    entry = _Fields(payload, where)
    status = entry.choice("status", ORDER_STATUS)
    kind = entry.choice("type", ORDER_TYPE)
    tif = entry.choice("timeInForce", TIME_IN_FORCE) if "timeInForce" in entry.data else None
    quantity = entry.number("origQty", positive=True)
    filled = entry.number("executedQty", non_negative=True)
    if filled > quantity * (1 + 1e-12):
        raise ExchangePayloadError(
            f"{entry.path('executedQty')}: {filled} exceeds origQty {quantity}",
            field=entry.path("executedQty"),
        )
    price = entry.number("price", non_negative=True)
    trigger = entry.number("stopPrice", non_negative=True) if "stopPrice" in entry.data else 0.0
    ts_init = entry.integer("time") * NS_PER_MS if "time" in entry.data else 0
    ts_update = entry.integer("updateTime") * NS_PER_MS
    try:
        order = Order(
            client_order_id=entry.text("clientOrderId"),
            symbol=entry.text("symbol"),
            side=entry.choice("side", {"BUY": OrderSide.BUY, "SELL": OrderSide.SELL}),
            type=kind,
            quantity=quantity,
            ts_init=ts_init or ts_update,
            price=price if kind is OrderType.LIMIT else None,
            trigger_price=trigger if kind is OrderType.STOP_MARKET else None,
            time_in_force=tif or TimeInForce.GTC,
            reduce_only=entry.flag("reduceOnly", False),
            status=status,
            filled_qty=filled,
            avg_fill_price=entry.number("avgPrice", non_negative=True),
            history=[(ts_update, status)],
        )
    except InvalidOrderError as exc:
        raise ExchangePayloadError(f"{where}: not a valid order: {exc}", field=where) from exc
    return order


def parse_orders(payload: object, where: str = "openOrders") -> list[Order]:
    """Read a list of orders."""
    return [parse_order(raw, f"{where}[{i}]") for i, raw in enumerate(_list(payload, where))]


def parse_klines(payload: object) -> list[Kline]:
    """Read ``/fapi/v1/klines`` rows ``[openTime, open, high, low, close, volume, ...]``."""
    out = []
    for i, raw in enumerate(_list(payload, "klines")):
        row = _list(raw, f"klines[{i}]")
        if len(row) < 6:
            raise ExchangePayloadError(
                f"klines[{i}]: expected at least 6 values, got {len(row)}", field=f"klines[{i}]"
            )
        t = row[0]
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ExchangePayloadError(
                f"klines[{i}][0]: open time must be a non-negative integer, got {_kind(t)}",
                field=f"klines[{i}][0]",
            )
        o, h, low, c = (
            float(_decimal(row[k], f"klines[{i}][{k}]", True, False)) for k in range(1, 5)
        )
        v = float(_decimal(row[5], f"klines[{i}][5]", False, True))
        if not (low <= min(o, c) and max(o, c) <= h):
            raise ExchangePayloadError(
                f"klines[{i}]: open/close outside the bar's range", field=f"klines[{i}]"
            )
        out.append(Kline(t * NS_PER_MS, o, h, low, c, v))
    return out


def parse_funding_rate(payload: object) -> FundingRate:
    """Read one ``/fapi/v1/premiumIndex`` answer."""
    entry = _Fields(payload, "premiumIndex")
    return FundingRate(
        symbol=entry.text("symbol"),
        rate=entry.number("lastFundingRate"),
        mark_price=entry.number("markPrice", positive=True),
        index_price=entry.number("indexPrice", non_negative=True),
        next_funding_ts=entry.integer("nextFundingTime") * NS_PER_MS,
        ts_event=entry.integer("time") * NS_PER_MS,
    )


def parse_funding_history(payload: object) -> list[FundingRecord]:
    """Read ``/fapi/v1/fundingRate`` rows."""
    out = []
    for i, raw in enumerate(_list(payload, "fundingRate")):
        entry = _Fields(raw, f"fundingRate[{i}]")
        out.append(
            FundingRecord(
                symbol=entry.text("symbol"),
                rate=entry.number("fundingRate"),
                ts_event=entry.integer("fundingTime") * NS_PER_MS,
            )
        )
    return out


def parse_server_time(payload: object) -> int:
    """Read ``/fapi/v1/time`` into nanoseconds."""
    return _Fields(payload, "").integer("serverTime") * NS_PER_MS
