"""Event: ids, encode/decode round trip, and decode rejecting anything else."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.bus.events import Event, EventFactory, EventIdGenerator
from quantum_trader.domain.clock import ManualClock
from quantum_trader.domain.errors import IntegrityError

PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def test_event_when_encoded_and_decoded_equals_original(factory: EventFactory) -> None:
    event = factory.create(
        "orders", {"symbol": "BTCUSDT", "qty": 0.5, "tags": ["a", "é"], "nested": {"x": None}}
    )

    assert Event.decode(event.encode()) == event


@PROPERTY
@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_event_when_payload_is_any_json_round_trips(payload: dict[str, object]) -> None:
    event = EventFactory(ManualClock(5), "p", seed=1).create("fills", payload)  # type: ignore[arg-type]

    assert Event.decode(event.encode()) == event


@PROPERTY
@given(data=st.binary(max_size=300))
def test_event_decode_when_bytes_are_arbitrary_raises_integrity_error_only(data: bytes) -> None:
    try:
        Event.decode(data)
    except IntegrityError:
        pass


@PROPERTY
@given(data=st.binary(max_size=40), cut=st.integers(min_value=0, max_value=200))
def test_event_decode_when_valid_bytes_are_damaged_never_raises_another_error(
    data: bytes, cut: int
) -> None:
    valid = EventFactory(ManualClock(9), "p", seed=1).create("ess", {"a": [1, 2.5, "x"]}).encode()
    damaged = valid[:cut] + data + valid[cut + len(data) :]
    try:
        decoded = Event.decode(damaged)
    except IntegrityError:
        return
    assert isinstance(decoded, Event)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"null",
        b'{"event_id": "a"}',
        b'{"event_id":"","topic":"t","ts_ns":1,"source":"s","payload":{}}',
        b'{"event_id":"a","topic":"","ts_ns":1,"source":"s","payload":{}}',
        b'{"event_id":"a","topic":"t","ts_ns":-1,"source":"s","payload":{}}',
        b'{"event_id":"a","topic":"t","ts_ns":1.5,"source":"s","payload":{}}',
        b'{"event_id":"a","topic":"t","ts_ns":true,"source":"s","payload":{}}',
        b'{"event_id":"a","topic":"t","ts_ns":1,"source":3,"payload":{}}',
        b'{"event_id":"a","topic":"t","ts_ns":1,"source":"s","payload":[]}',
        b'{"event_id":"a","topic":"t","ts_ns":1,"source":"s","payload":{},"x":1}',
        b"\xff\xfe",
    ],
)
def test_event_decode_when_malformed_raises_integrity_error(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        Event.decode(raw)


def test_event_encode_when_payload_is_not_json_able_raises_type_error(
    factory: EventFactory,
) -> None:
    event = factory.create("orders", {"when": object()})  # type: ignore[dict-item]

    with pytest.raises(TypeError):
        event.encode()


def test_event_encoding_when_made_never_contains_the_spool_marker_byte(
    factory: EventFactory,
) -> None:
    event = factory.create("risk", {"text": "\u00ff\uffff\U0001f600", "raw": "\\xff"})

    assert b"\xff" not in event.encode()
    assert orjson.loads(event.encode())["payload"]["text"] == "\u00ff\uffff\U0001f600"


def test_event_id_generator_when_seeded_is_deterministic_and_unique() -> None:
    first = EventIdGenerator(ManualClock(42), seed=3)
    second = EventIdGenerator(ManualClock(42), seed=3)

    ids = [first.next_id() for _ in range(1000)]

    assert ids == [second.next_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)
    assert all(len(event_id) == 32 and int(event_id, 16) >= 0 for event_id in ids)


def test_event_id_generator_when_clock_moves_puts_time_first() -> None:
    clock = ManualClock(1)
    generator = EventIdGenerator(clock, seed=3)
    early = generator.next_id()
    clock.set(2)

    late = generator.next_id()

    assert early < late
    assert int(late[:16], 16) == 2


def test_event_id_generator_when_seeds_differ_gives_different_process_bits() -> None:
    ids = {EventIdGenerator(ManualClock(0), seed=seed).next_id() for seed in range(50)}

    assert len(ids) == 50


def test_event_factory_when_creating_stamps_clock_time_and_source(
    clock: ManualClock, factory: EventFactory
) -> None:
    clock.advance(10)

    event = factory.create("fills")

    assert event.ts_ns == clock.now_ns()
    assert int(event.event_id[:16], 16) == clock.now_ns()
    assert event.source == "test"
    assert event.payload == {}
