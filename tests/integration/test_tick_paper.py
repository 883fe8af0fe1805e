"""Paper trading on the raw Binance websocket captures: quotes and prints drive the fills.

Through the real worker and a tick-matching PaperVenue, on the reference USDT-M BTCUSDT and
ETHUSDT session (skipped, saying why, when the reference data is absent).
"""

from __future__ import annotations

import bisect
from pathlib import Path

import pytest

from quantum_trader.bus.local import LocalBus
from quantum_trader.data.ws_capture import BookTicker
from quantum_trader.domain.clock import ManualClock
from quantum_trader.domain.orders import OrderSide
from quantum_trader.engine.stores import open_state_stores
from quantum_trader.engine.tick_replay import TickReplayFeed, capture_files
from quantum_trader.engine.worker import TradingWorker, WorkerSettings
from quantum_trader.execution.paper import PaperVenue, VenueSettings
from quantum_trader.strategies.sma_cross import SmaCross

pytestmark = pytest.mark.reference_data
SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture(scope="module")
def feed(reference_data: Path) -> TickReplayFeed:
    folder = reference_data / "hftbacktest_binance_ws_streams" / "usdm"
    return TickReplayFeed(capture_files(folder, SYMBOLS), "1s")


def worker(feed: TickReplayFeed, folder: Path) -> TradingWorker:
    venue = PaperVenue(
        folder / "venue.db",
        feed.instruments(),
        VenueSettings(matching="ticks"),
        ManualClock(1),
        durable=False,
    )
    return TradingWorker(
        WorkerSettings("w0"),
        feed,
        SmaCross(fast=5, slow=20),
        venue,
        open_state_stores(None),
        LocalBus(),
        ManualClock(1),
    )


def test_the_books_stay_in_sync_and_bars_cover_the_session(feed: TickReplayFeed) -> None:
    assert feed.book_gaps == {"BTCUSDT": 0, "ETHUSDT": 0}
    assert len(feed) > 300  # about six minutes of 1 s bars
    ticks = [t for i in range(len(feed)) for t in feed.ticks_at(i)]
    stamps = [t.ts_event or t.ts_recv for t in ticks]
    assert stamps == sorted(stamps)  # one exchange-time order across both symbols


def test_every_market_order_fills_at_the_touch_of_the_first_quote_after_it(
    feed: TickReplayFeed, tmp_path: Path
) -> None:
    w = worker(feed, tmp_path)
    assert w.run(wait=lambda _s: None) == len(feed)
    fills = w.venue.exchange.fills
    assert len(fills) > 10
    quotes: dict[str, list[BookTicker]] = {s: [] for s in SYMBOLS}
    for i in range(len(feed)):
        for t in feed.ticks_at(i):
            if isinstance(t, BookTicker):
                quotes[t.symbol].append(t)
    for fill in fills:
        order = w.venue.order(fill.client_order_id)
        assert order is not None
        book = quotes[fill.symbol]
        k = bisect.bisect_left([q.ts_event or q.ts_recv for q in book], order.ts_init)
        touch = book[k]
        expected = touch.ask_price if fill.side is OrderSide.BUY else touch.bid_price
        assert fill.price == expected, fill
        assert fill.ts_event == (touch.ts_event or touch.ts_recv)


def test_a_tick_venue_restarts_into_the_same_run(feed: TickReplayFeed, tmp_path: Path) -> None:
    whole = worker(feed, tmp_path / "whole")
    whole.run(wait=lambda _s: None)
    cut = worker(feed, tmp_path / "cut")
    cut.recover()
    i = 0
    while i < len(feed) // 2 or not cut.venue.open_orders():
        cut.step(i)  # stop right after an order was sent, before its first quote
        i += 1
    cut.venue.close()
    again = worker(feed, tmp_path / "cut")
    assert len(again.venue.open_orders()) == 1  # it came back with the venue
    assert again.run(wait=lambda _s: None) == len(feed)
    key = [(f.client_order_id, f.price, f.quantity) for f in again.venue.exchange.fills]
    assert key == [(f.client_order_id, f.price, f.quantity) for f in whole.venue.exchange.fills]
