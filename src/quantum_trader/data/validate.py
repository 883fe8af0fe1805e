"""Find what is wrong with market data; change nothing.

Every problem is one :class:`ValidationIssue` naming the source, the 0-based data row in file
order, the bar time and a plain-words detail. The checks are vectorized with numpy, so a month
of 1m bars (43,200 rows) validates in milliseconds.

Candle checks: gaps (missing bars for the timeframe), duplicate times, times off the timeframe's
UTC grid, time going backwards, NaN or infinite values, high < low, high below the body
(max of open and close), low above the body, prices <= 0, negative volume. Funding checks: NaN,
duplicates, time going backwards, and, as a warning, an implausible rate. Mark checks: NaN,
duplicates, time going backwards, prices <= 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantum_trader.data.market import CANDLE_COLUMNS, FUNDING_COLUMNS, MARK_COLUMNS
from quantum_trader.data.timeframes import bin_start, format_timeframe, parse_timeframe
from quantum_trader.domain.errors import DataError, DataValidationError

DEFAULT_MAX_ABS_FUNDING_RATE = 0.05


class IssueKind(StrEnum):
    """What is wrong with one row (or, for a gap, with the bars before it)."""

    GAP = "gap"
    DUPLICATE = "duplicate"
    NON_MONOTONIC = "non_monotonic"
    OFF_GRID = "off_grid"
    NAN = "nan"
    HIGH_BELOW_LOW = "high_below_low"
    HIGH_BELOW_BODY = "high_below_body"
    LOW_ABOVE_BODY = "low_above_body"
    NON_POSITIVE_PRICE = "non_positive_price"
    NEGATIVE_VOLUME = "negative_volume"
    ABSURD_FUNDING = "absurd_funding"

    @property
    def is_warning(self) -> bool:
        """Return True for kinds that flag doubtful but usable data."""
        return self is IssueKind.ABSURD_FUNDING

    @property
    def repair_flag(self) -> str | None:
        """Return the ``qtrader data import`` flag that repairs this kind, or None if none can."""
        return _REPAIR_FLAGS.get(self)


_REPAIR_FLAGS = {
    IssueKind.GAP: "--fill-gaps",
    IssueKind.DUPLICATE: "--drop-duplicates",
    IssueKind.NON_MONOTONIC: "--sort",
}
_KIND_ORDER = {kind: i for i, kind in enumerate(IssueKind)}


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem: its kind, the source, the 0-based data row, the bar time and a detail.

    For a gap, ``row`` is the first bar after the missing ones and ``ts`` the first missing time.
    """

    kind: IssueKind
    source: str
    row: int
    ts: str | None
    detail: str

    def __str__(self) -> str:
        """Return one line: source, row, time, kind and detail."""
        at = f" ({self.ts})" if self.ts else ""
        return f"{self.source}: row {self.row}{at}: {self.kind.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The outcome of validating one frame: its issues in row order, and a few totals."""

    source: str
    rows: int
    timeframe: str | None
    issues: tuple[ValidationIssue, ...]
    missing_bars: int = 0

    @property
    def ok(self) -> bool:
        """Return True when there is no error (warnings allowed)."""
        return not any(not issue.kind.is_warning for issue in self.issues)

    @property
    def clean(self) -> bool:
        """Return True when there is no issue at all, warnings included."""
        return not self.issues

    @property
    def errors(self) -> tuple[ValidationIssue, ...]:
        """Return the issues that make the data unusable as it is."""
        return tuple(i for i in self.issues if not i.kind.is_warning)

    @property
    def warnings(self) -> tuple[ValidationIssue, ...]:
        """Return the issues that flag doubtful but usable data."""
        return tuple(i for i in self.issues if i.kind.is_warning)

    def counts_by_kind(self) -> dict[IssueKind, int]:
        """Return how many issues of each kind were found, in a fixed kind order."""
        counts = Counter(issue.kind for issue in self.issues)
        return {kind: counts[kind] for kind in IssueKind if counts[kind]}

    def summary(self, max_issues: int = 5) -> str:
        """Return a short human summary: totals by kind, then the first ``max_issues`` issues."""
        head = f"{self.source}: {self.rows:,} rows"
        if self.timeframe:
            head += f" of {self.timeframe} bars"
        if self.clean:
            return f"{head}, no issues"
        counts = ", ".join(f"{kind.value} {n:,}" for kind, n in self.counts_by_kind().items())
        lines = [f"{head}, {len(self.issues):,} issues ({counts})"]
        if self.missing_bars:
            lines[0] += f"; {self.missing_bars:,} bars missing"
        lines += [f"  {self._line(issue)}" for issue in self.issues[:max_issues]]
        if len(self.issues) > max_issues:
            lines.append(f"  ... and {len(self.issues) - max_issues:,} more")
        return "\n".join(lines)

    def _line(self, issue: ValidationIssue) -> str:
        text = str(issue)
        prefix = f"{self.source}: "
        return text.removeprefix(prefix) if issue.source == self.source else text

    def repair_flags(self) -> tuple[str, ...]:
        """Return the ``qtrader data import`` flags that would repair the errors found."""
        return tuple(sorted({f for issue in self.errors if (f := issue.kind.repair_flag)}))

    def repair_hint(self, path: str = "PATH") -> str:
        """Return how to repair the errors, or that a person must fix them, in one line."""
        flags = self.repair_flags()
        manual = sorted({i.kind.value for i in self.errors if i.kind.repair_flag is None})
        parts = []
        if flags:
            parts.append(f"repair with `qtrader data import {path} --out DIR {' '.join(flags)}`")
        if manual:
            parts.append(f"{', '.join(manual)} cannot be repaired automatically: fix the source")
        return "; ".join(parts)

    def raise_if_errors(self, *, max_issues: int = 5, hint: str | None = None) -> None:
        """Raise :class:`DataValidationError` with a summary and a repair hint if there is an error.

        Args:
            max_issues: How many issues the message lists before "... and N more".
            hint: The repair advice to append; defaults to :meth:`repair_hint`.
        """
        if self.ok:
            return
        errors = ValidationReport(
            self.source, self.rows, self.timeframe, self.errors, self.missing_bars
        )
        advice = self.repair_hint() if hint is None else hint
        message = f"invalid market data: {errors.summary(max_issues)}"
        if advice:
            message += f"\n{advice}"
        raise DataValidationError(message, issues=errors.issues)


