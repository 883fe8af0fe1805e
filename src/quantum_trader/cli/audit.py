"""``qtrader audit``: verify, query, report on, clean up and export the audit trail.

::

    qtrader audit verify runs/audit [--key-env QT_AUDIT_KEY]
    qtrader audit query runs/audit [--type risk.blocked ...] [--since T] [--until T]
        [--symbol BTCUSDT] [--actor A] [--outcome O] [--reason R] [--text T] [--limit N]
        [--format table|jsonl|csv]
    qtrader audit report runs/audit --from 2025-03-01 --to 2025-04-01 [--format md|html|csv]
        [--out FILE]
    qtrader audit cleanup runs/audit [--retention-days 90] [--dry-run]
    qtrader audit export runs/audit --out FILE.jsonl|FILE.csv [--from T] [--to T] [--type ...]

Times are ISO 8601 (``2025-03-01``, ``2025-03-01T12:30:00Z``, ``...+02:00``); a time without an
offset is UTC and a date alone is its midnight UTC. ``--since``/``--from`` are included,
``--until``/``--to`` excluded.

A chain sealed with HMAC needs its key: it is read from the environment variable named by
``--key-env`` (default ``QT_AUDIT_KEY``, used when set) as UTF-8 bytes, never from the command
line, where it would land in shell history and process lists.

Exit codes: 0 done; 1 the chain does not verify (``verify``, ``report``, ``cleanup``) or the
audit log cannot be written (``cleanup``); 2 a bad option or time, a missing folder, or a folder
without audit files.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from quantum_trader.cli.console import console, err_console, fail
from quantum_trader.domain.clock import NANOS_PER_DAY, WallClock
from quantum_trader.domain.errors import QuantumTraderError
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.query import (
    EVENT_TYPES,
    AuditQuery,
    InvalidAuditQueryError,
    QueryStats,
    iter_record_lines,
    parse_event_types,
)
from quantum_trader.observability.audit.records import (
    RECORD_FIELDS,
    Durability,
    day_files,
    iso_ts,
)
from quantum_trader.observability.audit.report import (
    build_compliance_report,
    render_csv,
    render_html,
    render_markdown,
)
from quantum_trader.observability.audit.verify import VerifyResult, verify_audit_dir

DEFAULT_KEY_ENV = "QT_AUDIT_KEY"
TABLE_ROWS = 200
PIPE_WIDTH = 240
EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

audit_app = typer.Typer(
    help="Verify, query, report on, clean up and export the hash-chained audit trail.",
    no_args_is_help=True,
)


class QueryFormat(StrEnum):
    """How ``query`` prints its matches."""

    TABLE = "table"
    JSONL = "jsonl"
    CSV = "csv"


class ReportFormat(StrEnum):
    """The compliance report's format."""

    MD = "md"
    HTML = "html"
    CSV = "csv"


AuditDir = Annotated[
    Path,
    typer.Argument(help="The audit folder (audit-YYYY-MM-DD.jsonl files).", show_default=False),
]
KeyEnv = Annotated[
    str | None,
    typer.Option(
        "--key-env",
        help=f"Environment variable holding the chain's HMAC key (default {DEFAULT_KEY_ENV}, "
        "if set). The key itself is never a command-line argument.",
        show_default=False,
    ),
]
Types = Annotated[
    list[str] | None,
    typer.Option(
        "--type",
        help=f"Event type; repeat or separate with commas. One of: {', '.join(EVENT_TYPES)}.",
        show_default=False,
    ),
]


# ---------------------------------------------------------------------------- helpers


