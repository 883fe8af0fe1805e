"""Load candles, funding and mark prices from files into the frames of :mod:`.market`.

``load_candles``, ``load_funding`` and ``load_mark`` read one file of any supported format
(see :mod:`.readers`) and return rows in file order with canonical dtypes: they never sort,
drop or fill (those are repairs, :mod:`.repair`). ``load_market`` finds each symbol's files in a
folder (see :mod:`.catalog` for the names), loads them, validates them, and raises
:class:`DataValidationError` if any has an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from quantum_trader.data.catalog import (
    DataFile,
    FileKind,
    Layout,
    candle_filename,
    exchange_symbol,
    parse_data_filename,
    scan_folder,
    split_symbol,
)
from quantum_trader.data.market import SymbolData
from quantum_trader.data.readers import (
    TIME_COLUMNS,
    RawTable,
    column_floats,
    column_times,
    find_column,
    read_raw,
    utc_dates,
)
from quantum_trader.data.timeframes import parse_timeframe
from quantum_trader.data.validate import (
    ValidationReport,
    validate_candles,
    validate_funding,
    validate_mark,
)
from quantum_trader.domain.errors import DataError

RATE_COLUMNS = (
    "rate",
    "funding_rate",
    "fundingrate",
    "last_funding_rate",
    "lastfundingrate",
    "open",
)
MARK_VALUE_COLUMNS = ("mark", "mark_price", "markprice", "open")
_FORMAT_RANK = {"feather": 0, "parquet": 1, "csv": 2, "zip": 3}


def _dates(table: RawTable) -> pd.DatetimeIndex:
    return utc_dates(column_times(table, find_column(table, TIME_COLUMNS, "time")))


def load_candles(path: Path | str) -> pd.DataFrame:
    """Load one candle file (feather, parquet, CSV, Binance kline CSV or zip) in file order.

    Returns:
        ``date`` (``datetime64[ns, UTC]``, bar open time) and float64 open/high/low/close/volume.

    Raises:
        DataError: The file is missing, empty, corrupt, lacks a column, or has a value that is
            not a number or not a time (the message names the file, row and column).
    """
    table = read_raw(path)
    needed = ("open", "high", "low", "close", "volume")
    missing = [name for name in needed if name not in table.frame.columns]
    if missing:
        raise DataError(
            f"{table.path}: missing column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, table.frame.columns))}"
        )
    dates = _dates(table)
    return pd.DataFrame({"date": dates, **{name: column_floats(table, name) for name in needed}})


def load_funding(path: Path | str) -> pd.DataFrame:
    """Load one funding file into ``date`` + ``rate``, in file order.

    Reads a ``rate`` column (or Binance's ``last_funding_rate``), else freqtrade's layout where
    the rate is in ``open``. Times are kept as written: freqtrade's may be a few ms past the hour.
    """
    table = read_raw(path)
    rate = find_column(table, RATE_COLUMNS, "funding rate")
    return pd.DataFrame({"date": _dates(table), "rate": column_floats(table, rate)})


def load_mark(path: Path | str) -> pd.DataFrame:
    """Load one mark-price file into ``date`` + ``mark``, in file order.

    Reads a ``mark`` column, else mark-price candles, whose ``open`` is the mark at that time.
    """
    table = read_raw(path)
    mark = find_column(table, MARK_VALUE_COLUMNS, "mark price")
    return pd.DataFrame({"date": _dates(table), "mark": column_floats(table, mark)})


# ---------------------------------------------------------------- several files


@dataclass(frozen=True, slots=True)
class LoadedFrame:
    """Rows from one or more files, concatenated in time order, and where each part starts."""

    frame: pd.DataFrame
    paths: tuple[Path, ...]
    offsets: tuple[int, ...]

    @property
    def source(self) -> str:
        """Return the file, or the first and last of several files, as one string."""
        if len(self.paths) == 1:
            return str(self.paths[0])
        return f"{self.paths[0]} … {self.paths[-1].name} ({len(self.paths)} files)"

    def locate(self, report: ValidationReport) -> ValidationReport:
        """Return ``report`` with each issue's source and row pointing into its own file."""
        if len(self.paths) == 1:
            return dataclasses.replace(
                report,
                issues=tuple(
                    dataclasses.replace(i, source=str(self.paths[0])) for i in report.issues
                ),
            )
        starts = np.asarray(self.offsets)
        issues = []
        for issue in report.issues:
            part = int(np.searchsorted(starts, issue.row, side="right")) - 1
            issues.append(
                dataclasses.replace(
                    issue, source=str(self.paths[part]), row=issue.row - int(starts[part])
                )
            )
        return dataclasses.replace(report, issues=tuple(issues))


def _first_time(frame: pd.DataFrame) -> int:
    values = frame["date"].to_numpy(dtype="datetime64[ns]")
    valid = values[~np.isnat(values)]
    return int(valid[0].view(np.int64)) if valid.size else np.iinfo(np.int64).max


def load_files(paths: Iterable[Path | str], kind: FileKind = FileKind.CANDLES) -> LoadedFrame:
    """Load several files of one kind and concatenate them in time order of their first rows.

    Rows inside each file keep their order; overlaps between files are left for the validator.
    """
    loader = {
        FileKind.CANDLES: load_candles,
        FileKind.FUNDING: load_funding,
        FileKind.MARK: load_mark,
    }[kind]
    parts = [(Path(p), loader(p)) for p in paths]
    if not parts:
        raise DataError("no files to load")
    parts.sort(key=lambda part: (_first_time(part[1]), part[0].name))
    offsets = np.cumsum([0] + [len(frame) for _, frame in parts[:-1]]).tolist()
    frame = parts[0][1] if len(parts) == 1 else pd.concat([f for _, f in parts], ignore_index=True)
    return LoadedFrame(frame, tuple(p for p, _ in parts), tuple(offsets))


# ---------------------------------------------------------------- finding a symbol's files


@dataclass(frozen=True, slots=True)
class SymbolFiles:
    """The files found for one symbol: candle parts, funding parts and a mark file."""

    candles: tuple[DataFile, ...]
    funding: tuple[DataFile, ...]
    mark: DataFile | None


def _rank(f: DataFile) -> tuple[int, str]:
    return _FORMAT_RANK.get(f.format, 9), f.path.name


def _binance_parts(files: Sequence[DataFile]) -> tuple[DataFile, ...]:
    # An unzipped CSV next to its zip is the same data: keep one of each name.
    by_stem: dict[str, DataFile] = {}
    for f in sorted(files, key=_rank):
        by_stem.setdefault(f.path.stem, f)
    return tuple(sorted(by_stem.values(), key=lambda f: f.path.name))


def find_symbol_files(files: Sequence[DataFile], symbol: str, timeframe: str) -> SymbolFiles:
    """Pick ``symbol``'s files at ``timeframe`` from scanned ``files``.

    Candles: freqtrade futures, else freqtrade spot (feather, then parquet, then csv), else every
    Binance kline file. Funding: freqtrade's (8h first), else Binance's. Mark: freqtrade's mark
    candles, 8h first, then ``timeframe``.
    """
    wanted = exchange_symbol(symbol)
    mine = [f for f in files if f.symbol == wanted]
    candles: tuple[DataFile, ...] = ()
    for market in ("futures", "spot"):
        group = [
            f
            for f in mine
            if f.kind is FileKind.CANDLES
            and f.layout is Layout.FREQTRADE
            and f.market == market
            and f.timeframe == timeframe
        ]
        if group:
            candles = (min(group, key=_rank),)
            break
    if not candles:
        candles = _binance_parts(
            [
                f
                for f in mine
                if f.kind is FileKind.CANDLES
                and f.layout is Layout.BINANCE
                and f.timeframe == timeframe
            ]
        )
    tf_order = {"8h": 0, timeframe: 1}
    ft_funding = [f for f in mine if f.kind is FileKind.FUNDING and f.layout is Layout.FREQTRADE]
    funding: tuple[DataFile, ...] = ()
    if ft_funding:
        funding = (min(ft_funding, key=lambda f: (tf_order.get(f.timeframe or "", 2), *_rank(f))),)
    else:
        funding = _binance_parts([f for f in mine if f.kind is FileKind.FUNDING])
    marks = [f for f in mine if f.kind is FileKind.MARK]
    mark = (
        min(marks, key=lambda f: (tf_order.get(f.timeframe or "", 2), *_rank(f))) if marks else None
    )
    return SymbolFiles(candles, funding, mark)


def _looked_for(symbol: str, timeframe: str) -> str:
    wanted = exchange_symbol(symbol)
    names = []
    try:
        split_symbol(wanted)
    except DataError:
        names.append(f"<BASE>_<QUOTE>_<QUOTE>-{timeframe}-futures.feather|.parquet|.csv")
    else:
        names.append(
            candle_filename(wanted, timeframe, fmt="feather").replace(
                ".feather", ".feather|.parquet|.csv"
            )
        )
        names.append(
            candle_filename(wanted, timeframe, fmt="feather", market="spot").replace(
                ".feather", ".feather|.parquet|.csv"
            )
        )
    names.append(f"{wanted}-{timeframe}-*.csv|.zip")
    return ", ".join(names)


def _available(files: Sequence[DataFile], timeframe: str) -> str:
    by_symbol: dict[str, set[str]] = {}
    for f in files:
        if f.kind is FileKind.CANDLES and f.timeframe:
            by_symbol.setdefault(f.symbol, set()).add(f.timeframe)
    if not by_symbol:
        return "none (no recognised candle files)"
    at_tf = sorted(s for s, tfs in by_symbol.items() if timeframe in tfs)
    others = sorted(s for s in by_symbol if s not in at_tf)
    text = f"at {timeframe}: {', '.join(at_tf) or 'none'}"
    if others:
        text += "; at other timeframes: " + ", ".join(
            f"{s} ({', '.join(sorted(by_symbol[s], key=parse_timeframe))})" for s in others
        )
    return text


# ---------------------------------------------------------------- whole markets


def _single_file(
    path: Path, symbols: Sequence[str], timeframe: str
) -> tuple[list[DataFile], dict[str, SymbolFiles]]:
    if len(symbols) != 1:
        raise DataError(
            f"{path}: one file holds one symbol, but {len(symbols)} were asked for "
            f"({', '.join(symbols)}); pass the folder instead"
        )
    symbol = symbols[0]
    info = parse_data_filename(path)
    if info is not None:
        if info.kind is not FileKind.CANDLES:
            raise DataError(f"{path}: holds {info.kind.value}, not candles")
        if info.symbol != exchange_symbol(symbol):
            raise DataError(f"{path}: the file name says {info.symbol}, but {symbol} was asked for")
        if info.timeframe != timeframe:
            raise DataError(
                f"{path}: the file name says {info.timeframe} bars, but {timeframe} was asked for"
            )
    else:
        info = DataFile(
            path, exchange_symbol(symbol), timeframe, FileKind.CANDLES, Layout.FREQTRADE
        )
    beside = scan_folder(path.parent)
    extra = find_symbol_files(beside, symbol, timeframe)
    return beside, {symbol: SymbolFiles((info,), extra.funding, extra.mark)}


def _load_symbol(symbol: str, timeframe: str, files: SymbolFiles, path: Path) -> SymbolData:
    candles = load_files([f.path for f in files.candles], FileKind.CANDLES)
    report = candles.locate(
        validate_candles(candles.frame, source=candles.source, timeframe=timeframe)
    )
    report.raise_if_errors(hint=report.repair_hint(str(path)))
    funding = mark = None
    if files.funding:
        loaded = load_files([f.path for f in files.funding], FileKind.FUNDING)
        loaded.locate(validate_funding(loaded.frame, source=loaded.source)).raise_if_errors(
            hint="fix the funding file or remove it"
        )
        funding = loaded.frame
    if files.mark is not None:
        mark = load_mark(files.mark.path)
        validate_mark(mark, source=str(files.mark.path)).raise_if_errors(
            hint="fix the mark-price file or remove it"
        )
    return SymbolData(symbol, timeframe, candles.frame, funding, mark, source=candles.source)


def load_market(path: Path | str, symbols: Sequence[str], timeframe: str) -> dict[str, SymbolData]:
    """Load and validate candles, funding and mark prices for ``symbols`` from a folder or file.

    Args:
        path: A folder of data files, or one candle file (then ``symbols`` has one symbol; its
            funding and mark files are looked for beside it).
        symbols: Exchange-style symbols such as ``BTCUSDT``.
        timeframe: The bar size of the candles to load, e.g. ``"1m"``.

    Returns:
        One :class:`SymbolData` per symbol, keyed by the symbol as given; funding and mark are
        None when no file holds them.

    Raises:
        DataError: ``path`` is missing, a symbol has no candle file (the message lists the file
            names looked for and the symbols available), or a file cannot be read.
        DataValidationError: A file has errors; the message summarises them and how to repair.
    """
    path = Path(path)
    parse_timeframe(timeframe)
    # A bare string is one symbol, not a sequence of one-letter symbols.
    unique = [symbols] if isinstance(symbols, str) else list(dict.fromkeys(symbols))
    if not unique:
        raise DataError("no symbols asked for")
    if path.is_file():
        scanned, chosen = _single_file(path, unique, timeframe)
    elif path.is_dir():
        scanned = scan_folder(path)
        chosen = {s: find_symbol_files(scanned, s, timeframe) for s in unique}
    else:
        raise DataError(f"{path}: no such file or folder")
    missing = [s for s, files in chosen.items() if not files.candles]
    if missing:
        looked = "; ".join(f"{s}: {_looked_for(s, timeframe)}" for s in missing)
        raise DataError(
            f"{path}: no {timeframe} candles for {', '.join(missing)}. Looked for {looked}. "
            f"Symbols available {_available(scanned, timeframe)}"
        )
    return {s: _load_symbol(s, timeframe, chosen[s], path) for s in unique}
