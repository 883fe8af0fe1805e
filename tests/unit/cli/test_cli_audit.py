"""``qtrader audit`` through typer's CliRunner: exit codes, printed content, written files."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from quantum_trader.cli.audit import audit_app
from quantum_trader.domain.clock import NANOS_PER_DAY, NANOS_PER_HOUR, ManualClock
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.records import (
    RECORD_FIELDS,
    Durability,
    day_file,
    day_files,
)
from quantum_trader.observability.audit.verify import verify_audit_dir

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
KEY = "correct horse battery staple"

app = typer.Typer()
app.add_typer(audit_app, name="audit")


def ns(text: str) -> int:
    """Nanoseconds since the epoch of a naive ISO time read as UTC."""
    moment = dt.datetime.fromisoformat(text).replace(tzinfo=UTC)
    return (moment - EPOCH) // dt.timedelta(microseconds=1) * 1000


def write_small(directory: Path, key: bytes | None = None) -> None:
    """Seven records over two days: 2025-03-03 (4) and 2025-03-04 (3)."""
    clock = ManualClock(ns("2025-03-03T09:00:00"))
    with AuditLogger(
        directory, clock, durability=Durability.BUFFERED, retention_days=None, key=key
    ) as audit:
        audit.risk_blocked(actor="risk_guard", symbol="BTCUSDT", reason_code="max_leverage")
        clock.advance(NANOS_PER_HOUR)
        audit.risk_blocked(actor="risk_guard", symbol="ETHUSDT", reason_code="daily_loss")
        clock.advance(NANOS_PER_HOUR)
        audit.policy_changed(actor="alice", reason="tighten", old={}, new={}, version=2)
        clock.advance(NANOS_PER_HOUR)
        audit.trade_closed(
            actor="sim",
            symbol="BTCUSDT",
            trade_id="T1",
            side="buy",
            quantity=1.0,
            entry_price=100.0,
            exit_price=110.0,
            realized_pnl=10.0,
            fees=1.0,
            funding=0.5,
        )
        clock.set(ns("2025-03-04T08:00:00"))
        audit.risk_blocked(actor="risk_guard", symbol="ETHUSDT", reason_code="max_leverage")
        clock.advance(NANOS_PER_HOUR)
        audit.risk_blocked(actor="risk_guard", symbol="BTCUSDT", reason_code="max_leverage")
        clock.advance(NANOS_PER_HOUR)
        audit.policy_changed(actor="=cmd|x", reason="-1", old={}, new={}, version=3)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    directory = tmp_path / "audit"
    write_small(directory)
    return directory


def _edit_byte(directory: Path, day: str, line: int) -> None:
    path = day_file(directory, day)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[line - 1] = lines[line - 1].replace(b"ETHUSDT", b"ETHUSDX")
    path.write_bytes(b"".join(lines))


def _invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", *args], env=env)
    return result.exit_code, result.output


# ---------------------------------------------------------------------------- verify


def test_verify_when_chain_intact_exits_0_with_counts_and_head(
    runner: CliRunner, trail: Path
) -> None:
    code, out = _invoke(runner, "verify", str(trail))
    assert code == 0, out
    assert "OK" in out
    assert "7 records in 2 files" in out
    assert "seq:       1..7" in out
    assert f"last hash: {verify_audit_dir(trail).last_hash}" in out


def test_verify_when_byte_edited_exits_1_and_names_file_line_seq(
    runner: CliRunner, trail: Path
) -> None:
    _edit_byte(trail, "2025-03-04", 1)
    code, out = _invoke(runner, "verify", str(trail))
    assert code == 1, out
    assert "FAILED" in out
    assert "file:      audit-2025-03-04.jsonl" in out
    assert "line:      1" in out
    assert "seq:       5" in out
    assert "hash mismatch" in out


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_verify_when_folder_missing_or_empty_exits_2(
    runner: CliRunner, tmp_path: Path, make: str
) -> None:
    directory = tmp_path / "audit"
    if make == "empty":
        directory.mkdir()
    code, out = _invoke(runner, "verify", str(directory))
    assert code == 2, out
    assert ("no such audit folder" if make == "missing" else "holds no audit files") in out


def test_verify_when_chain_uses_hmac_reads_key_from_environment(
    runner: CliRunner, tmp_path: Path
) -> None:
    write_small(tmp_path, key=KEY.encode())
    assert _invoke(runner, "verify", str(tmp_path), env={"QT_AUDIT_KEY": ""})[0] == 1
    assert _invoke(runner, "verify", str(tmp_path), env={"QT_AUDIT_KEY": KEY})[0] == 0
    code, out = _invoke(runner, "verify", str(tmp_path), "--key-env", "MY_KEY", env={"MY_KEY": KEY})
    assert code == 0, out
    code, out = _invoke(runner, "verify", str(tmp_path), "--key-env", "NOT_SET_ANYWHERE")
    assert code == 2
    assert "NOT_SET_ANYWHERE" in out
    assert KEY not in out


# ---------------------------------------------------------------------------- query


def test_query_when_type_symbol_since_given_prints_matching_raw_lines(
    runner: CliRunner, trail: Path
) -> None:
    code, out = _invoke(
        runner,
        "query",
        str(trail),
        "--type",
        "risk.blocked",
        "--symbol",
        "BTCUSDT",
        "--since",
        "2025-03-03T09:30:00Z",
        "--format",
        "jsonl",
    )
    assert code == 0, out
    stored = [
        line for path in day_files(trail) for line in path.read_text().splitlines(keepends=True)
    ]
    assert out == stored[5]  # 09:00 BTCUSDT is before --since; the 2025-03-04 one remains


def test_query_when_types_repeated_or_comma_separated_matches_any(
    runner: CliRunner, trail: Path
) -> None:
    repeated = _invoke(
        runner,
        "query",
        str(trail),
        "--type",
        "policy.changed",
        "--type",
        "trade.closed",
        "--format",
        "jsonl",
    )
    joined = _invoke(
        runner, "query", str(trail), "--type", "policy.changed,trade.closed", "--format", "jsonl"
    )
    assert repeated == joined
    assert [json.loads(line)["seq"] for line in repeated[1].splitlines()] == [3, 4, 7]


def test_query_when_type_unknown_exits_2_naming_it_and_listing_valid(
    runner: CliRunner, trail: Path
) -> None:
    code, out = _invoke(runner, "query", str(trail), "--type", "risk.blockd")
    assert code == 2
    assert "'risk.blockd'" in out
    assert "risk.blocked" in out
    assert "emergency.triggered" in out


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_query_when_time_unparsable_exits_2_naming_it(
    runner: CliRunner, trail: Path, option: str
) -> None:
    code, out = _invoke(runner, "query", str(trail), option, "last tuesday")
    assert code == 2
    assert f"{option} 'last tuesday' is not an ISO 8601 time" in out


def test_query_when_csv_format_parses_with_record_columns(runner: CliRunner, trail: Path) -> None:
    code, out = _invoke(runner, "query", str(trail), "--actor", "risk_guard", "--format", "csv")
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(RECORD_FIELDS)
    assert [(r["seq"], r["target"], r["reason"]) for r in rows] == [
        ("1", "BTCUSDT", "max_leverage"),
        ("2", "ETHUSDT", "daily_loss"),
        ("5", "ETHUSDT", "max_leverage"),
        ("6", "BTCUSDT", "max_leverage"),
    ]
    assert json.loads(rows[0]["metadata"]) == {"detail": ""}


def test_query_when_csv_cell_looks_like_formula_prefixes_quote(
    runner: CliRunner, trail: Path
) -> None:
    code, out = _invoke(runner, "query", str(trail), "--outcome", "version_3", "--format", "csv")
    assert code == 0, out
    (row,) = csv.DictReader(io.StringIO(out))
    assert (row["actor"], row["reason"]) == ("'=cmd|x", "'-1")


def test_query_when_table_format_prints_rows_and_count(runner: CliRunner, trail: Path) -> None:
    code, out = _invoke(runner, "query", str(trail), "--reason", "daily_loss")
    assert code == 0, out
    assert "ETHUSDT" in out
    assert "1 record(s)" in out
    code, out = _invoke(runner, "query", str(trail), "--limit", "2")
    assert "2 record(s)" in out


def test_query_when_line_damaged_warns_with_count(runner: CliRunner, trail: Path) -> None:
    with day_file(trail, "2025-03-03").open("ab") as f:
        f.write(b'{"seq":99,"ts":"torn')
    result = runner.invoke(app, ["audit", "query", str(trail), "--format", "jsonl"])
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 7
    assert "skipped 1 damaged line(s) (audit-2025-03-03.jsonl:5)" in result.stderr


# ---------------------------------------------------------------------------- report


def test_report_when_markdown_to_stdout_has_reason_rows(runner: CliRunner, trail: Path) -> None:
    code, out = _invoke(runner, "report", str(trail), "--from", "2025-03-03", "--to", "2025-03-05")
    assert code == 0, out
    assert out.startswith("# Audit compliance report")
    assert "| max_leverage | 3 |" in out
    assert "| daily_loss | 1 |" in out
    assert "| Total | 1 | 10 | 1 | 0.5 | 9.5 |" in out


def test_report_when_out_given_writes_html_file(
    runner: CliRunner, trail: Path, tmp_path: Path
) -> None:
    target = tmp_path / "march.html"
    code, out = _invoke(
        runner,
        "report",
        str(trail),
        "--from",
        "2025-03-03",
        "--to",
        "2025-03-04T00:00:00+00:00",
        "--format",
        "html",
        "--out",
        str(target),
    )
    assert code == 0, out
    assert "wrote html report" in out
    page = target.read_text(encoding="utf-8")
    assert 'class="banner ok"' in page
    assert "Risk blocks (2)" in page


def test_report_when_chain_tampered_shows_banner_and_exits_1(
    runner: CliRunner, trail: Path
) -> None:
    _edit_byte(trail, "2025-03-03", 2)
    result = runner.invoke(
        app,
        ["audit", "report", str(trail), "--from", "2025-03-01", "--to", "2025-04-01"],
    )
    assert result.exit_code == 1
    assert "AUDIT CHAIN VERIFICATION FAILED" in result.stdout.splitlines()[2]
    assert "audit-2025-03-03.jsonl:2 (seq 2)" in result.stdout
    assert "does not verify" in result.stderr


def test_report_when_csv_format_parses(runner: CliRunner, trail: Path) -> None:
    code, out = _invoke(
        runner,
        "report",
        str(trail),
        "--from",
        "2025-03-03",
        "--to",
        "2025-03-05",
        "--format",
        "csv",
    )
    assert code == 0, out
    rows = {
        (r["section"], r["key"], r["subkey"]): r["value"] for r in csv.DictReader(io.StringIO(out))
    }
    assert rows[("risk_blocks", "max_leverage", "BTCUSDT")] == "2"
    assert rows[("chain", "ok", "")] == "true"


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("March", "2025-03-05", "--from 'March'"),
        ("2025-03-05", "2025-03-03", "report period is empty"),
    ],
)
def test_report_when_period_invalid_exits_2(
    runner: CliRunner, trail: Path, start: str, end: str, message: str
) -> None:
    code, out = _invoke(runner, "report", str(trail), "--from", start, "--to", end)
    assert code == 2
    assert message in out


# ---------------------------------------------------------------------------- cleanup


@pytest.fixture
def aged(tmp_path: Path) -> tuple[Path, str, str]:
    """A folder with one day file 200 days old and one 10 days old (by the wall clock)."""
    directory = tmp_path / "aged"
    now = time.time_ns()
    clock = ManualClock(now - 200 * NANOS_PER_DAY)
    with AuditLogger(
        directory, clock, durability=Durability.BUFFERED, retention_days=None
    ) as audit:
        audit.risk_blocked(actor="g", symbol="BTCUSDT", reason_code="max_leverage")
        clock.set(now - 10 * NANOS_PER_DAY)
        audit.risk_blocked(actor="g", symbol="ETHUSDT", reason_code="max_leverage")
    old, recent = (p.name for p in day_files(directory))
    return directory, old, recent


def test_cleanup_when_files_older_than_retention_deletes_and_audits_it(
    runner: CliRunner, aged: tuple[Path, str, str]
) -> None:
    directory, old, recent = aged
    code, out = _invoke(runner, "cleanup", str(directory), "--retention-days", "90")
    assert code == 0, out
    assert "deleted 1 day file(s)" in out
    assert old in out
    assert not (directory / old).exists()
    assert (directory / recent).exists()
    assert verify_audit_dir(directory).ok
    code, out = _invoke(
        runner, "query", str(directory), "--type", "system.state_changed", "--format", "jsonl"
    )
    (record,) = (json.loads(line) for line in out.splitlines())
    assert record["action"] == "audit.retention_cleanup"
    assert record["metadata"]["deleted_files"] == [old]


def test_cleanup_when_dry_run_lists_and_keeps_files(
    runner: CliRunner, aged: tuple[Path, str, str]
) -> None:
    directory, old, _ = aged
    before = sorted(p.read_bytes() for p in day_files(directory))
    code, out = _invoke(runner, "cleanup", str(directory), "--dry-run")
    assert code == 0, out
    assert "would delete 1 day file(s)" in out
    assert old in out
    assert sorted(p.read_bytes() for p in day_files(directory)) == before


def test_cleanup_when_nothing_is_old_enough_says_so(
    runner: CliRunner, aged: tuple[Path, str, str]
) -> None:
    directory, _, _ = aged
    code, out = _invoke(runner, "cleanup", str(directory), "--retention-days", "365")
    assert code == 0, out
    assert "nothing to delete" in out


def test_cleanup_when_chain_broken_refuses_and_deletes_nothing(
    runner: CliRunner, aged: tuple[Path, str, str]
) -> None:
    directory, old, recent = aged
    _edit_byte(directory, recent[6:16], 1)
    code, out = _invoke(runner, "cleanup", str(directory))
    assert code == 1
    assert "refusing to clean up" in out
    assert (directory / old).exists()


# ---------------------------------------------------------------------------- export


def test_export_when_jsonl_keeps_stored_bytes_of_selected_records(
    runner: CliRunner, trail: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out.jsonl"
    code, out = _invoke(
        runner,
        "export",
        str(trail),
        "--out",
        str(target),
        "--from",
        "2025-03-04",
        "--type",
        "risk.blocked",
    )
    assert code == 0, out
    assert "exported 2 record(s)" in out
    assert target.read_bytes() == b"".join(
        day_file(trail, "2025-03-04").read_bytes().splitlines(keepends=True)[:2]
    )


def test_export_when_csv_suffix_writes_csv(runner: CliRunner, trail: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    code, out = _invoke(runner, "export", str(trail), "--out", str(target), "--to", "2025-03-04")
    assert code == 0, out
    with target.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["seq"] for r in rows] == ["1", "2", "3", "4"]
    assert list(rows[0]) == list(RECORD_FIELDS)


def test_export_when_suffix_unknown_exits_2(runner: CliRunner, trail: Path, tmp_path: Path) -> None:
    code, out = _invoke(runner, "export", str(trail), "--out", str(tmp_path / "out.xlsx"))
    assert code == 2
    assert ".jsonl" in out
    assert not (tmp_path / "out.xlsx").exists()


def test_cleanup_when_every_file_is_expired_refuses_and_deletes_nothing(
    runner: CliRunner, aged: tuple[Path, str, str]
) -> None:
    directory, old, recent = aged
    code, out = _invoke(runner, "cleanup", str(directory), "--retention-days", "5")
    assert code == 1
    assert "every day file is older than 5 days" in out
    assert (directory / old).exists()
    assert (directory / recent).exists()
    assert verify_audit_dir(directory).ok
