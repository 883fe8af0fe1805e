"""Labels drop incomplete horizons; purging keeps every training label window out of the test."""

from __future__ import annotations

import numpy as np
import pytest

from quantum_trader.ai.labels import NO_LABEL_END, direction_labels, label_end_times
from quantum_trader.ai.validation import purge, time_split, walk_forward_folds
from quantum_trader.domain.errors import ConfigError

MIN = 60_000_000_000
DAY = 1440 * MIN


def test_direction_labels_when_horizon_incomplete_or_flat_are_missing() -> None:
    close = np.array([10.0, 11.0, 11.0, 10.0, 12.0])
    np.testing.assert_array_equal(direction_labels(close, 2), [1.0, 0.0, 1.0, np.nan, np.nan])
    np.testing.assert_array_equal(direction_labels(close, 1)[:3], [1.0, np.nan, 0.0])


def test_label_end_times_when_past_the_data_never_end() -> None:
    ts = np.arange(5, dtype=np.int64) * MIN
    np.testing.assert_array_equal(label_end_times(ts, 2)[:3], [2 * MIN, 3 * MIN, 4 * MIN])
    assert (label_end_times(ts, 2)[3:] == NO_LABEL_END).all()


def test_time_split_when_hand_built_purges_exactly_the_rows_whose_labels_reach_the_test() -> None:
    # 100 one-minute bars, horizon 5, test from bar 60: rows 55..59 have label windows that
    # end at bars 60..64, inside the test, so they go; row 54's window ends at bar 59 and stays.
    ts = np.arange(100, dtype=np.int64) * MIN
    end = label_end_times(ts, 5)
    fold = time_split(ts, end, 60 * MIN)
    np.testing.assert_array_equal(fold.train, np.arange(55))
    np.testing.assert_array_equal(fold.test, np.arange(60, 100))
    assert fold.purged == 5
    assert end[fold.train].max() < ts[fold.test].min()


def test_purge_when_embargoed_drops_rows_just_after_the_test_window() -> None:
    ts = np.arange(100, dtype=np.int64) * MIN
    end = label_end_times(ts, 5)
    candidates = np.concatenate([np.arange(0, 40), np.arange(60, 100)])
    kept, dropped = purge(candidates, ts, end, 40 * MIN, 59 * MIN, embargo_ns=10 * MIN)
    # Before: 35..39 reach into the test. After: 60..69 fall in the 10-bar embargo.
    np.testing.assert_array_equal(kept, np.concatenate([np.arange(35), np.arange(70, 100)]))
    assert dropped == 15


def test_walk_forward_when_pooled_symbols_no_train_label_overlaps_its_test_window() -> None:
    # Two symbols on one timeline, 5 days, 1-day training and test windows.
    ts_one = np.arange(5 * 1440, dtype=np.int64) * MIN
    ts = np.concatenate([ts_one, ts_one])
    end = np.concatenate([label_end_times(ts_one, 30)] * 2)
    folds = walk_forward_folds(ts, end, train_ns=DAY, test_ns=DAY, embargo_ns=30 * MIN)
    assert len(folds) == 4
    for fold in folds:
        test_ts = ts[fold.test]
        assert end[fold.train].max() < test_ts.min()
        assert ts[fold.train].max() < test_ts.min()
        assert ts[fold.train].min() >= test_ts.min() - DAY
        assert fold.purged == 2 * 30
    tested = np.concatenate([f.test for f in folds])
    assert len(np.unique(tested)) == len(tested)


def test_walk_forward_when_data_too_short_is_a_config_error() -> None:
    ts = np.arange(100, dtype=np.int64) * MIN
    with pytest.raises(ConfigError, match="too short"):
        walk_forward_folds(ts, label_end_times(ts, 5), train_ns=DAY, test_ns=DAY)
