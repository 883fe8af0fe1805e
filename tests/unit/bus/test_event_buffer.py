"""EventBuffer: durable batches, ordered replay, confirmation, restart and corruption."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.bus.events import Event, EventFactory
from quantum_trader.bus.spool.buffer import CURSOR_NAME, CorruptRecord, EventBuffer, segment_name
from quantum_trader.bus.spool.records import Corruption, CorruptionReason, frame, scan
from quantum_trader.domain.clock import ManualClock
from quantum_trader.observability.audit.records import AuditEventType
from quantum_trader.observability.metrics.recorder import LabelValues, MetricsRecorder
from quantum_trader.testing.fakes import RecordingAuditRecorder


class CountingFsync:
    """An fsync that counts its calls and really syncs (so durability is still exercised)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        os.fsync(fd)


class Collector:
    """A deliver callback that keeps batches; ``fail_on`` makes call N raise after ``take``."""

    def __init__(self, fail_on: int | None = None, take: int = 0) -> None:
        self.events: list[Event] = []
        self.batches: list[list[Event]] = []
        self.calls = 0
        self.fail_on = fail_on
        self.take = take

    def __call__(self, batch: Sequence[Event]) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            self.events.extend(batch[: self.take])  # the broker took a few, then died
            raise ConnectionError("broker went away")
        self.batches.append(list(batch))
        self.events.extend(batch)

    @property
    def ids(self) -> list[str]:
        return [event.event_id for event in self.events]


def _no_fsync(fd: int) -> None:
    """Skip the disk flush: these tests check the logic, not the durability."""


SpoolOpener = Callable[..., EventBuffer]


@pytest.fixture
def open_spool() -> Iterator[SpoolOpener]:
    """Open spools (no fsync unless given) and close them all when the test ends."""
    opened: list[EventBuffer] = []

    def make(folder: Path, **options: Any) -> EventBuffer:
        spool = EventBuffer(folder, **{"fsync": _no_fsync, **options})
        opened.append(spool)
        return spool

    yield make
    for spool in opened:
        spool.close()


def _events(factory: EventFactory, count: int, topic: str = "orders") -> list[Event]:
    return [factory.create(topic, {"n": n, "pad": "x" * (n % 7)}) for n in range(count)]


def _ids(events: Sequence[Event]) -> list[str]:
    return [event.event_id for event in events]


def _segment_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("spool-*.seg"))


