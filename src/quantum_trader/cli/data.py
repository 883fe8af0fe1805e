"""``qtrader data``: validate market data files and import them into canonical files.

Exit codes: 0 clean or imported; 1 the data has issues (validate) or errors remain after the
requested repairs (import; nothing is written); 2 unreadable input or a bad option.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from quantum_trader.cli.console import console, err_console, progress_bar
from quantum_trader.data.catalog import (
    FORMATS,
    DataFile,
    FileKind,
    parse_data_filename,
    scan_folder,
)
from quantum_trader.data.importer import (
    ImportJob,
    ImportOptions,
    ImportRefusedError,
    PreparedJob,
    plan_import,
    prepare_job,
    write_prepared,
)
from quantum_trader.data.loaders import load_candles, load_funding, load_mark
from quantum_trader.data.timeframes import infer_timeframe, parse_timeframe
from quantum_trader.data.validate import (
    ValidationReport,
    validate_candles,
    validate_funding,
    validate_mark,
)
from quantum_trader.domain.errors import DataError

data_app = typer.Typer(
    help="Validate and import market data (freqtrade feather, Binance CSV/zip, CSV, parquet).",
    no_args_is_help=True,
)

EXIT_OK, EXIT_ISSUES, EXIT_UNREADABLE = 0, 1, 2


def _error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- validate


@dataclass(frozen=True, slots=True)
class _Target:
    path: Path
    kind: FileKind
    timeframe: str | None


def _targets(path: Path, timeframe: str | None) -> list[_Target]:
    if path.is_file():
        info = parse_data_filename(path)
        kind = info.kind if info else FileKind.CANDLES
        return [_Target(path, kind, timeframe or (info.timeframe if info else None))]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    files: list[DataFile] = scan_folder(path)
    chosen = [
        f
        for f in files
        if f.kind is not FileKind.CANDLES or timeframe is None or f.timeframe == timeframe
    ]
    if not chosen:
        raise DataError(
            f"{path}: no recognised data files{f' of {timeframe} candles' if timeframe else ''} "
            "(names like BTC_USDT_USDT-1m-futures.feather or BTCUSDT-1m-2025-05.zip)"
        )
    return [_Target(f.path, f.kind, f.timeframe) for f in chosen]


def _validate_target(target: _Target) -> tuple[ValidationReport, str]:
    source = str(target.path)
    if target.kind is FileKind.FUNDING:
        return validate_funding(load_funding(target.path), source=source), "funding rates"
    if target.kind is FileKind.MARK:
        return validate_mark(load_mark(target.path), source=source), "mark prices"
    frame = load_candles(target.path)
    timeframe, note = target.timeframe, ""
    if timeframe is None:
        ts = np.sort(frame["date"].to_numpy(dtype="datetime64[ns]").view(np.int64))
        timeframe = infer_timeframe(ts)
        note = " (bar size inferred)" if timeframe else " (bar size unknown: gaps not checked)"
    what = f"{timeframe} candles{note}" if timeframe else f"candles{note}"
    return validate_candles(frame, source=source, timeframe=timeframe), what


def _print_report(report: ValidationReport, what: str, max_lines: int) -> None:
    head = f"{report.source}: {report.rows:,} rows of {what}"
    if report.clean:
        console.print(f"[green]OK[/] {head}, no issues", highlight=False, soft_wrap=True)
        return
    counts = ", ".join(f"{kind.value} {n:,}" for kind, n in report.counts_by_kind().items())
    missing = f"; {report.missing_bars:,} bars missing" if report.missing_bars else ""
    style = "yellow" if report.ok else "red"
    console.print(
        f"[{style}]{len(report.issues):,} issues[/] {head} ({counts}){missing}",
        highlight=False,
        soft_wrap=True,
    )
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("kind", no_wrap=True)
    table.add_column("row", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for issue in report.issues[:max_lines]:
        table.add_row(issue.kind.value, str(issue.row), issue.ts or "-", issue.detail)
    console.print(table)
    if len(report.issues) > max_lines:
        console.print(f"... and {len(report.issues) - max_lines:,} more", highlight=False)
    hint = report.repair_hint(str(report.source))
    if hint:
        console.print(hint, highlight=False, soft_wrap=True)


@data_app.command("validate")
def validate_command(
    path: Annotated[Path, typer.Argument(help="A data file, or a folder of them.")],
    timeframe: Annotated[
        str | None,
        typer.Option(
            help="Bar size, e.g. 1m. For a file: overrides its name. For a folder: check only "
            "candle files of this size. Default: from the file name, else inferred."
        ),
    ] = None,
    max_lines: Annotated[int, typer.Option(help="Issues listed per file.", min=1)] = 20,
) -> None:
    """Check candle, funding and mark files for gaps, duplicates, NaN and broken bars."""
    try:
        if timeframe is not None:
            parse_timeframe(timeframe)
        targets = _targets(path, timeframe)
    except DataError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_UNREADABLE) from None
    code = EXIT_OK
    for target in targets:
        try:
            report, what = _validate_target(target)
        except DataError as exc:
            _error(str(exc))
            code = EXIT_UNREADABLE
            continue
        _print_report(report, what, max_lines)
        if not report.clean and code == EXIT_OK:
            code = EXIT_ISSUES
    raise typer.Exit(code)


# ---------------------------------------------------------------- import


def _describe(prepared: PreparedJob) -> str:
    parts = []
    log = prepared.repair
    if log is not None and log.moved_rows:
        parts.append(f"sorted ({log.moved_rows:,} rows moved)")
    if log is not None and log.dropped_rows:
        parts.append(f"dropped {len(log.dropped_rows):,} duplicates")
    if log is not None and log.filled_gaps:
        parts.append(f"filled {len(log.filled_gaps):,} gaps (+{log.bars_inserted:,} bars)")
    if prepared.resampled_from:
        parts.append(f"resampled {prepared.resampled_from} → {prepared.timeframe}")
    if prepared.after.warnings:
        parts.append(f"{len(prepared.after.warnings)} warnings (kept)")
    return "; ".join(parts) or "unchanged"


def _print_done(prepared: list[PreparedJob], written: list[Path], out: Path) -> None:
    console.print(f"Imported {len(written)} file(s) into [bold]{out}[/]:", highlight=False)
    for p, path in zip(prepared, written, strict=True):
        what = f"{p.job.symbol} {p.timeframe or ''} {p.job.kind.value}".replace("  ", " ")
        console.print(
            f"  {path.name}: {what}, {p.rows_in:,} → {len(p.frame):,} rows; {_describe(p)}",
            highlight=False,
            soft_wrap=True,
        )


def _symbols(values: list[str] | None) -> tuple[str, ...]:
    return tuple(s.strip() for v in values or [] for s in v.split(",") if s.strip())


def _prepare_one(job: ImportJob, options: ImportOptions, prepared: list[PreparedJob]) -> int:
    try:
        prepared.append(prepare_job(job, options))
    except ImportRefusedError as exc:
        _error(str(exc))
        return EXIT_ISSUES
    except DataError as exc:
        _error(str(exc))
        return EXIT_UNREADABLE
    return EXIT_OK


def _prepare_all(jobs: list[ImportJob], options: ImportOptions) -> tuple[list[PreparedJob], int]:
    prepared: list[PreparedJob] = []
    if len(jobs) == 1:
        return prepared, _prepare_one(jobs[0], options, prepared)
    code = EXIT_OK
    with progress_bar("import") as bar:
        task = bar.task_ids[0]
        for i, job in enumerate(jobs):
            code = max(code, _prepare_one(job, options, prepared))
            bar.update(task, completed=(i + 1) / len(jobs), description=f"import {job.label}")
    return prepared, code


@data_app.command("import")
def import_command(
    path: Annotated[
        Path, typer.Argument(help="A data file (CSV, zip, feather, parquet) or a folder.")
    ],
    out: Annotated[Path, typer.Option(help="Folder to write the canonical files to.")],
    timeframe: Annotated[
        str | None, typer.Option(help="Bar size of the input; only this one from a folder.")
    ] = None,
    resample: Annotated[
        str | None, typer.Option(help="Aggregate to this bar size, e.g. 5m.")
    ] = None,
    fill_gaps: Annotated[
        bool,
        typer.Option(
            "--fill-gaps", help="Insert missing bars: flat at the previous close, volume 0."
        ),
    ] = False,
    drop_duplicates: Annotated[
        bool,
        typer.Option(
            "--drop-duplicates", help="Drop rows repeating an earlier time (keep the first)."
        ),
    ] = False,
    sort: Annotated[bool, typer.Option("--sort", help="Sort rows by time.")] = False,
    fmt: Annotated[
        str, typer.Option("--format", help=f"Output format: {', '.join(FORMATS)}.")
    ] = "feather",
    symbol: Annotated[
        list[str] | None,
        typer.Option(help="Only this symbol, e.g. BTCUSDT (repeatable); needed for unnamed files."),
    ] = None,
) -> None:
    """Load, validate, apply only the requested repairs, and write canonical files to --out."""
    options = ImportOptions(
        _symbols(symbol), timeframe, resample, fill_gaps, drop_duplicates, sort, fmt
    )
    try:
        if fmt not in FORMATS:
            raise DataError(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")
        jobs = plan_import(path, options)
    except DataError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_UNREADABLE) from None
    prepared, code = _prepare_all(jobs, options)
    if code != EXIT_OK:
        err_console.print("Nothing written.", highlight=False)
        raise typer.Exit(code)
    try:
        written = write_prepared(prepared, out)
    except DataError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_UNREADABLE) from None
    _print_done(prepared, written, out)
    raise typer.Exit(EXIT_OK)
