"""Verify an audit folder: every record sealed, chained and in order, from start to head.

Detects an edited record (its hash no longer matches its bytes), a deleted, inserted or
reordered record (seq not consecutive, or ``prev_hash`` not the previous record's hash, also
across day files), a truncated or torn record (a line that is not a sealed record), records
removed from the end (the chain ends before the head anchor in ``audit.head``), and a start that
no retention record explains. It reports the first bad record by file, line and seq.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from quantum_trader.observability.audit.records import (
    GENESIS_HASH,
    HEAD_FILE,
    day_files,
    digest,
    split_line,
)


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """The first thing wrong with the chain."""

    file: str
    line: int
    seq: int | None
    message: str

    def __str__(self) -> str:
        seq = f" (seq {self.seq})" if self.seq is not None else ""
        return f"{self.file}:{self.line}{seq}: {self.message}"


@dataclass(slots=True)
class VerifyResult:
    """Outcome of a verification: ``ok`` with counts, or the first problem found."""

    records: int = 0
    files: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str = GENESIS_HASH
    problem: VerifyProblem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return self.problem is None


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as f:
        yield from enumerate(f, 1)


def verify_audit_dir(directory: Path, *, key: bytes | None = None) -> VerifyResult:
    """Check the whole chain in ``directory``; stop at the first problem."""
    result = VerifyResult()
    files = day_files(directory)
    result.files = len(files)
    # Retention records say where the chain may start; find them first so a bad start is
    # reported at the first line. They are themselves checked by the main pass below.
    cuts = _retention_cuts(files)
    prev_hash: str | None = None
    expected_seq: int | None = None
    for path in files:
        for number, line in _lines(path):
            problem = _check_line(path.name, number, line, key, prev_hash, expected_seq)
            if isinstance(problem, VerifyProblem):
                result.problem = problem
                return result
            seq, hash_hex, body = problem
            if prev_hash is None:
                start = (seq, str(body.get("prev_hash")))
                if start != (1, GENESIS_HASH) and start not in cuts:
                    result.problem = VerifyProblem(
                        path.name,
                        number,
                        seq,
                        f"the chain starts at seq {seq}, but no retention record explains the "
                        "cut: records before it were deleted or moved",
                    )
                    return result
                if seq != 1:
                    result.notes.append(f"chain starts at seq {seq} after a retention cut")
            prev_hash, expected_seq = hash_hex, seq + 1
            result.records += 1
            result.first_seq = result.first_seq if result.first_seq is not None else seq
            result.last_seq, result.last_hash = seq, hash_hex
    _check_head(directory, result)
    return result


def _retention_cuts(files: list[Path]) -> set[tuple[int, str]]:
    cuts: set[tuple[int, str]] = set()
    for path in files:
        content = path.read_bytes()
        if b"audit.retention_cleanup" not in content:
            continue
        for line in content.splitlines():
            parts = split_line(line) if b"audit.retention_cleanup" in line else None
            if parts is None:
                continue
            try:
                meta = orjson.loads(parts[0]).get("metadata") or {}
                cuts.add((int(meta["cut_seq"]), str(meta["cut_prev_hash"])))
            except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
                continue
    return cuts


def _check_line(
    name: str,
    number: int,
    line: bytes,
    key: bytes | None,
    prev_hash: str | None,
    expected_seq: int | None,
) -> VerifyProblem | tuple[int, str, dict[str, object]]:
    if not line.endswith(b"\n"):
        return VerifyProblem(
            name,
            number,
            None,
            "truncated record: the last line has no end (torn write or cut file)",
        )
    parts = split_line(line)
    if parts is None:
        return VerifyProblem(
            name, number, None, "not a sealed audit record (damaged or truncated line)"
        )
    body_bytes, hash_hex = parts
    try:
        body = orjson.loads(body_bytes)
    except orjson.JSONDecodeError:
        return VerifyProblem(name, number, None, "record is not valid JSON")
    if not isinstance(body, dict) or not isinstance(body.get("seq"), int):
        return VerifyProblem(name, number, None, "record has no integer seq")
    seq = int(body["seq"])
    if digest(body_bytes, key) != hash_hex:
        return VerifyProblem(name, number, seq, "hash mismatch: the record was edited")
    if expected_seq is not None and seq != expected_seq:
        what = (
            "missing (deleted)"
            if seq > expected_seq
            else "out of order or duplicated (reordered or inserted)"
        )
        return VerifyProblem(
            name, number, seq, f"expected seq {expected_seq}, found {seq}: records {what}"
        )
    if prev_hash is not None and body.get("prev_hash") != prev_hash:
        return VerifyProblem(
            name, number, seq, "prev_hash does not match the previous record: chain broken"
        )
    return seq, hash_hex, body


def _check_head(directory: Path, result: VerifyResult) -> None:
    head_path = directory / HEAD_FILE
    if not head_path.exists():
        result.notes.append("no audit.head anchor: removal of trailing records cannot be detected")
        return
    try:
        head = orjson.loads(head_path.read_bytes())
        head_seq, head_hash, head_file = (
            int(head["seq"]),
            str(head["hash"]),
            str(head.get("file", "")),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        result.problem = VerifyProblem(HEAD_FILE, 1, None, "audit.head is damaged")
        return
    last = result.last_seq or 0
    if head_seq > last:
        result.problem = VerifyProblem(
            head_file or HEAD_FILE,
            0,
            head_seq,
            f"records {last + 1}..{head_seq} are missing: the chain ends at seq {last} but "
            f"the head anchor says {head_seq} (truncated)",
        )
    elif head_seq == last and head_hash != result.last_hash:
        result.problem = VerifyProblem(
            HEAD_FILE, 1, head_seq, "the last record differs from the head anchor"
        )
    elif head_seq < last:
        result.notes.append(
            f"head anchor at seq {head_seq} lags the chain end {last} (a crash mid-write)"
        )
