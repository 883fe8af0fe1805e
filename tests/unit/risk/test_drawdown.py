"""DrawdownMonitor: hand-computed drawdown and daily loss, durable peak, UTC day rotation;
the vectorized first_breach against a plain loop and against the monitor itself."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain.clock import NANOS_PER_DAY, NANOS_PER_HOUR, ManualClock
from quantum_trader.domain.errors import IntegrityError
from quantum_trader.risk.drawdown import (
    DrawdownMonitor,
    DrawdownReading,
    day_start_series,
    first_breach,
    utc_day,
)
from quantum_trader.stores.ports import EquityMarks

DAY0 = 20_000 * NANOS_PER_DAY  # 2024-10-04 00:00 UTC


class CountingMarksStore:
    """An EquityMarksStore that counts saves and can be told to fail."""

    def __init__(self, marks: EquityMarks | None = None) -> None:
        self.marks = marks or EquityMarks()
        self.saves: list[EquityMarks] = []
        self.fail = False

    def load(self) -> EquityMarks:
        return self.marks

    def save(self, marks: EquityMarks) -> None:
        if self.fail:
            raise IntegrityError("disk full")
        self.saves.append(marks)
        self.marks = marks


def test_utc_day_when_one_nanosecond_before_midnight_is_previous_day() -> None:
    assert utc_day(0) == "1970-01-01"
    assert utc_day(DAY0 - 1) == "2024-10-03"
    assert utc_day(DAY0) == "2024-10-04"


def test_update_when_first_equity_sets_peak_and_day_start() -> None:
    store = CountingMarksStore()
    reading = DrawdownMonitor(store, ManualClock(DAY0)).update(10_000.0)
    assert reading == DrawdownReading(10_000.0, 10_000.0, 0.0, 10_000.0, 0.0, "2024-10-04", DAY0)
    assert store.marks == EquityMarks(10_000.0, DAY0, 10_000.0, "2024-10-04")


def test_update_when_equity_falls_computes_hand_drawdown_and_daily_loss() -> None:
    monitor = DrawdownMonitor(CountingMarksStore(), ManualClock())
    monitor.update(10_000.0, DAY0)
    monitor.update(12_000.0, DAY0 + NANOS_PER_HOUR)
    reading = monitor.update(9_000.0, DAY0 + 2 * NANOS_PER_HOUR)
    assert reading.peak == 12_000.0
    assert reading.drawdown == pytest.approx(0.25)  # (12000 - 9000) / 12000
    assert reading.day_start_equity == 10_000.0
    assert reading.daily_loss == pytest.approx(0.10)  # (10000 - 9000) / 10000


def test_update_when_equity_rises_above_day_start_reports_negative_daily_loss() -> None:
    monitor = DrawdownMonitor(CountingMarksStore(), ManualClock())
    monitor.update(10_000.0, DAY0)
    assert monitor.update(10_500.0, DAY0 + 1).daily_loss == pytest.approx(-0.05)


def test_update_when_peak_unchanged_and_same_day_saves_nothing() -> None:
    store = CountingMarksStore()
    monitor = DrawdownMonitor(store, ManualClock())
    monitor.update(10_000.0, DAY0)
    monitor.update(9_000.0, DAY0 + 1)
    monitor.update(9_500.0, DAY0 + 2)
    assert len(store.saves) == 1
    monitor.update(10_001.0, DAY0 + 3)
    assert len(store.saves) == 2
    assert store.marks.peak_equity == 10_001.0
    assert store.marks.peak_ts_ns == DAY0 + 3


def test_update_when_restarted_keeps_durable_peak() -> None:
    store = CountingMarksStore()
    DrawdownMonitor(store, ManualClock()).update(20_000.0, DAY0)
    restarted = DrawdownMonitor(store, ManualClock())
    reading = restarted.update(15_000.0, DAY0 + NANOS_PER_HOUR)
    assert reading.peak == 20_000.0
    assert reading.drawdown == pytest.approx(0.25)
    assert reading.day_start_equity == 20_000.0  # same UTC day: the stored day start holds


def test_update_when_utc_day_turns_takes_first_equity_as_day_start() -> None:
    store = CountingMarksStore()
    monitor = DrawdownMonitor(store, ManualClock())
    monitor.update(10_000.0, DAY0)
    late = monitor.update(9_000.0, DAY0 + NANOS_PER_DAY - 1)
    assert (late.day, late.day_start_equity) == ("2024-10-04", 10_000.0)
    first = monitor.update(9_100.0, DAY0 + NANOS_PER_DAY)
    assert (first.day, first.day_start_equity, first.daily_loss) == ("2024-10-05", 9_100.0, 0.0)
    second = monitor.update(8_190.0, DAY0 + NANOS_PER_DAY + 1)
    assert second.daily_loss == pytest.approx(0.10)
    assert second.peak == 10_000.0
    assert store.marks.day == "2024-10-05"


def test_update_when_reading_older_than_stored_day_keeps_day() -> None:
    monitor = DrawdownMonitor(CountingMarksStore(), ManualClock())
    monitor.update(10_000.0, DAY0 + NANOS_PER_DAY)
    reading = monitor.update(9_000.0, DAY0)
    assert (reading.day, reading.day_start_equity) == ("2024-10-05", 10_000.0)


def test_update_when_no_timestamp_uses_clock() -> None:
    clock = ManualClock(DAY0 + 5)
    reading = DrawdownMonitor(CountingMarksStore(), clock).update(1.0)
    assert reading.ts_ns == DAY0 + 5


@pytest.mark.parametrize("equity", [float("nan"), float("inf"), float("-inf")])
def test_update_when_equity_not_finite_raises(equity: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        DrawdownMonitor(CountingMarksStore(), ManualClock()).update(equity, DAY0)


def test_update_when_save_fails_raises_and_keeps_old_marks() -> None:
    store = CountingMarksStore()
    monitor = DrawdownMonitor(store, ManualClock())
    monitor.update(10_000.0, DAY0)
    store.fail = True
    with pytest.raises(IntegrityError):
        monitor.update(11_000.0, DAY0 + 1)
    assert monitor.marks.peak_equity == 10_000.0
    store.fail = False
    assert monitor.update(11_000.0, DAY0 + 2).peak == 11_000.0
    assert store.marks.peak_equity == 11_000.0


def test_update_when_no_positive_peak_reports_zero_ratios() -> None:
    reading = DrawdownMonitor(CountingMarksStore(), ManualClock()).update(-5.0, DAY0)
    assert (reading.drawdown, reading.daily_loss) == (0.0, 0.0)


# ---------------------------------------------------------------- vectorized


def test_day_start_series_when_days_turn_repeats_first_equity_of_each_day() -> None:
    equity = [100.0, 90.0, 95.0, 80.0, 85.0]
    ts = [DAY0, DAY0 + 1, DAY0 + NANOS_PER_DAY, DAY0 + NANOS_PER_DAY + 1, DAY0 + 3 * NANOS_PER_DAY]
    assert day_start_series(equity, ts).tolist() == [100.0, 100.0, 95.0, 95.0, 85.0]


def test_day_start_series_when_empty_or_bad_input_handles_it() -> None:
    assert day_start_series([], []).size == 0
    with pytest.raises(ValueError, match="one length"):
        day_start_series([1.0], [1, 2])
    with pytest.raises(ValueError, match="must not decrease"):
        day_start_series([1.0, 2.0], [NANOS_PER_DAY, 0])


def test_first_breach_when_drawdown_reaches_limit_returns_that_index() -> None:
    equity = np.array([100.0, 110.0, 99.0, 88.0, 80.0])
    day_start = np.full(5, 100.0)
    # drawdowns vs peak 110: 0, 0, 0.1, 0.2 (= limit, breach), 0.2727
    assert first_breach(equity, 0.0, day_start, 0.2, 1.0) == 3


def test_first_breach_when_daily_loss_reaches_limit_returns_that_index() -> None:
    equity = np.array([100.0, 97.0, 95.0])
    assert first_breach(equity, 0.0, np.full(3, 100.0), 0.5, 0.05) == 2


def test_first_breach_when_start_peak_higher_counts_from_it() -> None:
    equity = np.array([90.0, 95.0])
    assert first_breach(equity, 100.0, equity.copy(), 0.10, 1.0) == 0


def test_first_breach_when_never_breached_returns_none() -> None:
    equity = np.array([100.0, 101.0, 99.0])
    assert first_breach(equity, 0.0, np.full(3, 100.0), 0.2, 0.05) is None
    assert first_breach(np.array([]), 0.0, np.array([]), 0.2, 0.05) is None


def test_first_breach_when_inputs_malformed_raises() -> None:
    with pytest.raises(ValueError, match="one length"):
        first_breach(np.ones(3), 0.0, np.ones(2), 0.2, 0.05)
    with pytest.raises(ValueError, match="finite"):
        first_breach(np.array([1.0, np.nan]), 0.0, np.ones(2), 0.2, 0.05)


def _loop_first_breach(
    equity: list[float], start_peak: float, day_start: list[float], max_dd: float, max_dl: float
) -> int | None:
    peak = start_peak
    for i, (e, d) in enumerate(zip(equity, day_start, strict=True)):
        peak = max(peak, e)
        dd = (peak - e) / peak if peak > 0 else 0.0
        dl = (d - e) / d if d > 0 else 0.0
        if dd >= max_dd or dl >= max_dl:
            return i
    return None


equities = st.lists(
    st.floats(min_value=1.0, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=0,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    equity=equities,
    start_peak=st.floats(min_value=0.0, max_value=1e6),
    max_dd=st.floats(min_value=0.0, max_value=1.0),
    max_dl=st.floats(min_value=0.0, max_value=1.0),
    data=st.data(),
)
def test_first_breach_when_random_path_equals_plain_loop(
    equity: list[float], start_peak: float, max_dd: float, max_dl: float, data: st.DataObject
) -> None:
    day_start = data.draw(
        st.lists(
            st.floats(min_value=-10.0, max_value=1e6), min_size=len(equity), max_size=len(equity)
        )
    )
    got = first_breach(np.array(equity), start_peak, np.array(day_start), max_dd, max_dl)
    assert got == _loop_first_breach(equity, start_peak, day_start, max_dd, max_dl)


@settings(max_examples=100, deadline=None)
@given(
    equity=equities,
    gaps=st.lists(st.integers(min_value=0, max_value=NANOS_PER_DAY), min_size=60, max_size=60),
    max_dd=st.floats(min_value=0.01, max_value=0.5),
    max_dl=st.floats(min_value=0.01, max_value=0.5),
)
def test_first_breach_when_fed_monitor_series_matches_monitor_readings(
    equity: list[float], gaps: list[int], max_dd: float, max_dl: float
) -> None:
    ts = (DAY0 + np.cumsum(np.array(gaps[: len(equity)], dtype=np.int64))).tolist()
    monitor = DrawdownMonitor(CountingMarksStore(), ManualClock())
    expected = None
    for i, (e, t) in enumerate(zip(equity, ts, strict=True)):
        reading = monitor.update(e, t)
        if expected is None and (reading.drawdown >= max_dd or reading.daily_loss >= max_dl):
            expected = i
    day_start = day_start_series(equity, ts)
    assert first_breach(np.array(equity), 0.0, day_start, max_dd, max_dl) == expected