# ---------------------------------------------------------------- helpers


@dataclass(slots=True)
class _Found:
    kind: IssueKind
    rows: npt.NDArray[np.int64]
    ts_ns: npt.NDArray[np.int64]
    has_ts: npt.NDArray[np.bool_]
    details: list[str]


def _iso(ts_ns: npt.NDArray[np.int64]) -> list[str]:
    if ts_ns.size == 0:
        return []
    unit: Literal["s", "ms", "ns"] = "s" if not np.any(ts_ns % 1_000_000_000) else "ms"
    if unit == "ms" and np.any(ts_ns % 1_000_000):
        unit = "ns"
    stamps: npt.NDArray[np.datetime64] = ts_ns.view("M8[ns]")
    return [str(s) for s in np.datetime_as_string(stamps, unit=unit, timezone="UTC")]


def _dates_ns(df: pd.DataFrame, source: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    col = df["date"]
    if not pd.api.types.is_datetime64_any_dtype(col.dtype):
        raise DataError(f"{source}: column 'date' must hold datetimes, not {col.dtype}")
    values = col.to_numpy(dtype="datetime64[ns]")
    return values.view(np.int64), np.isnat(values)


def _float(df: pd.DataFrame, name: str, source: str) -> npt.NDArray[np.float64]:
    try:
        return df[name].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{source}: column {name!r} must hold numbers, not {df[name].dtype}"
        ) from exc


def _require(df: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; found {list(df.columns)}"
        )


def _rows_found(
    kind: IssueKind, rows: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], details: list[str]
) -> _Found:
    has_ts = ts != np.iinfo(np.int64).min
    return _Found(kind, rows.astype(np.int64), ts, has_ts, details)


