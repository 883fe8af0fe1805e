"""Loaders on every format variant, written to tmp files; errors name the file and the row."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trader.data.catalog import write_candles, write_funding, write_mark
from quantum_trader.data.loaders import load_candles, load_funding, load_mark
from quantum_trader.data.market import CANDLE_COLUMNS
from quantum_trader.domain.errors import DataError

CandleMaker = Callable[..., pd.DataFrame]

BINANCE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)
BinanceCsv = Callable[..., str]


def _assert_canonical(out: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(out.columns) == list(CANDLE_COLUMNS)
    assert out["date"].dtype == "datetime64[ns, UTC]"
    for col in CANDLE_COLUMNS[1:]:
        assert out[col].dtype == np.float64
    pd.testing.assert_frame_equal(out, expected.reset_index(drop=True))


@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("unit", ["ms", "us"])
def test_load_candles_when_binance_csv_reads_every_variant(
    tmp_path: Path, candles: CandleMaker, binance_csv: BinanceCsv, header: bool, unit: str
) -> None:
    df = candles(20)
    path = tmp_path / "BTCUSDT-1m-2025-01.csv"
    path.write_text(binance_csv(df, unit=unit, header=header))
    _assert_canonical(load_candles(path), df)


@pytest.mark.parametrize("header", [False, True])
def test_load_candles_when_binance_zip_reads_the_csv_inside(
    tmp_path: Path, candles: CandleMaker, binance_csv: BinanceCsv, header: bool
) -> None:
    df = candles(20)
    path = tmp_path / "BTCUSDT-1m-2025-01.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("BTCUSDT-1m-2025-01.csv", binance_csv(df, header=header))
    _assert_canonical(load_candles(path), df)


def test_load_candles_when_binance_first_row_checked_gives_real_time(tmp_path: Path) -> None:
    path = tmp_path / "k.csv"
    path.write_text(
        "1748169180000,107187.4,107194.2,107165.0,107194.2,22.670,1748169239999,"
        "2429976.3,500,10.1,1082571.2,0\n"
        "1748169240000000,107194.2,107211.9,107192.1,107207.2,37.596,1748169299999999,"
        "1,1,1,1,0\n"
    )
    with pytest.raises(DataError, match="different unit"):
        load_candles(path)
    path.write_text(path.read_text().splitlines()[0] + "\n")
    out = load_candles(path)
    assert out.loc[0, "date"] == pd.Timestamp("2025-05-25 10:33", tz="UTC")
    assert out.loc[0, "open"] == 107187.4


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("timestamp", "seconds"),
        ("Date", "iso"),
        ("time", "iso_naive"),
        ("open_time", "ms"),
        ("TS", "ns"),
    ],
)
def test_load_candles_when_generic_csv_reads_time_forms(
    tmp_path: Path, candles: CandleMaker, column: str, values: str
) -> None:
    df = candles(5)
    raw = df.rename(columns=str.capitalize)
    ns = df["date"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    times = {
        "seconds": ns // 1_000_000_000,
        "ms": ns // 1_000_000,
        "ns": ns,
        "iso": df["date"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "iso_naive": df["date"].dt.strftime("%Y-%m-%d %H:%M:%S"),
    }[values]
    raw = raw.drop(columns="Date").assign(**{column: times})
    path = tmp_path / "any name.csv"
    raw.to_csv(path, index=False)
    _assert_canonical(load_candles(path), df)


def test_load_candles_when_iso_with_offset_converts_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("date,open,high,low,close,volume\n2025-01-01T02:00:00+02:00,1,2,0.5,1.5,10\n")
    assert load_candles(path).loc[0, "date"] == pd.Timestamp("2025-01-01 00:00", tz="UTC")


def test_load_candles_when_semicolons_separate_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("date;open;high;low;close;volume\n2025-01-01 00:00;1;2;0.5;1.5;10\n")
    assert load_candles(path).loc[0, "close"] == 1.5


def test_load_candles_when_six_columns_without_header_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("2025-01-01 00:00,1,2,0.5,1.5,10\n2025-01-01 00:01,1.5,2,1,1.2,3\n")
    out = load_candles(path)
    assert len(out) == 2
    assert out.loc[1, "date"] == pd.Timestamp("2025-01-01 00:01", tz="UTC")


def test_load_candles_when_file_unsorted_keeps_file_order(
    tmp_path: Path, candles: CandleMaker, binance_csv: BinanceCsv
) -> None:
    df = candles(6).iloc[[3, 1, 0, 5, 2, 4]]
    path = tmp_path / "x.csv"
    path.write_text(binance_csv(df))
    _assert_canonical(load_candles(path), df)


@pytest.mark.parametrize("suffix", [".feather", ".parquet", ".csv"])
def test_load_candles_when_written_by_write_candles_round_trips(
    tmp_path: Path, candles: CandleMaker, suffix: str
) -> None:
    df = candles(30)
    path = write_candles(df, tmp_path / f"BTC_USDT_USDT-1m-futures{suffix}")
    _assert_canonical(load_candles(path), df)


def test_load_candles_when_parquet_has_datetime_index_reads_it(
    tmp_path: Path, candles: CandleMaker
) -> None:
    df = candles(5)
    path = tmp_path / "x.parquet"
    df.set_index("date").to_parquet(path)
    _assert_canonical(load_candles(path), df)


def test_load_candles_when_parquet_has_naive_microsecond_times_reads_utc_ns(
    tmp_path: Path, candles: CandleMaker
) -> None:
    df = candles(5)
    raw = df.assign(Time=df["date"].dt.tz_localize(None).dt.as_unit("us")).drop(columns="date")
    raw.columns = [c.upper() for c in raw.columns]
    path = tmp_path / "x.parquet"
    raw.to_parquet(path, index=False)
    _assert_canonical(load_candles(path), df)


def test_load_candles_when_nan_cells_keeps_them_for_the_validator(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        "date,open,high,low,close,volume\n2025-01-01,1,2,0.5,,10\n2025-01-02,1,2,0.5,NaN,10\n"
    )
    out = load_candles(path)
    assert out["close"].isna().all()


# ---------------------------------------------------------------- errors


def test_load_candles_when_file_missing_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_candles(tmp_path / "nope.csv")


def test_load_candles_when_path_is_a_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a file"):
        load_candles(tmp_path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_load_candles_when_file_empty_raises(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        load_candles(path)


def test_load_candles_when_header_only_raises_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(BINANCE_HEADER + "\n")
    with pytest.raises(DataError, match=r"h\.csv: no data rows"):
        load_candles(path)


def test_load_candles_when_column_missing_raises_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("date,open,high,low,close\n2025-01-01,1,2,0.5,1.5\n")
    with pytest.raises(DataError, match=r"m\.csv: missing column\(s\) volume"):
        load_candles(path)


def test_load_candles_when_no_time_column_raises_listing_names(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("when,open,high,low,close,volume\n2025-01-01,1,2,0.5,1.5,1\n")
    with pytest.raises(DataError, match=r"t\.csv: no time column: expected one of date"):
        load_candles(path)


def test_load_candles_when_value_not_a_number_raises_naming_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text(
        "date,open,high,low,close,volume\n2025-01-01,1,2,0.5,1.5,1\n2025-01-02,1,2,oops,1.5,1\n"
    )
    with pytest.raises(DataError, match=r"n\.csv: row 1 .*column 'low': 'oops' is not a number"):
        load_candles(path)


def test_load_candles_when_time_not_parseable_raises_naming_row(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "date,open,high,low,close,volume\n2025-01-01,1,2,0.5,1.5,1\nyesterday,1,2,1,1.5,1\n"
    )
    with pytest.raises(DataError, match=r"d\.csv: row 1 .*'yesterday' is not a time"):
        load_candles(path)


def test_load_candles_when_row_has_extra_fields_raises(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "date,open,high,low,close,volume\n2025-01-01,1,2,0.5,1.5,1\n2025-01-02,1,2,1,1.5,1,9\n"
    )
    with pytest.raises(DataError, match=r"r\.csv: cannot read it as csv"):
        load_candles(path)


def test_load_candles_when_headerless_with_odd_column_count_raises(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text("1,2,3\n")
    with pytest.raises(DataError, match=r"o\.csv: no header row and 3 columns"):
        load_candles(path)


def test_load_candles_when_feather_corrupt_raises(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-1m.feather"
    path.write_bytes(b"ARROW1\x00\x00garbage")
    with pytest.raises(DataError, match=r"BTC_USDT-1m\.feather: cannot read it as feather"):
        load_candles(path)


def test_load_candles_when_suffix_lies_raises_not_a_feather_file(tmp_path: Path) -> None:
    path = tmp_path / "x.feather"
    path.write_text("date,open\n")
    with pytest.raises(DataError, match="not a feather file"):
        load_candles(path)


def test_load_candles_when_truncated_parquet_raises(tmp_path: Path, candles: CandleMaker) -> None:
    path = tmp_path / "x.parquet"
    candles(50).to_parquet(path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"x\.parquet: cannot read it as parquet"):
        load_candles(path)


def test_load_candles_when_zip_holds_two_files_raises(tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "1")
        archive.writestr("b.csv", "2")
    with pytest.raises(
        DataError, match=r"two\.zip: expected one CSV file inside the zip, found a\.csv, b\.csv"
    ):
        load_candles(path)


def test_load_candles_when_zip_corrupt_raises(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.csv", "".join(f"{i},{i * 7 % 13},{i * i},4,5,6\n" for i in range(5000)))
    data = buffer.getvalue()
    path = tmp_path / "bad.zip"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"bad\.zip: cannot unzip"):
        load_candles(path)


def test_load_candles_when_bool_column_raises(tmp_path: Path, candles: CandleMaker) -> None:
    path = tmp_path / "b.parquet"
    candles(3).assign(volume=[True, False, True]).to_parquet(path)
    with pytest.raises(DataError, match="true/false"):
        load_candles(path)


def test_load_candles_when_time_out_of_range_raises(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("date,open,high,low,close,volume\n1e30,1,2,0.5,1.5,1\n")
    with pytest.raises(DataError, match="out of range"):
        load_candles(path)


# ---------------------------------------------------------------- funding and mark


def test_load_funding_when_freqtrade_layout_reads_rate_from_open(tmp_path: Path) -> None:
    dates = pd.to_datetime(
        ["2025-01-01 00:00:00.013", "2025-01-01 08:00:00.000"], utc=True
    ).as_unit("ns")
    funding = pd.DataFrame({"date": dates, "rate": [1e-4, -2e-4]})
    path = write_funding(funding, tmp_path / "BTC_USDT_USDT-8h-funding_rate.feather")
    raw = pd.read_feather(path)
    assert raw["open"].tolist() == [1e-4, -2e-4]
    out = load_funding(path)
    pd.testing.assert_frame_equal(out, funding)


def test_load_funding_when_binance_funding_csv_reads_last_funding_rate(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-fundingRate-2025-01.csv"
    path.write_text(
        "calc_time,funding_interval_hours,last_funding_rate\n"
        "1735689600000,8,0.00010000\n1735718400004,8,-0.00002500\n"
    )
    out = load_funding(path)
    assert out["rate"].tolist() == [1e-4, -2.5e-5]
    assert out.loc[1, "date"] == pd.Timestamp("2025-01-01 08:00:00.004", tz="UTC")


def test_load_funding_when_no_rate_column_raises(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("date,price\n2025-01-01,1\n")
    with pytest.raises(DataError, match=r"f\.csv: no funding rate column"):
        load_funding(path)


def test_load_mark_when_mark_candles_reads_open(tmp_path: Path) -> None:
    dates = pd.date_range("2025-01-01", periods=3, freq="8h", tz="UTC", unit="ns")
    mark = pd.DataFrame({"date": dates, "mark": [100.0, 101.5, 99.0]})
    path = write_mark(mark, tmp_path / "BTC_USDT_USDT-8h-mark.parquet")
    pd.testing.assert_frame_equal(load_mark(path), mark)


def test_load_mark_when_mark_column_present_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("timestamp,mark_price\n1735689600,100.5\n")
    assert load_mark(path)["mark"].tolist() == [100.5]