def _usage(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def _key(key_env: str | None) -> bytes | None:
    name = key_env or DEFAULT_KEY_ENV
    value = os.environ.get(name)
    if value:
        return value.encode()
    if key_env is not None:
        raise _usage(f"--key-env {key_env}: the environment variable {key_env} is not set")
    return None


def _audit_dir(directory: Path) -> Path:
    if not directory.is_dir():
        raise _usage(f"no such audit folder: {directory}")
    if not day_files(directory):
        raise _usage(f"{directory} holds no audit files (audit-YYYY-MM-DD.jsonl)")
    return directory


def parse_time(value: str, option: str) -> dt.datetime:
    """Parse an ISO 8601 time given to ``option``; no offset means UTC. Exit 2 on a bad value."""
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise _usage(
            f"{option} {value!r} is not an ISO 8601 time "
            "(e.g. 2025-03-01, 2025-03-01T12:30:00Z or 2025-03-01T14:30:00+02:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _maybe_time(value: str | None, option: str) -> dt.datetime | None:
    return None if value is None else parse_time(value, option)


def _types(values: list[str] | None) -> frozenset[str]:
    names = [t.strip() for v in values or [] for t in v.split(",") if t.strip()]
    try:
        return parse_event_types(names)
    except InvalidAuditQueryError as exc:
        raise _usage(f"--type: {exc}") from None


def _query(**fields: Any) -> AuditQuery:
    try:
        return AuditQuery(**fields)
    except InvalidAuditQueryError as exc:
        raise _usage(str(exc)) from None


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    text = "" if value is None else str(value)
    # Keep a spreadsheet from running a cell as a formula; numbers stay numbers.
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_START) else text


def _write_csv(out: TextIO, records: Iterator[tuple[bytes, dict[str, Any]]]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RECORD_FIELDS)
    count = 0
    for _, record in records:
        writer.writerow([_cell(record.get(name)) for name in RECORD_FIELDS])
        count += 1
    return count


def _write_jsonl(out: TextIO, records: Iterator[tuple[bytes, dict[str, Any]]]) -> int:
    count = 0
    for line, _ in records:
        out.write(line.decode("utf-8", errors="replace"))
        count += 1
    return count


def _warn_damaged(stats: QueryStats) -> None:
    if not stats.damaged:
        return
    where = ", ".join(f"{name}:{line}" for name, line in stats.damaged_at[:5])
    err_console.print(
        f"[yellow]warning:[/] skipped {stats.damaged:,} damaged line(s) ({escape(where)}"
        f"{', ...' if stats.damaged > 5 else ''}); run `qtrader audit verify`",
        highlight=False,
        soft_wrap=True,
    )


# ---------------------------------------------------------------------------- verify


def _print_verified(directory: Path, result: VerifyResult) -> None:
    console.print(
        f"[bold green]OK[/] {escape(str(directory))}: {result.records:,} records in "
        f"{result.files:,} files",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"  seq:       {result.first_seq}..{result.last_seq}", highlight=False)
    console.print(f"  last hash: {result.last_hash}", highlight=False)
    for note in result.notes:
        console.print(f"  note:      {escape(note)}", highlight=False, soft_wrap=True)


def _print_broken(directory: Path, result: VerifyResult) -> None:
    problem = result.problem
    assert problem is not None
    console.print(
        f"[bold red]FAILED[/] {escape(str(directory))}: the audit chain does not verify",
        highlight=False,
        soft_wrap=True,
    )
    rows = [
        ("file", problem.file),
        ("line", str(problem.line)),
        ("seq", "-" if problem.seq is None else str(problem.seq)),
        ("message", problem.message),
        ("checked", f"{result.records:,} good records before it"),
    ]
    for name, value in rows:
        console.print(f"  {name + ':':<9}  {escape(value)}", highlight=False, soft_wrap=True)


@audit_app.command("verify")
def verify(directory: AuditDir, key_env: KeyEnv = None) -> None:
    """Check the whole hash chain; name the first edited, missing or reordered record."""
    _audit_dir(directory)
    result = verify_audit_dir(directory, key=_key(key_env))
    if result.ok:
        _print_verified(directory, result)
        raise typer.Exit(EXIT_OK)
    _print_broken(directory, result)
    raise typer.Exit(EXIT_BROKEN)


# ---------------------------------------------------------------------------- query


def _print_table(records: Iterator[tuple[bytes, dict[str, Any]]], cap: int | None) -> int:
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    for name in ("type", "actor", "target", "reason", "outcome", "metadata"):
        # Fold, never cut: an audit tool must not hide part of a value behind an ellipsis.
        table.add_column(name, overflow="fold")
    count = 0
    more = False
    for _, record in records:
        if cap is not None and count >= cap:
            more = True
            break
        ts = str(record.get("ts", ""))
        when = f"{ts[:10]} {ts[11:19]}" if len(ts) >= 19 else ts
        meta = orjson.dumps(record.get("metadata") or {}).decode()
        row = [str(record.get(name, "")) for name in ("event_type", "actor", "target")]
        row += [str(record.get("reason", "")), str(record.get("outcome", "")), meta]
        table.add_row(str(record.get("seq", "")), when, *(escape(c) for c in row))
        count += 1
    if count:
        # Piped or redirected output is not bound to a terminal's width: don't fold it to 80.
        (console if console.is_terminal else Console(width=PIPE_WIDTH)).print(table)
    suffix = " (more match: raise --limit or use --format jsonl)" if more else ""
    console.print(f"{count:,} record(s){suffix}", highlight=False)
    return count


@audit_app.command("query")
def query(
    directory: AuditDir,
    event_type: Types = None,
    since: Annotated[
        str | None, typer.Option(help="First time included (ISO 8601).", show_default=False)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="First time excluded (ISO 8601).", show_default=False)
    ] = None,
    symbol: Annotated[
        str | None, typer.Option(help="Target or metadata symbol.", show_default=False)
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Exact actor.", show_default=False)] = None,
    outcome: Annotated[str | None, typer.Option(help="Exact outcome.", show_default=False)] = None,
    reason: Annotated[
        str | None, typer.Option(help="Exact reason (e.g. a risk reason code).", show_default=False)
    ] = None,
    text: Annotated[
        str | None, typer.Option(help="Substring of the raw JSON line.", show_default=False)
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=0, help=f"At most N records (table default {TABLE_ROWS}).", show_default=False
        ),
    ] = None,
    output: Annotated[QueryFormat, typer.Option("--format", help="Output format.")] = (
        QueryFormat.TABLE
    ),
) -> None:
    """Print the records that match every given filter, oldest first (not a verification)."""
    _audit_dir(directory)
    q = _query(
        event_types=_types(event_type),
        since=_maybe_time(since, "--since"),
        until=_maybe_time(until, "--until"),
        symbol=symbol,
        actor=actor,
        outcome=outcome,
        reason=reason,
        text=text,
        limit=limit,
    )
    stats = QueryStats()
    if output is QueryFormat.TABLE:
        cap = TABLE_ROWS if limit is None else None
        if cap is not None:
            q = replace(q, limit=cap + 1)
        _print_table(iter_record_lines(directory, q, stats=stats), cap)
    elif output is QueryFormat.JSONL:
        _write_jsonl(sys.stdout, iter_record_lines(directory, q, stats=stats))
    else:
        _write_csv(sys.stdout, iter_record_lines(directory, q, stats=stats))
    _warn_damaged(stats)