def _time_checks(
    ts: npt.NDArray[np.int64], nat: npt.NDArray[np.bool_], timeframe_ns: int | None
) -> tuple[list[_Found], int]:
    """Duplicates, backwards steps, off-grid times and gaps, on the rows that have a time."""
    found: list[_Found] = []
    rows = np.flatnonzero(~nat)
    tv = ts[rows]
    if tv.size == 0:
        return found, 0
    back = np.flatnonzero(tv[1:] < tv[:-1]) + 1
    if back.size:
        prev = _iso(tv[back - 1])
        found.append(
            _rows_found(
                IssueKind.NON_MONOTONIC,
                rows[back],
                tv[back],
                [f"time goes backwards: the row before is at {p}" for p in prev],
            )
        )
    order = np.argsort(tv, kind="stable")
    ordered = tv[order]
    same = np.concatenate([[False], ordered[1:] == ordered[:-1]])
    if same.any():
        run_start = np.maximum.accumulate(np.where(same, 0, np.arange(ordered.size)))
        dup_pos = np.flatnonzero(same)
        first_rows = rows[order[run_start[dup_pos]]]
        found.append(
            _rows_found(
                IssueKind.DUPLICATE,
                rows[order[dup_pos]],
                ordered[dup_pos],
                [f"same time as row {r}" for r in first_rows.tolist()],
            )
        )
    missing_total = 0
    if timeframe_ns is not None:
        tf_text = format_timeframe(timeframe_ns)
        off = np.flatnonzero(bin_start(tv, timeframe_ns) != tv)
        if off.size:
            found.append(
                _rows_found(
                    IssueKind.OFF_GRID,
                    rows[off],
                    tv[off],
                    [f"time is not on the UTC {tf_text} grid"] * off.size,
                )
            )
        first = ~same
        unique_ts = ordered[first]
        unique_rows = rows[order[first]]
        steps = np.diff(unique_ts)
        gap = np.flatnonzero(steps > timeframe_ns)
        if gap.size:
            missing = (steps[gap] - 1) // timeframe_ns
            missing_total = int(missing.sum())
            starts = unique_ts[gap] + timeframe_ns
            nexts = _iso(unique_ts[gap + 1])
            details = [
                f"{m:,} {tf_text} bar{'s' if m != 1 else ''} missing before {nxt}"
                for m, nxt in zip(missing.tolist(), nexts, strict=True)
            ]
            found.append(_rows_found(IssueKind.GAP, unique_rows[gap + 1], starts, details))
    return found, missing_total


def _nan_checks(
    ts: npt.NDArray[np.int64],
    nat: npt.NDArray[np.bool_],
    columns: dict[str, npt.NDArray[np.float64]],
) -> list[_Found]:
    bad = {name: ~np.isfinite(values) for name, values in columns.items()}
    any_bad = nat.copy()
    for mask in bad.values():
        any_bad |= mask
    rows = np.flatnonzero(any_bad)
    if rows.size == 0:
        return []
    details = []
    for r in rows.tolist():
        parts = ["date is missing"] if nat[r] else []
        parts += [f"{name} is {columns[name][r]}" for name, mask in bad.items() if mask[r]]
        details.append(", ".join(parts))
    return [_rows_found(IssueKind.NAN, rows, ts[rows], details)]


def _masked(
    kind: IssueKind,
    mask: npt.NDArray[np.bool_],
    ts: npt.NDArray[np.int64],
    detail: Iterable[str] | str,
) -> list[_Found]:
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return []
    details = [detail] * rows.size if isinstance(detail, str) else list(detail)
    return [_rows_found(kind, rows, ts[rows], details)]


def _report(
    source: str,
    rows: int,
    timeframe: str | None,
    found: list[_Found],
    missing_bars: int = 0,
) -> ValidationReport:
    if not found:
        return ValidationReport(source, rows, timeframe, (), missing_bars)
    all_rows = np.concatenate([f.rows for f in found])
    kind_rank = np.concatenate([np.full(f.rows.size, _KIND_ORDER[f.kind]) for f in found])
    order = np.lexsort((kind_rank, all_rows))
    flat: list[tuple[IssueKind, int, int, bool, str]] = []
    for f in found:
        flat.extend(
            zip(
                [f.kind] * f.rows.size,
                f.rows.tolist(),
                f.ts_ns.tolist(),
                f.has_ts.tolist(),
                f.details,
                strict=True,
            )
        )
    stamps = np.asarray([t for _, _, t, has, _ in flat if has], dtype=np.int64)
    iso = iter(_iso(stamps))
    texts = [next(iso) if has else None for _, _, _, has, _ in flat]
    issues = tuple(
        ValidationIssue(flat[i][0], source, flat[i][1], texts[i], flat[i][4])
        for i in order.tolist()
    )
    return ValidationReport(source, rows, timeframe, issues, missing_bars)


