"""The validator on hand-made frames: one test per issue kind, plus the report API."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from quantum_trader.data.validate import (
    IssueKind,
    ValidationIssue,
    validate_candles,
    validate_funding,
    validate_mark,
)
from quantum_trader.domain.errors import DataError, DataValidationError

CandleMaker = Callable[..., pd.DataFrame]


def _kinds(report: object) -> list[tuple[IssueKind, int]]:
    return [(i.kind, i.row) for i in report.issues]  # type: ignore[attr-defined]


def test_validate_candles_when_clean_reports_no_issues(candles: CandleMaker) -> None:
    report = validate_candles(candles(50), source="clean.csv", timeframe="1m")
    assert report.ok
    assert report.clean
    assert report.issues == ()
    assert report.counts_by_kind() == {}
    assert "no issues" in report.summary()


def test_validate_candles_when_gap_reports_start_and_missing_bars(candles: CandleMaker) -> None:
    df = candles(10).drop(index=[4, 5, 6]).reset_index(drop=True)
    report = validate_candles(df, source="gap.csv", timeframe="1m")
    assert _kinds(report) == [(IssueKind.GAP, 4)]
    issue = report.issues[0]
    assert issue.ts == "2025-01-01T00:04:00Z"
    assert issue.detail.startswith("3 1m bars missing")
    assert report.missing_bars == 3
    assert issue.source == "gap.csv"


def test_validate_candles_when_no_timeframe_skips_gap_check(candles: CandleMaker) -> None:
    df = candles(10).drop(index=[4]).reset_index(drop=True)
    assert validate_candles(df, source="x", timeframe=None).clean


def test_validate_candles_when_duplicate_time_reports_later_row(candles: CandleMaker) -> None:
    df = candles(6)
    df = pd.concat([df.iloc[:3], df.iloc[[2]], df.iloc[3:]], ignore_index=True)
    report = validate_candles(df, source="dup.csv", timeframe="1m")
    assert _kinds(report) == [(IssueKind.DUPLICATE, 3)]
    assert report.issues[0].detail == "same time as row 2"


def test_validate_candles_when_time_goes_back_reports_non_monotonic(candles: CandleMaker) -> None:
    df = candles(6)
    df = df.iloc[[0, 1, 3, 2, 4, 5]].reset_index(drop=True)
    report = validate_candles(df, source="swap.csv", timeframe="1m")
    assert _kinds(report) == [(IssueKind.NON_MONOTONIC, 3)]


def test_validate_candles_when_nan_reports_row_and_column(candles: CandleMaker) -> None:
    df = candles(5)
    df.loc[2, "close"] = np.nan
    df.loc[4, "volume"] = np.inf
    report = validate_candles(df, source="nan.csv", timeframe="1m")
    assert _kinds(report) == [(IssueKind.NAN, 2), (IssueKind.NAN, 4)]
    assert report.issues[0].detail == "close is nan"
    assert report.issues[1].detail == "volume is inf"


def test_validate_candles_when_date_missing_reports_nan_without_time(candles: CandleMaker) -> None:
    df = candles(5)
    df.loc[1, "date"] = pd.NaT
    report = validate_candles(df, source="nat.csv", timeframe="1m")
    assert (IssueKind.NAN, 1) in _kinds(report)
    nat_issue = next(i for i in report.issues if i.kind is IssueKind.NAN)
    assert nat_issue.ts is None
    assert "date is missing" in nat_issue.detail


def test_validate_candles_when_high_below_low_reports_once(candles: CandleMaker) -> None:
    df = candles(5)
    df.loc[3, ["high", "low"]] = [df.loc[3, "low"], df.loc[3, "high"]]
    report = validate_candles(df, source="x", timeframe="1m")
    assert _kinds(report) == [(IssueKind.HIGH_BELOW_LOW, 3)]


def test_validate_candles_when_high_below_body_reports_it(candles: CandleMaker) -> None:
    df = candles(5)
    df.loc[1, "high"] = max(df.loc[1, "open"], df.loc[1, "close"]) - 0.1
    df.loc[1, "low"] = df.loc[1, "high"] - 5
    report = validate_candles(df, source="x", timeframe="1m")
    assert _kinds(report) == [(IssueKind.HIGH_BELOW_BODY, 1)]


def test_validate_candles_when_low_above_body_reports_it(candles: CandleMaker) -> None:
    df = candles(5)
    df.loc[2, "low"] = min(df.loc[2, "open"], df.loc[2, "close"]) + 0.1
    report = validate_candles(df, source="x", timeframe="1m")
    assert _kinds(report) == [(IssueKind.LOW_ABOVE_BODY, 2)]


def test_validate_candles_when_price_not_positive_reports_it(candles: CandleMaker) -> None:
    df = candles([1.0, 1.0, 1.0])
    df.loc[1, ["open", "high", "low", "close"]] = [0.0, 0.0, -1.0, 0.0]
    df.loc[2, "open"] = 0.0
    df.loc[2, "low"] = -0.5
    report = validate_candles(df, source="x", timeframe="1m")
    assert _kinds(report) == [(IssueKind.NON_POSITIVE_PRICE, 1), (IssueKind.NON_POSITIVE_PRICE, 2)]


def test_validate_candles_when_volume_negative_reports_it(candles: CandleMaker) -> None:
    df = candles(4)
    df.loc[0, "volume"] = -1.0
    report = validate_candles(df, source="x", timeframe="1m")
    assert _kinds(report) == [(IssueKind.NEGATIVE_VOLUME, 0)]


def test_validate_candles_when_time_off_grid_reports_it(candles: CandleMaker) -> None:
    df = candles(4, start="2025-01-01 00:00:30")
    report = validate_candles(df, source="x", timeframe="1m")
    assert [k for k, _ in _kinds(report)] == [IssueKind.OFF_GRID] * 4


def test_validate_candles_when_5m_data_checked_as_1m_reports_gaps(candles: CandleMaker) -> None:
    report = validate_candles(candles(4, freq="5min"), source="x", timeframe="1m")
    assert report.counts_by_kind() == {IssueKind.GAP: 3}
    assert report.missing_bars == 12


def test_validate_candles_when_column_missing_raises_data_error(candles: CandleMaker) -> None:
    with pytest.raises(DataError, match=r"x\.csv: missing column"):
        validate_candles(candles(3).drop(columns="volume"), source="x.csv", timeframe="1m")


def test_validate_candles_when_date_not_datetime_raises_data_error(candles: CandleMaker) -> None:
    df = candles(3)
    df["date"] = ["a", "b", "c"]
    with pytest.raises(DataError, match="must hold datetimes"):
        validate_candles(df, source="x", timeframe="1m")


def test_validation_report_when_errors_raises_with_summary_and_hint(candles: CandleMaker) -> None:
    df = candles(10).drop(index=[4]).reset_index(drop=True)
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    report = validate_candles(df, source="bad.csv", timeframe="1m")
    assert not report.ok
    assert report.counts_by_kind() == {
        IssueKind.GAP: 1,
        IssueKind.DUPLICATE: 1,
        IssueKind.NON_MONOTONIC: 1,
    }
    with pytest.raises(DataValidationError) as info:
        report.raise_if_errors()
    text = str(info.value)
    assert "bad.csv" in text
    assert "--drop-duplicates" in text
    assert "--fill-gaps" in text
    assert "--sort" in text
    assert len(info.value.issues) == 3


def test_validation_report_when_many_issues_summary_says_how_many_more(
    candles: CandleMaker,
) -> None:
    df = candles(30)
    df.loc[:, "volume"] = -1.0
    summary = validate_candles(df, source="x", timeframe="1m").summary(max_issues=4)
    assert "... and 26 more" in summary


def test_validation_issue_when_printed_names_source_row_and_kind() -> None:
    issue = ValidationIssue(IssueKind.GAP, "f.csv", 7, "2025-01-01T00:00:00Z", "2 bars missing")
    assert str(issue) == "f.csv: row 7 (2025-01-01T00:00:00Z): gap: 2 bars missing"


def test_validate_candles_when_43k_rows_runs_fast(candles: CandleMaker) -> None:
    df = candles(43_200)
    start = time.perf_counter()
    assert validate_candles(df, source="x", timeframe="1m").clean
    assert time.perf_counter() - start < 0.5


def _funding(rates: list[float], times: list[str] | None = None) -> pd.DataFrame:
    dates = pd.date_range("2025-01-01", periods=len(rates), freq="8h", tz="UTC", unit="ns")
    if times is not None:
        dates = pd.DatetimeIndex(pd.to_datetime(times, utc=True)).as_unit("ns")
    return pd.DataFrame({"date": dates, "rate": np.asarray(rates, dtype=np.float64)})


def test_validate_funding_when_clean_reports_no_issues() -> None:
    assert validate_funding(_funding([1e-4, -2e-4, 3e-4]), source="f").clean


def test_validate_funding_when_rate_absurd_warns_but_stays_ok() -> None:
    report = validate_funding(_funding([1e-4, 0.2, 3e-4]), source="f")
    assert _kinds(report) == [(IssueKind.ABSURD_FUNDING, 1)]
    assert report.ok
    assert not report.clean
    assert report.warnings == report.issues


def test_validate_funding_when_nan_duplicate_and_backwards_reports_each() -> None:
    times = ["2025-01-01 00:00", "2025-01-01 08:00", "2025-01-01 08:00", "2025-01-01 04:00"]
    report = validate_funding(_funding([1e-4, np.nan, 1e-4, 1e-4], times), source="f")
    assert _kinds(report) == [
        (IssueKind.NAN, 1),
        (IssueKind.DUPLICATE, 2),
        (IssueKind.NON_MONOTONIC, 3),
    ]
    assert not report.ok


def test_validate_mark_when_price_not_positive_reports_it() -> None:
    dates = pd.date_range("2025-01-01", periods=3, freq="8h", tz="UTC", unit="ns")
    df = pd.DataFrame({"date": dates, "mark": [100.0, 0.0, 101.0]})
    assert _kinds(validate_mark(df, source="m")) == [(IssueKind.NON_POSITIVE_PRICE, 1)]
