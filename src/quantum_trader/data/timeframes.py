"""Bar sizes ("timeframes") as exchanges write them: ``1m``, ``5m``, ``1h``, ``8h``, ``1d``, ``1w``.

A timeframe is a count and a unit: ``s`` seconds, ``m`` minutes, ``h`` hours, ``d`` days,
``w`` weeks. Months (``1M``) are refused: they have no fixed length. Bars are aligned to UTC:
to the Unix epoch for every unit up to days, and to Monday 00:00 UTC for weeks, as Binance does.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from quantum_trader.domain.errors import DataError

NS_PER_SECOND = 1_000_000_000
_UNIT_NS = {
    "s": NS_PER_SECOND,
    "m": 60 * NS_PER_SECOND,
    "h": 3600 * NS_PER_SECOND,
    "d": 86_400 * NS_PER_SECOND,
    "w": 7 * 86_400 * NS_PER_SECOND,
}
_PANDAS_UNIT = {"s": "s", "m": "min", "h": "h", "d": "D", "w": "W-MON"}
_TIMEFRAME = re.compile(r"^\s*(\d+)\s*([smhdwM])\s*$")
_WEEK_NS = _UNIT_NS["w"]
# 1970-01-01 was a Thursday; Binance's weekly bars open on Monday, four days later.
_WEEK_OFFSET_NS = 4 * _UNIT_NS["d"]


class TimeframeError(DataError, ValueError):
    """A timeframe string is malformed or not supported.

    A ``ValueError`` too, so settings validators can reject it directly.
    """


def _split(timeframe: str) -> tuple[int, str]:
    if not isinstance(timeframe, str):
        raise TimeframeError(f"timeframe must be a string like '1m' or '1h', got {timeframe!r}")
    match = _TIMEFRAME.match(timeframe)
    if match is None:
        raise TimeframeError(
            f"bad timeframe {timeframe!r}: expected a count and a unit, e.g. 1m, 5m, 1h, 8h, 1d, 1w"
        )
    count, unit = int(match.group(1)), match.group(2)
    if unit == "M":
        raise TimeframeError(
            f"timeframe {timeframe!r}: months have no fixed length; use days or weeks"
        )
    if count <= 0:
        raise TimeframeError(f"bad timeframe {timeframe!r}: the count must be positive")
    return count, unit


def parse_timeframe(timeframe: str) -> int:
    """Return the length of one bar of ``timeframe`` in nanoseconds.

    Raises:
        TimeframeError: ``timeframe`` is malformed (``"1x"``, ``"m"``, ``"0m"``) or a month.
    """
    count, unit = _split(timeframe)
    return count * _UNIT_NS[unit]


def timeframe_to_pandas_freq(timeframe: str) -> str:
    """Return the pandas frequency string for ``timeframe`` (``"5m"`` → ``"5min"``)."""
    count, unit = _split(timeframe)
    return f"{count}{_PANDAS_UNIT[unit]}"


def format_timeframe(nanoseconds: int) -> str:
    """Return the shortest timeframe string for a bar length (``300_000_000_000`` → ``"5m"``)."""
    if nanoseconds <= 0 or nanoseconds % NS_PER_SECOND:
        raise TimeframeError(f"no timeframe is {nanoseconds} ns long: need whole seconds")
    for unit in ("w", "d", "h", "m", "s"):
        if nanoseconds % _UNIT_NS[unit] == 0:
            return f"{nanoseconds // _UNIT_NS[unit]}{unit}"
    raise AssertionError("unreachable: every whole-second length divides by seconds")


def bin_start(ts_ns: npt.NDArray[np.int64], timeframe_ns: int) -> npt.NDArray[np.int64]:
    """Return the open time of the UTC-aligned bar of length ``timeframe_ns`` holding each time."""
    offset = _WEEK_OFFSET_NS if timeframe_ns % _WEEK_NS == 0 else 0
    return ((ts_ns - offset) // timeframe_ns) * timeframe_ns + offset


def infer_timeframe(ts_ns: npt.NDArray[np.int64]) -> str | None:
    """Guess the bar size of sorted bar times: the most common positive step.

    Returns None when there are fewer than two distinct times or the step is not whole seconds.
    """
    steps = np.diff(ts_ns)
    steps = steps[steps > 0]
    if steps.size == 0:
        return None
    values, counts = np.unique(steps, return_counts=True)
    step = int(values[int(np.argmax(counts))])
    try:
        return format_timeframe(step)
    except TimeframeError:
        return None
