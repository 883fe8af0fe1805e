"""Paper trading on live candles: ccxt reads the (fake) exchange as bars close; fills simulated.

``FakeBinanceUsdm`` serves candles on a ManualClock; the feed's waits move that clock instead of
sleeping, so an hour of live trading runs in a second and every step is exact.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantum_trader.bus.local import LocalBus
from quantum_trader.domain.clock import ManualClock
from quantum_trader.engine.live_feed import LiveCandleFeed
from quantum_trader.engine.stores import open_state_stores
from quantum_trader.engine.worker import TradingWorker, WorkerSettings
from quantum_trader.execution.live.config import BinanceUsdmSettings
from quantum_trader.execution.live.venue import BinanceUsdmVenue
from quantum_trader.execution.paper import PaperVenue, VenueSettings
from quantum_trader.strategies.sma_cross import SmaCross
from quantum_trader.testing.fake_binance import FakeBinanceUsdm

MIN = 60_000_000_000
T0 = 1_800_000_000_000_000_000 + 25 * 1_000_000_000  # 25 s into a minute


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def source(clock: ManualClock) -> Iterator[BinanceUsdmVenue]:
    with FakeBinanceUsdm(clock=clock) as fake:
        venue = BinanceUsdmVenue(
            None,
            BinanceUsdmSettings(api_url=fake.base_url, rate_limit_ms=0, load_brackets=False),
            clock=clock,
        )
        yield venue
        venue.close()


def test_only_closed_candles_are_served_and_new_ones_arrive_as_time_passes(
    source: BinanceUsdmVenue, clock: ManualClock
) -> None:
    feed = LiveCandleFeed(
        source,
        ["BTCUSDT"],
        "1m",
        clock,
        history_bars=120,
        wait=lambda secs: clock.advance(round(secs * 1e9)),
    )
    assert len(feed) >= 119
    assert int(feed.times[-1]) + MIN <= clock.now_ns()  # the bar in progress is not there
    assert feed.start_index == len(feed)
    assert feed.wait_for(len(feed), threading.Event())
    assert int(feed.times[-1]) + MIN <= clock.now_ns()
    assert len(feed) == feed.start_index + 1


def test_a_worker_trades_the_live_feed_bar_by_bar_and_never_the_warm_up(
    source: BinanceUsdmVenue, clock: ManualClock, tmp_path: Path
) -> None:
    feed = LiveCandleFeed(
        source,
        ["BTCUSDT", "ETHUSDT"],
        "1m",
        clock,
        history_bars=60,
        wait=lambda secs: clock.advance(round(secs * 1e9)),
    )
    venue = PaperVenue(
        tmp_path / "venue.db", feed.instruments(), VenueSettings(), clock, durable=False
    )
    seen: list[tuple[int, int]] = []
    worker = TradingWorker(
        WorkerSettings("w0"),
        feed,
        SmaCross(fast=3, slow=8),
        venue,
        open_state_stores(None),
        LocalBus(),
        clock,
    )

    def on_step(i: int) -> None:
        seen.append((int(feed.times[i]), clock.now_ns()))
        if len(seen) == 90:
            worker.stop.set()

    worker.on_step = on_step
    start = feed.start_index
    end = worker.run(wait=lambda _s: None)
    assert end == start + 90
    assert [t for t, _now in seen] == [int(feed.times[start + k]) for k in range(90)]
    assert all(t + MIN <= now for t, now in seen)  # each bar was closed when it was traded
    assert worker.orders_sent > 0
    assert all(o.ts_init >= int(feed.times[start]) for o in venue.exchange.orders.values())
    assert len(venue.exchange.fills) >= worker.orders_sent - 2  # the last ones may still wait