# ---------------------------------------------------------------------------- report


@audit_app.command("report")
def report(
    directory: AuditDir,
    start: Annotated[
        str, typer.Option("--from", help="Period start, included (ISO 8601).", show_default=False)
    ],
    end: Annotated[
        str, typer.Option("--to", help="Period end, excluded (ISO 8601).", show_default=False)
    ],
    output: Annotated[ReportFormat, typer.Option("--format", help="Report format.")] = (
        ReportFormat.MD
    ),
    out: Annotated[
        Path | None, typer.Option(help="Write here instead of stdout.", show_default=False)
    ] = None,
    key_env: KeyEnv = None,
) -> None:
    """Write the compliance report for a period; exit 1 if the chain does not verify."""
    _audit_dir(directory)
    start_at, end_at = parse_time(start, "--from"), parse_time(end, "--to")
    try:
        built = build_compliance_report(directory, start_at, end_at, key=_key(key_env))
    except InvalidAuditQueryError as exc:
        raise _usage(str(exc)) from None
    render = {
        ReportFormat.MD: render_markdown,
        ReportFormat.HTML: render_html,
        ReportFormat.CSV: render_csv,
    }[output]
    text = render(built)
    if out is None:
        sys.stdout.write(text)
    else:
        _write_atomic(out, text)
        console.print(f"wrote {output.value} report to {escape(str(out))}", highlight=False)
    if not built.chain.ok:
        err_console.print(
            f"[bold red]warning:[/] the audit chain does not verify: "
            f"{escape(str(built.chain.problem))}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_BROKEN)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _usage(f"cannot write {path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------- cleanup


@audit_app.command("cleanup")
def cleanup(
    directory: AuditDir,
    retention_days: Annotated[
        int, typer.Option(min=1, help="Keep day files this many days back from now.")
    ] = 90,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; change nothing.")
    ] = False,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify", help="Skip checking the chain first (it must verify to clean up)."
        ),
    ] = False,
    key_env: KeyEnv = None,
) -> None:
    """Delete day files older than the retention period (the deletion itself is audited).

    The chain is verified first: the deletion record extends it, so with a broken chain or a
    wrong key it would only bury the problem.
    """
    _audit_dir(directory)
    key = _key(key_env)
    clock = WallClock()
    cutoff = iso_ts(clock.now_ns() - retention_days * NANOS_PER_DAY)[:10]
    files = day_files(directory)
    doomed = [p for p in files if p.name[6:16] < cutoff]
    if dry_run:
        _print_deleted(doomed, cutoff, "would delete")
        return
    if doomed and len(doomed) == len(files):
        # AuditLogger anchors the cut at the first surviving record; with none left, its
        # retention record names no valid start and the chain would no longer verify.
        err_console.print(
            f"[bold red]refusing:[/] every day file is older than {retention_days} days (before "
            f"{cutoff}); deleting them all would leave a chain that does not verify. Keep at "
            "least one day file (a larger --retention-days).",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_BROKEN)
    if not no_verify:
        result = verify_audit_dir(directory, key=key)
        if not result.ok:
            _print_broken(directory, result)
            err_console.print(
                "refusing to clean up a chain that does not verify (--no-verify to force)",
                highlight=False,
            )
            raise typer.Exit(EXIT_BROKEN)
    try:
        # The logger applies retention when it opens; cleanup() again is a no-op then, so the
        # deleted files are read from the folder itself.
        with AuditLogger(
            directory, clock, durability=Durability.FSYNC, retention_days=retention_days, key=key
        ) as audit:
            audit.cleanup()
    except QuantumTraderError as exc:
        raise fail(exc) from None
    _print_deleted([p for p in files if not p.exists()], cutoff, "deleted")


