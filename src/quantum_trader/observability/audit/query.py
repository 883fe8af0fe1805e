"""Stream the audit records that match a query, fast, without verifying the chain.

``iter_records(directory, AuditQuery(...))`` reads the day files oldest first and yields each
matching record as a dict. It is built for large trails:

- a day file whose date (from its name) lies wholly outside ``[since, until)`` is never opened:
  every record sits in the file of its own UTC day;
- each line is tested on its raw bytes first (``"event_type":"risk.blocked"`` present, the
  actor's quoted name present, the time in range, ...), and only lines that pass are parsed with
  ``orjson``; the parsed record is then checked exactly, so a metadata value that happens to
  contain the same bytes never matches by accident.

Query is not verify (see ``verify.py``): a line that cannot be read as a record is skipped and
counted in ``QueryStats.damaged``. Lines are checked for their sealed shape cheaply on every
line; a line that has that shape but is not valid JSON is only noticed when it passes the
prefilters and is parsed. Run ``qtrader audit verify`` to check the chain.

Times compare as text: every record's ``ts`` is ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width,
microseconds, UTC), so string order is time order and ``since``/``until`` are formatted the same
way once per query.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from quantum_trader.domain.errors import ConfigError
from quantum_trader.observability.audit.records import AuditEventType, day_files

EVENT_TYPES = tuple(t.value for t in AuditEventType)
_TS_NEEDLE = b'"ts":"'
_TS_WIDTH = len("2025-01-01T00:00:00.000000Z")
_DAY_START = "T00:00:00.000000Z"
_MAX_DAMAGED_KEPT = 100
_LINE_START = b'{"seq":'
_LINE_END = b'"}\n'


class InvalidAuditQueryError(ConfigError):
    """A query option is invalid (unknown event type, naive time, negative limit)."""


def format_ts(moment: dt.datetime) -> str:
    """Format an aware datetime the way audit records store ``ts`` (UTC, microseconds, ``Z``)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidAuditQueryError(f"time {moment.isoformat()} has no UTC offset")
    u = moment.astimezone(dt.UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T"
        f"{u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}Z"
    )


def parse_event_types(values: Collection[str]) -> frozenset[str]:
    """Check event type names; raise InvalidAuditQueryError naming the first unknown one."""
    for value in values:
        if value not in EVENT_TYPES:
            raise InvalidAuditQueryError(
                f"unknown event type {value!r}; valid types: {', '.join(EVENT_TYPES)}"
            )
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """What to select; every field left as None (or empty) matches everything.

    Attributes:
        event_types: Event type values (``risk.blocked``, ...); a record matches any of them.
            Kept as a frozenset, checked against ``AuditEventType``.
        since: First instant included (aware datetime).
        until: First instant excluded (aware datetime).
        symbol: Matches ``target == symbol`` or ``metadata["symbol"] == symbol``.
        actor: Exact actor.
        outcome: Exact outcome.
        reason: Exact reason (a risk denial's reason code).
        text: Substring of the raw JSON line (so JSON escapes apply: a quote is ``\\"``).
        limit: Stop after this many matches.
    """

    event_types: AbstractSet[str] = frozenset()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    symbol: str | None = None
    actor: str | None = None
    outcome: str | None = None
    reason: str | None = None
    text: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_types", parse_event_types(self.event_types))
        for moment in (self.since, self.until):
            if moment is not None:
                format_ts(moment)
        if self.limit is not None and self.limit < 0:
            raise InvalidAuditQueryError(f"limit must be >= 0, got {self.limit}")


@dataclass(slots=True)
class QueryStats:
    """What a scan read: files opened and skipped, lines seen, matches, damaged lines.

    ``damaged`` counts the lines skipped as unreadable; ``damaged_at`` keeps the first
    hundred of them as ``(file name, line number)``.
    """

    files_read: int = 0
    files_skipped: int = 0
    lines: int = 0
    matched: int = 0
    damaged: int = 0
    damaged_at: list[tuple[str, int]] = field(default_factory=list)


def _damage(stats: QueryStats, name: str, number: int) -> None:
    stats.damaged += 1
    if len(stats.damaged_at) < _MAX_DAMAGED_KEPT:
        stats.damaged_at.append((name, number))


@dataclass(frozen=True, slots=True)
class _Plan:
    any_of: re.Pattern[bytes] | None
    all_of: tuple[bytes, ...]
    since: str | None
    until: str | None
    since_bytes: bytes | None
    until_bytes: bytes | None
    exact: tuple[tuple[str, Any], ...]


