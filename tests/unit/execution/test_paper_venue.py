"""PaperVenue: every change is journaled, and a reopened venue is the same venue, bit for bit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain.clock import ManualClock
from quantum_trader.domain.errors import ConfigError, IntegrityError
from quantum_trader.domain.instruments import Instrument
from quantum_trader.domain.orders import Order, OrderSide, OrderStatus, OrderType
from quantum_trader.domain.trading import MarginMode
from quantum_trader.execution.paper import Bar, PaperVenue, VenueSettings

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
INSTRUMENTS = {"TESTUSDT": INST}
SETTINGS = VenueSettings(cash=1_000.0, leverage=10.0, fee_maker=0.0002, fee_taker=0.0004)
MIN = 60_000_000_000


def venue(path: Path, settings: VenueSettings = SETTINGS) -> PaperVenue:
    return PaperVenue(path / "venue.db", INSTRUMENTS, settings, ManualClock(7), durable=False)


def market(side: OrderSide, qty: float, cid: str, ts: int, **kw: object) -> Order:
    return Order(cid, "TESTUSDT", side, OrderType.MARKET, qty, ts, **kw)  # type: ignore[arg-type]


def bar(o: float, h: float | None = None, lo: float | None = None, c: float | None = None) -> Bar:
    return Bar(o, h if h is not None else o, lo if lo is not None else o, c if c is not None else o)


def state(v: PaperVenue) -> tuple[object, ...]:
    acct = v.account
    return (
        acct.wallet,
        acct.fees_total,
        acct.funding_total,
        acct.realized_total,
        {s: (p.quantity, p.entry_price, p.isolated_margin) for s, p in acct.positions.items()},
        [
            (t.trade_id, t.status, t.quantity, t.entry_price, t.exit_price, t.fees, t.funding)
            for t in acct.all_trades()
        ],
        v.exchange.fills,
        [
            (o.client_order_id, o.status, o.filled_qty, v.exchange.book_of(o))
            for o in v.open_orders()
        ],
        v.last_ts,
        v.marks,
    )


def test_market_order_fills_at_next_open_with_taker_fee(tmp_path: Path) -> None:
    with venue(tmp_path) as v:
        v.advance(MIN, {"TESTUSDT": bar(100.0)})
        v.submit(market(OrderSide.BUY, 2.0, "a", MIN))
        fills = v.advance(2 * MIN, {"TESTUSDT": bar(101.0, 102.0, 100.5, 101.5)})
        assert [(f.client_order_id, f.quantity, f.price) for f in fills] == [("a", 2.0, 101.0)]
        assert fills[0].fee == pytest.approx(2.0 * 101.0 * 0.0004, rel=1e-12)
        # equity at the close: 1000 - fee + 2 * (101.5 - 101)
        assert v.equity() == pytest.approx(1000.0 - 0.0808 + 1.0, rel=1e-12)


def test_reopened_venue_equals_the_one_that_wrote_the_journal(tmp_path: Path) -> None:
    v = venue(tmp_path)
    v.advance(MIN, {"TESTUSDT": bar(100.0)})
    v.submit(market(OrderSide.BUY, 3.0, "open", MIN))
    v.advance(2 * MIN, {"TESTUSDT": bar(100.2, 100.9, 99.8, 100.4)}, {"TESTUSDT": (0.0001, 100.1)})
    v.submit(Order("rest", "TESTUSDT", OrderSide.SELL, OrderType.LIMIT, 1.0, 2 * MIN, price=105.0))
    v.submit(market(OrderSide.SELL, 1.0, "part", 2 * MIN))
    v.advance(3 * MIN, {"TESTUSDT": bar(100.6, 101.0, 100.0, 100.8)})
    before = state(v)
    v.close()  # as good as a kill: every call committed before it returned
    with venue(tmp_path) as again:
        assert state(again) == before
        assert again.order("rest") is not None
        assert again.exchange.book_of(again.order("rest")) == "resting"  # type: ignore[arg-type]
        # and it goes on matching: the resting limit fills at 105 as maker
        fills = again.advance(4 * MIN, {"TESTUSDT": bar(104.0, 105.5, 103.0, 105.0)})
        assert [(f.client_order_id, f.price) for f in fills] == [("rest", 105.0)]


def test_a_market_time_is_processed_once(tmp_path: Path) -> None:
    with venue(tmp_path) as v:
        v.advance(MIN, {"TESTUSDT": bar(100.0)})
        v.submit(market(OrderSide.BUY, 1.0, "a", MIN))
        assert len(v.advance(2 * MIN, {"TESTUSDT": bar(101.0)})) == 1
        assert v.advance(2 * MIN, {"TESTUSDT": bar(50.0)}) == []
        assert v.advance(MIN, {"TESTUSDT": bar(50.0)}) == []
        assert v.marks == {"TESTUSDT": 101.0}


def test_a_client_order_id_is_taken_once(tmp_path: Path) -> None:
    with venue(tmp_path) as v:
        v.advance(MIN, {"TESTUSDT": bar(100.0)})
        first = v.submit(market(OrderSide.BUY, 1.0, "same", MIN))
        second = v.submit(market(OrderSide.BUY, 5.0, "same", MIN))
        assert second is first
        assert v.has_order("same")
        v.advance(2 * MIN, {"TESTUSDT": bar(100.0)})
        assert v.positions() == {"TESTUSDT": 1.0}
    with venue(tmp_path) as again:
        assert again.submit(market(OrderSide.BUY, 5.0, "same", MIN)).quantity == 1.0
        assert len(again.submitted_wall_ns()) == 1


def test_rejections_are_journaled_too(tmp_path: Path) -> None:
    with venue(tmp_path) as v:
        v.advance(MIN, {"TESTUSDT": bar(100.0)})
        rejected = v.submit(market(OrderSide.BUY, 1_000.0, "big", MIN))
        assert rejected.status is OrderStatus.REJECTED
        assert rejected.reject_reason.startswith("insufficient_margin")
    with venue(tmp_path) as again:
        assert again.order("big").status is OrderStatus.REJECTED  # type: ignore[union-attr]
        assert [o.client_order_id for o in again.exchange.rejected] == ["big"]


def test_cancel_all_is_durable(tmp_path: Path) -> None:
    with venue(tmp_path) as v:
        v.advance(MIN, {"TESTUSDT": bar(100.0)})
        v.submit(Order("l", "TESTUSDT", OrderSide.BUY, OrderType.LIMIT, 1.0, MIN, price=90.0))
        assert [o.client_order_id for o in v.cancel_all(MIN)] == ["l"]
    with venue(tmp_path) as again:
        assert again.open_orders() == []
        assert again.order("l").status is OrderStatus.CANCELED  # type: ignore[union-attr]


def test_cross_liquidation_replays_to_the_same_wallet(tmp_path: Path) -> None:
    with venue(tmp_path) as v:
        v.advance(MIN, {"TESTUSDT": bar(100.0)})
        v.submit(market(OrderSide.BUY, 95.0, "lev", MIN))  # ~9.5x on 1000
        v.advance(2 * MIN, {"TESTUSDT": bar(100.0)})
        fills = v.advance(3 * MIN, {"TESTUSDT": bar(99.0, 99.5, 80.0, 85.0)})
        assert [f.liquidation for f in fills] == [True]
        assert v.positions() == {}
        wallet = v.account.wallet
        assert wallet == 0.0
    with venue(tmp_path) as again:
        assert again.account.wallet == wallet
        assert again.account.insurance_cover == v.account.insurance_cover
        assert [t.status.value for t in again.account.closed_trades] == ["liquidated"]


def test_isolated_liquidation_replays(tmp_path: Path) -> None:
    iso = VenueSettings(cash=1_000.0, leverage=10.0, margin_mode=MarginMode.ISOLATED)
    with venue(tmp_path, iso) as v:
        v.advance(MIN, {"TESTUSDT": bar(100.0)})
        v.submit(market(OrderSide.SELL, 10.0, "short", MIN))
        v.advance(2 * MIN, {"TESTUSDT": bar(100.0)})
        v.advance(3 * MIN, {"TESTUSDT": bar(101.0, 120.0, 100.0, 110.0)})
        assert v.positions() == {}
        before = state(v)
    with venue(tmp_path, iso) as again:
        assert state(again) == before


def test_other_settings_are_refused_naming_the_difference(tmp_path: Path) -> None:
    venue(tmp_path).close()
    with pytest.raises(ConfigError, match=r"cash: stored 1000\.0, configured 2000\.0"):
        venue(tmp_path, VenueSettings(cash=2_000.0))


def test_a_file_that_is_not_a_journal_is_an_integrity_error(tmp_path: Path) -> None:
    (tmp_path / "venue.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(IntegrityError, match="venue journal"):
        venue(tmp_path)


def test_a_corrupt_ledger_entry_is_named(tmp_path: Path) -> None:
    with venue(tmp_path) as v:
        v.advance(MIN, {"TESTUSDT": bar(100.0)})
        v.submit(market(OrderSide.BUY, 1.0, "a", MIN))
        v.advance(2 * MIN, {"TESTUSDT": bar(100.0)})
    with sqlite3.connect(tmp_path / "venue.db") as db:
        db.execute("UPDATE ledger SET body = '{\"symbol\": 1}'")
    with pytest.raises(IntegrityError, match="fill entry cannot be replayed"):
        venue(tmp_path)


@settings(max_examples=25, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=90.0, max_value=110.0),
            st.sampled_from([-2.0, -1.0, 0.0, 1.0, 2.0]),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_any_history_reopens_identically(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[float, float, bool]]
) -> None:
    folder = tmp_path_factory.mktemp("venue")
    v = venue(folder)
    for k, (price, qty, funding) in enumerate(steps, start=1):
        p = round(price, 1)
        v.advance(
            k * MIN,
            {"TESTUSDT": bar(p, p + 0.5, p - 0.5, p)},
            {"TESTUSDT": (0.0001, p)} if funding else None,
        )
        if qty:
            side = OrderSide.BUY if qty > 0 else OrderSide.SELL
            v.submit(market(side, abs(qty), f"o{k}", k * MIN))
    before = state(v)
    v.close()
    with venue(folder) as again:
        assert state(again) == before


@pytest.mark.parametrize("mode", [MarginMode.CROSS, MarginMode.ISOLATED])
def test_an_open_liquidated_in_its_own_bar_replays_in_that_order(
    tmp_path: Path, mode: MarginMode
) -> None:
    """The fill at the open, then the liquidation in the same bar's range: the ledger keeps
    that order, so the reopened venue is flat with the same wallet (not holding the position
    the liquidation closed)."""
    lev = VenueSettings(cash=1_000.0, leverage=20.0, margin_mode=mode)
    with venue(tmp_path, lev) as v:
        v.advance(MIN, {"TESTUSDT": bar(100.0)})
        v.submit(market(OrderSide.BUY, 190.0, "big", MIN))
        v.advance(
            2 * MIN, {"TESTUSDT": bar(100.0, 100.5, 80.0, 85.0)}, {"TESTUSDT": (0.0001, 100.0)}
        )
        assert v.positions() == {}
        before = state(v)
    with venue(tmp_path, lev) as again:
        assert state(again) == before


def test_a_journal_opens_once(tmp_path: Path) -> None:
    with venue(tmp_path):
        with pytest.raises(ConfigError, match="open elsewhere"):
            venue(tmp_path)
    venue(tmp_path).close()  # free again once the first is closed
