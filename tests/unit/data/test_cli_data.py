"""``qtrader data validate`` and ``qtrader data import`` through typer's CliRunner."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from quantum_trader.cli.data import data_app
from quantum_trader.data.catalog import write_candles, write_funding, write_mark
from quantum_trader.data.loaders import load_candles, load_market
from quantum_trader.data.validate import validate_candles

CandleMaker = Callable[..., pd.DataFrame]
BinanceCsv = Callable[..., str]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _gappy(candles: CandleMaker) -> pd.DataFrame:
    return candles(40).drop(index=[5, 6, 20]).reset_index(drop=True)


def _funding(rates: list[float]) -> pd.DataFrame:
    dates = pd.date_range("2025-01-01", periods=len(rates), freq="8h", tz="UTC", unit="ns")
    return pd.DataFrame({"date": dates, "rate": rates})


# ---------------------------------------------------------------- validate


def test_validate_when_file_clean_exits_0(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    path = write_candles(candles(30), tmp_path / "BTC_USDT_USDT-1m-futures.feather")
    result = runner.invoke(data_app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "no issues" in result.output
    assert "30 rows of 1m candles" in result.output


def test_validate_when_file_has_issues_exits_1_and_lists_them(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    df = _gappy(candles)
    df = pd.concat([df, df.iloc[[2]]], ignore_index=True)
    path = write_candles(df, tmp_path / "BTC_USDT_USDT-1m-futures.csv")
    result = runner.invoke(data_app, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "gap" in out
    assert "duplicate" in out
    assert "non_monotonic" in out
    assert "3 bars missing" in out
    assert "--fill-gaps" in out


def test_validate_when_many_issues_caps_lines_per_file(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    df = candles(30)
    df["volume"] = -1.0
    path = write_candles(df, tmp_path / "x.parquet")
    result = runner.invoke(
        data_app, ["validate", str(path), "--max-lines", "5", "--timeframe", "1m"]
    )
    assert result.exit_code == 1
    assert "... and 25 more" in result.output
    assert "fix the source" in result.output


def test_validate_when_unnamed_file_infers_bar_size(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    path = write_candles(_gappy(candles), tmp_path / "prices.csv")
    result = runner.invoke(data_app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "bar size inferred" in result.output


def test_validate_when_folder_mixed_validates_each_recognised_file(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    write_candles(candles(30), tmp_path / "BTC_USDT_USDT-1m-futures.feather")
    write_candles(_gappy(candles), tmp_path / "ETH_USDT_USDT-1m-futures.feather")
    write_candles(candles(30, freq="5min"), tmp_path / "ETH_USDT_USDT-5m-futures.feather")
    write_funding(_funding([1e-4, 0.2]), tmp_path / "ETH_USDT_USDT-8h-funding_rate.feather")
    (tmp_path / "notes.csv").write_text("not data")
    result = runner.invoke(data_app, ["validate", str(tmp_path), "--timeframe", "1m"])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "BTC_USDT_USDT-1m-futures.feather" in out
    assert "ETH_USDT_USDT-1m-futures.feather" in out
    assert "absurd_funding" in out
    assert "5m-futures" not in out
    assert "notes.csv" not in out


def test_validate_when_file_unreadable_exits_2_without_traceback(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    write_candles(candles(30), tmp_path / "BTC_USDT_USDT-1m-futures.feather")
    (tmp_path / "ETH_USDT_USDT-1m-futures.feather").write_bytes(b"\x00garbage")
    result = runner.invoke(data_app, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "ETH_USDT_USDT-1m-futures.feather: not a feather file" in result.output
    assert "Traceback" not in result.output
    assert "no issues" in result.output  # the readable file was still checked


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "/no/such/path"], "no such file or folder"),
        (["validate", ".", "--timeframe", "7x"], "bad timeframe"),
    ],
)
def test_validate_when_input_bad_exits_2(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(data_app, args)
    assert result.exit_code == 2
    assert message in result.output


# ---------------------------------------------------------------- import


def test_import_when_gaps_and_no_flag_refuses_and_writes_nothing(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    source = write_candles(_gappy(candles), tmp_path / "BTC_USDT_USDT-1m-futures.csv")
    out = tmp_path / "out"
    result = runner.invoke(data_app, ["import", str(source), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "add --fill-gaps to repair" in result.output
    assert "Nothing written" in result.output
    assert not out.exists()


def test_import_when_fill_gaps_writes_canonical_file_that_reloads_clean(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    source = write_candles(_gappy(candles), tmp_path / "BTC_USDT_USDT-1m-futures.csv")
    out = tmp_path / "out"
    result = runner.invoke(data_app, ["import", str(source), "--out", str(out), "--fill-gaps"])
    assert result.exit_code == 0, result.output
    assert "filled 2 gaps (+3 bars)" in result.output
    written = out / "BTC_USDT_USDT-1m-futures.feather"
    assert written.is_file()
    data = load_market(out, ["BTCUSDT"], "1m")["BTCUSDT"]
    assert len(data.candles) == 40
    assert validate_candles(data.candles, source="x", timeframe="1m").clean


def test_import_when_binance_folder_resampled_to_csv_reloads(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker, binance_csv: BinanceCsv
) -> None:
    df = candles(120)
    source = tmp_path / "src"
    source.mkdir()
    with zipfile.ZipFile(source / "BTCUSDT-1m-2025-01-01.zip", "w") as archive:
        archive.writestr("BTCUSDT-1m-2025-01-01.csv", binance_csv(df.iloc[:60], header=True))
    (source / "BTCUSDT-1m-2025-01-02.csv").write_text(binance_csv(df.iloc[60:], unit="us"))
    (source / "ETHUSDT-1m-2025-01-01.csv").write_text(binance_csv(df))
    out = tmp_path / "out"
    args = [
        "import",
        str(source),
        "--out",
        str(out),
        "--symbol",
        "BTCUSDT",
        "--resample",
        "5m",
        "--format",
        "csv",
    ]
    result = runner.invoke(data_app, args)
    assert result.exit_code == 0, result.output
    assert "resampled 1m → 5m" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["BTC_USDT_USDT-5m-futures.csv"]
    reloaded = load_market(out, ["BTCUSDT"], "5m")["BTCUSDT"].candles
    assert len(reloaded) == 24
    assert reloaded["volume"].sum() == pytest.approx(df["volume"].sum())


def test_import_when_folder_has_funding_and_mark_imports_them_too(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    write_candles(candles(30), source / "BTC_USDT_USDT-1m-futures.feather")
    write_funding(_funding([1e-4, 2e-4, 3e-4]), source / "BTC_USDT_USDT-8h-funding_rate.feather")
    dates = pd.date_range("2025-01-01", periods=3, freq="8h", tz="UTC", unit="ns")
    write_mark(
        pd.DataFrame({"date": dates, "mark": [1.0, 2.0, 3.0]}),
        source / "BTC_USDT_USDT-8h-mark.feather",
    )
    out = tmp_path / "out"
    result = runner.invoke(
        data_app, ["import", str(source), "--out", str(out), "--format", "parquet"]
    )
    assert result.exit_code == 0, result.output
    data = load_market(out, ["BTCUSDT"], "1m")["BTCUSDT"]
    assert data.funding is not None
    assert data.funding["rate"].tolist() == [1e-4, 2e-4, 3e-4]
    assert data.mark is not None
    assert data.mark["mark"].tolist() == [1.0, 2.0, 3.0]


def test_import_when_unsorted_duplicated_and_gappy_needs_all_three_flags(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    df = _gappy(candles)
    messy = pd.concat([df.iloc[[1, 0]], df.iloc[2:], df.iloc[[7]]], ignore_index=True)
    source = write_candles(messy, tmp_path / "ETH_USDT_USDT-1m-futures.parquet")
    out = tmp_path / "out"
    refused = runner.invoke(data_app, ["import", str(source), "--out", str(out), "--fill-gaps"])
    assert refused.exit_code == 1
    assert "--sort" in refused.output
    flags = ["--fill-gaps", "--drop-duplicates", "--sort"]
    result = runner.invoke(data_app, ["import", str(source), "--out", str(out), *flags])
    assert result.exit_code == 0, result.output
    assert "dropped 1 duplicates" in result.output
    reloaded = load_candles(out / "ETH_USDT_USDT-1m-futures.feather")
    assert validate_candles(reloaded, source="x", timeframe="1m").clean


def test_import_when_nan_present_says_fix_the_source(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    df = candles(10)
    df.loc[4, "close"] = np.nan
    source = write_candles(df, tmp_path / "BTC_USDT_USDT-1m-futures.feather")
    result = runner.invoke(
        data_app, ["import", str(source), "--out", str(tmp_path / "o"), "--fill-gaps"]
    )
    assert result.exit_code == 1
    assert "nan must be fixed in the source" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--resample", "30s"], "upsampling"),
        (["--format", "xlsx"], "unknown --format"),
        (["--symbol", "ETHUSDT"], "says BTCUSDT, not ETHUSDT"),
        (["--timeframe", "5m"], "says 1m bars, not 5m"),
    ],
)
def test_import_when_option_does_not_fit_exits_2(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker, extra: list[str], message: str
) -> None:
    source = write_candles(candles(10), tmp_path / "BTC_USDT_USDT-1m-futures.feather")
    result = runner.invoke(data_app, ["import", str(source), "--out", str(tmp_path / "o"), *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_import_when_unnamed_file_needs_a_symbol(
    runner: CliRunner, tmp_path: Path, candles: CandleMaker
) -> None:
    source = write_candles(candles(10), tmp_path / "prices.csv")
    out = tmp_path / "o"
    result = runner.invoke(data_app, ["import", str(source), "--out", str(out)])
    assert result.exit_code == 2
    assert "pass one --symbol" in result.output
    result = runner.invoke(
        data_app, ["import", str(source), "--out", str(out), "--symbol", "SOLUSDT"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "SOL_USDT_USDT-1m-futures.feather").is_file()


def test_import_when_folder_has_nothing_recognised_exits_2(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = runner.invoke(data_app, ["import", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "nothing to import" in result.output
