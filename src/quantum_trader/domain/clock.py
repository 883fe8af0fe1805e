"""Time as an injected object: the data's timestamps in a backtest, the wall clock live.

No component reads the system time directly, so backtests are deterministic and tests can move
time. Timestamps are integer nanoseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import time
from typing import Protocol

NANOS_PER_SECOND = 1_000_000_000
NANOS_PER_MINUTE = 60 * NANOS_PER_SECOND
NANOS_PER_HOUR = 60 * NANOS_PER_MINUTE
NANOS_PER_DAY = 24 * NANOS_PER_HOUR


class Clock(Protocol):
    """Anything that tells the current time in UTC nanoseconds."""

    def now_ns(self) -> int:
        """Return the current time in nanoseconds since the epoch."""
        ...


class ManualClock:
    """A clock that only moves when told to: backtests and tests drive it."""

    __slots__ = ("_now_ns",)

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        """Return the time last set."""
        return self._now_ns

    def set(self, ts_ns: int) -> None:
        """Move the clock to ``ts_ns``; time never runs backwards."""
        if ts_ns < self._now_ns:
            raise ValueError(f"clock cannot move backwards: {ts_ns} < {self._now_ns}")
        self._now_ns = ts_ns

    def advance(self, delta_ns: int) -> None:
        """Move the clock forward by ``delta_ns``."""
        self.set(self._now_ns + delta_ns)


class WallClock:
    """The system's UTC wall clock: the one sanctioned reader of real time (live, paper, CLI)."""

    __slots__ = ()

    def now_ns(self) -> int:
        """Return the current wall-clock time in nanoseconds since the epoch."""
        return time.time_ns()