def test_event_buffer_when_replayed_delivers_in_order_across_segments(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    spool = open_spool(tmp_path, max_segment_records=7)
    events = _events(factory, 30)
    for start in range(0, 30, 4):
        spool.append_batch(events[start : start + 4])
    collector = Collector()

    assert len(spool.pending_segments()) == 5
    confirmed = spool.replay(collector, batch_size=3)

    assert confirmed == 30
    assert collector.ids == _ids(events)
    assert max(len(batch) for batch in collector.batches) == 3
    assert spool.empty
    assert _segment_files(tmp_path) == []
    assert spool.segments_deleted == 5


def test_event_buffer_when_segment_bytes_reach_the_limit_rotates(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    events = _events(factory, 20)
    record_size = max(len(frame(event.encode())) for event in events)
    spool = open_spool(tmp_path, max_segment_bytes=record_size * 3)

    spool.append_batch(events)

    sizes = [path.stat().st_size for path in spool.pending_segments()]
    assert len(sizes) >= 7
    assert all(size <= record_size * 3 for size in sizes)
    assert spool.pending_bytes() == sum(sizes)


def test_event_buffer_when_appending_batches_fsyncs_once_per_batch(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    fsync = CountingFsync()
    spool = open_spool(tmp_path, fsync=fsync)

    for _ in range(10):
        spool.append_batch(_events(factory, 100))

    # one per batch, plus the folder once when the segment file was created
    assert fsync.calls == 10 + 1
    assert spool.fsync_calls == fsync.calls


def test_event_buffer_when_a_batch_crosses_a_segment_fsyncs_each_file_once(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    fsync = CountingFsync()
    spool = open_spool(tmp_path, max_segment_records=150, fsync=fsync)
    spool.append_batch(_events(factory, 100))
    assert fsync.calls == 2  # the new segment, then the folder

    spool.append_batch(_events(factory, 100))

    assert fsync.calls == 2 + 3  # the full segment, the new one, the folder
    assert len(spool.pending_segments()) == 2


def test_event_buffer_when_deliver_fails_midway_keeps_the_unconfirmed_records(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    spool = open_spool(tmp_path, max_segment_records=10)
    events = _events(factory, 30)
    spool.append_batch(events)
    # batches of 4 per segment: [0-3] [4-7] [8-9] | [10-13] [14-17] ...; call 5 fails
    failing = Collector(fail_on=5, take=2)

    with pytest.raises(ConnectionError):
        spool.replay(failing, batch_size=4)

    assert failing.ids == _ids(events[:16])
    assert _segment_files(tmp_path) == [segment_name(2), segment_name(3)]
    assert spool.pending_bytes() == sum(len(frame(event.encode())) for event in events[14:])
    assert spool.delivered_records == 14
    assert spool.delivery_failures == 1
    assert not spool.empty

    retry = Collector()
    spool.replay(retry, batch_size=4)

    assert retry.ids == _ids(events[14:])  # starts at the first unconfirmed record
    seen = failing.ids + retry.ids
    duplicates = {event_id for event_id in seen if seen.count(event_id) > 1}
    assert duplicates == set(_ids(events[14:16]))  # only what the failed batch had taken
    assert list(dict.fromkeys(seen)) == _ids(events)
    assert _segment_files(tmp_path) == []


def test_event_buffer_when_deliver_fails_on_the_open_segment_keeps_appending_to_it(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    spool = open_spool(tmp_path)
    events = _events(factory, 10)
    spool.append_batch(events[:5])

    with pytest.raises(ConnectionError):
        spool.replay(Collector(fail_on=1))
    spool.append_batch(events[5:])
    assert spool.pending_bytes() == sum(len(frame(event.encode())) for event in events)

    assert _segment_files(tmp_path) == [segment_name(1)]
    collector = Collector()
    assert spool.replay(collector) == 10
    assert collector.ids == _ids(events)
    assert spool.empty


def test_event_buffer_when_reopened_replays_pending_events_in_original_order(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    first = open_spool(tmp_path, max_segment_records=4)
    old = _events(factory, 10)
    first.append_batch(old[:6])
    first.append_batch(old[6:])
    first.close()  # as if the process died: every batch was already durable

    second = open_spool(tmp_path, max_segment_records=4)
    new = _events(factory, 3, topic="fills")
    second.append_batch(new)
    collector = Collector()
    second.replay(collector)

    assert collector.ids == _ids(old + new)
    assert _segment_files(tmp_path) == []


def test_event_buffer_when_reopened_after_a_partial_replay_skips_confirmed_records(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    first = open_spool(tmp_path, max_segment_records=5)
    events = _events(factory, 12)
    first.append_batch(events)
    with pytest.raises(ConnectionError):
        first.replay(Collector(fail_on=3), batch_size=3)  # confirms events 0..4 (one segment)

    second = open_spool(tmp_path, max_segment_records=5)
    collector = Collector()
    second.replay(collector, batch_size=3)

    assert collector.ids == _ids(events[5:])


def test_event_buffer_when_cursor_file_is_torn_replays_from_the_first_segment(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    first = open_spool(tmp_path, max_segment_records=5)
    events = _events(factory, 8)
    first.append_batch(events)
    with pytest.raises(ConnectionError):
        first.replay(Collector(fail_on=2), batch_size=2)
    (tmp_path / CURSOR_NAME).write_bytes(b'{"segm')

    collector = Collector()
    open_spool(tmp_path).replay(collector)

    assert collector.ids == _ids(events)  # duplicates, never a loss


def test_event_buffer_when_reopened_deletes_empty_and_confirmed_segments(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    (tmp_path / segment_name(3)).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a segment")
    spool = open_spool(tmp_path)

    assert spool.empty
    assert _segment_files(tmp_path) == []
    spool.append(factory.create("orders"))
    assert _segment_files(tmp_path) == [segment_name(4)]
    assert (tmp_path / "notes.txt").exists()


def test_event_buffer_when_last_record_is_torn_reports_it_and_delivers_the_rest(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    audit = RecordingAuditRecorder()
    reported: list[CorruptRecord] = []
    spool = open_spool(tmp_path, audit=audit, on_corrupt=reported.append)
    events = _events(factory, 5)
    spool.append_batch(events)
    spool.close()
    segment = tmp_path / segment_name(1)
    size = segment.stat().st_size
    os.truncate(segment, size - 5)

    collector = Collector()
    open_spool(tmp_path, audit=audit, on_corrupt=reported.append).replay(collector)

    assert collector.ids == _ids(events[:4])
    assert len(reported) == 1
    assert reported[0].reason is CorruptionReason.TRUNCATED
    assert reported[0].offset + reported[0].length == size - 5
    [record] = audit.of(AuditEventType.SYSTEM_STATE_CHANGED)
    assert record["target"] == "event_spool"
    assert record["reason"] == "truncated"
    assert record["metadata"]["segment"] == segment_name(1)
    assert record["metadata"]["offset"] == reported[0].offset
    assert _segment_files(tmp_path) == []


def test_event_buffer_when_a_record_does_not_decode_skips_it_as_undecodable(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    events = _events(factory, 2)
    (tmp_path / segment_name(1)).write_bytes(
        frame(events[0].encode()) + frame(b'{"not": "an event"}') + frame(events[1].encode())
    )
    reported: list[CorruptRecord] = []
    spool = open_spool(tmp_path, on_corrupt=reported.append)

    collector = Collector()
    spool.replay(collector)

    assert collector.ids == _ids(events)
    assert [record.reason for record in reported] == [CorruptionReason.UNDECODABLE]
    assert spool.corrupt_records == 1


def test_event_buffer_when_replay_fails_after_corruption_reports_it_once(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    events = _events(factory, 4)
    good = [frame(event.encode()) for event in events]
    (tmp_path / segment_name(1)).write_bytes(good[0] + b"garbage!" + good[1] + good[2] + good[3])
    reported: list[CorruptRecord] = []
    spool = open_spool(tmp_path, on_corrupt=reported.append)

    with pytest.raises(ConnectionError):
        spool.replay(Collector(fail_on=2), batch_size=2)
    collector = Collector()
    spool.replay(collector, batch_size=2)
    open_spool(tmp_path, on_corrupt=reported.append).replay(collector)

    assert len(reported) == 1
    assert collector.ids == _ids(events[1:])


def test_event_buffer_when_an_event_is_too_large_writes_nothing(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    spool = open_spool(tmp_path, max_record_bytes=100)

    with pytest.raises(ValueError, match="max_record_bytes"):
        spool.append_batch([factory.create("orders"), factory.create("orders", {"x": "y" * 200})])

    assert spool.empty
    assert _segment_files(tmp_path) == []


def test_event_buffer_when_fsync_fails_raises_and_starts_a_new_segment(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    failing = True

    def flaky_fsync(fd: int) -> None:
        if failing:
            raise OSError("I/O error")

    spool = open_spool(tmp_path, fsync=flaky_fsync)
    events = _events(factory, 6)

    with pytest.raises(OSError, match="I/O error"):
        spool.append_batch(events[:3])
    failing = False
    spool.append_batch(events[3:])

    assert _segment_files(tmp_path) == [segment_name(1), segment_name(2)]
    collector = Collector()
    spool.replay(collector)
    assert collector.ids == _ids(events)  # the failed batch may still arrive: at-least-once


class RecordingMetrics(MetricsRecorder):
    """Keeps histogram observations; a fake monotonic clock makes every timing 0.5 s."""

    def __init__(self) -> None:
        ticks = iter(range(1000))
        super().__init__(monotonic=lambda: next(ticks) * 0.5)
        self.observed: list[tuple[str, float, tuple[str, ...]]] = []

    def increment(self, name: str, amount: float = 1.0, labels: LabelValues = ()) -> None:
        raise AssertionError("the spool only times")

    def set_value(self, name: str, value: float, labels: LabelValues = ()) -> None:
        raise AssertionError("the spool only times")

    def observe(self, name: str, value: float, labels: LabelValues = ()) -> None:
        self.observed.append((name, value, labels))


def test_event_buffer_when_given_metrics_times_appends_and_deliveries(
    tmp_path: Path, factory: EventFactory, open_spool: SpoolOpener
) -> None:
    metrics = RecordingMetrics()
    spool = open_spool(tmp_path, metrics=metrics)

    spool.append_batch(_events(factory, 3))
    spool.replay(Collector(), batch_size=2)

    assert metrics.observed == [
        ("latency_seconds", 0.5, ("spool_append_batch",)),
        ("latency_seconds", 0.5, ("spool_replay_batch",)),
        ("latency_seconds", 0.5, ("spool_replay_batch",)),
    ]


# Corruption property: random bytes over a spool on disk ------------------------------------


def _write_spool(folder: Path) -> list[tuple[str, int, int, str]]:
    """Write 40 events over several segments; return (segment, start, end, id) per record."""
    factory = EventFactory(ManualClock(1_000), "fuzz", seed=11)
    rng = random.Random(5)
    spool = EventBuffer(folder, max_segment_bytes=2_000, fsync=_no_fsync)
    for _ in range(8):
        spool.append_batch(
            [
                factory.create(
                    "orders", {"n": rng.randrange(10**6), "pad": "p" * rng.randrange(40)}
                )
                for _ in range(5)
            ]
        )
    spool.close()
    layout = []
    for path in spool.pending_segments():
        for item in scan(path.read_bytes()):
            assert not isinstance(item, Corruption)
            start, end, payload = item
            layout.append((path.name, start, end, Event.decode(payload).event_id))
    return layout


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    damage=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10),
            st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
            st.binary(min_size=1, max_size=48),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_event_buffer_when_random_bytes_hit_segments_delivers_every_untouched_record(
    damage: list[tuple[int, float, bytes]],
) -> None:
    """Fault test 5 (issue 5): random bytes written into spool segments. Replay raises
    nothing, delivers every record whose bytes are unchanged exactly once and in the original
    order, and reports (callback, counters, audit) exactly the damaged byte ranges, each with
    its segment and offset."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        layout = _write_spool(folder)
        segments = sorted({segment for segment, *_ in layout})
        originals = {segment: (folder / segment).read_bytes() for segment in segments}
        for index, where, garbage in damage:
            path = folder / segments[index % len(segments)]
            data = bytearray(path.read_bytes())
            offset = min(int(where * len(data)), len(data) - 1)
            data[offset : offset + len(garbage)] = garbage[: len(data) - offset]
            path.write_bytes(bytes(data))
        damaged = {segment: (folder / segment).read_bytes() for segment in segments}
        intact = [
            event_id
            for segment, start, end, event_id in layout
            if damaged[segment][start:end] == originals[segment][start:end]
        ]
        audit = RecordingAuditRecorder()
        reported: list[CorruptRecord] = []
        collector = Collector()
        with EventBuffer(folder, fsync=_no_fsync, audit=audit, on_corrupt=reported.append) as spool:
            spool.replay(collector, batch_size=7)

        assert collector.ids == intact
        assert (len(reported) > 0) == (len(intact) < len(layout))
        assert spool.corrupt_records == len(reported)
        assert spool.corrupt_bytes == sum(record.length for record in reported)
        # The reports cover exactly the damaged records' bytes, segment by segment.
        damaged_spans = [
            (segment, start, end)
            for segment, start, end, _ in layout
            if damaged[segment][start:end] != originals[segment][start:end]
        ]
        reported_spans = [
            (record.segment, record.offset, record.offset + record.length) for record in reported
        ]
        assert _merged(reported_spans) == _merged(damaged_spans)
        audited = audit.of(AuditEventType.SYSTEM_STATE_CHANGED)
        fields = ("segment", "offset", "length", "reason")
        assert [tuple(record["metadata"][field] for field in fields) for record in audited] == [
            (record.segment, record.offset, record.length, record.reason.value)
            for record in reported
        ]
        assert all(record["target"] == "event_spool" for record in audit.records)
        assert _segment_files(folder) == []


def _merged(spans: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Join (segment, start, end) spans that touch or overlap into maximal runs."""
    runs: list[tuple[str, int, int]] = []
    for segment, start, end in sorted(spans):
        if runs and runs[-1][0] == segment and start <= runs[-1][2]:
            runs[-1] = (segment, runs[-1][1], max(end, runs[-1][2]))
        else:
            runs.append((segment, start, end))
    return runs
