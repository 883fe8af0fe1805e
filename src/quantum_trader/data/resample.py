"""Aggregate candles to a longer bar: 1m → 5m, 15m, 1h, 8h, 1d, ...

Bins are aligned to UTC (to the epoch up to days, Monday 00:00 for weeks) and labelled by their
open time. Open is the bin's first open, high the max, low the min, close the last close, volume
the sum. A bin missing any of its source bars is dropped, so every output bar is built from
complete data: the leading and trailing bins cut by the data's edges, and any bin a gap runs
through (the output then has a gap there, which :func:`validate_candles` reports).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantum_trader.data.market import CANDLE_COLUMNS
from quantum_trader.data.readers import utc_dates
from quantum_trader.data.timeframes import bin_start, infer_timeframe, parse_timeframe
from quantum_trader.domain.errors import DataError


def resample_candles(
    df: pd.DataFrame, timeframe: str, *, source_timeframe: str | None = None
) -> pd.DataFrame:
    """Return ``df`` aggregated to ``timeframe`` bars, keeping only complete bins.

    Args:
        df: Canonical candles, sorted by time without duplicates (repair them first).
        timeframe: The target bar size, a whole multiple of the source's.
        source_timeframe: The bar size of ``df``; inferred from the most common step if None.

    Raises:
        DataError: Upsampling (the target is shorter than the source), a target that is not a
            whole multiple of the source, times that are unsorted, duplicated or off the source
            grid, or a source timeframe that cannot be inferred.
    """
    missing = [c for c in CANDLE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"cannot resample: the frame lacks column(s) {', '.join(missing)}")
    target_ns = parse_timeframe(timeframe)
    values = df["date"].to_numpy(dtype="datetime64[ns]")
    if np.isnat(values).any():
        raise DataError("cannot resample: some rows have no time; repair the data first")
    ts = values.view(np.int64)
    if ts.size and (np.diff(ts) <= 0).any():
        raise DataError(
            "cannot resample: times are not strictly increasing; sort and drop duplicates first "
            "(qtrader data import --sort --drop-duplicates)"
        )
    if source_timeframe is None:
        source_timeframe = infer_timeframe(ts)
        if source_timeframe is None:
            raise DataError("cannot resample: too few rows to tell the source timeframe; pass it")
    source_ns = parse_timeframe(source_timeframe)
    if target_ns < source_ns:
        raise DataError(
            f"cannot resample {source_timeframe} candles to {timeframe}: that is upsampling, which "
            "would invent prices; resampling only aggregates to longer bars"
        )
    if target_ns % source_ns:
        raise DataError(
            f"cannot resample {source_timeframe} candles to {timeframe}: {timeframe} is not a "
            f"whole number of {source_timeframe} bars"
        )
    if (bin_start(ts, source_ns) != ts).any():
        raise DataError(f"cannot resample: some times are off the UTC {source_timeframe} grid")
    if target_ns == source_ns or ts.size == 0:
        return df.loc[:, list(CANDLE_COLUMNS)].reset_index(drop=True)
    bins = bin_start(ts, target_ns)
    starts = np.flatnonzero(np.concatenate([[True], bins[1:] != bins[:-1]]))
    ends = np.concatenate([starts[1:], [ts.size]])
    complete = (ends - starts) == target_ns // source_ns
    o, h, lo, c, v = (df[name].to_numpy(dtype=np.float64) for name in CANDLE_COLUMNS[1:])
    out = pd.DataFrame(
        {
            "date": utc_dates(bins[starts][complete]),
            "open": o[starts][complete],
            "high": np.maximum.reduceat(h, starts)[complete],
            "low": np.minimum.reduceat(lo, starts)[complete],
            "close": c[ends - 1][complete],
            "volume": np.add.reduceat(v, starts)[complete],
        }
    )
    return out
