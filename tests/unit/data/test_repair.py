"""Repairs: only what is asked, logged, and refused where a person must decide."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from quantum_trader.data.repair import repair_candles
from quantum_trader.data.validate import IssueKind, validate_candles
from quantum_trader.domain.errors import DataValidationError

CandleMaker = Callable[..., pd.DataFrame]


def _with_gap(candles: CandleMaker) -> pd.DataFrame:
    return candles(10).drop(index=[3, 4, 7]).reset_index(drop=True)


def test_repair_candles_when_nothing_asked_returns_input_unchanged(candles: CandleMaker) -> None:
    df = _with_gap(candles)
    out, log = repair_candles(df, timeframe="1m")
    assert out is df
    assert not log.changed
    assert log.summary() == "no changes"


def test_repair_candles_when_fill_gaps_inserts_flat_bars_at_previous_close(
    candles: CandleMaker,
) -> None:
    df = _with_gap(candles)
    out, log = repair_candles(df, timeframe="1m", fill_gaps=True)
    assert len(out) == 10
    assert validate_candles(out, source="x", timeframe="1m").clean
    pd.testing.assert_frame_equal(out.drop(index=[3, 4, 7]).reset_index(drop=True), df)
    prev_close = df.loc[2, "close"]
    for row in (3, 4):
        assert out.loc[row, ["open", "high", "low", "close"]].tolist() == [prev_close] * 4
        assert out.loc[row, "volume"] == 0.0
    assert out.loc[7, "close"] == df.loc[4, "close"]
    assert log.bars_inserted == 3
    assert [(g.after_row, g.start, g.bars) for g in log.filled_gaps] == [
        (2, "2025-01-01T00:03:00Z", 2),
        (4, "2025-01-01T00:07:00Z", 1),
    ]
    assert "filled 2 gaps with 3 flat bars" in log.summary()
    assert out["date"].dtype == "datetime64[ns, UTC]"


def test_repair_candles_when_drop_duplicates_keeps_first_and_logs_rows(
    candles: CandleMaker,
) -> None:
    df = candles(5)
    copy = df.iloc[[1]].copy()
    copy["close"] = 999.0
    copy["high"] = 1000.0
    df = pd.concat([df.iloc[:2], copy, df.iloc[2:], df.iloc[[4]]], ignore_index=True)
    out, log = repair_candles(df, timeframe="1m", drop_duplicates=True)
    assert log.dropped_rows == (2, 6)
    assert len(out) == 5
    assert 999.0 not in out["close"].to_numpy()
    assert validate_candles(out, source="x", timeframe="1m").clean


def test_repair_candles_when_sort_orders_by_time_and_counts_moves(candles: CandleMaker) -> None:
    df = candles(6)
    shuffled = df.iloc[[0, 3, 1, 2, 5, 4]].reset_index(drop=True)
    out, log = repair_candles(shuffled, timeframe="1m", sort=True)
    pd.testing.assert_frame_equal(out, df)
    assert log.moved_rows == 5


def test_repair_candles_when_all_three_applied_order_is_sort_dedup_fill(
    candles: CandleMaker,
) -> None:
    df = candles(8).drop(index=[5]).reset_index(drop=True)
    messy = pd.concat([df.iloc[[3, 0, 1, 2]], df.iloc[[1]], df.iloc[4:]], ignore_index=True)
    out, log = repair_candles(
        messy, timeframe="1m", sort=True, drop_duplicates=True, fill_gaps=True
    )
    assert validate_candles(out, source="x", timeframe="1m").clean
    assert len(out) == 8
    assert log.dropped_rows == (4,)
    assert log.bars_inserted == 1


def test_repair_candles_when_nan_present_refuses(candles: CandleMaker) -> None:
    df = _with_gap(candles)
    df.loc[1, "close"] = np.nan
    with pytest.raises(DataValidationError, match="need a person") as info:
        repair_candles(df, timeframe="1m", fill_gaps=True, source="nan.csv")
    assert "nan.csv" in str(info.value)
    assert [i.kind for i in info.value.issues] == [IssueKind.NAN]  # type: ignore[attr-defined]


def test_repair_candles_when_high_below_low_refuses(candles: CandleMaker) -> None:
    df = candles(5)
    df.loc[2, ["high", "low"]] = [90.0, 110.0]
    with pytest.raises(DataValidationError, match="high_below_low"):
        repair_candles(df, timeframe="1m", drop_duplicates=True)


def test_repair_candles_when_fill_asked_on_unsorted_rows_says_sort_first(
    candles: CandleMaker,
) -> None:
    df = candles(6).iloc[[0, 2, 1, 3, 5]].reset_index(drop=True)
    with pytest.raises(DataValidationError, match="--sort"):
        repair_candles(df, timeframe="1m", fill_gaps=True)


def test_repair_candles_when_input_repaired_leaves_input_frame_untouched(
    candles: CandleMaker,
) -> None:
    df = _with_gap(candles)
    before = df.copy()
    repair_candles(df, timeframe="1m", fill_gaps=True, sort=True, drop_duplicates=True)
    pd.testing.assert_frame_equal(df, before)
