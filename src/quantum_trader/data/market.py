"""The in-memory shape of market data that every loader produces and every runner consumes.

Candles are a DataFrame with a ``date`` column (``datetime64[ns, UTC]``, the bar's open time)
and float64 ``open``, ``high``, ``low``, ``close``, ``volume``, sorted by date with no
duplicates. Funding is ``date`` + ``rate``; mark prices are ``date`` + ``mark``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

CANDLE_COLUMNS = ("date", "open", "high", "low", "close", "volume")
FUNDING_COLUMNS = ("date", "rate")
MARK_COLUMNS = ("date", "mark")


@dataclass(frozen=True, slots=True)
class SymbolData:
    """Everything known about one symbol's market: candles, and funding and mark if given.

    ``source`` names where the candles came from (a path, or ``synthetic:seed=N``) so errors and
    reports can say it; ``synthetic`` is True for generated data, which reports say plainly.
    """

    symbol: str
    timeframe: str
    candles: pd.DataFrame
    funding: pd.DataFrame | None = None
    mark: pd.DataFrame | None = None
    source: str = ""
    synthetic: bool = False


MarketData = Mapping[str, SymbolData]


_MARK_TOLERANCE_NS = 60_000_000_000  # funding stamps run a few ms past the mark's minute


@dataclass(frozen=True, slots=True)
class FundingSettlement:
    """One funding event placed on a symbol's bars.

    Attributes:
        bar: Index of the bar it settles in: the last bar whose open is at or before it.
        rate: The funding rate.
        mark: The mark price at the funding time (the mark data's, or that bar's open).
        ts_ns: The funding time.
    """

    bar: int
    rate: float
    mark: float
    ts_ns: int


def funding_settlements(
    data: SymbolData, bar_ts: npt.NDArray[np.int64], bar_open: npt.NDArray[np.float64], tf_ns: int
) -> list[FundingSettlement]:
    """Where ``data``'s funding events settle on the bars opening at ``bar_ts``.

    The one rule of the backtest and the replayed paper runs: funding at time T applies to the
    position held at T, in the bar whose open is the last one at or before T (after that bar's
    opening fills); events before the first bar or past the last bar's end are dropped. The
    mark is the mark data's close of the minute at or before T, else the bar's open.
    """
    if data.funding is None or data.funding.empty or not len(bar_ts):
        return []
    f_ts = data.funding["date"].to_numpy("datetime64[ns]").astype(np.int64)
    rates = data.funding["rate"].to_numpy(np.float64)
    own = np.searchsorted(bar_ts, f_ts, side="right") - 1
    inside = (own >= 0) & (f_ts < bar_ts[-1] + tf_ns)
    marks = _mark_prices(data, f_ts)
    out = []
    for i in np.flatnonzero(inside).tolist():
        k = int(own[i])
        mark = marks[i] if not math.isnan(marks[i]) else float(bar_open[k])
        out.append(FundingSettlement(k, float(rates[i]), mark, int(f_ts[i])))
    return out


def _mark_prices(data: SymbolData, f_ts: npt.NDArray[np.int64]) -> list[float]:
    """Mark price at each funding time from the mark data (NaN where there is none)."""
    if data.mark is None or data.mark.empty:
        return [math.nan] * len(f_ts)
    m_ts = data.mark["date"].to_numpy("datetime64[ns]").astype(np.int64)
    m_px = data.mark["mark"].to_numpy(np.float64)
    j = np.searchsorted(m_ts, f_ts, side="right") - 1
    ok = (j >= 0) & (f_ts - m_ts[np.maximum(j, 0)] < _MARK_TOLERANCE_NS)
    return [
        float(m_px[jj]) if good else math.nan
        for jj, good in zip(j.tolist(), ok.tolist(), strict=True)
    ]
