"""The EquityMarksStore contract, run against every backend (see ``conftest.OPENERS``)."""

from __future__ import annotations

import math

import pytest

from quantum_trader.domain.errors import IntegrityError
from quantum_trader.stores.ports import EquityMarks, EquityMarksStore

MARKS = EquityMarks(
    peak_equity=123_456.789_012_345_6,
    peak_ts_ns=1_700_000_000_123_456_789,
    day_start_equity=0.1 + 0.2,
    day="2024-03-01",
)


def test_load_when_nothing_saved_returns_zero_marks(equity_marks_store: EquityMarksStore) -> None:
    marks = equity_marks_store.load()
    assert marks == EquityMarks()
    assert type(marks.peak_equity) is float


def test_save_when_values_set_round_trips_exactly(equity_marks_store: EquityMarksStore) -> None:
    equity_marks_store.save(MARKS)
    loaded = equity_marks_store.load()
    assert loaded == MARKS
    assert loaded.day_start_equity == 0.1 + 0.2  # bit for bit, not approximately


def test_save_when_zero_and_empty_keeps_zero_float_and_empty_string(
    equity_marks_store: EquityMarksStore,
) -> None:
    equity_marks_store.save(MARKS)
    equity_marks_store.save(EquityMarks(0.0, 0, 0.0, ""))
    loaded = equity_marks_store.load()
    assert loaded == EquityMarks()
    assert type(loaded.peak_equity) is float
    assert type(loaded.day_start_equity) is float
    assert loaded.day == ""


def test_save_when_equity_negative_round_trips(equity_marks_store: EquityMarksStore) -> None:
    marks = EquityMarks(peak_equity=10.0, peak_ts_ns=1, day_start_equity=-42.5, day="2024-01-01")
    equity_marks_store.save(marks)
    assert equity_marks_store.load() == marks


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_save_when_equity_not_finite_raises_integrity_error_and_keeps_previous(
    equity_marks_store: EquityMarksStore, value: float
) -> None:
    equity_marks_store.save(MARKS)
    with pytest.raises(IntegrityError, match="peak_equity"):
        equity_marks_store.save(EquityMarks(value, 1, 1.0, "2024-01-01"))
    assert equity_marks_store.load() == MARKS
