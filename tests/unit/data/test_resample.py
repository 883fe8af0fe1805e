"""Resampling: OHLCV aggregation, UTC bins, complete bins only, no upsampling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trader.data.loaders import load_candles
from quantum_trader.data.resample import resample_candles
from quantum_trader.domain.errors import DataError

CandleMaker = Callable[..., pd.DataFrame]


def test_resample_candles_when_1m_to_5m_aggregates_ohlcv(candles: CandleMaker) -> None:
    df = candles(10)
    out = resample_candles(df, "5m")
    assert out["date"].dt.strftime("%H:%M").tolist() == ["00:00", "00:05"]
    first = df.iloc[:5]
    assert out.loc[0, "open"] == first["open"].iloc[0]
    assert out.loc[0, "high"] == first["high"].max()
    assert out.loc[0, "low"] == first["low"].min()
    assert out.loc[0, "close"] == first["close"].iloc[-1]
    assert out.loc[0, "volume"] == pytest.approx(first["volume"].sum())
    assert out["date"].dtype == "datetime64[ns, UTC]"


def test_resample_candles_when_edges_incomplete_drops_them(candles: CandleMaker) -> None:
    df = candles(11, start="2025-01-01 00:03")  # 00:03 .. 00:13
    out = resample_candles(df, "5m")
    assert out["date"].dt.strftime("%H:%M").tolist() == ["00:05"]


def test_resample_candles_when_gap_inside_bin_drops_that_bin(candles: CandleMaker) -> None:
    df = candles(15).drop(index=[7]).reset_index(drop=True)
    out = resample_candles(df, "5m", source_timeframe="1m")
    assert out["date"].dt.strftime("%H:%M").tolist() == ["00:00", "00:10"]


def test_resample_candles_when_1h_to_8h_aligns_to_utc(candles: CandleMaker) -> None:
    df = candles(48, start="2025-01-01 03:00", freq="1h")
    out = resample_candles(df, "8h")
    assert out["date"].dt.strftime("%d %H").tolist() == [
        "01 08",
        "01 16",
        "02 00",
        "02 08",
        "02 16",
    ]


def test_resample_candles_when_upsampling_refuses(candles: CandleMaker) -> None:
    with pytest.raises(DataError, match="upsampling"):
        resample_candles(candles(10, freq="5min"), "1m")


def test_resample_candles_when_not_a_multiple_refuses(candles: CandleMaker) -> None:
    with pytest.raises(DataError, match="whole number"):
        resample_candles(candles(10, freq="2min"), "5m")


def test_resample_candles_when_unsorted_refuses(candles: CandleMaker) -> None:
    df = candles(10).iloc[::-1].reset_index(drop=True)
    with pytest.raises(DataError, match="strictly increasing"):
        resample_candles(df, "5m")


def test_resample_candles_when_same_timeframe_returns_copy(candles: CandleMaker) -> None:
    df = candles(10)
    pd.testing.assert_frame_equal(resample_candles(df, "1m"), df)


@pytest.mark.reference_data
@pytest.mark.parametrize("base", ["BTC", "ETH", "DOGE"])
def test_resample_candles_when_real_1m_to_5m_matches_real_5m_file(perps: Path, base: str) -> None:
    one = load_candles(perps / f"{base}_USDT_USDT-1m-futures.feather")
    five = load_candles(perps / f"{base}_USDT_USDT-5m-futures.feather")
    merged = resample_candles(one, "5m").merge(five, on="date", suffixes=("_ours", "_real"))
    assert len(merged) >= 8_600
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(merged[f"{col}_ours"], merged[f"{col}_real"])
    np.testing.assert_allclose(merged["volume_ours"], merged["volume_real"], rtol=1e-6)
