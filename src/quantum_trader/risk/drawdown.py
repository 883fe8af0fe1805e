"""DrawdownMonitor: drawdown from the durable equity peak and loss since the UTC start of day.

Definitions (equity is mark-to-market: wallet plus unrealized PnL, after fees and funding):

- ``peak`` is the highest equity ever seen. It is saved to the EquityMarksStore whenever it
  rises, so a restart keeps it (a restart must not forgive a drawdown).
- ``drawdown = (peak - equity) / peak`` (0 while there is no positive peak).
- ``day_start_equity`` is the first equity seen on a UTC day; it is saved when the day turns.
- ``daily_loss = (day_start_equity - equity) / day_start_equity`` (negative on a winning day;
  0 while the day start is not positive).

Time comes from the caller (``ts_ns``) or the injected clock; UTC days are computed from the
nanosecond timestamp, never from the system time. A reading older than the stored day does not
turn the day back. Floats throughout: these are ratios for decisions, not money that leaves
the system.

``first_breach`` and ``day_start_series`` are the vectorized forms for backtests: they give the
same answers as feeding the path through a monitor one value at a time.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from quantum_trader.domain.clock import NANOS_PER_DAY, Clock
from quantum_trader.stores.ports import EquityMarks, EquityMarksStore

_EPOCH = dt.date(1970, 1, 1)


def utc_day(ts_ns: int) -> str:
    """Return the UTC date of ``ts_ns`` as ``YYYY-MM-DD``."""
    return (_EPOCH + dt.timedelta(days=ts_ns // NANOS_PER_DAY)).isoformat()


@dataclass(frozen=True, slots=True)
class DrawdownReading:
    """One equity observation with its drawdown and daily loss (ratios: 0.1 is 10 %)."""

    equity: float
    peak: float
    drawdown: float
    day_start_equity: float
    daily_loss: float
    day: str
    ts_ns: int = 0

    @staticmethod
    def measure(
        equity: float, peak: float, day_start_equity: float, day: str, ts_ns: int
    ) -> DrawdownReading:
        """The reading of ``equity`` against ``peak`` and the day's start (0 where undefined)."""
        return DrawdownReading(
            equity=equity,
            peak=peak,
            drawdown=(peak - equity) / peak if peak > 0.0 else 0.0,
            day_start_equity=day_start_equity,
            daily_loss=(day_start_equity - equity) / day_start_equity
            if day_start_equity > 0.0
            else 0.0,
            day=day,
            ts_ns=ts_ns,
        )


class DrawdownMonitor:
    """Track the equity peak (durably) and the UTC start-of-day equity.

    One monitor writes the marks; it reads them once, when it is made, and saves only when the
    peak rises or the day turns. If a save fails the error propagates and the new mark is not
    kept, so the next update tries again.
    """

    def __init__(self, store: EquityMarksStore, clock: Clock) -> None:
        """Load the stored marks from ``store``; ``clock`` times updates given no ``ts_ns``."""
        self._store = store
        self._clock = clock
        self._marks = store.load()

    @property
    def marks(self) -> EquityMarks:
        """The peak and start-of-day equity as last saved."""
        return self._marks

    def update(self, equity: float, ts_ns: int | None = None) -> DrawdownReading:
        """Record ``equity`` observed at ``ts_ns`` (default: now) and return the reading.

        Raises ValueError for a non-finite equity: a NaN would silently never breach a limit.
        """
        if not math.isfinite(equity):
            raise ValueError(f"equity must be a finite number, got {equity!r}")
        ts = self._clock.now_ns() if ts_ns is None else ts_ns
        day = utc_day(ts)
        marks = self._marks
        if not marks.day or day > marks.day:
            marks = replace(marks, day_start_equity=equity, day=day)
        if equity > marks.peak_equity:
            marks = replace(marks, peak_equity=equity, peak_ts_ns=ts)
        if marks != self._marks:
            self._store.save(marks)
            self._marks = marks
        return DrawdownReading.measure(
            equity, marks.peak_equity, marks.day_start_equity, marks.day, ts
        )


FloatArray = npt.NDArray[np.float64]


def day_start_series(equity: npt.ArrayLike, ts_ns: npt.ArrayLike) -> FloatArray:
    """Return, for each bar, the first equity of its UTC day (``ts_ns`` must not decrease)."""
    eq = np.asarray(equity, dtype=np.float64)
    ts = np.asarray(ts_ns, dtype=np.int64)
    if eq.ndim != 1 or eq.shape != ts.shape:
        raise ValueError(f"equity and ts_ns must be 1-D of one length, got {eq.shape}, {ts.shape}")
    if eq.size == 0:
        return eq.copy()
    days = ts // NANOS_PER_DAY
    if np.any(days[1:] < days[:-1]):
        raise ValueError("ts_ns must not decrease")
    first = np.empty(eq.size, dtype=bool)
    first[0] = True
    np.not_equal(days[1:], days[:-1], out=first[1:])
    index = np.maximum.accumulate(np.where(first, np.arange(eq.size), 0))
    return eq[index]


def first_breach(
    equity: npt.ArrayLike,
    start_peak: float,
    day_start: npt.ArrayLike,
    max_drawdown: float,
    max_daily_loss: float,
) -> int | None:
    """Return the first index where drawdown >= ``max_drawdown`` or daily loss >= the limit.

    The peak runs from ``start_peak`` through ``np.maximum.accumulate`` of ``equity``;
    ``day_start`` holds each bar's start-of-day equity (``day_start_series``). None when the
    path never breaches. Raises ValueError for mismatched shapes or non-finite values.
    """
    eq = np.asarray(equity, dtype=np.float64)
    ds = np.asarray(day_start, dtype=np.float64)
    if eq.ndim != 1 or eq.shape != ds.shape:
        raise ValueError(
            f"equity and day_start must be 1-D of one length, got {eq.shape}, {ds.shape}"
        )
    if eq.size == 0:
        return None
    if not (np.isfinite(eq).all() and np.isfinite(ds).all() and math.isfinite(start_peak)):
        raise ValueError("equity, day_start and start_peak must be finite")
    peak = np.maximum.accumulate(np.maximum(eq, start_peak))
    drawdown = np.zeros_like(eq)
    daily_loss = np.zeros_like(eq)
    with np.errstate(over="ignore"):  # a tiny positive divisor gives ±inf, as in Python
        np.divide(peak - eq, peak, out=drawdown, where=peak > 0.0)
        np.divide(ds - eq, ds, out=daily_loss, where=ds > 0.0)
    breach = (drawdown >= max_drawdown) | (daily_loss >= max_daily_loss)
    index = int(np.argmax(breach))
    return index if breach[index] else None
