"""Explicit, logged repairs of candle frames: sort, drop duplicates, fill gaps.

Nothing here runs unless asked for, and every change is written to a :class:`RepairLog`.
Problems that need a person (NaN values, high < low, a bar body outside its range, prices
<= 0, negative volume, times off the timeframe grid) are refused with
:class:`DataValidationError` rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantum_trader.data.market import CANDLE_COLUMNS
from quantum_trader.data.readers import utc_dates
from quantum_trader.data.timeframes import parse_timeframe
from quantum_trader.data.validate import ValidationReport, validate_candles
from quantum_trader.domain.errors import DataError, DataValidationError

MAX_FILL_BARS = 10_000_000
"""Refuse to insert more bars than this in one call: it means a wrong timeframe, not a gap."""


@dataclass(frozen=True, slots=True)
class FilledGap:
    """One gap filled: the input row before it, the first inserted time, and how many bars."""

    after_row: int
    start: str
    bars: int


@dataclass(frozen=True, slots=True)
class RepairLog:
    """What a repair changed. Rows are 0-based input rows, in the order the input had them."""

    rows_in: int
    rows_out: int
    moved_rows: int = 0
    dropped_rows: tuple[int, ...] = ()
    filled_gaps: tuple[FilledGap, ...] = ()

    @property
    def bars_inserted(self) -> int:
        """Return how many bars gap filling inserted."""
        return sum(gap.bars for gap in self.filled_gaps)

    @property
    def changed(self) -> bool:
        """Return True when the repair changed anything."""
        return bool(self.moved_rows or self.dropped_rows or self.filled_gaps)

    def summary(self, max_items: int = 5) -> str:
        """Return one line per kind of change, listing the first ``max_items`` rows or gaps."""
        if not self.changed:
            return "no changes"
        lines = []
        if self.moved_rows:
            lines.append(f"sorted by time: {self.moved_rows:,} rows moved")
        if self.dropped_rows:
            shown = ", ".join(map(str, self.dropped_rows[:max_items]))
            more = (
                f", ... and {len(self.dropped_rows) - max_items:,} more"
                if len(self.dropped_rows) > max_items
                else ""
            )
            lines.append(
                f"dropped {len(self.dropped_rows):,} duplicate rows (kept the first): "
                f"rows {shown}{more}"
            )
        if self.filled_gaps:
            shown = ", ".join(f"{g.start} ({g.bars:,})" for g in self.filled_gaps[:max_items])
            extra = len(self.filled_gaps) - max_items
            more = f", ... and {extra:,} more" if extra > 0 else ""
            lines.append(
                f"filled {len(self.filled_gaps):,} gaps with {self.bars_inserted:,} flat bars "
                f"(previous close, volume 0): {shown}{more}"
            )
        return "\n".join(lines)


def _refuse_unrepairable(report: ValidationReport) -> None:
    needs_person = tuple(i for i in report.errors if i.kind.repair_flag is None)
    if not needs_person:
        return
    shown = "\n".join(f"  {issue}" for issue in needs_person[:5])
    more = f"\n  ... and {len(needs_person) - 5:,} more" if len(needs_person) > 5 else ""
    kinds = ", ".join(sorted({i.kind.value for i in needs_person}))
    raise DataValidationError(
        f"{report.source}: refusing to repair: {len(needs_person):,} problem(s) need a person "
        f"({kinds}); fix the source data first:\n{shown}{more}",
        issues=needs_person,
    )


def repair_candles(
    df: pd.DataFrame,
    *,
    timeframe: str,
    drop_duplicates: bool = False,
    fill_gaps: bool = False,
    sort: bool = False,
    source: str = "candles",
) -> tuple[pd.DataFrame, RepairLog]:
    """Apply only the requested repairs to a candle frame and log what changed.

    Order: sort by time (stable), then drop duplicate times keeping the first, then fill each
    gap with flat bars (open = high = low = close = the previous close, volume 0).

    Args:
        df: A canonical candle frame.
        timeframe: The bar size, for finding gaps.
        drop_duplicates: Drop rows whose time an earlier row already has.
        fill_gaps: Insert the missing bars of every gap.
        sort: Sort rows by time; filling gaps needs sorted rows.
        source: The name used in error messages.

    Returns:
        The repaired frame (a new frame; ``df`` is unchanged) and the log.

    Raises:
        DataValidationError: The frame has problems no repair may touch (NaN, high < low, ...),
            or gaps are to be filled in rows that go back in time and ``sort`` is off.
    """
    n = len(df)
    if not (drop_duplicates or fill_gaps or sort):
        return df, RepairLog(n, n)
    tf_ns = parse_timeframe(timeframe)
    _refuse_unrepairable(validate_candles(df, source=source, timeframe=timeframe))
    ts = df["date"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    rows = np.arange(n)
    moved = 0
    if sort:
        order = np.argsort(ts, kind="stable")
        moved = int(np.count_nonzero(order != rows))
        rows, ts = rows[order], ts[order]
    dropped: tuple[int, ...] = ()
    if drop_duplicates:
        dup = pd.Series(ts).duplicated(keep="first").to_numpy(dtype=bool)
        dropped = tuple(sorted(rows[dup].tolist()))
        rows, ts = rows[~dup], ts[~dup]
    values = {name: df[name].to_numpy(dtype=np.float64)[rows] for name in CANDLE_COLUMNS[1:]}
    gaps: tuple[FilledGap, ...] = ()
    if fill_gaps:
        ts, values, gaps = _fill(ts, values, rows, tf_ns, source)
    out = pd.DataFrame({"date": utc_dates(ts), **values})
    return out, RepairLog(n, len(out), moved, dropped, gaps)


_Ints = npt.NDArray[np.int64]
_Floats = npt.NDArray[np.float64]


def _fill(
    ts: _Ints, values: dict[str, _Floats], rows: _Ints, tf_ns: int, source: str
) -> tuple[_Ints, dict[str, _Floats], tuple[FilledGap, ...]]:
    steps = np.diff(ts)
    if (steps < 0).any():
        row = int(rows[int(np.flatnonzero(steps < 0)[0]) + 1])
        raise DataValidationError(
            f"{source}: cannot fill gaps: time goes backwards at row {row}; sort first (--sort)"
        )
    at = np.flatnonzero(steps > tf_ns)
    if at.size == 0:
        return ts, values, ()
    counts = steps[at] // tf_ns - 1
    total = int(counts.sum())
    if total > MAX_FILL_BARS:
        raise DataError(
            f"{source}: filling the gaps would insert {total:,} bars (limit {MAX_FILL_BARS:,}); "
            "check the timeframe"
        )
    before = np.repeat(at, counts)
    step_in_gap = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    new_ts = ts[before] + step_in_gap * tf_ns
    where = before + 1
    prev_close = values["close"][before]
    filled = {
        name: np.insert(col, where, 0.0 if name == "volume" else prev_close)
        for name, col in values.items()
    }
    starts = [
        str(s)
        for s in np.datetime_as_string((ts[at] + tf_ns).view("M8[ns]"), unit="s", timezone="UTC")
    ]
    gaps = tuple(
        FilledGap(int(rows[i]), start, int(c))
        for i, start, c in zip(at.tolist(), starts, counts.tolist(), strict=True)
    )
    return np.insert(ts, where, new_ts), filled, gaps
