"""Data file names: which file holds which symbol, timeframe and kind; and writing them.

Two naming schemes are recognised:

* freqtrade's: ``BTC_USDT_USDT-1m-futures.feather`` (USDT-M perpetual candles),
  ``BTC_USDT-1m.feather`` (spot candles), ``BTC_USDT_USDT-8h-funding_rate.feather`` (funding;
  the rate is in the ``open`` column) and ``BTC_USDT_USDT-8h-mark.feather`` (mark-price
  candles); any of ``.feather``, ``.parquet`` or ``.csv``.
* data.binance.vision's: ``BTCUSDT-1m-2025-05.csv`` or ``.zip`` (monthly) and
  ``BTCUSDT-1m-2025-05-01.csv`` (daily) klines; ``BTCUSDT-fundingRate-2025-05.zip`` funding.

Symbols are exchange style (``BTCUSDT``); ``BTC/USDT:USDT`` and ``BTC/USDT`` are accepted too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd

from quantum_trader.data.market import CANDLE_COLUMNS, FUNDING_COLUMNS, MARK_COLUMNS
from quantum_trader.domain.errors import DataError

FORMATS = ("feather", "parquet", "csv")
# Longest first so USDC/FDUSD win over USD, and USDT is tried before USDC at equal length.
KNOWN_QUOTES = (
    "FDUSD",
    "USDT",
    "USDC",
    "BUSD",
    "TUSD",
    "USDP",
    "BTC",
    "ETH",
    "BNB",
    "USD",
    "EUR",
    "TRY",
    "BRL",
    "DAI",
)


class FileKind(StrEnum):
    """What a data file holds."""

    CANDLES = "candles"
    FUNDING = "funding"
    MARK = "mark"


class Layout(StrEnum):
    """Which naming scheme a file follows."""

    FREQTRADE = "freqtrade"
    BINANCE = "binance"


@dataclass(frozen=True, slots=True)
class DataFile:
    """A recognised data file: its path, symbol, timeframe, kind and naming scheme.

    ``market`` is ``"futures"`` or ``"spot"`` for freqtrade names and ``""`` for Binance names,
    which do not say. ``period`` is the month or day in a Binance name.
    """

    path: Path
    symbol: str
    timeframe: str | None
    kind: FileKind
    layout: Layout
    market: str = ""
    base: str = ""
    quote: str = ""
    period: str = ""

    @property
    def format(self) -> str:
        """Return the file's format from its suffix: feather, parquet, csv or zip."""
        return self.path.suffix.lower().lstrip(".")


_TF = r"\d+[smhdwM]"
_FREQTRADE = re.compile(
    rf"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)(?:_(?P<settle>[A-Za-z0-9]+))?"
    rf"-(?P<tf>{_TF})(?:-(?P<kind>futures|mark|funding_rate))?\.(?P<ext>feather|parquet|csv)$"
)
_BINANCE_KLINES = re.compile(
    rf"^(?P<symbol>[A-Z0-9]+)-(?P<tf>{_TF})-(?P<period>\d{{4}}-\d{{2}}(?:-\d{{2}})?)\.(?:csv|zip)$"
)
_BINANCE_FUNDING = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-fundingRate-(?P<period>\d{4}-\d{2}(?:-\d{2})?)\.(?:csv|zip)$"
)


def parse_data_filename(path: Path | str) -> DataFile | None:
    """Return what a file's name says it holds, or None when the name is not recognised."""
    path = Path(path)
    name = path.name
    if match := _FREQTRADE.match(name):
        base, quote = match["base"].upper(), match["quote"].upper()
        tag = match["kind"]
        if tag is None and match["settle"]:
            return None  # a settle currency without -futures/-mark/-funding_rate is not a scheme
        market = "spot" if tag is None else "futures"
        kind = {"mark": FileKind.MARK, "funding_rate": FileKind.FUNDING}.get(
            tag or "", FileKind.CANDLES
        )
        return DataFile(
            path, base + quote, match["tf"], kind, Layout.FREQTRADE, market, base, quote
        )
    if match := _BINANCE_KLINES.match(name):
        return DataFile(
            path,
            match["symbol"],
            match["tf"],
            FileKind.CANDLES,
            Layout.BINANCE,
            period=match["period"],
        )
    if match := _BINANCE_FUNDING.match(name):
        return DataFile(
            path, match["symbol"], None, FileKind.FUNDING, Layout.BINANCE, period=match["period"]
        )
    return None


