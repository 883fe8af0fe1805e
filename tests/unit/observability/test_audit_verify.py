"""verify names the first bad record for any tampering: property tests over random edits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trader.domain.clock import NANOS_PER_HOUR, ManualClock
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.records import Durability, day_files
from quantum_trader.observability.audit.verify import verify_audit_dir

N = 60


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("audit")
    clock = ManualClock(1_750_000_000_000_000_000)
    with AuditLogger(
        directory, clock, durability=Durability.BUFFERED, retention_days=None
    ) as audit:
        for i in range(N):
            audit.append(
                "trade.decision",
                actor="s",
                action="decide",
                target="BTCUSDT",
                metadata={"i": i, "px": 100.5 + i},
            )
            clock.advance(NANOS_PER_HOUR)  # three day files
    assert verify_audit_dir(directory).ok
    return directory


def _lines(directory: Path) -> list[tuple[Path, int]]:
    return [(p, k) for p in day_files(directory) for k in range(len(p.read_bytes().splitlines()))]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    op=st.sampled_from(["edit", "delete", "swap", "duplicate", "truncate", "insert_forged"]),
)
def test_verify_when_any_record_tampered_fails_at_first_bad_record(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, op: str
) -> None:
    work = tmp_path_factory.mktemp("t")
    shutil.rmtree(work)
    shutil.copytree(pristine, work)
    targets = _lines(work)
    index = data.draw(st.integers(0, len(targets) - 2), label="record")
    path, k = targets[index]
    lines = path.read_bytes().splitlines(keepends=True)
    expect_line = k + 1
    if op == "edit":
        pos = data.draw(st.integers(1, len(lines[k]) - 3), label="byte")
        old = lines[k][pos : pos + 1]
        new = b"7" if old != b"7" else b"8"
        lines[k] = lines[k][:pos] + new + lines[k][pos + 1 :]
    elif op == "delete":
        del lines[k]
        if k == len(lines):  # the file's last record: the next file's first notices the gap
            following = targets[index + 1][0]
            path.write_bytes(b"".join(lines))
            result = verify_audit_dir(work)
            assert result.problem is not None
            assert (result.problem.file, result.problem.line) == (following.name, 1)
            return
    elif op == "swap":
        if k + 1 >= len(lines):
            return
        lines[k], lines[k + 1] = lines[k + 1], lines[k]
    elif op == "duplicate":
        lines.insert(k + 1, lines[k])
        expect_line = k + 2
    elif op == "truncate":
        cut = data.draw(st.integers(0, len(lines[k]) - 2), label="cut")
        lines = [*lines[:k], lines[k][:cut]]
        if cut == 0:
            expect_line = 0  # cut exactly at a record boundary: only the head anchor shows it
    else:
        forged = lines[k].replace(b'"actor":"s"', b'"actor":"x"')
        lines.insert(k, forged)
    path.write_bytes(b"".join(lines))
    result = verify_audit_dir(work)
    assert not result.ok
    assert result.problem is not None
    if expect_line:
        assert (result.problem.file, result.problem.line) == (path.name, expect_line), str(
            result.problem
        )
    else:
        assert "missing" in result.problem.message or "deleted" in result.problem.message


def test_verify_when_last_records_removed_reports_missing_against_head(
    pristine: Path, tmp_path: Path
) -> None:
    work = tmp_path / "a"
    shutil.copytree(pristine, work)
    last = day_files(work)[-1]
    lines = last.read_bytes().splitlines(keepends=True)
    last.write_bytes(b"".join(lines[:-3]))
    result = verify_audit_dir(work)
    assert result.problem is not None
    assert f"records {N - 2}..{N} are missing" in result.problem.message
