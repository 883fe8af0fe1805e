"""Websocket replay: parse throughput, order-book update rate and tick-to-order latency.

    .venv/bin/python bench/ws_replay.py [--file PATH] [--repeat 3]

Reads the raw Binance capture (default: the USDT-M BTCUSDT session in
``$QT_REFERENCE_DATA/hftbacktest_binance_ws_streams``, 93,954 messages) and prints:

1. **parse**: messages/s through ``read_capture`` (gunzip, JSON, typed events, every field
   checked), best of ``--repeat`` passes;
2. **book**: depth diffs/s (and price levels/s) applied to an ``OrderBook`` from the parsed
   events, snapshot included, Binance's sequence checks on, best of ``--repeat`` passes;
3. **tick-to-order**: for every bookTicker and trade message, the time from having the parsed
   event to having an order decision ready: the ``TickMatcher`` takes the event (quote update,
   fills of held orders), a trivial decision function reads the quote and the print, and when
   it decides to trade an ``Order`` is built and submitted to the matcher. Each message is timed
   on its own with ``perf_counter_ns``; figures for all ticks and for the ticks that made an
   order. The same is shown from the raw line (``parse_line`` included).

The decision function follows large prints: after a trade of at least ``--big`` base units it
sends a market order of 0.001 in the aggressor's direction, at most one per 100 ms of exchange
time; the matcher fills it at the next quote. Depth diffs go to the book outside the timing.
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from itertools import count
from pathlib import Path

import numpy as np
import numpy.typing as npt

from quantum_trader.data.order_book import OrderBook
from quantum_trader.data.ws_capture import (
    BookTicker,
    CaptureEvent,
    CaptureStats,
    DepthDiff,
    DepthSnapshot,
    Trade,
    parse_line,
    read_capture,
)
from quantum_trader.domain.orders import Order, OrderSide, OrderStatus, OrderType
from quantum_trader.execution.sim.ticks import TickMatcher

REPO = Path(__file__).resolve().parents[1]


def default_file() -> Path:
    """The USDT-M BTCUSDT capture under the reference data folder."""
    root = Path(os.environ.get("QT_REFERENCE_DATA", "../shared/data"))
    if not root.is_absolute():
        root = (REPO / root).resolve()
    return root / "hftbacktest_binance_ws_streams" / "usdm" / "btcusdt_20240808.gz"


class FollowBigPrints:
    """The trivial decision: follow a print of at least ``big`` with a small market order."""

    def __init__(self, big: float, gap_ns: int = 100_000_000) -> None:
        self.big = big
        self.gap_ns = gap_ns
        self.last_ns = -gap_ns
        self.ids = count()
        self.sent: list[Order] = []

    def decide(self, event: Trade | BookTicker, matcher: TickMatcher) -> Order | None:
        """Return an order to send now, or None."""
        if not isinstance(event, Trade) or event.quantity < self.big:
            return None
        if event.ts_event - self.last_ns < self.gap_ns or matcher.quote(event.symbol) is None:
            return None
        self.last_ns = event.ts_event
        side = OrderSide.SELL if event.buyer_is_maker else OrderSide.BUY
        order = Order(
            f"b{next(self.ids)}", event.symbol, side, OrderType.MARKET, 0.001, event.ts_event
        )
        self.sent.append(order)
        return order


def bench_parse(path: Path, repeat: int) -> tuple[list[CaptureEvent], float]:
    """Parse the file ``repeat`` times; return the events and the best messages/s."""
    best = 0.0
    events: list[CaptureEvent] = []
    for _ in range(repeat):
        stats = CaptureStats()
        started = time.perf_counter()
        events = list(read_capture(path, stats=stats))
        elapsed = time.perf_counter() - started
        best = max(best, len(events) / elapsed)
    return events, best


def bench_book(events: list[CaptureEvent], repeat: int) -> tuple[OrderBook, float, float]:
    """Rebuild the book ``repeat`` times; return the last book, best diffs/s and levels/s."""
    depth = [e for e in events if isinstance(e, (DepthDiff, DepthSnapshot))]
    levels = sum(len(e.bids) + len(e.asks) for e in depth if isinstance(e, DepthDiff))
    diffs = sum(isinstance(e, DepthDiff) for e in depth)
    best = 0.0
    book = OrderBook("")
    for _ in range(repeat):
        book = OrderBook(depth[0].symbol, strict=True)
        started = time.perf_counter()
        for event in depth:
            if isinstance(event, DepthDiff):
                book.apply_diff(event)
            else:
                book.apply_snapshot(event)
        best = max(best, diffs / (time.perf_counter() - started))
    return book, best, best * levels / diffs


def bench_tick_to_order(
    events: list[CaptureEvent], big: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[Order]]:
    """Time every tick from parsed event to order decision; return all and order-making times."""
    matcher = TickMatcher()
    strategy = FollowBigPrints(big)
    book = OrderBook(events[0].symbol)
    clock = time.perf_counter_ns
    all_ns: list[int] = []
    order_ns: list[int] = []
    for event in events:
        if isinstance(event, DepthDiff):
            book.apply_diff(event)
            continue
        if isinstance(event, DepthSnapshot):
            book.apply_snapshot(event)
            continue
        started = clock()
        matcher.on_event(event)
        order = strategy.decide(event, matcher)
        if order is not None:
            matcher.submit(order)
        elapsed = clock() - started
        all_ns.append(elapsed)
        if order is not None:
            order_ns.append(elapsed)
    return np.asarray(all_ns), np.asarray(order_ns), strategy.sent


def bench_line_to_order(path: Path, big: float) -> npt.NDArray[np.int64]:
    """Time every bookTicker/trade line from raw bytes (parse included) to order decision."""
    with gzip.open(path, "rb") as handle:
        lines = [line.rstrip(b"\n") for line in handle]
    symbol = path.name.split("_")[0].upper()
    matcher = TickMatcher()
    strategy = FollowBigPrints(big)
    clock = time.perf_counter_ns
    out: list[int] = []
    for line in lines:
        started = clock()
        event = parse_line(line, symbol=symbol)
        if not isinstance(event, (Trade, BookTicker)):
            continue
        matcher.on_event(event)
        order = strategy.decide(event, matcher)
        if order is not None:
            matcher.submit(order)
        out.append(clock() - started)
    return np.asarray(out)


def _percentiles(name: str, ns: npt.NDArray[np.int64]) -> str:
    p50, p99, p999 = np.percentile(ns, [50, 99, 99.9]) / 1_000
    return (
        f"  {name:<34} n={ns.size:>6,}  p50 {p50:6.1f} µs  p99 {p99:6.1f} µs  p99.9 {p999:7.1f} µs"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big", type=float, default=1.0, help="print size that makes an order")
    args = parser.parse_args()
    path: Path = args.file or default_file()
    if not path.is_file():
        print(f"capture not found: {path} (set QT_REFERENCE_DATA)")
        return 2
    events, parse_rate = bench_parse(path, args.repeat)
    book, diff_rate, level_rate = bench_book(events, args.repeat)
    all_ns, order_ns, sent = bench_tick_to_order(events, args.big)
    line_ns = bench_line_to_order(path, args.big)
    filled = sum(1 for o in sent if o.status is OrderStatus.FILLED)
    print(f"{path}")
    print(f"  parse (gunzip + JSON + typed, checked): {parse_rate:,.0f} messages/s")
    print(
        f"  book updates: {diff_rate:,.0f} diffs/s ({level_rate:,.0f} levels/s); "
        f"in sync {book.in_sync}, gaps {book.gaps}, {len(book):,} levels at the end"
    )
    print(f"tick-to-order (trivial decision; {len(order_ns)} orders, {filled} filled):")
    print(_percentiles("parsed tick -> decision, all ticks", all_ns))
    print(_percentiles("parsed tick -> order submitted", order_ns))
    print(_percentiles("raw line -> decision (parse incl.)", line_ns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
