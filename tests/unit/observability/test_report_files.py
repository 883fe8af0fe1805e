"""write_run_outputs writes every file, whole, and the contents read back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trader.observability.reports import files
from quantum_trader.observability.reports.files import summary_json, write_run_outputs
from quantum_trader.observability.reports.result import BacktestResult

MakeResult = Callable[..., BacktestResult]


def test_write_run_outputs_when_called_writes_each_file(
    tmp_path: Path, make_result: MakeResult
) -> None:
    out_dir = tmp_path / "runs" / "first"  # parents are created

    paths = write_run_outputs(make_result(), out_dir)

    assert set(paths) == {"summary", "trades", "equity", "fills", "report"}
    assert sorted(path.name for path in out_dir.iterdir()) == [
        "equity.csv",
        "fills.csv",
        "report.html",
        "summary.json",
        "trades.csv",
    ]
    assert all(path.parent == out_dir and path.stat().st_size > 0 for path in paths.values())


def test_write_run_outputs_when_called_writes_summary_json_with_settings(
    tmp_path: Path, make_result: MakeResult
) -> None:
    result = make_result(synthetic=True)

    paths = write_run_outputs(result, tmp_path)

    text = paths["summary"].read_text(encoding="utf-8")
    summary = json.loads(text)
    assert summary["final_equity"] == 1015.0
    assert summary["max_drawdown"] == 0.1
    assert summary["settings"]["strategy"]["params"] == {"fast": 12, "slow": 48}
    assert summary["data"] == "synthetic"
    assert list(summary) == sorted(summary)
    assert text.startswith("{\n  ")


def test_summary_json_when_values_are_numpy_or_nan_writes_plain_json(
    make_result: MakeResult,
) -> None:
    result = make_result(
        summary={"sharpe": float("nan"), "bars": pd.Series([7]).iloc[0], "when": pd.Timestamp(0)},
        settings={"start": pd.Timestamp("2024-01-01", tz="UTC"), "tags": {"b", "a"}},
    )

    summary = json.loads(summary_json(result))

    assert summary["sharpe"] is None
    assert summary["bars"] == 7
    assert summary["settings"] == {"start": "2024-01-01T00:00:00Z", "tags": ["a", "b"]}
    assert summary["data"] == "real"


def test_write_run_outputs_when_trades_csv_is_read_back_equals_frame(
    tmp_path: Path, make_result: MakeResult
) -> None:
    result = make_result()

    paths = write_run_outputs(result, tmp_path)

    read = pd.read_csv(paths["trades"])
    for column in ("entry_time", "exit_time"):
        read[column] = pd.to_datetime(read[column], utc=True).dt.as_unit("ns")
    expected = result.trades.copy()
    for column in ("entry_time", "exit_time"):
        expected[column] = expected[column].dt.as_unit("ns")
    pd.testing.assert_frame_equal(read, expected, check_dtype=False)


def test_write_run_outputs_when_equity_written_has_iso_utc_time_column(
    tmp_path: Path, make_result: MakeResult
) -> None:
    result = make_result()

    paths = write_run_outputs(result, tmp_path)

    read = pd.read_csv(paths["equity"])
    assert list(read.columns) == ["time", "equity", "wallet", "unrealized", "drawdown"]
    assert read["time"].iloc[1] == "2024-01-01T00:01:00Z"
    pd.testing.assert_series_equal(
        read["equity"], result.equity["equity"].reset_index(drop=True), check_names=True
    )
    times = pd.DatetimeIndex(pd.to_datetime(read["time"], utc=True)).as_unit("ns")
    expected = pd.DatetimeIndex(result.equity.index).as_unit("ns")
    np.testing.assert_array_equal(times.asi8, expected.asi8)


def test_write_run_outputs_when_fills_written_round_trips(
    tmp_path: Path, make_result: MakeResult
) -> None:
    result = make_result()

    paths = write_run_outputs(result, tmp_path)

    read = pd.read_csv(paths["fills"])
    assert list(read.columns) == list(result.fills.columns)
    assert read["fee"].tolist() == [1.33, 1.33, 1.0]
    assert read["time"].tolist()[0] == "2024-01-01T00:01:00Z"


def test_write_run_outputs_when_orders_rejected_writes_rejected_orders_csv(
    tmp_path: Path, make_result: MakeResult
) -> None:
    paths = write_run_outputs(make_result(rejected=True), tmp_path)

    read = pd.read_csv(paths["rejected_orders"])
    assert read["reason"].tolist() == ["insufficient_margin"]
    assert read["time"].tolist() == ["2024-01-01T00:03:00Z"]


def test_write_run_outputs_when_no_rejections_removes_stale_rejected_file(
    tmp_path: Path, make_result: MakeResult
) -> None:
    write_run_outputs(make_result(rejected=True), tmp_path)

    paths = write_run_outputs(make_result(rejected=False), tmp_path)

    assert "rejected_orders" not in paths
    assert not (tmp_path / "rejected_orders.csv").exists()


def test_write_run_outputs_when_done_leaves_no_temporary_files(
    tmp_path: Path, make_result: MakeResult
) -> None:
    write_run_outputs(make_result(), tmp_path)

    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]


def test_atomic_write_when_writer_fails_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("previous", encoding="utf-8")

    def fail_halfway(handle: object) -> None:
        handle.write("half")  # type: ignore[attr-defined]
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        files._atomic_write(target, fail_halfway)

    assert target.read_text(encoding="utf-8") == "previous"
    assert [path.name for path in tmp_path.iterdir()] == ["summary.json"]


def test_write_run_outputs_when_frames_are_empty_writes_headers(
    tmp_path: Path, make_result: MakeResult
) -> None:
    base = make_result()
    empty = type(base)(
        equity=base.equity,
        trades=pd.DataFrame(),
        fills=pd.DataFrame(),
        prices=base.prices,
        summary=base.summary,
        settings=base.settings,
    )

    paths = write_run_outputs(empty, tmp_path)

    assert paths["trades"].read_text(encoding="utf-8").startswith("trade_id,symbol,side,")
    assert pd.read_csv(paths["fills"]).empty
