"""The loaders and validator against real Binance and freqtrade files (skipped without them)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trader.data.loaders import load_candles, load_funding, load_mark, load_market
from quantum_trader.data.repair import repair_candles
from quantum_trader.data.validate import (
    IssueKind,
    validate_candles,
    validate_funding,
    validate_mark,
)

pytestmark = pytest.mark.reference_data

NINE = (
    "ADAUSDT",
    "BNBUSDT",
    "BTCUSDT",
    "DOGEUSDT",
    "DOTUSDT",
    "ETHUSDT",
    "LTCUSDT",
    "SOLUSDT",
    "XRPUSDT",
)


def test_load_candles_when_btc_perp_1m_first_row_matches_binance(perps: Path) -> None:
    df = load_candles(perps / "BTC_USDT_USDT-1m-futures.feather")
    assert len(df) == 43_199
    assert df.loc[0, "date"] == pd.Timestamp("2025-05-25 10:33", tz="UTC")
    assert df.loc[0, "open"] == 107187.4
    assert df["date"].dtype == "datetime64[ns, UTC]"


def test_load_funding_when_btc_funding_read_gives_first_rates(perps: Path) -> None:
    funding = load_funding(perps / "BTC_USDT_USDT-8h-funding_rate.feather")
    assert funding["rate"].iloc[:3].tolist() == pytest.approx(
        [3.651e-05, 7.331e-05, 1e-04], rel=1e-9
    )
    assert list(funding.columns) == ["date", "rate"]
    assert len(funding) == 89
    assert validate_funding(funding, source="btc").clean


def test_load_mark_when_btc_mark_read_gives_open_of_each_8h_candle(perps: Path) -> None:
    mark = load_mark(perps / "BTC_USDT_USDT-8h-mark.feather")
    assert mark.loc[0, "date"] == pd.Timestamp("2025-05-25 16:00", tz="UTC")
    assert mark.loc[0, "mark"] == 106928.0
    assert validate_mark(mark, source="btc").clean


def test_load_market_when_nine_perps_loaded_all_clean_and_fast(perps: Path) -> None:
    load_market(perps, ["BTCUSDT"], "1m")  # warm the imports and the file cache
    start = time.perf_counter()
    market = load_market(perps, NINE, "1m")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"loading nine 1m files took {elapsed:.2f} s"
    assert list(market) == list(NINE)
    for data in market.values():
        assert 43_199 <= len(data.candles) <= 43_200
        assert data.funding is not None
        assert len(data.funding) == 89
        assert data.mark is not None
        assert len(data.mark) == 89


def test_load_market_when_5m_asked_loads_the_5m_files(perps: Path) -> None:
    market = load_market(perps, ["ETHUSDT"], "5m")
    assert len(market["ETHUSDT"].candles) == 8_639


def test_validate_candles_when_unittest_btc_checked_reports_717_missing_minutes(
    reference_data: Path,
) -> None:
    df = load_candles(reference_data / "freqtrade_testdata" / "UNITTEST_BTC-1m.feather")
    report = validate_candles(df, source="UNITTEST_BTC-1m", timeframe="1m")
    assert report.missing_bars == 717
    assert set(report.counts_by_kind()) == {IssueKind.GAP}
    ts = df["date"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    expected_minutes = (ts[-1] - ts[0]) // 60_000_000_000 + 1
    assert expected_minutes - len(df) == 717
    assert sum(int(i.detail.split()[0].replace(",", "")) for i in report.issues) == 717
    # Each gap's row is the first bar after it, and its time the first missing minute.
    for issue in report.issues:
        after = df["date"].iloc[issue.row]
        before = df["date"].iloc[issue.row - 1]
        assert pd.Timestamp(issue.ts) == before + pd.Timedelta("1min")
        assert after - before > pd.Timedelta("1min")


def test_repair_candles_when_unittest_btc_filled_validates_clean(reference_data: Path) -> None:
    df = load_candles(reference_data / "freqtrade_testdata" / "UNITTEST_BTC-1m.feather")
    out, log = repair_candles(df, timeframe="1m", fill_gaps=True)
    assert log.bars_inserted == 717
    assert len(out) == len(df) + 717
    assert validate_candles(out, source="x", timeframe="1m").clean


@pytest.mark.parametrize(
    ("name", "missing"), [("ADA_BTC-5m", 40), ("TRX_BTC-5m", 6), ("XRP_ETH-1m", 1091)]
)
def test_validate_candles_when_freqtrade_files_checked_counts_missing_candles(
    reference_data: Path, name: str, missing: int
) -> None:
    df = load_candles(reference_data / "freqtrade_testdata" / f"{name}.feather")
    report = validate_candles(df, source=name, timeframe=name.split("-")[1])
    assert report.missing_bars == missing


def test_load_futures_when_old_xrp_files_read_funding_range_and_nan_volume_mark(
    reference_data: Path,
) -> None:
    folder = reference_data / "freqtrade_testdata" / "futures"
    funding = load_funding(folder / "XRP_USDT_USDT-8h-funding_rate.feather")
    assert funding["rate"].min() == pytest.approx(-0.002193, abs=1e-6)
    assert funding["rate"].max() == pytest.approx(0.000583, abs=1e-6)
    mark = load_mark(folder / "XRP_USDT_USDT-1h-mark.feather")  # volume is NaN there: not used
    assert validate_mark(mark, source="xrp").clean
    market = load_market(folder, ["XRP/USDT:USDT"], "5m")["XRP/USDT:USDT"]
    assert len(market.candles) == 1_999
    assert market.mark is not None
    assert len(market.mark) == 91
