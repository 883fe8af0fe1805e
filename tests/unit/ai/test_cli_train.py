"""``qtrader train`` through typer's CliRunner: an artifact on success, exit 2 on bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quantum_trader.cli.app import app
from quantum_trader.data.catalog import (
    candle_filename,
    funding_filename,
    write_candles,
    write_funding,
)

from .conftest import SYMBOLS, small_market


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    for symbol, data in small_market().items():
        write_candles(data.candles, folder / candle_filename(symbol, "1m"))
        assert data.funding is not None
        write_funding(data.funding, folder / funding_filename(symbol))
    return folder


def _train(*args: str) -> object:
    return CliRunner().invoke(app, ["train", *args], env={"COLUMNS": "200"})


def test_cli_train_when_data_good_writes_the_artifact(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = _train(
        "--data",
        str(data_dir),
        "--symbols",
        ",".join(SYMBOLS),
        "--out",
        str(out),
        "--horizon",
        "10",
        "--train-days",
        "2",
        "--test-days",
        "1",
        "--threads",
        "1",
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] in result.output  # type: ignore[attr-defined]
    assert (out / "oos_predictions.parquet").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--horizon", "0"), "--horizon"),
        (("--min-confidence", "0.4"), "--min-confidence"),
        (("--symbols", "BTCUSDT,BTCUSDT"), "--symbols"),
        (("--data", "/nonexistent/folder"), "does not exist"),
    ],
)
def test_cli_train_when_option_bad_exits_2_naming_it(
    data_dir: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    base = {"--data": str(data_dir), "--symbols": "BTCUSDT", "--out": str(tmp_path / "m")}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = _train(*[x for kv in base.items() for x in kv])
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert message in result.output  # type: ignore[attr-defined]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    assert not (tmp_path / "m").exists()


def test_cli_train_when_symbol_has_no_data_exits_1(data_dir: Path, tmp_path: Path) -> None:
    result = _train("--data", str(data_dir), "--symbols", "XRPUSDT", "--out", str(tmp_path / "m"))
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    assert "XRPUSDT" in result.output  # type: ignore[attr-defined]
