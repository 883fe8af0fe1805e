"""EventBuffer: the append-only disk spool behind a publisher whose broker is down.

Layout of the spool folder::

    spool-000000000001.seg   segments, replayed in sequence order (see ``records`` for bytes)
    spool-000000000002.seg
    replay.cursor            first unconfirmed byte: {"segment": seq, "offset": n}

Writing: ``append_batch`` frames every event (marker, length, CRC32, payload), writes the
batch and fsyncs once per segment it touched (and the folder once when it created a segment),
so a batch is durable when the call returns. A segment is closed and a new one started before
it would pass ``max_segment_bytes`` or ``max_segment_records``; after a restart the writer
always starts a new segment, never appending behind a possibly torn tail.

Replaying: ``replay(deliver)`` reads segments in order from the cursor (the segment being
written included, up to what is written) and calls ``deliver(events)`` with batches in the
original order. When ``deliver`` returns, the batch is confirmed and the cursor moves past it;
when it raises, nothing moves and the exception propagates: the next replay starts again at
the first unconfirmed record (that batch may be delivered twice, so consumers dedupe by id).
A segment file is deleted only once every record in it is confirmed or skipped as corrupt.

Corruption is never fatal: a corrupt run of bytes (bad marker, implausible length, bad
checksum, torn write, a record that does not decode) is skipped, counted in
``corrupt_records``, reported to ``on_corrupt`` and to the audit log
(``system.state_changed``, component ``event_spool``, metadata segment/offset/length/reason),
and the scan resyncs at the next valid record. Records delivered before it are confirmed
first, so a corrupt run is reported once, not on every retry.

The cursor file is replaced atomically but not fsynced: after a crash it may be older than
the last confirmation, which only re-delivers confirmed events (deduped by id), never loses
one. Not thread-safe: call ``append_batch`` and ``replay`` from one thread (the event loop).
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import orjson

from quantum_trader.bus.events import Event
from quantum_trader.bus.spool.records import (
    HEADER_SIZE,
    Corruption,
    CorruptionReason,
    frame,
    scan,
)
from quantum_trader.domain.errors import IntegrityError
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.metrics.recorder import MetricsRecorder

COMPONENT = "event_spool"
"""The component name in audit records."""

CURSOR_NAME = "replay.cursor"
_SEGMENT = re.compile(r"spool-(\d+)\.seg")


def segment_name(seq: int) -> str:
    """Return the file name of segment ``seq``."""
    return f"spool-{seq:012d}.seg"


@dataclass(frozen=True, slots=True)
class CorruptRecord:
    """A corrupt run of bytes the replay skipped: segment file name, offset, length, reason."""

    segment: str
    offset: int
    length: int
    reason: CorruptionReason


class EventBuffer:
    """An append-only, segmented, checksummed spool of events on disk.

    Attributes:
        appended_records: Events appended since this object was made.
        appended_bytes: Bytes appended (headers included).
        fsync_calls: Calls of the ``fsync`` function (files and the folder).
        delivered_records: Events confirmed by ``deliver``.
        delivery_failures: Calls of ``deliver`` that raised.
        corrupt_records: Corrupt runs skipped (each holds at least one lost record).
        corrupt_bytes: Bytes in those runs.
        segments_deleted: Segment files deleted after full confirmation.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        max_segment_bytes: int = 16 << 20,
        max_segment_records: int = 100_000,
        max_record_bytes: int = 4 << 20,
        fsync: Callable[[int], None] = os.fsync,
        on_corrupt: Callable[[CorruptRecord], None] | None = None,
        audit: AuditRecorder | None = None,
        actor: str = COMPONENT,
        metrics: MetricsRecorder | None = None,
    ) -> None:
        """Open (or create) the spool in ``directory`` and find the pending segments.

        Args:
            directory: The spool folder; created when missing.
            max_segment_bytes: Start a new segment before one would grow past this.
            max_segment_records: Start a new segment once one holds this many records.
            max_record_bytes: Largest encoded event accepted; longer lengths read as corrupt.
            fsync: Called with a file descriptor to make it durable (inject to count or fake).
            on_corrupt: Called with each corrupt run the replay skips.
            audit: Where skipped corrupt runs are audited.
            actor: The audit actor (the process or service name).
            metrics: Where append and delivery latencies go (``latency_seconds``).
        """
        if max_segment_bytes < 1 or max_segment_records < 1 or max_record_bytes < 1:
            raise ValueError("segment and record limits must be >= 1")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._max_segment_bytes = max_segment_bytes
        self._max_segment_records = max_segment_records
        self._max_record_bytes = max_record_bytes
        self._fsync = fsync
        self._on_corrupt = on_corrupt
        self._audit = audit
        self._actor = actor
        self._metrics = metrics
        self._file: BinaryIO | None = None
        self._active_seq = 0
        self._active_bytes = 0
        self._active_records = 0
        self.appended_records = 0
        self.appended_bytes = 0
        self.fsync_calls = 0
        self.delivered_records = 0
        self.delivery_failures = 0
        self.corrupt_records = 0
        self.corrupt_bytes = 0
        self.segments_deleted = 0
        self._cursor_seq, self._cursor_offset = self._read_cursor()
        self._sealed: deque[int] = deque()
        on_disk = self._segments_on_disk()
        for seq in on_disk:
            path = self._path(seq)
            if seq < self._cursor_seq or path.stat().st_size == 0:
                path.unlink()  # confirmed before a crash, or created and never written
            else:
                self._sealed.append(seq)
        self._next_seq = max(self._cursor_seq, on_disk[-1] if on_disk else 0) + 1

    # State

    @property
    def empty(self) -> bool:
        """True when every event appended is confirmed (nothing waits for replay)."""
        return not self._sealed and self._active_records == 0

    def pending_segments(self) -> list[Path]:
        """Return the segment files still holding unconfirmed records, in replay order."""
        seqs = list(self._sealed)
        if self._active_records:
            seqs.append(self._active_seq)
        return [self._path(seq) for seq in seqs]

    def pending_bytes(self) -> int:
        """Return the bytes not yet confirmed, as the segment sizes tell (headers included)."""
        seqs = list(self._sealed)
        if self._active_records:
            seqs.append(self._active_seq)
        total = sum(self._path(seq).stat().st_size for seq in seqs)
        if seqs and seqs[0] == self._cursor_seq:
            total -= self._cursor_offset
        return max(total, 0)

    # Writing

    def append(self, event: Event) -> None:
        """Append one event and fsync it (prefer ``append_batch``: one fsync per batch)."""
        self.append_batch((event,))

    def append_batch(self, events: Sequence[Event]) -> None:
        """Append events in order and make them durable with one fsync per segment touched.

        Raises:
            ValueError: An event encodes to more than ``max_record_bytes``; nothing written.
            TypeError: A payload is not JSON-able; nothing written.
            OSError: The disk failed; part of the batch may be durable (and replayed later).
        """
        if not events:
            return
        records = [frame(event.encode()) for event in events]
        largest = max(len(record) for record in records)
        if largest > self._max_record_bytes + HEADER_SIZE:
            raise ValueError(f"an event encodes to {largest} bytes, over max_record_bytes")
        if self._metrics is None:
            self._write(records)
        else:
            with self._metrics.time("spool_append_batch"):
                self._write(records)

    def _write(self, records: list[bytes]) -> None:
        chunk: list[bytes] = []
        created = False
        try:
            for record in records:
                size = len(record)
                if self._file is not None and (
                    self._active_records >= self._max_segment_records
                    or (self._active_bytes and self._active_bytes + size > self._max_segment_bytes)
                ):
                    if chunk:
                        self._flush(chunk)
                        chunk = []
                    self._seal_active()
                if self._file is None:
                    self._open_segment()
                    created = True
                chunk.append(record)
                self._active_bytes += size
                self._active_records += 1
                self.appended_records += 1
                self.appended_bytes += size
            self._flush(chunk)
            if created:
                self._sync_directory()
        except BaseException:
            self._abandon_active()  # a torn tail stays behind, replayed as corrupt
            raise

    def _flush(self, chunk: list[bytes]) -> None:
        file = self._file
        assert file is not None
        file.write(b"".join(chunk))
        file.flush()
        self._call_fsync(file.fileno())

    def _call_fsync(self, fd: int) -> None:
        self.fsync_calls += 1
        self._fsync(fd)

    def _open_segment(self) -> None:
        seq = self._next_seq
        self._next_seq += 1
        # Kept open across batches, so no ``with``: closed when the segment is sealed.
        self._file = open(self._path(seq), "xb")
        self._active_seq = seq
        self._active_bytes = 0
        self._active_records = 0

    def _sync_directory(self) -> None:
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
        fd = os.open(self.directory, flags)
        try:
            self._call_fsync(fd)
        finally:
            os.close(fd)

    def _seal_active(self) -> None:
        file = self._file
        if file is None:
            return
        self._file = None
        file.close()
        if self._active_records:
            self._sealed.append(self._active_seq)
        else:
            self._path(self._active_seq).unlink(missing_ok=True)
        self._active_records = 0
        self._active_bytes = 0

    def _abandon_active(self) -> None:
        file = self._file
        if file is None:
            return
        self._file = None
        try:
            file.close()
        except OSError:
            pass  # the write already failed; the caller gets that error
        self._sealed.append(self._active_seq)
        self._active_records = 0
        self._active_bytes = 0

    def close(self) -> None:
        """Close the segment being written; pending segments stay for the next replay."""
        self._seal_active()

    def __enter__(self) -> Self:
        """Return the spool; ``close`` runs when the block ends."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the segment being written."""
        self.close()

    # Replaying

    def replay(self, deliver: Callable[[Sequence[Event]], None], *, batch_size: int = 1000) -> int:
        """Deliver every pending event in the original order; return how many were confirmed.

        Args:
            deliver: Takes a batch of events; returning confirms it, raising keeps it (the
                exception propagates and the next replay starts at the same record).
            batch_size: The most events per ``deliver`` call.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        confirmed_before = self.delivered_records
        while True:
            if self._sealed:
                seq = self._sealed[0]
            elif self._active_records:
                seq = self._active_seq  # read up to what is written; a failure seals nothing
            else:
                break
            path = self._path(seq)
            data = path.read_bytes() if path.exists() else b""
            start = self._cursor_offset if seq == self._cursor_seq else 0
            if start > len(data):
                start = 0  # the cursor does not fit this file: replay it whole, dedupe copes
            self._replay_segment(seq, data, start, deliver, batch_size)
            if path.exists() and path.stat().st_size != len(data):
                continue  # a deliver call appended to this segment: read the rest
            if self._file is not None and seq == self._active_seq:
                self._seal_active()
            self._commit(seq + 1, 0)
            self._sealed.popleft()
            path.unlink(missing_ok=True)
            self.segments_deleted += 1
        return self.delivered_records - confirmed_before

    def _replay_segment(
        self,
        seq: int,
        data: bytes,
        start: int,
        deliver: Callable[[Sequence[Event]], None],
        batch_size: int,
    ) -> None:
        batch: list[Event] = []
        batch_end = start
        for item in scan(data, start, max_payload=self._max_record_bytes):
            if isinstance(item, Corruption):
                self._deliver(seq, batch, batch_end, deliver)
                batch = []
                self._report(seq, item)
                continue
            offset, end, payload = item
            try:
                event = Event.decode(payload)
            except IntegrityError:
                self._deliver(seq, batch, batch_end, deliver)
                batch = []
                self._report(seq, Corruption(offset, end - offset, CorruptionReason.UNDECODABLE))
                continue
            batch.append(event)
            batch_end = end
            if len(batch) >= batch_size:
                self._deliver(seq, batch, batch_end, deliver)
                batch = []
        self._deliver(seq, batch, batch_end, deliver)

    def _deliver(
        self,
        seq: int,
        batch: list[Event],
        end: int,
        deliver: Callable[[Sequence[Event]], None],
    ) -> None:
        if not batch:
            return
        try:
            if self._metrics is None:
                deliver(batch)
            else:
                with self._metrics.time("spool_replay_batch"):
                    deliver(batch)
        except BaseException:
            self.delivery_failures += 1
            raise
        self.delivered_records += len(batch)
        self._commit(seq, end)

    def _report(self, seq: int, corruption: Corruption) -> None:
        record = CorruptRecord(
            segment_name(seq), corruption.offset, corruption.length, corruption.reason
        )
        if self._on_corrupt is not None:
            self._on_corrupt(record)
        if self._audit is not None:
            self._audit.system_state_changed(
                actor=self._actor,
                component=COMPONENT,
                old="replaying",
                new="corrupt_record_skipped",
                reason=record.reason.value,
                metadata={
                    "segment": record.segment,
                    "offset": record.offset,
                    "length": record.length,
                    "reason": record.reason.value,
                },
            )
        # Counted and passed only once reported: a failed report is retried on the next replay.
        self.corrupt_records += 1
        self.corrupt_bytes += corruption.length
        self._commit(seq, corruption.offset + corruption.length)

    # Files

    def _path(self, seq: int) -> Path:
        return self.directory / segment_name(seq)

    def _segments_on_disk(self) -> list[int]:
        seqs = []
        for entry in os.scandir(self.directory):
            match = _SEGMENT.fullmatch(entry.name)
            if match is not None and entry.is_file():
                seqs.append(int(match.group(1)))
        return sorted(seqs)

    def _read_cursor(self) -> tuple[int, int]:
        try:
            raw = orjson.loads((self.directory / CURSOR_NAME).read_bytes())
            seq, offset = raw["segment"], raw["offset"]
        except (OSError, ValueError, TypeError, KeyError):
            return 0, 0  # missing or torn: replay from the first segment, dedupe copes
        if type(seq) is not int or type(offset) is not int or seq < 0 or offset < 0:
            return 0, 0
        return seq, offset

    def _commit(self, seq: int, offset: int) -> None:
        self._cursor_seq, self._cursor_offset = seq, offset
        target = self.directory / CURSOR_NAME
        temporary = target.with_name(CURSOR_NAME + ".tmp")
        temporary.write_bytes(orjson.dumps({"segment": seq, "offset": offset}))
        os.replace(temporary, target)
