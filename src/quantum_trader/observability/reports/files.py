"""Write the files a backtest run leaves behind: summary, CSV frames and the HTML report.

Each file is written to a temporary file in the same folder, flushed to disk, then moved over the
final name with ``os.replace``, so a crash leaves either the old file or the new one, never half
of one. Times in the CSV files are ISO-8601 UTC strings (``2024-01-01T00:00:00Z``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import pandas as pd

from quantum_trader.observability.reports.html import render_html_report
from quantum_trader.observability.reports.result import (
    EQUITY_COLUMNS,
    FILL_COLUMNS,
    TRADE_COLUMNS,
    BacktestResult,
)

SUMMARY_FILE = "summary.json"
TRADES_FILE = "trades.csv"
EQUITY_FILE = "equity.csv"
FILLS_FILE = "fills.csv"
REJECTED_ORDERS_FILE = "rejected_orders.csv"
REPORT_FILE = "report.html"

_TimeUnit = Literal["s", "ms", "us", "ns"]
_TIME_UNITS: tuple[tuple[_TimeUnit, int], ...] = (
    ("s", 10**9),
    ("ms", 10**6),
    ("us", 10**3),
    ("ns", 1),
)


def write_run_outputs(result: BacktestResult, out_dir: Path) -> dict[str, Path]:
    """Write a run's summary, CSV files and HTML report into ``out_dir``.

    ``rejected_orders.csv`` is written only when there are rejected orders; a stale one from an
    earlier run in the same folder is removed so the folder never mixes two runs' files.

    Args:
        result: The run to write.
        out_dir: The folder; created with its parents if missing.

    Returns:
        The written paths keyed ``summary``, ``trades``, ``equity``, ``fills``, ``report`` and,
        when written, ``rejected_orders``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {
        "summary": _write_text(out_dir / SUMMARY_FILE, summary_json(result)),
        "trades": _write_csv(out_dir / TRADES_FILE, _with_columns(result.trades, TRADE_COLUMNS)),
        "equity": _write_csv(out_dir / EQUITY_FILE, _equity_frame(result.equity)),
        "fills": _write_csv(out_dir / FILLS_FILE, _with_columns(result.fills, FILL_COLUMNS)),
    }
    rejected_path = out_dir / REJECTED_ORDERS_FILE
    if result.rejected_orders.empty:
        rejected_path.unlink(missing_ok=True)
    else:
        paths["rejected_orders"] = _write_csv(rejected_path, result.rejected_orders)
    paths["report"] = _write_text(out_dir / REPORT_FILE, render_html_report(result))
    return paths


def summary_json(result: BacktestResult) -> str:
    """Return the text of ``summary.json``: the summary figures plus ``settings`` and ``data``.

    The summary's figures sit at the top level; ``settings`` holds the run settings and ``data``
    is ``"synthetic"`` or ``"real"``. Keys are sorted, the text is indented, non-finite numbers
    become ``null``, timestamps become ISO-8601 strings.

    Args:
        result: The run to describe.

    Returns:
        Pretty-printed JSON text ending in a newline.
    """
    payload = {
        **to_jsonable(result.summary),
        "settings": to_jsonable(result.settings),
        "data": "synthetic" if result.synthetic else "real",
    }
    return json.dumps(payload, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"


def to_jsonable(value: Any) -> Any:
    """Convert a value to plain JSON types, recursively.

    numpy scalars become Python numbers, NaN and infinities become ``None``, timestamps become
    ISO-8601 strings (UTC ``Z`` when aware), enums their value, Decimals and paths strings,
    dataclasses dicts; anything else unknown becomes ``str(value)``.

    Args:
        value: What to convert.

    Returns:
        A value ``json.dumps`` accepts with ``allow_nan=False``.
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(item) for item in items]
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return _iso_timestamp(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    return str(value)


def _iso_timestamp(value: pd.Timestamp | dt.datetime | dt.date) -> str | None:
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return None
    if stamp.tzinfo is not None:
        return stamp.tz_convert("UTC").isoformat().replace("+00:00", "Z")
    return stamp.isoformat()


def _with_columns(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    # An empty frame with no columns still gets a header, so readers see the schema.
    if frame.empty and len(frame.columns) == 0:
        return pd.DataFrame(columns=list(columns))
    return frame


def _equity_frame(equity: pd.DataFrame) -> pd.DataFrame:
    frame = _with_columns(equity, EQUITY_COLUMNS).copy()
    frame.index.name = "time"
    return frame.reset_index()


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    converted = {
        column: _iso_strings(frame[column])
        for column in frame.columns
        if pd.api.types.is_datetime64_any_dtype(frame[column])
    }
    return frame.assign(**converted) if converted else frame


def _iso_strings(column: pd.Series) -> np.ndarray:
    times = pd.to_datetime(column, utc=True).dt.as_unit("ns")
    nanos = times.to_numpy(dtype="datetime64[ns]")
    ticks = nanos.view(np.int64)[~np.isnat(nanos)]
    unit: _TimeUnit = "s"
    for candidate, size in _TIME_UNITS:
        unit = candidate
        if not (ticks % size).any():
            break
    text = np.datetime_as_string(nanos, unit=unit, timezone="UTC")
    return np.where(np.isnat(nanos), "", text)


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    ready = _csv_ready(frame)
    return _atomic_write(
        path, lambda handle: ready.to_csv(handle, index=False, lineterminator="\n")
    )


def _write_text(path: Path, text: str) -> Path:
    return _atomic_write(path, lambda handle: handle.write(text))


def _atomic_write(path: Path, write: Callable[[TextIO], object]) -> Path:
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path
