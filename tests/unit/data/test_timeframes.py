"""Timeframe strings: parsing, pandas frequencies, formatting, inference."""

from __future__ import annotations

import numpy as np
import pytest

from quantum_trader.data.timeframes import (
    TimeframeError,
    bin_start,
    format_timeframe,
    infer_timeframe,
    parse_timeframe,
    timeframe_to_pandas_freq,
)
from quantum_trader.domain.errors import DataError

MINUTE = 60_000_000_000


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("1m", 1),
        ("5m", 5),
        ("15m", 15),
        ("1h", 60),
        ("4h", 240),
        ("8h", 480),
        ("1d", 1440),
        ("1w", 10080),
    ],
)
def test_parse_timeframe_when_valid_returns_nanoseconds(text: str, minutes: int) -> None:
    assert parse_timeframe(text) == minutes * MINUTE


def test_parse_timeframe_when_seconds_returns_nanoseconds() -> None:
    assert parse_timeframe("30s") == 30_000_000_000


@pytest.mark.parametrize("text", ["", "m", "1x", "0m", "-1m", "1.5h", "1mm", "one minute"])
def test_parse_timeframe_when_malformed_raises_naming_it(text: str) -> None:
    with pytest.raises(TimeframeError, match="timeframe") as info:
        parse_timeframe(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, DataError)
    assert isinstance(info.value, ValueError)


def test_parse_timeframe_when_month_raises() -> None:
    with pytest.raises(TimeframeError, match="months"):
        parse_timeframe("1M")


@pytest.mark.parametrize(
    ("text", "freq"), [("1m", "1min"), ("5m", "5min"), ("1h", "1h"), ("1d", "1D"), ("30s", "30s")]
)
def test_timeframe_to_pandas_freq_when_valid_returns_pandas_alias(text: str, freq: str) -> None:
    assert timeframe_to_pandas_freq(text) == freq


@pytest.mark.parametrize("text", ["1m", "5m", "1h", "8h", "1d", "1w", "90s"])
def test_format_timeframe_when_round_tripped_returns_same_string(text: str) -> None:
    assert format_timeframe(parse_timeframe(text)) == text


def test_format_timeframe_when_60_minutes_returns_1h() -> None:
    assert format_timeframe(60 * MINUTE) == "1h"


def test_infer_timeframe_when_gaps_present_returns_most_common_step() -> None:
    ts = np.array([0, 1, 2, 5, 6, 7, 20], dtype=np.int64) * 5 * MINUTE
    assert infer_timeframe(ts) == "5m"


def test_infer_timeframe_when_one_row_returns_none() -> None:
    assert infer_timeframe(np.array([0], dtype=np.int64)) is None


def test_bin_start_when_weekly_aligns_to_monday() -> None:
    # 2025-01-08 is a Wednesday; its week opens Monday 2025-01-06.
    ts = np.array([np.datetime64("2025-01-08T13:00", "ns").astype(np.int64)])
    monday = np.datetime64("2025-01-06T00:00", "ns").astype(np.int64)
    assert bin_start(ts, parse_timeframe("1w"))[0] == monday
