"""Import market data: load, validate, apply only the requested repairs, resample, write.

The service behind ``qtrader data import``. :func:`plan_import` finds what to import (one job
per symbol and timeframe of candles, and one per funding or mark file); :func:`prepare_job`
loads, validates, repairs and resamples one job in memory and refuses it if errors remain;
:func:`write_prepared` writes prepared jobs under freqtrade's names, so
:func:`~quantum_trader.data.loaders.load_market` finds them.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    funding_filename,
    mark_filename,
    parse_data_filename,
    scan_folder,
    write_candles,
    write_funding,
    write_mark,
)
from quantum_trader.data.loaders import find_symbol_files, load_files
from quantum_trader.data.repair import RepairLog, repair_candles
from quantum_trader.data.resample import resample_candles
from quantum_trader.data.timeframes import infer_timeframe, parse_timeframe
from quantum_trader.data.validate import (
    ValidationReport,
    validate_candles,
    validate_funding,
    validate_mark,
)
from quantum_trader.domain.errors import DataError, DataValidationError


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What the user asked for: filters, repairs, resampling and the output format."""

    symbols: tuple[str, ...] = ()
    timeframe: str | None = None
    resample: str | None = None
    fill_gaps: bool = False
    drop_duplicates: bool = False
    sort: bool = False
    fmt: str = "feather"


@dataclass(frozen=True, slots=True)
class ImportJob:
    """One output file to make: its symbol, kind, timeframe (None: infer) and source files."""

    symbol: str
    kind: FileKind
    timeframe: str | None
    sources: tuple[Path, ...]
    market: str = "futures"

    @property
    def label(self) -> str:
        """Return a short name for progress and messages, e.g. ``BTCUSDT 1m candles``."""
        return f"{self.symbol} {self.timeframe or ''} {self.kind.value}".replace("  ", " ")


@dataclass(frozen=True, slots=True)
class PreparedJob:
    """A job loaded, checked and repaired in memory, ready to write."""

    job: ImportJob
    frame: pd.DataFrame
    filename: str
    timeframe: str | None
    rows_in: int
    before: ValidationReport
    after: ValidationReport
    repair: RepairLog | None = None
    resampled_from: str | None = None