def _plan(query: AuditQuery) -> _Plan:
    dumps = orjson.dumps
    all_of: list[bytes] = []
    exact: list[tuple[str, Any]] = []
    for name, value in (
        ("actor", query.actor),
        ("outcome", query.outcome),
        ("reason", query.reason),
    ):
        if value is not None:
            # Top-level fields are written compactly by orjson: these exact bytes must appear.
            all_of.append(b'"' + name.encode() + b'":' + dumps(value))
            exact.append((name, value))
    if query.symbol is not None:
        all_of.append(dumps(query.symbol))
    if query.text:
        all_of.append(query.text.encode())
    since = None if query.since is None else format_ts(query.since)
    until = None if query.until is None else format_ts(query.until)
    any_of = [b'"event_type":' + dumps(t) for t in sorted(query.event_types)]
    if len(any_of) == 1:  # one type, the common case: one more required needle, tested first
        all_of.insert(0, any_of.pop())
    return _Plan(
        # Several types: one regex search per line beats one substring scan per type.
        any_of=re.compile(b"|".join(re.escape(n) for n in any_of)) if any_of else None,
        all_of=tuple(all_of),
        since=since,
        until=until,
        since_bytes=None if since is None else since.encode(),
        until_bytes=None if until is None else until.encode(),
        exact=tuple(exact),
    )


def _day_bounds(day: str) -> tuple[str, str]:
    start = dt.date.fromisoformat(day)
    return day + _DAY_START, (start + dt.timedelta(days=1)).isoformat() + _DAY_START


def _file_window(name: str, plan: _Plan) -> tuple[bool, bool]:
    """(read the file at all, check each record's time) for the day file ``name``."""
    day = name[6:16]
    try:
        first, after = _day_bounds(day)
    except ValueError:
        return True, True  # an odd name: read it and check every record
    if (plan.since is not None and after <= plan.since) or (
        plan.until is not None and first >= plan.until
    ):
        return False, False
    inside = (plan.since is None or first >= plan.since) and (
        plan.until is None or after <= plan.until
    )
    return True, not inside


def _matches(record: dict[str, Any], query: AuditQuery, plan: _Plan) -> bool:
    if query.event_types and record.get("event_type") not in query.event_types:
        return False
    for name, value in plan.exact:
        if record.get(name) != value:
            return False
    if query.symbol is not None and record.get("target") != query.symbol:
        metadata = record.get("metadata")
        if not isinstance(metadata, dict) or metadata.get("symbol") != query.symbol:
            return False
    return True


def _time_ok(line: bytes, plan: _Plan) -> bool | None:
    """Whether the line's ``ts`` is in range; None if the line has no readable ``ts``."""
    # ``seq`` (an integer) comes first, so the first ``"ts":"`` is the record's own time.
    at = line.find(_TS_NEEDLE, 0, 40)
    if at < 0:
        return None
    ts = line[at + 6 : at + 6 + _TS_WIDTH]
    if plan.since_bytes is not None and ts < plan.since_bytes:
        return False
    return plan.until_bytes is None or ts < plan.until_bytes


def _all_in(needles: tuple[bytes, ...], line: bytes) -> bool:
    for needle in needles:
        if needle not in line:
            return False
    return True


def _scan_file(
    path: Path, query: AuditQuery, plan: _Plan, check_time: bool, stats: QueryStats
) -> Iterator[tuple[bytes, dict[str, Any]]]:
    # The hot loop: the most selective test (one required needle) inlined, the rest in helpers
    # that only lines passing it reach.
    first = plan.all_of[0] if plan.all_of else None
    rest = plan.all_of[1:]
    any_of = plan.any_of.search if plan.any_of is not None else None
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    name = path.name
    number = 0
    try:
        with path.open("rb") as f:
            for number, line in enumerate(f, 1):
                # Shape check on every line, so torn and garbled lines are counted even when no
                # prefilter would let them through.
                if line[-3:] != _LINE_END or line[:7] != _LINE_START:
                    if line.strip():
                        _damage(stats, name, number)
                    continue
                if first is not None and first not in line:
                    continue
                if (rest and not _all_in(rest, line)) or (
                    any_of is not None and any_of(line) is None
                ):
                    continue
                if check_time:
                    in_range = _time_ok(line, plan)
                    if not in_range:
                        if in_range is None:
                            _damage(stats, name, number)
                        continue
                try:
                    record = loads(line)
                except decode_error:
                    record = None
                if not isinstance(record, dict):
                    _damage(stats, name, number)
                elif _matches(record, query, plan):
                    yield line, record
    finally:
        stats.lines += number


def iter_record_lines(
    directory: Path, query: AuditQuery | None = None, *, stats: QueryStats | None = None
) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Yield ``(raw line, record)`` for each match, oldest day file first, in file order.

    The raw line is the record exactly as stored (with its newline): export it to keep the
    hashed bytes. Pass ``stats`` to learn how many lines were damaged and skipped.
    """
    query = query or AuditQuery()
    stats = stats if stats is not None else QueryStats()
    if query.limit == 0:
        return
    plan = _plan(query)
    for path in day_files(Path(directory)):
        read, check_time = _file_window(path.name, plan)
        if not read:
            stats.files_skipped += 1
            continue
        stats.files_read += 1
        for item in _scan_file(path, query, plan, check_time, stats):
            stats.matched += 1
            yield item
            if query.limit is not None and stats.matched >= query.limit:
                return


def iter_records(
    directory: Path, query: AuditQuery | None = None, *, stats: QueryStats | None = None
) -> Iterator[dict[str, Any]]:
    """Yield each record in ``directory`` that matches ``query``, oldest first.

    Damaged lines are skipped and counted in ``stats``; the chain is not verified.
    """
    for _, record in iter_record_lines(directory, query, stats=stats):
        yield record
