"""load_market and the file-name catalog: finding, concatenating, validating, explaining."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from quantum_trader.data.catalog import (
    FileKind,
    Layout,
    candle_filename,
    exchange_symbol,
    funding_filename,
    mark_filename,
    parse_data_filename,
    split_symbol,
    write_candles,
    write_funding,
    write_mark,
)
from quantum_trader.data.loaders import load_market
from quantum_trader.domain.errors import DataError, DataValidationError

CandleMaker = Callable[..., pd.DataFrame]
BinanceCsv = Callable[..., str]


def _funding(n: int = 3) -> pd.DataFrame:
    dates = pd.date_range("2025-01-01", periods=n, freq="8h", tz="UTC", unit="ns")
    return pd.DataFrame({"date": dates, "rate": [1e-4] * n})


def _mark(n: int = 3) -> pd.DataFrame:
    dates = pd.date_range("2025-01-01", periods=n, freq="8h", tz="UTC", unit="ns")
    return pd.DataFrame({"date": dates, "mark": [100.0] * n})


# ---------------------------------------------------------------- catalog


@pytest.mark.parametrize(
    ("name", "symbol", "timeframe", "kind", "layout", "market"),
    [
        (
            "BTC_USDT_USDT-1m-futures.feather",
            "BTCUSDT",
            "1m",
            FileKind.CANDLES,
            Layout.FREQTRADE,
            "futures",
        ),
        ("BTC_USDT-5m.parquet", "BTCUSDT", "5m", FileKind.CANDLES, Layout.FREQTRADE, "spot"),
        (
            "ETH_USDT_USDT-8h-funding_rate.feather",
            "ETHUSDT",
            "8h",
            FileKind.FUNDING,
            Layout.FREQTRADE,
            "futures",
        ),
        ("ETH_USDT_USDT-8h-mark.csv", "ETHUSDT", "8h", FileKind.MARK, Layout.FREQTRADE, "futures"),
        (
            "1000PEPE_USDT_USDT-1h-futures.feather",
            "1000PEPEUSDT",
            "1h",
            FileKind.CANDLES,
            Layout.FREQTRADE,
            "futures",
        ),
        ("BTCUSDT-1m-2025-05.zip", "BTCUSDT", "1m", FileKind.CANDLES, Layout.BINANCE, ""),
        ("BTCUSDT-1s-2025-05-01.csv", "BTCUSDT", "1s", FileKind.CANDLES, Layout.BINANCE, ""),
        ("BTCUSDT-fundingRate-2025-05.zip", "BTCUSDT", None, FileKind.FUNDING, Layout.BINANCE, ""),
    ],
)
def test_parse_data_filename_when_known_scheme_returns_what_it_holds(
    name: str, symbol: str, timeframe: str | None, kind: FileKind, layout: Layout, market: str
) -> None:
    info = parse_data_filename(name)
    assert info is not None
    assert (info.symbol, info.timeframe, info.kind, info.layout, info.market) == (
        symbol,
        timeframe,
        kind,
        layout,
        market,
    )


@pytest.mark.parametrize(
    "name", ["XRP_ETH-trades.feather", "notes.csv", "BTC_USDT_USDT-1m.feather", "README.md"]
)
def test_parse_data_filename_when_unknown_returns_none(name: str) -> None:
    assert parse_data_filename(name) is None


@pytest.mark.parametrize(
    ("given", "symbol"),
    [
        ("BTC/USDT:USDT", "BTCUSDT"),
        ("btc/usdt", "BTCUSDT"),
        ("BTC_USDT", "BTCUSDT"),
        ("ETHBTC", "ETHBTC"),
    ],
)
def test_exchange_symbol_when_other_spellings_returns_exchange_style(
    given: str, symbol: str
) -> None:
    assert exchange_symbol(given) == symbol


@pytest.mark.parametrize(
    ("symbol", "parts"),
    [
        ("BTCUSDT", ("BTC", "USDT")),
        ("ETHUSDC", ("ETH", "USDC")),
        ("USDCUSDT", ("USDC", "USDT")),
        ("UNITTESTBTC", ("UNITTEST", "BTC")),
    ],
)
def test_split_symbol_when_known_quote_returns_base_and_quote(
    symbol: str, parts: tuple[str, str]
) -> None:
    assert split_symbol(symbol) == parts


def test_split_symbol_when_unknown_quote_raises() -> None:
    with pytest.raises(DataError, match="cannot tell the base and quote"):
        split_symbol("FOOBAR")


def test_filenames_when_built_match_freqtrade_names() -> None:
    assert candle_filename("BTCUSDT", "1m") == "BTC_USDT_USDT-1m-futures.feather"
    assert candle_filename("BTCUSDT", "5m", fmt="csv", market="spot") == "BTC_USDT-5m.csv"
    assert funding_filename("ETHUSDT") == "ETH_USDT_USDT-8h-funding_rate.feather"
    assert mark_filename("ETHUSDT", fmt="parquet") == "ETH_USDT_USDT-8h-mark.parquet"
    with pytest.raises(DataError, match="unknown data format"):
        candle_filename("BTCUSDT", "1m", fmt="xlsx")


# ---------------------------------------------------------------- load_market


def test_load_market_when_freqtrade_folder_loads_candles_funding_and_mark(
    tmp_path: Path, candles: CandleMaker
) -> None:
    write_candles(candles(30), tmp_path / "BTC_USDT_USDT-1m-futures.feather")
    write_candles(candles(30), tmp_path / "ETH_USDT-1m.parquet")
    write_funding(_funding(), tmp_path / "BTC_USDT_USDT-8h-funding_rate.feather")
    write_mark(_mark(), tmp_path / "BTC_USDT_USDT-8h-mark.feather")
    market = load_market(tmp_path, ["BTCUSDT", "ETH/USDT"], "1m")
    assert list(market) == ["BTCUSDT", "ETH/USDT"]
    btc = market["BTCUSDT"]
    assert len(btc.candles) == 30
    assert btc.funding is not None
    assert btc.funding["rate"].tolist() == [1e-4] * 3
    assert btc.mark is not None
    assert btc.mark["mark"].tolist() == [100.0] * 3
    assert btc.source.endswith("BTC_USDT_USDT-1m-futures.feather")
    assert not btc.synthetic
    assert market["ETH/USDT"].funding is None
    assert market["ETH/USDT"].mark is None


def test_load_market_when_binance_monthly_files_concatenates_in_time_order(
    tmp_path: Path, candles: CandleMaker, binance_csv: BinanceCsv
) -> None:
    df = candles(90)
    # Written out of name order on purpose; the zip's month sorts after the csv's.
    (tmp_path / "BTCUSDT-1m-2025-01-03.csv").write_text(binance_csv(df.iloc[60:], unit="us"))
    (tmp_path / "BTCUSDT-1m-2025-01-01.csv").write_text(binance_csv(df.iloc[:30], header=True))
    with zipfile.ZipFile(tmp_path / "BTCUSDT-1m-2025-01-02.zip", "w") as archive:
        archive.writestr("BTCUSDT-1m-2025-01-02.csv", binance_csv(df.iloc[30:60]))
    # An unzipped copy next to its zip must not double the rows.
    (tmp_path / "BTCUSDT-1m-2025-01-02.csv").write_text(binance_csv(df.iloc[30:60]))
    data = load_market(tmp_path, ["BTCUSDT"], "1m")["BTCUSDT"]
    pd.testing.assert_frame_equal(data.candles, df)
    assert "(3 files)" in data.source


def test_load_market_when_single_file_path_loads_it_and_mark_beside_it(
    tmp_path: Path, candles: CandleMaker
) -> None:
    path = write_candles(candles(10), tmp_path / "BTC_USDT_USDT-1m-futures.csv")
    write_mark(_mark(), tmp_path / "BTC_USDT_USDT-8h-mark.csv")
    data = load_market(path, ["BTCUSDT"], "1m")["BTCUSDT"]
    assert len(data.candles) == 10
    assert data.mark is not None


def test_load_market_when_single_unnamed_file_uses_the_symbol_given(
    tmp_path: Path, candles: CandleMaker
) -> None:
    path = write_candles(candles(10), tmp_path / "my prices.csv")
    assert len(load_market(path, ["SOLUSDT"], "1m")["SOLUSDT"].candles) == 10


def test_load_market_when_single_file_and_two_symbols_raises(
    tmp_path: Path, candles: CandleMaker
) -> None:
    path = write_candles(candles(10), tmp_path / "BTC_USDT_USDT-1m-futures.csv")
    with pytest.raises(DataError, match="one file holds one symbol"):
        load_market(path, ["BTCUSDT", "ETHUSDT"], "1m")


def test_load_market_when_file_name_disagrees_raises(tmp_path: Path, candles: CandleMaker) -> None:
    path = write_candles(candles(10), tmp_path / "BTC_USDT_USDT-1m-futures.csv")
    with pytest.raises(DataError, match="says BTCUSDT, but ETHUSDT"):
        load_market(path, ["ETHUSDT"], "1m")
    with pytest.raises(DataError, match="says 1m bars, but 5m"):
        load_market(path, ["BTCUSDT"], "5m")


def test_load_market_when_symbol_missing_lists_files_looked_for_and_available(
    tmp_path: Path, candles: CandleMaker
) -> None:
    write_candles(candles(10), tmp_path / "BTC_USDT_USDT-1m-futures.feather")
    write_candles(candles(10, freq="5min"), tmp_path / "SOL_USDT_USDT-5m-futures.feather")
    with pytest.raises(DataError) as info:
        load_market(tmp_path, ["BTCUSDT", "ETHUSDT"], "1m")
    text = str(info.value)
    assert "no 1m candles for ETHUSDT" in text
    assert "ETH_USDT_USDT-1m-futures.feather" in text
    assert "ETH_USDT-1m.feather" in text
    assert "ETHUSDT-1m-*.csv|.zip" in text
    assert "at 1m: BTCUSDT" in text
    assert "SOLUSDT (5m)" in text


def test_load_market_when_symbols_is_one_string_treats_it_as_one_symbol(
    tmp_path: Path, candles: CandleMaker
) -> None:
    write_candles(candles(10), tmp_path / "BTC_USDT_USDT-1m-futures.feather")
    assert list(load_market(tmp_path, "BTCUSDT", "1m")) == ["BTCUSDT"]


def test_load_market_when_folder_missing_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load_market(tmp_path / "nope", ["BTCUSDT"], "1m")


def test_load_market_when_candles_invalid_raises_with_repair_advice(
    tmp_path: Path, candles: CandleMaker
) -> None:
    df = candles(20).drop(index=[5]).reset_index(drop=True)
    df = pd.concat([df, df.iloc[[3]]], ignore_index=True)
    write_candles(df, tmp_path / "BTC_USDT_USDT-1m-futures.feather")
    with pytest.raises(DataValidationError) as info:
        load_market(tmp_path, ["BTCUSDT"], "1m")
    text = str(info.value)
    assert "BTC_USDT_USDT-1m-futures.feather" in text
    assert "row 5" in text
    assert "qtrader data import" in text
    assert "--drop-duplicates --fill-gaps" in text
    assert {type(i).__name__ for i in info.value.issues} == {"ValidationIssue"}


def test_load_market_when_split_files_invalid_reports_rows_in_each_file(
    tmp_path: Path, candles: CandleMaker, binance_csv: BinanceCsv
) -> None:
    df = candles(40)
    (tmp_path / "BTCUSDT-1m-2025-01-01.csv").write_text(binance_csv(df.iloc[:20]))
    (tmp_path / "BTCUSDT-1m-2025-01-02.csv").write_text(binance_csv(df.iloc[25:]))
    with pytest.raises(DataValidationError) as info:
        load_market(tmp_path, ["BTCUSDT"], "1m")
    (issue,) = info.value.issues
    assert issue.source.endswith("BTCUSDT-1m-2025-01-02.csv")  # type: ignore[attr-defined]
    assert issue.row == 0  # type: ignore[attr-defined]


def test_load_market_when_funding_invalid_raises(tmp_path: Path, candles: CandleMaker) -> None:
    write_candles(candles(10), tmp_path / "BTC_USDT_USDT-1m-futures.feather")
    funding = _funding()
    funding.loc[1, "rate"] = float("nan")
    write_funding(funding, tmp_path / "BTC_USDT_USDT-8h-funding_rate.feather")
    with pytest.raises(DataValidationError, match=r"funding_rate\.feather"):
        load_market(tmp_path, ["BTCUSDT"], "1m")


def test_load_market_when_bad_timeframe_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="bad timeframe"):
        load_market(tmp_path, ["BTCUSDT"], "1 minute")
