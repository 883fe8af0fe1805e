"""AuditLogger: appends hash-chained records to day files, failing closed.

Several processes may share one audit folder. They keep **one chain**: every write takes an
exclusive ``flock`` on ``audit.head``, reads the chain head (last seq and hash) from it, writes
its records, then updates the head. So records never interleave mid-line, seq numbers never
repeat, and ``qtrader audit verify`` checks one chain however many writers there were. The head
file also anchors the end of the chain, so removing trailing records is detected.

Fail closed: if a write fails (disk full, permission denied, I/O error), the file is cut back to
where it was (no torn record), the records stay queued in memory, ``healthy`` turns False and
``append`` raises AuditUnavailableError, which the engine turns into "send no new orders". A
later successful write drains the queue in order. Records ``append`` has returned from in FSYNC
or GROUP mode are on disk (GROUP: in the OS; fsynced within the commit window).

Timestamps come from the injected clock (the data's time in a backtest).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from quantum_trader.domain.clock import NANOS_PER_DAY, Clock
from quantum_trader.domain.errors import AuditUnavailableError, ConfigError
from quantum_trader.observability.audit.recorder import AuditRecorder, AuditTuple
from quantum_trader.observability.audit.records import (
    GENESIS_HASH,
    HEAD_FILE,
    AuditEventType,
    Durability,
    TimestampFormatter,
    day_file,
    day_files,
    digest,
    json_default,
    split_line,
)

Opener = Callable[[Path], int]
# (ts_ns, event_type, actor, action, target, reason, outcome, metadata, trace_id): the record
# is made into its JSON object only when it is chained, so queueing one is a tuple append.
PendingRecord = tuple[int, str, str, str, str, str, str, Mapping[str, Any], str]


def _default_opener(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)


class AuditLogger(AuditRecorder):
    """One writer of the audit trail in ``directory``; hand the same object to every component."""

    def __init__(
        self,
        directory: Path,
        clock: Clock,
        *,
        durability: Durability = Durability.GROUP,
        group_commit_ms: float = 5.0,
        retention_days: int | None = 90,
        key: bytes | None = None,
        max_buffer: int = 50_000,
        opener: Opener = _default_opener,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if group_commit_ms <= 0:
            raise ConfigError(f"audit group_commit_ms must be > 0, got {group_commit_ms}")
        if retention_days is not None and retention_days < 1:
            raise ConfigError(f"audit retention_days must be >= 1, got {retention_days}")
        self.directory = Path(directory)
        self.clock = clock
        self.durability = durability
        self._buffering = durability is Durability.BUFFERED
        self.group_commit_s = group_commit_ms / 1000.0
        self.retention_days = retention_days
        self.max_buffer = max_buffer
        self.counts: dict[str, int] = {}
        self.failures = 0
        self.failure: str | None = None
        self._key = key
        self._opener = opener
        self._monotonic = monotonic
        self._ts = TimestampFormatter()
        self._pending: list[PendingRecord] = []
        self._lock = threading.RLock()
        self._fds: dict[str, int] = {}
        self._dirty: set[int] = set()
        self._last_sync = monotonic()
        self._closed = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._head_fd = os.open(self.directory / HEAD_FILE, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as exc:
            raise AuditUnavailableError(
                f"audit folder {self.directory} is not writable: {exc}"
            ) from exc
        self._syncer: threading.Thread | None = None
        self._stop = threading.Event()
        if durability is Durability.GROUP:
            self._syncer = threading.Thread(
                target=self._sync_loop, name="audit-group-commit", daemon=True
            )
            self._syncer.start()
        if retention_days is not None:
            self.cleanup()

    # ----------------------------------------------------------------- state
    @property
    def healthy(self) -> bool:
        """False while the last write failed: nothing may trade until a write succeeds."""
        return self.failure is None

    @property
    def pending(self) -> int:
        """Records accepted but not yet written."""
        return len(self._pending)

    # ----------------------------------------------------------------- appending
    def append(
        self,
        event_type: AuditEventType | str,
        *,
        actor: str,
        action: str,
        target: str = "",
        reason: str = "",
        outcome: str = "",
        metadata: Mapping[str, Any] | None = None,
        trace_id: str = "",
        ts_ns: int | None = None,
    ) -> None:
        """Add one record; raise AuditUnavailableError if it cannot be written (fail closed).

        In FSYNC and GROUP mode the record is written before this returns; in BUFFERED mode it is
        queued and written by ``flush``, ``close`` or when ``max_buffer`` records are queued.
        """
        if self._closed:
            raise AuditUnavailableError("the audit logger is closed")
        et = (
            event_type.value
            if type(event_type) is AuditEventType
            else AuditEventType(event_type).value
        )
        ts = self.clock.now_ns() if ts_ns is None else ts_ns
        with self._lock:
            pending = self._pending
            pending.append(
                (ts, et, actor, action, target, reason, outcome, metadata or {}, trace_id)
            )
            if self._buffering and len(pending) < self.max_buffer and self.failure is None:
                return
            self._commit()

    def append_many(self, records: Sequence[AuditTuple]) -> None:
        """Queue records made by the ``*_record`` builders, in order; commit as ``append`` does."""
        if self._closed:
            raise AuditUnavailableError("the audit logger is closed")
        now = self.clock.now_ns
        with self._lock:
            pending = self._pending
            for ts, et, actor, action, target, reason, outcome, metadata, trace_id in records:
                pending.append(
                    (
                        now() if ts is None else ts,
                        et,
                        actor,
                        action,
                        target,
                        reason,
                        outcome,
                        metadata,
                        trace_id,
                    )
                )
            if self._buffering and len(pending) < self.max_buffer and self.failure is None:
                return
            self._commit()

    def flush(self) -> None:
        """Write every queued record (and fsync, except in BUFFERED mode).

        Raises AuditUnavailableError on failure. BUFFERED mode leaves the data to the OS: it is
        for backtests, whose trail can be re-created by running them again.
        """
        with self._lock:
            self._commit(force_sync=self.durability is not Durability.BUFFERED)

    def close(self) -> None:
        """Flush, stop the group-commit thread and release the files."""
        if self._closed:
            return
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
        try:
            self.flush()
        finally:
            self._closed = True
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            os.close(self._head_fd)

    def __enter__(self) -> AuditLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- writing
    def _commit(self, *, force_sync: bool = False) -> None:
        if not self._pending:
            if force_sync:
                self._sync_dirty()
            return
        try:
            fcntl.flock(self._head_fd, fcntl.LOCK_EX)
        except OSError as exc:
            self._fail(f"cannot lock {self.directory / HEAD_FILE}: {exc.strerror or exc}")
        try:
            self._write_pending(force_sync)
        finally:
            fcntl.flock(self._head_fd, fcntl.LOCK_UN)

    def _write_pending(self, force_sync: bool) -> None:
        seq, prev = self._read_head()
        by_day: dict[str, list[bytes]] = {}
        key = self._key
        fmt = self._ts.format
        day = ""
        last_ts = -1
        ts_text = ""
        lines: list[bytes] = []
        # The hot loop of a backtest's audit trail: names bound locally, work per record kept to
        # one dict, one serialization and one hash.
        dumps = orjson.dumps
        default = json_default
        sha256 = hashlib.sha256
        for ts, et, actor, action, target, reason, outcome, metadata, trace_id in self._pending:
            seq += 1
            if ts != last_ts:
                last_ts = ts
                ts_text = fmt(ts)
                if ts_text[:10] != day:
                    day = ts_text[:10]
                    lines = by_day.setdefault(day, [])
            record = {
                "seq": seq,
                "ts": ts_text,
                "event_type": et,
                "actor": actor,
                "action": action,
                "target": target,
                "reason": reason,
                "outcome": outcome,
                "metadata": metadata,
                "trace_id": trace_id,
                "prev_hash": prev,
            }
            body = dumps(record, default=default)
            prev = sha256(body).hexdigest() if key is None else digest(body, key)
            lines.append(b'%s,"hash":"%s"}\n' % (body[:-1], prev.encode()))
        written: list[tuple[int, int]] = []
        last_file = ""
        try:
            for day, lines in by_day.items():
                path = day_file(self.directory, day)
                fd = self._fd(day, path)
                size = os.fstat(fd).st_size
                written.append((fd, size))
                _write_all(fd, b"".join(lines))
                self._dirty.add(fd)
                last_file = path.name
            sync = (
                self.durability is Durability.FSYNC
                or force_sync
                or (
                    self.durability is Durability.GROUP
                    and self._monotonic() - self._last_sync >= self.group_commit_s
                )
            )
            if sync:
                self._sync_dirty()
        except OSError as exc:
            # Cut every file back so no torn or unacknowledged record stays on disk.
            for fd, size in written:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
            self._fail(
                f"cannot write {last_file or 'the audit file'} in {self.directory}: "
                f"{exc.strerror or exc}"
            )
        self._write_head(seq, prev, last_file)
        counts = self.counts
        for pending in self._pending:
            et = pending[1]
            counts[et] = counts.get(et, 0) + 1
        self._pending.clear()
        self.failure = None

    def _fail(self, message: str) -> None:
        self.failures += 1
        self.failure = message
        raise AuditUnavailableError(f"audit log unavailable, trading must stop: {message}")

    def _fd(self, day: str, path: Path) -> int:
        fd = self._fds.get(day)
        if fd is None:
            # Days only move forward: close the older files we hold.
            for old_day in [d for d in self._fds if d < day]:
                self._sync_fd(self._fds[old_day])
                os.close(self._fds.pop(old_day))
            fd = self._opener(path)
            self._fds[day] = fd
        return fd

    def _sync_fd(self, fd: int) -> None:
        if fd in self._dirty:
            os.fsync(fd)
            self._dirty.discard(fd)

    def _sync_dirty(self) -> None:
        for fd in list(self._dirty):
            self._sync_fd(fd)
        self._last_sync = self._monotonic()

    def _sync_loop(self) -> None:
        # Group commit: records are already written to the OS; this bounds how long they may
        # stay un-fsynced. Waiting on the stop event is the timer, not a wait for a condition.
        while not self._stop.wait(self.group_commit_s):
            with self._lock:
                try:
                    self._sync_dirty()
                except OSError as exc:
                    self.failures += 1
                    self.failure = f"fsync failed in {self.directory}: {exc.strerror or exc}"

    # ----------------------------------------------------------------- head
    def _read_head(self) -> tuple[int, str]:
        raw = os.pread(self._head_fd, 4096, 0)
        if raw.strip():
            try:
                head = orjson.loads(raw)
                return int(head["seq"]), str(head["hash"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                pass
        return _head_from_files(self.directory)

    def _write_head(self, seq: int, hash_hex: str, file_name: str) -> None:
        data = orjson.dumps({"seq": seq, "hash": hash_hex, "file": file_name})
        os.pwrite(self._head_fd, data, 0)
        os.ftruncate(self._head_fd, len(data))

    # ----------------------------------------------------------------- retention
    def cleanup(self, now_ns: int | None = None) -> list[Path]:
        """Delete day files older than ``retention_days``; audit the deletion; return the files.

        The deletion record names the first surviving record (``cut_seq``, ``cut_prev_hash``),
        so verification accepts a chain that starts there and nowhere else.
        """
        if self.retention_days is None:
            return []
        now = self.clock.now_ns() if now_ns is None else now_ns
        cutoff = self._ts.format(now - self.retention_days * NANOS_PER_DAY)[:10]
        with self._lock:
            self._commit()
            files = day_files(self.directory)
            doomed = [p for p in files if p.name[6:16] < cutoff]
            survivors = [p for p in files if p.name[6:16] >= cutoff]
            if not doomed:
                return []
            if survivors:
                cut_seq, cut_prev = _first_record(survivors)
            else:
                # Every file goes: the chain restarts at the deletion record itself, the next
                # record after the current head.
                head_seq, head_hash = self._read_head()
                cut_seq, cut_prev = head_seq + 1, head_hash
            self.append(
                AuditEventType.SYSTEM_STATE_CHANGED,
                actor="audit-retention",
                action="audit.retention_cleanup",
                target=str(self.directory),
                reason=f"day files older than {self.retention_days} days",
                outcome="deleted",
                metadata={
                    "deleted_files": [p.name for p in doomed],
                    "cut_seq": cut_seq,
                    "cut_prev_hash": cut_prev,
                    "retention_days": self.retention_days,
                },
                ts_ns=now,
            )
            self._commit(force_sync=True)
            for p in doomed:
                p.unlink()
            return doomed


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _last_line(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        step = 4096
        while True:
            start = max(0, size - step)
            f.seek(start)
            chunk = f.read(size - start)
            lines = chunk.rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or start == 0:
                return lines[-1]
            step *= 4


def _head_from_files(directory: Path) -> tuple[int, str]:
    """Chain head from the newest day file, for a folder whose head file is missing."""
    for path in reversed(day_files(directory)):
        line = _last_line(path)
        if not line.strip():
            continue
        parts = split_line(line)
        if parts is None:
            raise AuditUnavailableError(
                f"cannot continue the audit chain: last line of {path} is damaged"
            )
        body, hash_hex = parts
        return int(orjson.loads(body)["seq"]), hash_hex
    return 0, GENESIS_HASH


def _first_record(files: list[Path]) -> tuple[int, str]:
    for path in files:
        with path.open("rb") as f:
            line = f.readline()
        parts = split_line(line)
        if parts is not None:
            body = orjson.loads(parts[0])
            return int(body["seq"]), str(body["prev_hash"])
    return 0, GENESIS_HASH
