"""Tick-level matching rules, each with a hand-computed price, quantity and fee."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.data.ws_capture import BookTicker, DepthDiff, Trade
from quantum_trader.domain.errors import InvalidOrderError
from quantum_trader.domain.instruments import Instrument
from quantum_trader.domain.orders import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from quantum_trader.domain.trading import Liquidity
from quantum_trader.execution.sim.costs import FeeModel, SlippageModel
from quantum_trader.execution.sim.ticks import Quote, TickMatcher

# Derandomized: the same examples every run.
PROPERTY = settings(deadline=None, derandomize=True, database=None)

SYM = "TESTUSDT"
INST = Instrument(SYM, "TEST", "USDT", 0.1, 0.001, 0.001, 5.0)
FEES = FeeModel(maker=0.0002, taker=0.0004)
BUY, SELL = OrderSide.BUY, OrderSide.SELL
_ids = itertools.count()


def order(
    side: OrderSide,
    qty: float,
    kind: OrderType = OrderType.MARKET,
    *,
    ts: int = 100,
    **kw: object,
) -> Order:
    """A new order for TESTUSDT created at ``ts``."""
    return Order(f"o{next(_ids)}", SYM, side, kind, qty, ts_init=ts, **kw)  # type: ignore[arg-type]


def limit(side: OrderSide, qty: float, price: float, **kw: object) -> Order:
    """A limit order."""
    return order(side, qty, OrderType.LIMIT, price=price, **kw)


def matcher(**kw: object) -> TickMatcher:
    """A matcher with the test fees."""
    return TickMatcher(fees=FEES, **kw)  # type: ignore[arg-type]


def test_market_buy_when_next_quote_arrives_fills_at_its_ask_as_taker() -> None:
    m = matcher()
    buy = m.submit(order(BUY, 2.0))
    assert buy.status is OrderStatus.ACCEPTED
    assert m.on_trade(SYM, 99.0, 5.0, 110) == []  # a print does not fill a market order
    fills = m.on_quote(SYM, 100.0, 100.5, 120)
    assert [(f.quantity, f.price, f.liquidity, f.ts_event) for f in fills] == [
        (2.0, 100.5, Liquidity.TAKER, 120)
    ]
    assert fills[0].fee == pytest.approx(2.0 * 100.5 * 0.0004)
    assert (buy.status, buy.avg_fill_price) == (OrderStatus.FILLED, 100.5)
    assert m.open_orders() == []
    assert m.on_quote(SYM, 100.0, 100.5, 130) == []


def test_market_sell_when_slippage_given_fills_below_bid_on_the_tick_grid() -> None:
    m = matcher(slippage=SlippageModel(10.0), instruments={SYM: INST})
    m.submit(order(SELL, 1.0))
    (fill,) = m.on_quote(SYM, 100.05, 100.15, 120)
    # 100.05 * (1 - 10 bps) = 99.94995, rounded down to the 0.1 tick
    assert fill.price == pytest.approx(99.9)


def test_market_order_when_quote_is_older_than_arrival_waits_for_a_later_quote() -> None:
    m = matcher(latency_ns=50)
    buy = m.submit(order(BUY, 1.0, ts=100))
    assert m.on_quote(SYM, 100.0, 101.0, 149) == []  # arrives at 150
    assert buy.status is OrderStatus.ACCEPTED
    (fill,) = m.on_quote(SYM, 100.0, 102.0, 150)
    assert fill.price == 102.0


def test_market_order_when_another_symbol_quotes_does_not_fill() -> None:
    m = matcher()
    m.submit(order(BUY, 1.0))
    assert m.on_quote("OTHERUSDT", 1.0, 2.0, 200) == []
    assert m.quote("OTHERUSDT") == Quote(1.0, 2.0, 200)
    assert len(m.open_orders(SYM)) == 1


def test_limit_buy_when_first_quote_crosses_fills_at_the_ask_as_taker() -> None:
    m = matcher()
    m.submit(limit(BUY, 1.0, 101.0))
    (fill,) = m.on_quote(SYM, 100.0, 100.5, 120)
    assert (fill.price, fill.liquidity) == (100.5, Liquidity.TAKER)


def test_limit_post_only_when_first_quote_crosses_expires() -> None:
    m = matcher()
    gtx = m.submit(limit(SELL, 1.0, 99.0, time_in_force=TimeInForce.GTX))
    assert m.on_quote(SYM, 100.0, 100.5, 120) == []
    assert gtx.status is OrderStatus.EXPIRED
    assert gtx.reject_reason.startswith("post_only")


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_limit_ioc_or_fok_when_first_quote_does_not_cross_expires(tif: TimeInForce) -> None:
    m = matcher()
    ioc = m.submit(limit(BUY, 1.0, 99.0, time_in_force=tif))
    assert m.on_quote(SYM, 100.0, 100.5, 120) == []
    assert ioc.status is OrderStatus.EXPIRED
    assert m.on_trade(SYM, 98.0, 10.0, 130) == []


def test_resting_limit_buy_when_prints_at_or_below_fills_as_maker_up_to_printed_qty() -> None:
    m = matcher()
    buy = m.submit(limit(BUY, 1.0, 99.5))
    assert m.on_trade(SYM, 99.0, 5.0, 110) == []  # not resting yet: it has met no quote
    assert m.on_quote(SYM, 99.8, 100.0, 120) == []
    assert m.on_trade(SYM, 99.6, 5.0, 130) == []  # above the limit
    (first,) = m.on_trade(SYM, 99.5, 0.4, 140)
    assert (first.quantity, first.price, first.liquidity) == (0.4, 99.5, Liquidity.MAKER)
    assert first.fee == pytest.approx(0.4 * 99.5 * 0.0002)
    assert buy.status is OrderStatus.PARTIALLY_FILLED
    (second,) = m.on_trade(SYM, 99.4, 3.0, 150)
    assert (second.quantity, second.price) == (pytest.approx(0.6), 99.5)
    assert buy.status is OrderStatus.FILLED
    assert buy.avg_fill_price == pytest.approx(99.5)


def test_resting_limit_sell_when_prints_at_or_above_fills_at_its_price() -> None:
    m = matcher()
    m.submit(limit(SELL, 1.0, 100.5))
    m.on_quote(SYM, 100.0, 100.2, 120)
    assert m.on_trade(SYM, 100.4, 5.0, 130) == []
    (fill,) = m.on_trade(SYM, 100.7, 5.0, 140)
    assert (fill.price, fill.liquidity) == (100.5, Liquidity.MAKER)


def test_resting_limit_when_fill_at_touch_false_needs_a_print_through_its_price() -> None:
    m = matcher(fill_at_touch=False)
    m.submit(limit(BUY, 1.0, 99.5))
    m.on_quote(SYM, 99.8, 100.0, 120)
    assert m.on_trade(SYM, 99.5, 5.0, 130) == []
    (fill,) = m.on_trade(SYM, 99.4, 5.0, 140)
    assert fill.price == 99.5


def test_resting_limits_when_one_print_is_shared_fills_oldest_first() -> None:
    m = matcher()
    older = m.submit(limit(BUY, 1.0, 99.5))
    newer = m.submit(limit(BUY, 1.0, 99.5))
    m.on_quote(SYM, 99.8, 100.0, 120)
    fills = m.on_trade(SYM, 99.5, 1.5, 130)
    assert [(f.client_order_id, f.quantity) for f in fills] == [
        (older.client_order_id, 1.0),
        (newer.client_order_id, 0.5),
    ]


def test_resting_limit_when_quote_moves_through_it_fills_the_rest_as_maker() -> None:
    m = matcher()
    buy = m.submit(limit(BUY, 2.0, 99.5))
    m.on_quote(SYM, 99.8, 100.0, 120)
    m.on_trade(SYM, 99.5, 0.5, 130)
    assert m.on_quote(SYM, 99.0, 99.5, 140) == []  # ask at the limit: touching is not through
    (fill,) = m.on_quote(SYM, 99.0, 99.4, 150)
    assert (fill.quantity, fill.price, fill.liquidity) == (1.5, 99.5, Liquidity.MAKER)
    assert buy.status is OrderStatus.FILLED


def test_stop_buy_when_a_print_reaches_trigger_fills_at_the_next_quotes_ask() -> None:
    m = matcher()
    stop = m.submit(order(BUY, 1.0, OrderType.STOP_MARKET, trigger_price=101.0))
    assert m.on_quote(SYM, 100.0, 100.5, 110) == []
    assert m.on_trade(SYM, 100.9, 1.0, 120) == []
    assert stop.status is OrderStatus.ACCEPTED
    assert m.on_trade(SYM, 101.0, 1.0, 130) == []
    assert stop.status is OrderStatus.TRIGGERED
    assert m.on_quote(SYM, 100.9, 101.0, 129) == []  # a quote from before the trigger
    (fill,) = m.on_quote(SYM, 101.1, 101.3, 131)
    assert (fill.price, fill.liquidity) == (101.3, Liquidity.TAKER)
    assert stop.status is OrderStatus.FILLED


def test_stop_sell_when_a_print_falls_to_trigger_triggers() -> None:
    m = matcher()
    stop = m.submit(order(SELL, 1.0, OrderType.STOP_MARKET, trigger_price=99.0))
    m.on_trade(SYM, 99.1, 1.0, 120)
    assert stop.status is OrderStatus.ACCEPTED
    m.on_trade(SYM, 98.5, 1.0, 130)
    (fill,) = m.on_quote(SYM, 98.4, 98.6, 140)
    assert fill.price == 98.4


def test_stop_when_print_is_before_arrival_does_not_trigger() -> None:
    m = matcher(latency_ns=20)
    stop = m.submit(order(BUY, 1.0, OrderType.STOP_MARKET, trigger_price=101.0, ts=100))
    m.on_trade(SYM, 102.0, 1.0, 119)
    assert stop.status is OrderStatus.ACCEPTED
    m.on_trade(SYM, 102.0, 1.0, 120)
    assert stop.status is OrderStatus.TRIGGERED


def test_reduce_only_when_position_is_smaller_clips_then_expires_the_next() -> None:
    position = {SYM: 1.5}
    m = matcher(position=position.__getitem__)
    first = m.submit(order(SELL, 1.0, reduce_only=True))
    second = m.submit(order(SELL, 1.0, reduce_only=True))
    third = m.submit(order(SELL, 1.0, reduce_only=True))
    fills = m.on_quote(SYM, 100.0, 100.5, 120)
    # The position seen by the second order already counts the first fill in this call.
    assert [(f.client_order_id, f.quantity) for f in fills] == [
        (first.client_order_id, 1.0),
        (second.client_order_id, 0.5),
    ]
    assert second.status is OrderStatus.CANCELED  # clipped: done once flat
    assert third.status is OrderStatus.EXPIRED
    assert third.reject_reason.startswith("reduce_only")


def test_reduce_only_when_no_position_callback_is_not_clipped() -> None:
    m = matcher()
    m.submit(order(SELL, 1.0, reduce_only=True))
    (fill,) = m.on_quote(SYM, 100.0, 100.5, 120)
    assert fill.quantity == 1.0


def test_cancel_when_order_is_open_removes_it_and_unknown_ids_return_none() -> None:
    m = matcher()
    resting = m.submit(limit(BUY, 1.0, 90.0))
    stop = m.submit(order(SELL, 1.0, OrderType.STOP_MARKET, trigger_price=80.0))
    m.on_quote(SYM, 99.0, 100.0, 110)
    assert {o.client_order_id for o in m.open_orders(SYM)} == {
        resting.client_order_id,
        stop.client_order_id,
    }
    assert m.cancel(resting.client_order_id, 120) is resting
    assert resting.status is OrderStatus.CANCELED
    assert m.cancel(resting.client_order_id, 121) is None
    assert m.cancel("nope", 121) is None
    assert m.on_trade(SYM, 85.0, 5.0, 130) == []
    assert m.cancel_all(140) == [stop]
    assert m.open_orders() == []
    assert m.on_trade(SYM, 70.0, 5.0, 150) == []


def test_submit_when_id_is_taken_or_order_is_closed_raises() -> None:
    m = matcher()
    first = m.submit(order(BUY, 1.0))
    with pytest.raises(InvalidOrderError, match="already in use"):
        m.submit(first)
    m.on_quote(SYM, 1.0, 2.0, 200)
    done = order(BUY, 1.0)
    done.status = OrderStatus.FILLED
    with pytest.raises(InvalidOrderError, match="cannot match"):
        m.submit(done)
    with pytest.raises(ValueError, match="latency_ns"):
        TickMatcher(latency_ns=-1)


def test_on_event_when_fed_capture_events_dispatches_quotes_and_prints() -> None:
    m = matcher()
    m.submit(limit(BUY, 1.0, 99.5))
    spot_ticker = BookTicker(SYM, 1, 99.8, 1.0, 100.0, 1.0, None, 120)
    assert m.on_event(spot_ticker) == []
    assert m.quote(SYM) == Quote(99.8, 100.0, 120)  # receive time where no exchange time
    assert m.on_event(DepthDiff(SYM, 1, 2, None, ((99.5, 0.0),), (), 125, 125)) == []
    (fill,) = m.on_event(Trade(SYM, 7, 99.5, 2.0, True, 130, 131))
    assert (fill.price, fill.ts_event) == (99.5, 130)


# ------------------------------------------------------------------ property
ticks = st.integers(min_value=900, max_value=1100).map(lambda i: i / 10)
events = st.lists(
    st.tuples(st.booleans(), ticks, st.integers(min_value=1, max_value=5)),
    min_size=1,
    max_size=60,
)
orders = st.lists(
    st.tuples(
        st.sampled_from([BUY, SELL]),
        st.sampled_from([OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_MARKET]),
        ticks,
        st.integers(min_value=0, max_value=60),
    ),
    max_size=10,
)


@PROPERTY
@given(events=events, placed=orders)
def test_matcher_when_driven_randomly_never_fills_beyond_price_or_quantity(
    events: list[tuple[bool, float, int]],
    placed: list[tuple[OrderSide, OrderType, float, int]],
) -> None:
    m = matcher()
    held: list[Order] = []
    quotes: dict[int, tuple[float, float]] = {}
    fills = []
    for ts, (is_quote, price, size) in enumerate(events):
        for side, kind, level, at in placed:
            if at == ts:
                o = order(side, 1.0, kind, ts=ts, price=level, trigger_price=level)
                held.append(m.submit(o))
        if is_quote:
            bid, ask = price, price + 0.1 * size
            quotes[ts] = (bid, ask)
            fills += m.on_quote(SYM, bid, ask, ts)
        else:
            fills += m.on_trade(SYM, price, size / 2, ts)
    by_id = {o.client_order_id: o for o in held}
    for fill in fills:
        o = by_id[fill.client_order_id]
        assert fill.ts_event >= o.ts_init
        if fill.liquidity is Liquidity.TAKER:
            bid, ask = quotes[fill.ts_event]
            assert fill.price == (ask if o.side is BUY else bid)
        else:
            assert o.type is OrderType.LIMIT
            assert fill.price == o.price
        if o.type is OrderType.LIMIT:
            assert o.price is not None
            assert (fill.price <= o.price) if o.side is BUY else (fill.price >= o.price)
    for o in held:
        total = sum(f.quantity for f in fills if f.client_order_id == o.client_order_id)
        assert total == pytest.approx(o.filled_qty)
        assert o.filled_qty <= o.quantity + 1e-12
        assert o.status.is_open == (o in m.open_orders())