def _print_deleted(files: list[Path], cutoff: str, verb: str) -> None:
    if not files:
        console.print(f"nothing to delete: no day file before {cutoff}", highlight=False)
        return
    console.print(f"{verb} {len(files)} day file(s) before {cutoff}:", highlight=False)
    for path in files:
        console.print(f"  {escape(path.name)}", highlight=False)


# ---------------------------------------------------------------------------- export


@audit_app.command("export")
def export(
    directory: AuditDir,
    out: Annotated[
        Path,
        typer.Option(help="Output file: .jsonl (records as stored) or .csv.", show_default=False),
    ],
    start: Annotated[
        str | None, typer.Option("--from", help="First time included.", show_default=False)
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="First time excluded.", show_default=False)
    ] = None,
    event_type: Types = None,
) -> None:
    """Export records to JSON Lines (byte-exact lines) or CSV (metadata as JSON), by suffix."""
    _audit_dir(directory)
    suffix = out.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv"):
        raise _usage(f"--out {out}: use a .jsonl, .ndjson or .csv file name")
    q = _query(
        event_types=_types(event_type),
        since=_maybe_time(start, "--from"),
        until=_maybe_time(end, "--to"),
    )
    stats = QueryStats()
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            records = iter_record_lines(directory, q, stats=stats)
            count = _write_csv(f, records) if suffix == ".csv" else _write_jsonl(f, records)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _usage(f"cannot write {out}: {exc.strerror or exc}") from None
    console.print(f"exported {count:,} record(s) to {escape(str(out))}", highlight=False)
    _warn_damaged(stats)
