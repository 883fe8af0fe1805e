"""The order state table: every listed transition works, everything else raises."""

from __future__ import annotations

import itertools

import pytest

from quantum_trader.domain.errors import IllegalTransitionError, InvalidOrderError
from quantum_trader.domain.orders import (
    TRANSITIONS,
    Order,
    OrderSide,
    OrderStatus,
    OrderTrigger,
    OrderType,
    TimeInForce,
)


def new_order(**kw: object) -> Order:
    base: dict[str, object] = {
        "client_order_id": "c1",
        "symbol": "BTCUSDT",
        "side": OrderSide.BUY,
        "type": OrderType.MARKET,
        "quantity": 1.0,
        "ts_init": 0,
    }
    base.update(kw)
    return Order(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "trigger"), list(itertools.product(OrderStatus, OrderTrigger)))
def test_apply_when_pair_not_in_table_raises_else_moves(
    status: OrderStatus, trigger: OrderTrigger
) -> None:
    o = new_order()
    o.status = status
    expected = TRANSITIONS.get((status, trigger))
    if expected is None:
        with pytest.raises(IllegalTransitionError) as info:
            o.apply(trigger, 1)
        assert info.value.status == status.value
        assert o.status is status
    else:
        assert o.apply(trigger, 1) is expected


def test_terminal_statuses_have_no_way_out() -> None:
    for status in (
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
    ):
        assert not status.is_open
        assert not any(s is status for s, _ in TRANSITIONS)


def test_record_fill_when_partial_then_rest_averages_price() -> None:
    o = new_order(quantity=3.0)
    o.apply(OrderTrigger.ACCEPT, 1)
    assert o.record_fill(1.0, 100.0, 2) is OrderStatus.PARTIALLY_FILLED
    assert o.record_fill(2.0, 103.0, 3) is OrderStatus.FILLED
    assert o.avg_fill_price == pytest.approx(102.0)


def test_record_fill_when_more_than_remaining_raises() -> None:
    o = new_order(quantity=1.0)
    o.apply(OrderTrigger.ACCEPT, 1)
    with pytest.raises(InvalidOrderError, match="exceeds"):
        o.record_fill(1.5, 100.0, 2)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"quantity": 0.0}, "quantity"),
        ({"quantity": float("nan")}, "quantity"),
        ({"type": OrderType.LIMIT}, "limit order needs a price"),
        ({"type": OrderType.STOP_MARKET}, "trigger price"),
        ({"time_in_force": TimeInForce.GTX}, "post-only"),
    ],
)
def test_order_when_malformed_raises_invalid_order(kw: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidOrderError, match=match):
        new_order(**kw)
