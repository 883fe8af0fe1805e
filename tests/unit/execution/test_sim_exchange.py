"""Matching rules of the simulated exchange, each with a hand-computed price and fee."""

from __future__ import annotations

import pytest

from quantum_trader.domain.instruments import Instrument
from quantum_trader.domain.orders import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from quantum_trader.domain.trading import Liquidity
from quantum_trader.execution.sim.costs import FeeModel, SlippageModel
from quantum_trader.execution.sim.exchange import SimulatedExchange
from quantum_trader.portfolio.account import Account

INST = Instrument(
    "TESTUSDT",
    "TEST",
    "USDT",
    0.1,
    0.001,
    0.001,
    5.0,
    maintenance_margin_rate=0.005,
    max_leverage=100,
)
MARKS = {"TESTUSDT": 100.0}


def make(cash: float = 10_000.0, bps: float = 0.0, leverage: float = 10.0) -> SimulatedExchange:
    acct = Account(cash, {"TESTUSDT": INST}, leverage=leverage)
    return SimulatedExchange(
        acct, fees=FeeModel(maker=0.0002, taker=0.0004), slippage=SlippageModel(bps)
    )


_n = 0


def order(side: OrderSide, qty: float, kind: OrderType = OrderType.MARKET, **kw: object) -> Order:
    global _n
    _n += 1
    return Order(f"o{_n}", "TESTUSDT", side, kind, qty, ts_init=1, **kw)  # type: ignore[arg-type]


def test_market_order_when_slippage_fills_at_next_open_moved_against_taker() -> None:
    ex = make(bps=10)
    buy = ex.submit(order(OrderSide.BUY, 1.0), MARKS)
    assert buy.status is OrderStatus.ACCEPTED
    assert ex.fills == []  # nothing fills before the next open
    ex.on_open("TESTUSDT", 100.0, 2, MARKS)
    # 100 * (1 + 10 bps) = 100.1; fee = 100.1 * 0.0004
    assert ex.fills[0].price == pytest.approx(100.1)
    assert ex.fills[0].fee == pytest.approx(0.04004)
    assert ex.fills[0].liquidity is Liquidity.TAKER
    sell = ex.submit(order(OrderSide.SELL, 1.0), MARKS)
    ex.on_open("TESTUSDT", 100.05, 3, MARKS)
    # 100.05 * (1 - 0.001) = 99.94995, rounded down to the tick: 99.9
    assert ex.fills[1].price == pytest.approx(99.9)
    assert sell.status is OrderStatus.FILLED


def test_limit_buy_when_below_open_rests_then_fills_at_limit_as_maker() -> None:
    ex = make()
    lim = ex.submit(order(OrderSide.BUY, 1.0, OrderType.LIMIT, price=95.0), MARKS)
    ex.on_open("TESTUSDT", 100.0, 2, MARKS)
    ex.on_bar("TESTUSDT", 101.0, 95.1, 2, MARKS)
    assert lim.status is OrderStatus.ACCEPTED
    ex.on_bar("TESTUSDT", 99.0, 94.0, 3, MARKS)
    assert lim.status is OrderStatus.FILLED
    assert ex.fills[0].price == 95.0
    assert ex.fills[0].liquidity is Liquidity.MAKER
    assert ex.fills[0].fee == pytest.approx(95.0 * 0.0002)


def test_limit_buy_when_open_already_below_fills_at_open_as_taker() -> None:
    ex = make()
    ex.submit(order(OrderSide.BUY, 1.0, OrderType.LIMIT, price=105.0), MARKS)
    ex.on_open("TESTUSDT", 100.0, 2, MARKS)
    assert ex.fills[0].price == 100.0
    assert ex.fills[0].liquidity is Liquidity.TAKER


def test_limit_post_only_when_it_would_take_expires() -> None:
    ex = make()
    lim = ex.submit(
        order(OrderSide.SELL, 1.0, OrderType.LIMIT, price=95.0, time_in_force=TimeInForce.GTX),
        MARKS,
    )
    ex.on_open("TESTUSDT", 100.0, 2, MARKS)
    assert lim.status is OrderStatus.EXPIRED
    assert lim.reject_reason.startswith("post_only")
    assert ex.fills == []


def test_limit_ioc_when_not_marketable_at_open_expires() -> None:
    ex = make()
    lim = ex.submit(
        order(OrderSide.BUY, 1.0, OrderType.LIMIT, price=90.0, time_in_force=TimeInForce.IOC), MARKS
    )
    ex.on_open("TESTUSDT", 100.0, 2, MARKS)
    assert lim.status is OrderStatus.EXPIRED