class ImportRefusedError(DataValidationError):
    """The data still has errors after the requested repairs; ``report`` says which."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message, issues=report.errors)
        self.report = report


def _symbol_filter(options: ImportOptions) -> set[str]:
    return {exchange_symbol(s) for s in options.symbols}


def _file_job(path: Path, options: ImportOptions) -> list[ImportJob]:
    info = parse_data_filename(path)
    wanted = _symbol_filter(options)
    if info is None:
        if len(wanted) != 1:
            raise DataError(f"{path}: cannot tell the symbol from the file name; pass one --symbol")
        return [ImportJob(next(iter(wanted)), FileKind.CANDLES, options.timeframe, (path,))]
    if wanted and info.symbol not in wanted:
        raise DataError(
            f"{path}: the file name says {info.symbol}, not {', '.join(sorted(wanted))}"
        )
    if info.kind is FileKind.CANDLES and options.timeframe and info.timeframe != options.timeframe:
        raise DataError(
            f"{path}: the file name says {info.timeframe} bars, not {options.timeframe}"
        )
    market = info.market or "futures"
    timeframe = info.timeframe if info.kind is FileKind.CANDLES else (info.timeframe or "8h")
    return [ImportJob(info.symbol, info.kind, timeframe, (path,), market)]


def _folder_jobs(folder: Path, options: ImportOptions) -> list[ImportJob]:
    files = scan_folder(folder)
    wanted = _symbol_filter(options)
    symbols = sorted({f.symbol for f in files if not wanted or f.symbol in wanted})
    jobs: list[ImportJob] = []
    for symbol in symbols:
        mine = [f for f in files if f.symbol == symbol]
        frames = sorted(
            {f.timeframe for f in mine if f.kind is FileKind.CANDLES and f.timeframe},
            key=parse_timeframe,
        )
        if options.timeframe:
            frames = [tf for tf in frames if tf == options.timeframe]
        chosen = None
        for tf in frames:
            chosen = find_symbol_files(files, symbol, tf)
            first: DataFile = chosen.candles[0]
            market = first.market or "futures"
            jobs.append(
                ImportJob(
                    symbol, FileKind.CANDLES, tf, tuple(f.path for f in chosen.candles), market
                )
            )
        if chosen is None:
            continue  # funding or mark without candles of the asked timeframe: not imported
        if chosen.funding:
            head = chosen.funding[0]
            funding_tf = head.timeframe if head.layout is Layout.FREQTRADE else "8h"
            parts = tuple(f.path for f in chosen.funding)
            jobs.append(ImportJob(symbol, FileKind.FUNDING, funding_tf, parts))
        if chosen.mark is not None:
            jobs.append(
                ImportJob(symbol, FileKind.MARK, chosen.mark.timeframe, (chosen.mark.path,))
            )
    return jobs


def plan_import(path: Path | str, options: ImportOptions) -> list[ImportJob]:
    """Return the jobs importing ``path`` (a file or folder) needs, given the filters.

    A folder yields, per symbol, one candle job per timeframe present (the ``--timeframe``
    filter keeps one) and, when present, one funding and one mark job.

    Raises:
        DataError: ``path`` is missing, a file's symbol cannot be told, or nothing matches.
    """
    path = Path(path)
    if options.timeframe:
        parse_timeframe(options.timeframe)
    if options.resample:
        parse_timeframe(options.resample)
    if path.is_file():
        jobs = _file_job(path, options)
    elif path.is_dir():
        jobs = _folder_jobs(path, options)
    else:
        raise DataError(f"{path}: no such file or folder")
    if not jobs:
        filters = ", ".join(
            part
            for part in (
                f"symbol {', '.join(options.symbols)}" if options.symbols else "",
                f"timeframe {options.timeframe}" if options.timeframe else "",
            )
            if part
        )
        suffix = f" for {filters}" if filters else ""
        raise DataError(f"{path}: nothing to import: no recognised candle files{suffix}")
    return jobs


def _refuse(report: ValidationReport, job: ImportJob, what: str) -> ImportRefusedError:
    flags = report.repair_flags()
    manual = sorted({i.kind.value for i in report.errors if i.kind.repair_flag is None})
    advice = []
    if flags:
        advice.append(f"add {' '.join(flags)} to repair")
    if manual:
        advice.append(f"{', '.join(manual)} must be fixed in the source")
    return ImportRefusedError(
        f"{job.label}: refusing to write {what} with errors left: "
        f"{report.summary(3)}\n{'; '.join(advice)}",
        report,
    )


def _prepare_candles(job: ImportJob, options: ImportOptions) -> PreparedJob:
    loaded = load_files(job.sources, FileKind.CANDLES)
    timeframe = job.timeframe
    if timeframe is None:
        ts = np.sort(loaded.frame["date"].to_numpy(dtype="datetime64[ns]").view(np.int64))
        timeframe = infer_timeframe(ts)
        if timeframe is None:
            raise DataError(f"{loaded.source}: cannot tell the bar size; pass --timeframe")
    before = loaded.locate(
        validate_candles(loaded.frame, source=loaded.source, timeframe=timeframe)
    )
    if any(issue.kind.repair_flag is None for issue in before.errors):
        raise _refuse(before, job, "candles")
    try:
        frame, log = repair_candles(
            loaded.frame,
            timeframe=timeframe,
            drop_duplicates=options.drop_duplicates,
            fill_gaps=options.fill_gaps,
            sort=options.sort,
            source=loaded.source,
        )
    except DataValidationError as exc:
        raise ImportRefusedError(f"{job.label}: {exc}", before) from exc
    after = (
        validate_candles(frame, source=f"{loaded.source} (repaired)", timeframe=timeframe)
        if log.changed
        else before
    )
    if not after.ok:
        raise _refuse(after, job, "candles")
    out_tf, resampled_from = timeframe, None
    if options.resample and options.resample != timeframe:
        frame = resample_candles(frame, options.resample, source_timeframe=timeframe)
        out_tf, resampled_from = options.resample, timeframe
        after = validate_candles(frame, source=f"{loaded.source} (resampled)", timeframe=out_tf)
        if not after.ok:
            raise _refuse(after, job, "resampled candles")
    name = candle_filename(job.symbol, out_tf, fmt=options.fmt, market=job.market)
    return PreparedJob(
        job, frame, name, out_tf, len(loaded.frame), before, after, log, resampled_from
    )


def prepare_job(job: ImportJob, options: ImportOptions) -> PreparedJob:
    """Load, validate and repair one job in memory.

    Raises:
        DataError: A source cannot be read, or an option does not fit (e.g. upsampling).
        ImportRefusedError: Errors remain after the requested repairs; nothing is written.
    """
    if job.kind is FileKind.CANDLES:
        return _prepare_candles(job, options)
    if job.kind is FileKind.FUNDING:
        loaded = load_files(job.sources, FileKind.FUNDING)
        report = loaded.locate(validate_funding(loaded.frame, source=loaded.source))
        name = funding_filename(job.symbol, job.timeframe or "8h", fmt=options.fmt)
    else:
        loaded = load_files(job.sources, FileKind.MARK)
        report = loaded.locate(validate_mark(loaded.frame, source=loaded.source))
        name = mark_filename(job.symbol, job.timeframe or "8h", fmt=options.fmt)
    if not report.ok:
        raise _refuse(report, job, job.kind.value)
    return PreparedJob(job, loaded.frame, name, job.timeframe, len(loaded.frame), report, report)


def write_prepared(prepared: Sequence[PreparedJob], out: Path | str) -> list[Path]:
    """Write prepared jobs into folder ``out`` (created if needed); return the paths written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{out}: cannot create the output folder: {exc}") from exc
    writers = {
        FileKind.CANDLES: write_candles,
        FileKind.FUNDING: write_funding,
        FileKind.MARK: write_mark,
    }
    return [writers[p.job.kind](p.frame, out / p.filename) for p in prepared]
