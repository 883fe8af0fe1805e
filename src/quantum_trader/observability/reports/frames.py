"""Column helpers shared by the report's charts and tables: sides, numbers, times."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

LONG_SIDES = frozenset({"buy", "long"})
NAT_NS = np.iinfo(np.int64).min


def symbol_trades(trades: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """Return the rows of ``trades`` for one symbol (an empty frame if none)."""
    if trades.empty or "symbol" not in trades.columns:
        return trades.iloc[0:0]
    return trades[trades["symbol"].astype(str) == symbol]


def side_is_long(trades: pd.DataFrame) -> np.ndarray:
    """Return, per trade, True for a long (side ``buy`` or ``long``)."""
    if "side" not in trades.columns:
        return np.ones(len(trades), dtype=bool)
    sides = trades["side"].astype(str).str.lower()
    return np.asarray(sides.isin(LONG_SIDES).to_numpy(), dtype=bool)


def float_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Return a column as float64, NaN where missing or not a number."""
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def times_ns(column: pd.Series | pd.Index) -> np.ndarray:
    """Return times as UTC epoch nanoseconds; NaT becomes ``int64`` min."""
    times = pd.to_datetime(column, utc=True)
    values = times.as_unit("ns") if isinstance(times, pd.DatetimeIndex) else times.dt.as_unit("ns")
    return np.asarray(values.to_numpy(dtype="datetime64[ns]").view(np.int64))


def times_ms(column: pd.Series | pd.Index) -> np.ndarray:
    """Return times as UTC epoch milliseconds, the unit plotly date axes take."""
    return times_ns(column) / 1e6


def time_strings(values_ns: np.ndarray) -> list[str]:
    """Return ``YYYY-MM-DD HH:MM[:SS]`` strings (seconds only when some time has them)."""
    times = values_ns.view("datetime64[ns]")
    valid = values_ns[~np.isnat(times)]
    unit: Literal["m", "s"] = "s" if (valid % (60 * 10**9)).any() else "m"
    stamps = np.datetime_as_string(times, unit=unit)
    return [str(stamp).replace("T", " ") for stamp in stamps]


def closed_bar_positions(bar_starts_ns: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Return, per time, the position of the last bar that had closed by then (-1 if none).

    Bars are indexed by open time and their values (close, equity) are as of their close, one
    bar step (the median spacing) later; an event stamped at a bar boundary (the engine stamps
    decisions at the closing bar's end) thus maps to the bar that just closed, the price the
    decision saw.

    Args:
        bar_starts_ns: Bar open times in epoch ns, ascending.
        times: Event times in epoch ns.

    Returns:
        An ``int64`` array of positions into ``bar_starts_ns``.
    """
    step = int(np.median(np.diff(bar_starts_ns))) if bar_starts_ns.size > 1 else 0
    positions = np.searchsorted(bar_starts_ns + step, times, side="right") - 1
    return np.asarray(positions, dtype=np.int64)
