"""TickReplayFeed: recorded Binance websocket captures, served as bars with their ticks inside.

Paper mode on the raw captures (``../shared/data/hftbacktest_binance_ws_streams``): strategies
decide on bars (``window``), built from the prints (OHLC of trade prices, volume of their
quantities; a bar without prints repeats the last close), while the venue meets every quote
and print inside the bar (``ticks_at``) with tick matching (``TickExchange``). Events are put in
exchange-time order (``ExchangeTimeOrder``, then merged across symbols).

The L2 book of each symbol is rebuilt from the session's REST snapshot plus the depth diffs as
Binance documents it (``data.order_book``); the mark of a symbol at a bar's close is the book's
mid while the book is in sync (the last print otherwise), and ``book_gaps`` counts the diffs
that broke the chain. Captures carry no funding: ``funding_at`` is empty.

It serves the same calls as ``ReplayFeed`` (``times``, ``tf_ns``, ``symbols``, ``bars_at``,
``funding_at``, ``window``, ``index_after``, ``instruments``), so a ``TradingWorker`` runs on it
unchanged, plus ``ticks_at``.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from quantum_trader.data.order_book import OrderBook
from quantum_trader.data.timeframes import parse_timeframe
from quantum_trader.data.ws_capture import (
    BookTicker,
    CaptureEvent,
    DepthDiff,
    DepthSnapshot,
    ExchangeTimeOrder,
    Trade,
    read_capture,
)
from quantum_trader.domain.errors import ConfigError, DataError
from quantum_trader.domain.instruments import Instrument, resolve_instrument
from quantum_trader.execution.paper import Bar
from quantum_trader.strategies.base import Bars

Tick = Trade | BookTicker
"""What the venue matches on: prints and best bid/ask."""

_FILE = re.compile(r"([a-z0-9]+)_(\d{8})\.gz$")


def capture_files(folder: Path, symbols: Sequence[str]) -> dict[str, list[Path]]:
    """Each symbol's capture files in ``folder`` (``btcusdt_20240808.gz``, ...), in date order.

    ConfigError names the symbols without a file and the ones that are there.
    """
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.gz")):
        match = _FILE.match(path.name)
        if match:
            found.setdefault(match.group(1).upper(), []).append(path)
    missing = [s for s in symbols if s not in found]
    if missing:
        raise ConfigError(
            f"no websocket capture for {', '.join(missing)} in {folder}; "
            f"there are: {', '.join(sorted(found)) or 'none'}"
        )
    return {s: found[s] for s in symbols}


def _ts(event: CaptureEvent) -> int:
    return event.ts_event if event.ts_event is not None else event.ts_recv


class TickReplayFeed:
    """Bars for the strategy and ticks for the venue, from websocket captures."""

    def __init__(
        self,
        files: Mapping[str, Sequence[Path]],
        timeframe: str = "1s",
        *,
        max_delay_ns: int = 1_000_000_000,
    ) -> None:
        """Read every capture in ``files`` (symbol -> its files in order) into memory.

        Raises DataError for unreadable captures (naming file and line) or a capture without
        a single print.
        """
        self.timeframe = timeframe
        self.tf_ns = parse_timeframe(timeframe)
        self.symbols = tuple(files)
        self.book_gaps: dict[str, int] = {}
        ticks: list[list[Tick]] = []
        marks: dict[str, dict[int, float]] = {}
        for symbol, paths in files.items():
            events = ExchangeTimeOrder(
                read_capture(paths, symbol=symbol), max_delay_ns=max_delay_ns
            )
            own, marks[symbol] = self._read(symbol, iter(events))
            ticks.append(own)
        merged = list(heapq.merge(*ticks, key=_ts))
        if not any(isinstance(t, Trade) for t in merged):
            raise DataError(f"no trade prints in the captures of {', '.join(self.symbols)}")
        first = min(_ts(t) for t in merged if isinstance(t, Trade))
        start = first - first % self.tf_ns
        end = _ts(merged[-1])
        self.times: npt.NDArray[np.int64] = np.arange(start, end + 1, self.tf_ns, dtype=np.int64)
        self._ticks: list[list[Tick]] = [[] for _ in self.times]
        for tick in merged:
            k = (_ts(tick) - start) // self.tf_ns
            if 0 <= k < len(self.times):
                self._ticks[k].append(tick)
        self._mids: dict[str, npt.NDArray[np.float64]] = {}
        self._bars = {s: self._bars_of(s, marks[s]) for s in self.symbols}

    def _read(
        self, symbol: str, events: Iterator[CaptureEvent]
    ) -> tuple[list[Tick], dict[int, float]]:
        """The symbol's ticks, and its book mid at each moment the book changed in sync."""
        book = OrderBook(symbol)
        ticks: list[Tick] = []
        mids: dict[int, float] = {}
        for event in events:
            if isinstance(event, Trade | BookTicker):
                ticks.append(event)
            elif isinstance(event, DepthSnapshot):
                book.apply_snapshot(event)
            elif isinstance(event, DepthDiff):
                book.apply_diff(event)
                mid = book.mid
                if book.in_sync and mid is not None:
                    mids[_ts(event)] = mid
        self.book_gaps[symbol] = book.gaps
        return ticks, mids

    def _bars_of(self, symbol: str, mids: dict[int, float]) -> Bars:
        n = len(self.times)
        o, h, lo, c = (np.full(n, np.nan) for _ in range(4))
        v = np.zeros(n)
        for k, bucket in enumerate(self._ticks):
            prices = [t.price for t in bucket if isinstance(t, Trade) and t.symbol == symbol]
            if prices:
                o[k], h[k], lo[k], c[k] = prices[0], max(prices), min(prices), prices[-1]
                v[k] = sum(
                    t.quantity for t in bucket if isinstance(t, Trade) and t.symbol == symbol
                )
        # A bar without prints repeats the last close (and the first prints' open before it).
        last = float(o[np.flatnonzero(~np.isnan(o))[0]])
        for k in range(n):
            if np.isnan(c[k]):
                o[k] = h[k] = lo[k] = c[k] = last
            last = c[k]
        if mids:
            stamps = np.fromiter(mids, dtype=np.int64)
            values = np.fromiter(mids.values(), dtype=np.float64)
            order = np.argsort(stamps)
            stamps, values = stamps[order], values[order]
            j = np.searchsorted(stamps, self.times + self.tf_ns, side="left") - 1
            self._mids[symbol] = np.where(j >= 0, values[np.maximum(j, 0)], c)
        return Bars(symbol, self.times.copy(), o, h, lo, c, v)

    def __len__(self) -> int:
        return len(self.times)

    def instruments(self) -> dict[str, Instrument]:
        """Each symbol's instrument (Binance's filters; a generic grid from its first price)."""
        return {s: resolve_instrument(s, float(self._bars[s].close[0])) for s in self.symbols}

    def bars_at(self, i: int) -> dict[str, Bar]:
        """Each symbol's bar at ``times[i]``; its close is the book's mid while in sync."""
        out = {}
        for s, b in self._bars.items():
            mids = self._mids.get(s)
            close = float(mids[i]) if mids is not None else float(b.close[i])
            out[s] = Bar(float(b.open[i]), float(b.high[i]), float(b.low[i]), close)
        return out

    def funding_at(self, i: int) -> dict[str, tuple[float, float]]:
        """Captures carry no funding."""
        return {}

    def ticks_at(self, i: int) -> list[Tick]:
        """The quotes and prints of every symbol within bar ``i``, in exchange-time order."""
        return self._ticks[i]

    def window(self, symbol: str, i: int, n: int) -> Bars:
        """The last ``n`` bars of ``symbol`` up to and including ``i``."""
        b = self._bars[symbol]
        start = max(0, i + 1 - n)
        return Bars(
            symbol,
            b.ts[start : i + 1],
            b.open[start : i + 1],
            b.high[start : i + 1],
            b.low[start : i + 1],
            b.close[start : i + 1],
            b.volume[start : i + 1],
        )

    def index_after(self, ts_ns: int) -> int:
        """The index of the first bar after ``ts_ns`` (``len`` when none is left)."""
        return int(np.searchsorted(self.times, ts_ns, side="right"))
