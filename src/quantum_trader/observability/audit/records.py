"""Audit record format, shared by the writer, the verifier and the tools.

One record per line of ``audit-YYYY-MM-DD.jsonl`` (UTC day of the record's ``ts``)::

    {"seq":...,"ts":...,"event_type":...,"actor":...,"action":...,"target":...,"reason":...,
     "outcome":...,"metadata":{...},"trace_id":...,"prev_hash":...,"hash":"..."}

The *body* is the record without ``hash``, serialized as compact JSON in the field order of
``RECORD_FIELDS``. ``hash = SHA-256(body)`` (HMAC-SHA-256 when a key is configured), and
``prev_hash`` in each body is the previous record's hash, so the chain runs across day files.
The line is the body with ``,"hash":"<64 hex>"`` spliced in before its closing brace: the
verifier recovers the hashed bytes exactly from the line, without re-serializing.

Metadata sits under its own key, so its keys can never collide with the named fields.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
HASH_SUFFIX_LEN = len(',"hash":""}') + 64
FILE_PREFIX = "audit-"
FILE_SUFFIX = ".jsonl"
HEAD_FILE = "audit.head"
RECORD_FIELDS = (
    "seq",
    "ts",
    "event_type",
    "actor",
    "action",
    "target",
    "reason",
    "outcome",
    "metadata",
    "trace_id",
    "prev_hash",
    "hash",
)


class AuditEventType(StrEnum):
    """Every kind of event the audit trail records."""

    TRADE_DECISION = "trade.decision"
    TRADE_EXECUTED = "trade.executed"
    TRADE_CLOSED = "trade.closed"
    RISK_BLOCKED = "risk.blocked"
    EMERGENCY_TRIGGERED = "emergency.triggered"
    EMERGENCY_RECOVERED = "emergency.recovered"
    MODEL_PROMOTED = "model.promoted"
    MODEL_DEMOTED = "model.demoted"
    POLICY_CHANGED = "policy.changed"
    SYSTEM_STATE_CHANGED = "system.state_changed"
    CONFIG_UPDATED = "config.updated"


class Durability(StrEnum):
    """When an appended record reaches the disk.

    FSYNC: written and fsynced before ``append`` returns. GROUP: written at once (a process
    crash loses nothing), fsynced at most every ``group_commit_ms`` (a power loss can lose that
    window). BUFFERED: kept in memory and written in batches (backtests; ``flush`` or ``close``
    writes the rest).
    """

    FSYNC = "fsync"
    GROUP = "group"
    BUFFERED = "buffered"


def json_default(value: Any) -> Any:
    """Serialize the few non-JSON types metadata may carry (enums, paths); reject the rest."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"audit metadata value of type {type(value).__name__} is not JSON-serializable")


def dumps_body(body: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a record body.

    No canonical re-serialization is ever needed: the verifier hashes the bytes as stored.
    """
    return orjson.dumps(body, default=json_default)


def digest(body: bytes, key: bytes | None) -> str:
    """Hash of a body: SHA-256, or HMAC-SHA-256 when a key is given."""
    if key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def seal(body: bytes, hash_hex: str) -> bytes:
    """The stored line for ``body``: its hash spliced in as the last field, plus a newline."""
    return body[:-1] + b',"hash":"' + hash_hex.encode() + b'"}\n'


def split_line(line: bytes) -> tuple[bytes, str] | None:
    """Recover (body, hash) from a stored line, or None if the line is not in sealed form."""
    line = line.rstrip(b"\n")
    if len(line) <= HASH_SUFFIX_LEN or not line.endswith(b'"}'):
        return None
    suffix = line[-HASH_SUFFIX_LEN:]
    if not suffix.startswith(b',"hash":"'):
        return None
    return line[:-HASH_SUFFIX_LEN] + b"}", suffix[9:-2].decode("ascii", errors="replace")


def iso_ts(ts_ns: int) -> str:
    """ISO 8601 UTC with microseconds and ``Z``."""
    return TimestampFormatter().format(ts_ns)


class TimestampFormatter:
    """Formats nanosecond timestamps as ISO 8601 UTC, each day's date computed once.

    Records come in time order and many share a day, so the time of day is plain arithmetic:
    several times faster than formatting a datetime per record.
    """

    __slots__ = ("_day", "_prefix")

    def __init__(self) -> None:
        self._day = -1
        self._prefix = ""

    def format(self, ts_ns: int) -> str:
        """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` for ``ts_ns``."""
        micros = ts_ns // 1000
        day, in_day = divmod(micros, 86_400_000_000)
        if day != self._day:
            self._day = day
            self._prefix = (
                dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=day)
            ).strftime("%Y-%m-%dT")
        seconds, frac = divmod(in_day, 1_000_000)
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{self._prefix}{hours:02d}:{minutes:02d}:{secs:02d}.{frac:06d}Z"


def day_file(directory: Path, day: str) -> Path:
    """Path of the day file for ``day`` (YYYY-MM-DD)."""
    return directory / f"{FILE_PREFIX}{day}{FILE_SUFFIX}"


def day_files(directory: Path) -> list[Path]:
    """The day files in ``directory``, oldest first."""
    width = len(FILE_PREFIX) + len("2025-01-01") + len(FILE_SUFFIX)
    return sorted(p for p in directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}") if len(p.name) == width)