# ---------------------------------------------------------------- public checks


def validate_candles(df: pd.DataFrame, *, source: str, timeframe: str | None) -> ValidationReport:
    """Check a candle frame and return every issue found, in row order.

    Args:
        df: Candles with ``date`` and ``open``, ``high``, ``low``, ``close``, ``volume``.
        source: Where the frame came from; every issue names it.
        timeframe: The bar size (``"1m"``); None skips the gap and grid checks.

    Raises:
        DataError: A required column is missing or has the wrong type.
    """
    _require(df, CANDLE_COLUMNS, source)
    tf_ns = parse_timeframe(timeframe) if timeframe is not None else None
    ts, nat = _dates_ns(df, source)
    o, h, lo, c, v = (_float(df, name, source) for name in CANDLE_COLUMNS[1:])
    found = _nan_checks(ts, nat, {"open": o, "high": h, "low": lo, "close": c, "volume": v})
    time_found, missing = _time_checks(ts, nat, tf_ns)
    found += time_found
    crossed = h < lo
    body_top = np.maximum(o, c)
    body_bottom = np.minimum(o, c)
    found += _masked(
        IssueKind.HIGH_BELOW_LOW,
        crossed,
        ts,
        (f"high {h[r]} < low {lo[r]}" for r in np.flatnonzero(crossed).tolist()),
    )
    # A crossed bar is reported once, as high < low: its body checks would only repeat it.
    above = (h < body_top) & ~crossed
    found += _masked(
        IssueKind.HIGH_BELOW_BODY,
        above,
        ts,
        (f"high {h[r]} < max(open, close) {body_top[r]}" for r in np.flatnonzero(above).tolist()),
    )
    below = (lo > body_bottom) & ~crossed
    found += _masked(
        IssueKind.LOW_ABOVE_BODY,
        below,
        ts,
        (
            f"low {lo[r]} > min(open, close) {body_bottom[r]}"
            for r in np.flatnonzero(below).tolist()
        ),
    )
    lowest = np.fmin(np.fmin(o, h), np.fmin(lo, c))
    found += _masked(
        IssueKind.NON_POSITIVE_PRICE,
        lowest <= 0,
        ts,
        (f"price {lowest[r]} <= 0" for r in np.flatnonzero(lowest <= 0).tolist()),
    )
    found += _masked(
        IssueKind.NEGATIVE_VOLUME,
        v < 0,
        ts,
        (f"volume {v[r]} < 0" for r in np.flatnonzero(v < 0).tolist()),
    )
    return _report(source, len(df), timeframe, found, missing)


def validate_funding(
    df: pd.DataFrame, *, source: str, max_abs_rate: float = DEFAULT_MAX_ABS_FUNDING_RATE
) -> ValidationReport:
    """Check a funding frame (``date``, ``rate``) and return every issue found.

    A rate beyond ``max_abs_rate`` per funding event is a warning (``ABSURD_FUNDING``): exchanges
    cap funding far below 5%, so such a value is most likely a unit or column mix-up.
    """
    _require(df, FUNDING_COLUMNS, source)
    ts, nat = _dates_ns(df, source)
    rate = _float(df, "rate", source)
    found = _nan_checks(ts, nat, {"rate": rate})
    found += _time_checks(ts, nat, None)[0]
    absurd = np.abs(rate) > max_abs_rate
    found += _masked(
        IssueKind.ABSURD_FUNDING,
        absurd,
        ts,
        (f"|rate| {rate[r]} > {max_abs_rate}" for r in np.flatnonzero(absurd).tolist()),
    )
    return _report(source, len(df), None, found)


def validate_mark(df: pd.DataFrame, *, source: str) -> ValidationReport:
    """Check a mark-price frame (``date``, ``mark``) and return every issue found."""
    _require(df, MARK_COLUMNS, source)
    ts, nat = _dates_ns(df, source)
    mark = _float(df, "mark", source)
    found = _nan_checks(ts, nat, {"mark": mark})
    found += _time_checks(ts, nat, None)[0]
    found += _masked(
        IssueKind.NON_POSITIVE_PRICE,
        mark <= 0,
        ts,
        (f"mark {mark[r]} <= 0" for r in np.flatnonzero(mark <= 0).tolist()),
    )
    return _report(source, len(df), None, found)