def test_stop_buy_when_high_reaches_trigger_fills_at_trigger_and_on_gap_at_open() -> None:
    ex = make(bps=0)
    stop = ex.submit(order(OrderSide.BUY, 1.0, OrderType.STOP_MARKET, trigger_price=105.0), MARKS)
    ex.on_open("TESTUSDT", 100.0, 2, MARKS)
    ex.on_bar("TESTUSDT", 104.9, 99.0, 2, MARKS)
    assert stop.status is OrderStatus.ACCEPTED
    ex.on_bar("TESTUSDT", 106.0, 101.0, 3, MARKS)
    assert stop.status is OrderStatus.FILLED
    assert ex.fills[0].price == 105.0
    gap = ex.submit(order(OrderSide.SELL, 1.0, OrderType.STOP_MARKET, trigger_price=100.0), MARKS)
    ex.on_open("TESTUSDT", 97.0, 4, MARKS)  # opened through the trigger
    assert gap.status is OrderStatus.FILLED
    assert ex.fills[1].price == 97.0
    assert [s for _, s in gap.history] == [
        OrderStatus.ACCEPTED,
        OrderStatus.TRIGGERED,
        OrderStatus.FILLED,
    ]


def test_reduce_only_when_larger_than_position_is_clipped_and_rest_canceled() -> None:
    ex = make()
    ex.submit(order(OrderSide.BUY, 1.0), MARKS)
    ex.on_open("TESTUSDT", 100.0, 2, MARKS)
    close = ex.submit(order(OrderSide.SELL, 2.5, reduce_only=True), MARKS)
    ex.on_open("TESTUSDT", 101.0, 3, MARKS)
    assert ex.fills[-1].quantity == 1.0
    assert close.filled_qty == 1.0
    assert close.status is OrderStatus.CANCELED
    assert ex.account.positions["TESTUSDT"].is_flat


def test_reduce_only_when_flat_expires_without_fill() -> None:
    ex = make()
    o = ex.submit(order(OrderSide.SELL, 1.0, reduce_only=True), MARKS)
    ex.on_open("TESTUSDT", 100.0, 2, MARKS)
    assert o.status is OrderStatus.EXPIRED
    assert o.reject_reason.startswith("reduce_only")
    assert ex.fills == []


@pytest.mark.parametrize(
    ("qty", "reason"),
    [(0.0015, "lot_size"), (0.04, "min_notional")],  # 0.04 * 100 = 4 < 5
)
def test_submit_when_order_breaks_a_filter_rejects_with_reason(qty: float, reason: str) -> None:
    ex = make()
    o = ex.submit(order(OrderSide.BUY, qty), MARKS)
    assert o.status is OrderStatus.REJECTED
    assert o.reject_reason.startswith(reason)
    assert ex.rejected == [o]


def test_submit_when_margin_insufficient_rejects_and_names_figures() -> None:
    ex = make(cash=100.0, leverage=10.0)
    o = ex.submit(order(OrderSide.BUY, 10.0), MARKS)  # needs 100 + fee 0.4 > 100
    assert o.status is OrderStatus.REJECTED
    assert o.reject_reason.startswith("insufficient_margin")
    assert "required 100.00" in o.reject_reason


def test_submit_when_client_order_id_reused_rejects_the_second() -> None:
    ex = make()
    first = Order("same", "TESTUSDT", OrderSide.BUY, OrderType.MARKET, 1.0, ts_init=1)
    second = Order("same", "TESTUSDT", OrderSide.BUY, OrderType.MARKET, 1.0, ts_init=1)
    ex.submit(first, MARKS)
    ex.submit(second, MARKS)
    assert first.status is OrderStatus.ACCEPTED
    assert second.status is OrderStatus.REJECTED
    assert second.reject_reason == "duplicate_client_order_id"


def test_cancel_all_cancels_waiting_and_resting_orders() -> None:
    ex = make()
    a = ex.submit(order(OrderSide.BUY, 1.0, OrderType.LIMIT, price=90.0), MARKS)
    ex.on_open("TESTUSDT", 100.0, 2, MARKS)
    b = ex.submit(order(OrderSide.BUY, 1.0), MARKS)
    canceled = ex.cancel_all(3)
    assert {o.client_order_id for o in canceled} == {a.client_order_id, b.client_order_id}
    assert ex.open_orders() == []
    assert ex.cancel(a.client_order_id, 4) is None


def test_settle_funding_when_long_records_payment() -> None:
    ex = make()
    ex.submit(order(OrderSide.BUY, 2.0), MARKS)
    ex.on_open("TESTUSDT", 100.0, 2, MARKS)
    pay = ex.settle_funding("TESTUSDT", 0.0001, 101.0, 3)
    assert pay is not None
    assert pay.amount == pytest.approx(-0.0202)
    assert ex.funding_payments == [pay]


def test_trigger_price_bounds_when_orders_rest_report_levels_that_can_act() -> None:
    ex = make()
    ex.submit(order(OrderSide.BUY, 1.0, OrderType.LIMIT, price=95.0), MARKS)
    ex.submit(order(OrderSide.SELL, 1.0, OrderType.STOP_MARKET, trigger_price=97.0), MARKS)
    ex.submit(order(OrderSide.SELL, 1.0, OrderType.LIMIT, price=110.0), MARKS)
    ex.on_open("TESTUSDT", 100.0, 2, MARKS)
    assert ex.trigger_price_bounds("TESTUSDT") == (97.0, 110.0)
