"""ReplayFeed: recorded candles (and funding) of several symbols, served one market time at a time.

A paper worker on replayed data meets the market exactly as a live one would, one bar at a
time: ``bars_at(i)`` is what the venue sees at time ``times[i]`` (each symbol that has a bar
then), ``funding_at(i)`` the funding settlements that fall in that bar (rate and mark price, the
mark from the mark data when there is one, else the bar's open), and ``window(symbol, i, n)``
the last ``n`` bars up to and including ``i`` — all a strategy may look at when it decides at
bar ``i``'s close. Funding at time T belongs to the bar whose open is the last one at or before
T, as in the backtest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from quantum_trader.data.market import SymbolData, funding_settlements
from quantum_trader.data.timeframes import parse_timeframe
from quantum_trader.domain.errors import ConfigError, DataError
from quantum_trader.domain.instruments import Instrument, resolve_instrument
from quantum_trader.execution.paper import Bar
from quantum_trader.strategies.base import Bars


class MarketFeed(Protocol):
    """What a worker replays: market times, the bars at each, and windows for the strategy.

    ``ReplayFeed`` (candles) and ``engine.tick_replay.TickReplayFeed`` (websocket captures,
    which also has ``ticks_at``) implement it.
    """

    times: npt.NDArray[np.int64]
    tf_ns: int
    symbols: tuple[str, ...]

    def __len__(self) -> int: ...

    def instruments(self) -> dict[str, Instrument]:
        """Each symbol's instrument."""
        ...

    def bars_at(self, i: int) -> dict[str, Bar]:
        """Each symbol's bar at ``times[i]``."""
        ...

    def funding_at(self, i: int) -> dict[str, tuple[float, float]]:
        """Funding settling within bar ``i``."""
        ...

    def window(self, symbol: str, i: int, n: int) -> Bars:
        """The last ``n`` bars of ``symbol`` up to ``times[i]``."""
        ...

    def index_after(self, ts_ns: int) -> int:
        """The index of the first market time after ``ts_ns``."""
        ...


@dataclass(frozen=True, slots=True)
class _Series:
    bars: Bars
    index_of: dict[int, int]  # market time -> row
    funding: dict[int, tuple[float, float]]  # market time of the bar -> (rate, mark)
    funding_ts: npt.NDArray[np.int64] | None = None  # every funding stamp, for strategies
    funding_rate: npt.NDArray[np.float64] | None = None


class ReplayFeed:
    """Several symbols' recorded bars on one timeline.

    Attributes:
        times: Every market time (bar open, ns) at which some symbol has a bar, ascending.
        timeframe: The bar size, e.g. ``1m``.
        tf_ns: The bar size in nanoseconds.
    """

    def __init__(
        self,
        market: Mapping[str, SymbolData],
        symbols: Sequence[str],
        timeframe: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> None:
        """Serve ``symbols`` of ``market`` between ``start_ns`` and ``end_ns`` (bar open times).

        Raises ConfigError for a symbol the market lacks, DataError when no bar is left.
        """
        missing = [s for s in symbols if s not in market]
        if missing:
            raise ConfigError(f"replay: no market data for {', '.join(missing)}")
        self.timeframe = timeframe
        self.tf_ns = parse_timeframe(timeframe)
        self.symbols = tuple(symbols)
        self._series: dict[str, _Series] = {}
        for symbol in symbols:
            self._series[symbol] = self._prepare(market[symbol], start_ns, end_ns)
        stamps = [s.bars.ts for s in self._series.values() if len(s.bars)]
        if not stamps:
            raise DataError(f"replay: no bars for {', '.join(symbols)} in the chosen window")
        self.times: npt.NDArray[np.int64] = np.unique(np.concatenate(stamps))

    def _prepare(self, data: SymbolData, start_ns: int | None, end_ns: int | None) -> _Series:
        c = data.candles
        ts = c["date"].to_numpy("datetime64[ns]").astype(np.int64)
        keep = np.ones(len(ts), dtype=bool)
        if start_ns is not None:
            keep &= ts >= start_ns
        if end_ns is not None:
            keep &= ts < end_ns
        bars = Bars(
            symbol=data.symbol,
            ts=ts[keep],
            open=c["open"].to_numpy(np.float64)[keep],
            high=c["high"].to_numpy(np.float64)[keep],
            low=c["low"].to_numpy(np.float64)[keep],
            close=c["close"].to_numpy(np.float64)[keep],
            volume=c["volume"].to_numpy(np.float64)[keep],
        )
        index_of = {int(t): i for i, t in enumerate(bars.ts.tolist())}
        f_ts = f_rate = None
        if data.funding is not None and not data.funding.empty:
            f_ts = data.funding["date"].to_numpy("datetime64[ns]").astype(np.int64)
            f_rate = data.funding["rate"].to_numpy(np.float64)
        return _Series(bars, index_of, self._funding(data, bars), f_ts, f_rate)

    def _funding(self, data: SymbolData, bars: Bars) -> dict[int, tuple[float, float]]:
        events = funding_settlements(data, bars.ts, bars.open, self.tf_ns)
        return {int(bars.ts[e.bar]): (e.rate, e.mark) for e in events}

    def __len__(self) -> int:
        return len(self.times)

    def instruments(self) -> dict[str, Instrument]:
        """Each symbol's instrument (Binance's filters; a generic grid from its first close)."""
        out: dict[str, Instrument] = {}
        for symbol, s in self._series.items():
            first = float(s.bars.close[0]) if len(s.bars) else 1.0
            out[symbol] = resolve_instrument(symbol, first)
        return out

    def bars_at(self, i: int) -> dict[str, Bar]:
        """Each symbol's bar at market time ``times[i]`` (symbols without one are left out)."""
        t = int(self.times[i])
        out: dict[str, Bar] = {}
        for symbol, s in self._series.items():
            k = s.index_of.get(t)
            if k is not None:
                b = s.bars
                out[symbol] = Bar(
                    float(b.open[k]), float(b.high[k]), float(b.low[k]), float(b.close[k])
                )
        return out

    def funding_at(self, i: int) -> dict[str, tuple[float, float]]:
        """Funding settling within the bar at ``times[i]``: symbol -> (rate, mark price)."""
        t = int(self.times[i])
        return {sym: s.funding[t] for sym, s in self._series.items() if t in s.funding}

    def window(self, symbol: str, i: int, n: int) -> Bars:
        """The last ``n`` bars of ``symbol`` at or before ``times[i]`` (fewer at the start).

        Funding stamps come along up to the end of bar ``i`` only: nothing a strategy deciding
        at that bar's close could not have known.
        """
        series = self._series[symbol]
        b = series.bars
        end = int(np.searchsorted(b.ts, self.times[i], side="right"))
        start = max(0, end - n)
        f_ts = f_rate = None
        if series.funding_ts is not None and series.funding_rate is not None:
            known = int(np.searchsorted(series.funding_ts, self.times[i] + self.tf_ns, "left"))
            f_ts, f_rate = series.funding_ts[:known], series.funding_rate[:known]
        return Bars(
            b.symbol,
            b.ts[start:end],
            b.open[start:end],
            b.high[start:end],
            b.low[start:end],
            b.close[start:end],
            b.volume[start:end],
            f_ts,
            f_rate,
        )

    def index_after(self, ts_ns: int) -> int:
        """The index of the first market time after ``ts_ns`` (``len`` when none is left)."""
        return int(np.searchsorted(self.times, ts_ns, side="right"))
