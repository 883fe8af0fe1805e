"""Parsers of Binance payloads, the error mapping and the backoff of the live venue.

Property: whatever JSON the exchange (or something pretending to be it) answers, a parser
returns a value or raises ExchangePayloadError naming the field — never another exception.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

import ccxt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain.errors import (
    ConfigError,
    ExchangePayloadError,
    InsufficientMarginError,
    InvalidOrderError,
    RateLimitedError,
    RejectedError,
    TransientError,
)
from quantum_trader.domain.orders import OrderStatus
from quantum_trader.execution.live import parsing
from quantum_trader.execution.live.errors import (
    DuplicateClientOrderId,
    OrderNotFound,
    retry_after_secs,
    translate,
)
from quantum_trader.execution.live.retry import Backoff

ORDER: dict[str, Any] = {
    "orderId": 1001, "symbol": "BTCUSDT", "status": "PARTIALLY_FILLED",
    "clientOrderId": "w1-BTCUSDT-1", "price": "60000.0", "avgPrice": "60000.0",
    "origQty": "0.010", "executedQty": "0.004", "cumQuote": "240", "timeInForce": "GTC",
    "type": "LIMIT", "reduceOnly": False, "side": "BUY", "positionSide": "BOTH",
    "stopPrice": "0", "time": 1718000000000, "updateTime": 1718000000500,
}  # fmt: skip
ACCOUNT: dict[str, Any] = {
    "totalInitialMargin": "30", "totalMaintMargin": "2.4", "totalWalletBalance": "9999.76",
    "totalUnrealizedProfit": "10", "totalMarginBalance": "10009.76",
    "availableBalance": "9979.76",
    "assets": [{"asset": "USDT", "walletBalance": "9999.76", "unrealizedProfit": "10",
                "marginBalance": "10009.76", "availableBalance": "9979.76"}],
}  # fmt: skip
POSITIONS: list[dict[str, Any]] = [
    {"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "-0.010",
     "entryPrice": "60000", "markPrice": "61000", "unRealizedProfit": "-10",
     "liquidationPrice": "0", "isolatedWallet": "0", "updateTime": 1718000000000},
]  # fmt: skip
EXCHANGE_INFO: dict[str, Any] = {
    "symbols": [
        {"symbol": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING",
         "baseAsset": "BTC", "quoteAsset": "USDT", "maintMarginPercent": "2.5000",
         "filters": [
             {"filterType": "PRICE_FILTER", "tickSize": "0.10"},
             {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001"},
             {"filterType": "MIN_NOTIONAL", "notional": "100"}]},
        {"symbol": "BTCUSDT_250926", "contractType": "CURRENT_QUARTER", "status": "TRADING",
         "quoteAsset": "USDT"},
    ]
}  # fmt: skip
KLINES: list[list[Any]] = [[1718000000000, "100", "110", "90", "105", "12.5", 1718000059999]]
PREMIUM: dict[str, Any] = {
    "symbol": "BTCUSDT", "markPrice": "60000", "indexPrice": "59990",
    "lastFundingRate": "-0.0001", "nextFundingTime": 1718006400000, "time": 1718000000000,
}  # fmt: skip

PARSERS: dict[str, tuple[Callable[[Any], object], Any]] = {
    "order": (parsing.parse_order, ORDER),
    "account": (lambda p: parsing.parse_account(p, 0), ACCOUNT),
    "positions": (parsing.parse_positions, POSITIONS),
    "instruments": (parsing.parse_instruments, EXCHANGE_INFO),
    "klines": (parsing.parse_klines, KLINES),
    "premium": (parsing.parse_funding_rate, PREMIUM),
    "funding": (
        parsing.parse_funding_history,
        [{"symbol": "BTCUSDT", "fundingRate": "0.0001", "fundingTime": 1718000000000}],
    ),
    "time": (parsing.parse_server_time, {"serverTime": 1718000000000}),
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["NaN", "inf", "-1", "1e999", "0x10", "", " 5 ", "-0", "1E+2"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def test_parsers_when_given_valid_payloads_read_every_figure() -> None:
    order = parsing.parse_order(ORDER)
    assert (order.status, order.quantity, order.filled_qty) == (
        OrderStatus.PARTIALLY_FILLED,
        0.01,
        0.004,
    )
    assert (order.price, order.ts_init) == (60000.0, 1718000000000 * 10**6)
    snapshot, balances = parsing.parse_account(ACCOUNT, 5)
    assert (snapshot.equity, snapshot.available_balance) == (10009.76, 9979.76)
    assert balances["USDT"].unrealized_pnl == 10.0
    (pos,) = parsing.parse_positions(POSITIONS)
    assert (pos.quantity, pos.unrealized_pnl) == (-0.01, -10.0)
    (inst,) = parsing.parse_instruments(EXCHANGE_INFO).values()
    assert (inst.tick_size, inst.lot_size, inst.min_notional) == (0.1, 0.001, 100.0)
    assert inst.maintenance_margin_rate == pytest.approx(0.025)
    assert parsing.parse_klines(KLINES)[0].close == 105.0
    assert parsing.parse_funding_rate(PREMIUM).rate == -0.0001


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(PARSERS)), payload=json_values)
def test_parsers_when_given_any_json_return_or_raise_payload_error(name: str, payload: Any) -> None:
    parse, _valid = PARSERS[name]
    error = _error_of(parse, payload)
    assert error is None or str(error)


def _error_of(parse: Callable[[Any], object], payload: Any) -> ExchangePayloadError | None:
    # Anything but ExchangePayloadError propagates and fails the test.
    try:
        parse(payload)
    except ExchangePayloadError as exc:
        return exc
    return None


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(sorted(PARSERS)),
    data=st.data(),
    hostile=json_values,
    delete=st.booleans(),
)
def test_parsers_when_one_field_is_hostile_name_it_in_the_error(
    name: str, data: st.DataObject, hostile: Any, delete: bool
) -> None:
    parse, valid = PARSERS[name]
    paths = _paths(valid)
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    payload = copy.deepcopy(valid)
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = hostile
    error = _error_of(parse, payload)
    if error is not None:
        key = str(path[-1])
        # The field named is the one changed, or (for cross-field rules) the record holding it.
        named = key in error.field or key in str(error) or error.field in _records(path, name)
        assert named, (path, error.field, str(error))


def _records(path: tuple[Any, ...], name: str) -> set[str]:
    # Order's own rules (a limit order needs a price) and cross-field checks name the record.
    records = {"", "order", "order.executedQty", "order.origQty", "order.price"}
    if name == "klines" and path:
        records.add(f"klines[{path[0]}]")
    if name == "instruments" and len(path) > 2:
        # A renamed filterType leaves that filter missing: the error names the filter.
        records |= {f"symbols[{path[1]}].filters.{f}" for f in _FILTERS}
    return records


_FILTERS = ("PRICE_FILTER", "LOT_SIZE", "MIN_NOTIONAL")


# --------------------------------------------------------------------- error mapping
def _ccxt_error(cls: type[Exception], status: int, body: str, headers: dict[str, str]) -> Exception:
    exc = cls("binanceusdm " + body)
    exc.qt_http_status = status  # type: ignore[attr-defined]
    exc.qt_headers = headers  # type: ignore[attr-defined]
    exc.qt_body = body  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("cls", "status", "code", "expected"),
    [
        (ccxt.DDoSProtection, 429, -1003, RateLimitedError),
        (ccxt.ExchangeError, 400, -2019, InsufficientMarginError),
        (ccxt.BadRequest, 400, -1111, InvalidOrderError),
        (ccxt.ExchangeError, 400, -4164, InvalidOrderError),
        (ccxt.ExchangeError, 400, -4116, DuplicateClientOrderId),
        (ccxt.OrderNotFound, 400, -2013, OrderNotFound),
        (ccxt.AuthenticationError, 401, -2015, ConfigError),
        (ccxt.ExchangeError, 400, -1022, ConfigError),
        (ccxt.ExchangeNotAvailable, 503, -1001, TransientError),
        (ccxt.ExchangeError, 400, -9999, RejectedError),
    ],
)
def test_translate_when_binance_code_given_maps_by_code(
    cls: type[Exception], status: int, code: int, expected: type[Exception]
) -> None:
    body = json.dumps({"code": code, "msg": "m"})
    error = translate(_ccxt_error(cls, status, body, {"Retry-After": "7"}), "x", now_ms=0)
    assert type(error) is expected
    if expected is RateLimitedError:
        assert isinstance(error, RateLimitedError)
        assert error.retry_after_secs == 7.0


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ccxt.RequestTimeout("t"), TransientError),
        (ccxt.NetworkError("n"), TransientError),
        (ccxt.ExchangeNotAvailable("n"), TransientError),
        (ccxt.RateLimitExceeded("r"), RateLimitedError),
        (ccxt.InsufficientFunds("f"), InsufficientMarginError),
        (ccxt.InvalidOrder("i"), InvalidOrderError),
        (ccxt.AuthenticationError("a"), ConfigError),
        (ccxt.BadResponse("b"), ExchangePayloadError),
        (ccxt.ExchangeError("e"), RejectedError),
    ],
)
def test_translate_when_no_binance_code_maps_by_ccxt_class(
    exc: Exception, expected: type[Exception]
) -> None:
    assert type(translate(exc, "x", now_ms=0)) is expected


def test_retry_after_when_banned_reads_the_end_of_the_ban() -> None:
    assert retry_after_secs({}, "IP banned until 1718000060000.", 1718000000000) == 60.0
    assert retry_after_secs({"retry-after": "5"}, "", 0) == 5.0
    assert retry_after_secs({"Retry-After": "soon"}, "", 0) is None


@given(seed=st.integers(0, 2**32), attempt=st.integers(0, 100))
def test_backoff_when_any_attempt_stays_within_half_and_whole_of_the_capped_step(
    seed: int, attempt: int
) -> None:
    backoff = Backoff(0.5, 30.0)
    ceiling = min(30.0, 0.5 * 2.0 ** min(attempt, 30))
    wait = backoff.delay(attempt, random.Random(seed))
    assert ceiling / 2 <= wait <= ceiling
    assert wait == backoff.delay(attempt, random.Random(seed))
