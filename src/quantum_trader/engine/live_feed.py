"""LiveCandleFeed: closed candles from the exchange as they close, for paper trading live.

A ``MarketFeed`` that grows: it starts with the last ``history_bars`` closed candles of every
symbol (the strategies' warm-up), and ``wait_for(i, stop)`` blocks until bar ``i`` has closed —
it sleeps until the expected close plus ``settle_secs`` (the exchange publishes a candle a
moment after its close), asks the exchange for the new candles, and returns True when bar ``i``
is there (False when ``stop`` was set). Only closed candles are served: a candle whose close
time is still ahead of the clock is never seen, so a strategy cannot act on a bar in progress.

A symbol missing from a fetch keeps its last candle (its bar repeats, volume 0), so all symbols
stay on one timeline. Funding is not fetched: a paper run on the live feed settles none.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from quantum_trader.data.timeframes import parse_timeframe
from quantum_trader.domain.clock import NANOS_PER_SECOND, Clock
from quantum_trader.domain.errors import DataError, TransientError
from quantum_trader.domain.instruments import Instrument
from quantum_trader.execution.live.parsing import Kline
from quantum_trader.execution.paper import Bar
from quantum_trader.strategies.base import Bars


class CandleSource(Protocol):
    """Where candles come from (``BinanceUsdmVenue.klines``)."""

    def klines(
        self, symbol: str, interval: str = "1m", *, start_ns: int | None = None, limit: int = 500
    ) -> list[Kline]:
        """Candles of ``symbol`` from ``start_ns`` (or the latest ``limit``), oldest first."""
        ...

    def load_instruments(self, symbols: list[str] | None = None) -> dict[str, Instrument]:
        """The exchange's instruments."""
        ...


class LiveCandleFeed:
    """Closed candles of several symbols on one timeline, growing as candles close."""

    def __init__(
        self,
        source: CandleSource,
        symbols: Sequence[str],
        timeframe: str,
        clock: Clock,
        *,
        history_bars: int = 300,
        settle_secs: float = 2.0,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        """Load the warm-up history; ``wait(seconds)`` replaces the stop event's wait (tests).

        Raises DataError when the exchange has no candle for a symbol.
        """
        self.source = source
        self.symbols = tuple(symbols)
        self.timeframe = timeframe
        self.tf_ns = parse_timeframe(timeframe)
        self.clock = clock
        self.settle_ns = int(settle_secs * NANOS_PER_SECOND)
        self._wait = wait
        self._rows: dict[str, dict[int, Kline]] = {s: {} for s in self.symbols}
        for symbol in self.symbols:
            self._add(symbol, source.klines(symbol, timeframe, limit=history_bars))
            if not self._rows[symbol]:
                raise DataError(
                    f"live feed: the exchange has no closed {timeframe} candle of {symbol}"
                )
        self._rebuild()
        self.start_index = len(self.times)
        """The first bar a run may trade: the history before it is only the warm-up."""

    def _add(self, symbol: str, klines: list[Kline]) -> None:
        now = self.clock.now_ns()
        for k in klines:
            if k.ts_event + self.tf_ns <= now:  # closed: a bar in progress is never served
                self._rows[symbol][k.ts_event] = k

    def _rebuild(self) -> None:
        start = max(min(rows) for rows in self._rows.values())
        end = max(max(rows) for rows in self._rows.values())
        self.times: npt.NDArray[np.int64] = np.arange(start, end + 1, self.tf_ns, dtype=np.int64)
        self._bars: dict[str, Bars] = {}
        for symbol, rows in self._rows.items():
            n = len(self.times)
            cols = np.empty((5, n))
            last: Kline | None = None
            for j, t in enumerate(self.times.tolist()):
                k = rows.get(t)
                if k is not None:
                    last = k
                    cols[:, j] = (k.open, k.high, k.low, k.close, k.volume)
                elif last is not None:
                    cols[:, j] = (last.close, last.close, last.close, last.close, 0.0)
                else:
                    cols[:, j] = math.nan
            self._bars[symbol] = Bars(symbol, self.times.copy(), *cols)

    def refresh(self) -> int:
        """Fetch the candles closed since the last one known; return how many bars were added."""
        before = len(self.times)
        last = int(self.times[-1])
        for symbol in self.symbols:
            self._add(symbol, self.source.klines(symbol, self.timeframe, start_ns=last))
        self._rebuild()
        return len(self.times) - before

    def wait_for(self, i: int, stop: threading.Event) -> bool:
        """Block until bar ``i`` has closed and is fetched; False when ``stop`` is set first.

        A fetch that fails with a transient error (network, rate limit) is retried at the next
        wake-up; nothing else is swallowed.
        """
        while i >= len(self.times) and not stop.is_set():
            due = int(self.times[-1]) + 2 * self.tf_ns + self.settle_ns
            pause = max(0.0, (due - self.clock.now_ns()) / NANOS_PER_SECOND)
            (self._wait or stop.wait)(pause)
            if stop.is_set():
                break
            try:
                self.refresh()
            except TransientError:
                continue
        return i < len(self.times) and not stop.is_set()

    def __len__(self) -> int:
        return len(self.times)

    def instruments(self) -> dict[str, Instrument]:
        """The exchange's instruments of the feed's symbols (its own filters)."""
        found = self.source.load_instruments(list(self.symbols))
        return {s: found[s] for s in self.symbols}

    def bars_at(self, i: int) -> dict[str, Bar]:
        """Each symbol's bar at ``times[i]``."""
        return {
            s: Bar(float(b.open[i]), float(b.high[i]), float(b.low[i]), float(b.close[i]))
            for s, b in self._bars.items()
            if not math.isnan(b.open[i])
        }

    def funding_at(self, i: int) -> dict[str, tuple[float, float]]:
        """No funding is fetched on the live feed."""
        return {}

    def window(self, symbol: str, i: int, n: int) -> Bars:
        """The last ``n`` closed bars of ``symbol`` up to and including ``i``."""
        b = self._bars[symbol]
        start = max(0, i + 1 - n)
        cut = slice(start, i + 1)
        return Bars(
            symbol, b.ts[cut], b.open[cut], b.high[cut], b.low[cut], b.close[cut], b.volume[cut]
        )

    def index_after(self, ts_ns: int) -> int:
        """The index of the first bar after ``ts_ns`` (``len`` when none has closed yet)."""
        return int(np.searchsorted(self.times, ts_ns, side="right"))