def scan_folder(folder: Path | str) -> list[DataFile]:
    """Return every recognised data file directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder: {exc}") from exc
    found = (parse_data_filename(folder / name) for name in names)
    return [f for f in found if f is not None]


def exchange_symbol(symbol: str) -> str:
    """Return ``symbol`` in exchange style: ``BTC/USDT:USDT``, ``BTC_USDT`` → ``BTCUSDT``."""
    text = symbol.strip().upper().split(":")[0]
    if "_" in text:
        parts = text.split("_")
        text = "".join(parts[:2])
    return text.replace("/", "").replace("-", "")


def split_symbol(symbol: str) -> tuple[str, str]:
    """Return (base, quote) of an exchange-style symbol, e.g. ``("BTC", "USDT")``.

    Raises:
        DataError: The symbol does not end in a known quote currency.
    """
    text = symbol.strip().upper()
    if "/" in text:
        base, _, rest = text.partition("/")
        return base, rest.split(":")[0]
    if "_" in text:
        parts = text.split("_")
        return parts[0], parts[1]
    for quote in KNOWN_QUOTES:
        if text.endswith(quote) and len(text) > len(quote):
            return text[: -len(quote)], quote
    raise DataError(
        f"cannot tell the base and quote currencies of {symbol!r}: it does not end in one of "
        f"{', '.join(KNOWN_QUOTES)}; write it like BTC/USDT"
    )


def _check_format(fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise DataError(f"unknown data format {fmt!r}: use one of {', '.join(FORMATS)}")
    return fmt


def candle_filename(
    symbol: str, timeframe: str, *, fmt: str = "feather", market: str = "futures"
) -> str:
    """Return freqtrade's file name for candles, e.g. ``BTC_USDT_USDT-1m-futures.feather``."""
    base, quote = split_symbol(symbol)
    fmt = _check_format(fmt)
    if market == "spot":
        return f"{base}_{quote}-{timeframe}.{fmt}"
    return f"{base}_{quote}_{quote}-{timeframe}-futures.{fmt}"


def funding_filename(symbol: str, timeframe: str = "8h", *, fmt: str = "feather") -> str:
    """Return freqtrade's funding file name, e.g. ``BTC_USDT_USDT-8h-funding_rate.feather``."""
    base, quote = split_symbol(symbol)
    return f"{base}_{quote}_{quote}-{timeframe}-funding_rate.{_check_format(fmt)}"


def mark_filename(symbol: str, timeframe: str = "8h", *, fmt: str = "feather") -> str:
    """Return freqtrade's mark-price file name, e.g. ``BTC_USDT_USDT-8h-mark.feather``."""
    base, quote = split_symbol(symbol)
    return f"{base}_{quote}_{quote}-{timeframe}-mark.{_check_format(fmt)}"


# ---------------------------------------------------------------- writing


def _write(frame: pd.DataFrame, path: Path) -> Path:
    fmt = _check_format(path.suffix)
    # Write beside the target and rename: a reader never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if fmt == "feather":
            frame.to_feather(tmp, compression="lz4")
        elif fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        tmp.replace(path)
    except (OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{path}: cannot write: {exc}") from exc
    return path


def _checked(df: pd.DataFrame, columns: tuple[str, ...], path: Path) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: cannot write: the frame lacks column(s) {', '.join(missing)}")
    if not isinstance(df["date"].dtype, pd.DatetimeTZDtype):
        raise DataError(
            f"{path}: cannot write: 'date' must be datetime64[ns, UTC], not {df['date'].dtype}"
        )
    return df.loc[:, list(columns)].reset_index(drop=True)


def write_candles(df: pd.DataFrame, path: Path | str) -> Path:
    """Write canonical candles to ``path``; the suffix picks feather, parquet or csv.

    The write is atomic (a temporary file renamed into place). CSV times are ISO 8601 UTC.
    """
    path = Path(path)
    return _write(_checked(df, CANDLE_COLUMNS, path), path)


def _freqtrade_layout(df: pd.DataFrame, value: str) -> pd.DataFrame:
    values = df[value].to_numpy(dtype=np.float64)
    zeros = np.zeros(len(df))
    return pd.DataFrame(
        {
            "date": df["date"],
            "open": values,
            "high": zeros,
            "low": zeros,
            "close": zeros,
            "volume": zeros,
        }
    )


def write_funding(df: pd.DataFrame, path: Path | str) -> Path:
    """Write a funding frame (``date``, ``rate``) in freqtrade's layout: the rate in ``open``."""
    path = Path(path)
    return _write(_freqtrade_layout(_checked(df, FUNDING_COLUMNS, path), "rate"), path)


def write_mark(df: pd.DataFrame, path: Path | str) -> Path:
    """Write a mark frame (``date``, ``mark``) as freqtrade-style candles: the mark in ``open``.

    High, low and close are the mark too and volume is 0: a mark frame keeps only the price at
    each time.
    """
    path = Path(path)
    frame = _checked(df, MARK_COLUMNS, path)
    mark = frame["mark"].to_numpy(dtype=np.float64)
    out = pd.DataFrame(
        {
            "date": frame["date"],
            "open": mark,
            "high": mark,
            "low": mark,
            "close": mark,
            "volume": np.zeros(len(frame)),
        }
    )
    return _write(out, path)
