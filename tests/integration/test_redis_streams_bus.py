"""RedisStreamsBus against a real ``redis-server`` of our own (RedisServer, on a free port).

Without ``redis-server`` on PATH these tests skip with the reason, unless ``QT_REQUIRE_REDIS=1``
makes that a failure. Nothing sleeps: every step is driven by calling ``poll``,
``retry_pending(0)`` or ``drain`` directly.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quantum_trader.bus.errors import BusUnavailableError, HandlerFailedError
from quantum_trader.bus.events import Event, EventFactory
from quantum_trader.bus.local import ErrorPolicy
from quantum_trader.bus.redis_streams import RedisStreamsBus
from quantum_trader.bus.spool.buffer import EventBuffer
from quantum_trader.bus.spool.publisher import SpoolingPublisher
from quantum_trader.domain.clock import ManualClock
from quantum_trader.testing.redis_server import RedisServer, RedisServerNotFoundError

TIMEOUT_SECS = 1.0


def new_server() -> RedisServer:
    """Start a private ``redis-server``; skip when it is not installed (fail if required)."""
    try:
        server = RedisServer()
    except RedisServerNotFoundError as exc:
        if os.environ.get("QT_REQUIRE_REDIS") == "1":
            pytest.fail(f"{exc} (QT_REQUIRE_REDIS=1 makes this a failure)")
        pytest.skip(str(exc))
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


@pytest.fixture(scope="module")
def shared_server() -> Iterator[RedisServer]:
    """One server for the tests that never stop it (each uses its own key prefix)."""
    server = new_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_server() -> Iterator[RedisServer]:
    """A server for one test alone (outage tests stop and restart it)."""
    server = new_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def factory() -> EventFactory:
    """Events with deterministic, ordered ids."""
    return EventFactory(ManualClock(1_700_000_000_000_000_000), "test", seed=7)


def make_bus(
    server: RedisServer, prefix: str, consumer: str = "c1", **options: Any
) -> RedisStreamsBus:
    """A bus on ``server`` with short timeouts."""
    return RedisStreamsBus.from_url(
        server.url,
        timeout_secs=TIMEOUT_SECS,
        prefix=prefix,
        consumer=consumer,
        **options,
    )


def drain(bus: RedisStreamsBus) -> int:
    """Poll until nothing is left to read; return how many entries were read."""
    total = 0
    while read := bus.poll():
        total += read
    return total


def test_publish_and_consume_in_order(
    shared_server: RedisServer, prefix: str, factory: EventFactory
) -> None:
    bus = make_bus(shared_server, prefix)
    got: list[Event] = []
    bus.subscribe("orders", got.append)
    events = [factory.create("orders", {"n": i}) for i in range(250)]
    for event in events:
        bus.publish(event)
    assert drain(bus) == 250
    assert got == events
    assert bus.pending_count("orders") == 0
    assert bus.published == 250
    assert bus.delivered == 250
    bus.close()


def test_stream_keys_use_the_hash_tag(shared_server: RedisServer, prefix: str) -> None:
    bus = make_bus(shared_server, prefix)
    assert bus.stream_key("fills") == "{" + prefix + "}:bus:fills"
    assert bus.dead_key("fills") == "{" + prefix + "}:bus:dead:fills"
    bus.close()


def test_batch_publish_routes_by_topic_and_keeps_order(
    shared_server: RedisServer, prefix: str, factory: EventFactory
) -> None:
    bus = make_bus(shared_server, prefix)
    orders: list[Event] = []
    fills: list[Event] = []
    bus.subscribe("orders", orders.append)
    bus.subscribe("fills", fills.append)
    events = [factory.create("orders" if i % 3 else "fills", {"n": i}) for i in range(1000)]
    bus.publish_batch(events)
    assert drain(bus) == 1000
    assert orders == [e for e in events if e.topic == "orders"]
    assert fills == [e for e in events if e.topic == "fills"]
    bus.close()


def test_maxlen_trims_the_stream(
    shared_server: RedisServer, prefix: str, factory: EventFactory
) -> None:
    bus = make_bus(shared_server, prefix, maxlen=10)
    bus.publish_batch([factory.create("orders") for _ in range(2000)])
    length = bus._client.xlen(bus.stream_key("orders"))
    assert 10 <= length < 2000
    bus.close()


def test_ack_only_after_the_handler_succeeded(
    shared_server: RedisServer, prefix: str, factory: EventFactory
) -> None:
    bus = make_bus(shared_server, prefix, error_policy=ErrorPolicy.REPORT)
    calls: list[str] = []

    def flaky(event: Event) -> None:
        calls.append(event.event_id)
        if len(calls) == 1:
            raise RuntimeError("first try fails")

    bus.subscribe("orders", flaky)
    event = factory.create("orders", {"qty": 1})
    bus.publish(event)
    assert bus.poll() == 1
    assert bus.pending_count("orders") == 1  # not acknowledged: the handler raised
    assert bus.poll() == 0  # a new read does not see it again
    assert bus.retry_pending(0) == 1
    assert calls == [event.event_id, event.event_id]
    assert bus.pending_count("orders") == 0  # acknowledged once it succeeded
    assert bus.retry_pending(0) == 0
    assert bus.handler_errors == 1
    assert bus.delivered == 1
    assert bus.dead_lettered == 0
    bus.close()


def test_raise_policy_raises_after_acking_the_rest(
    shared_server: RedisServer, prefix: str, factory: EventFactory
) -> None:
    bus = make_bus(shared_server, prefix)
    seen: list[int] = []

    def handler(event: Event) -> None:
        n = event.payload["n"]
        assert isinstance(n, int)
        if n == 1:
            raise ValueError("bad one")
        seen.append(n)

    bus.subscribe("orders", handler)
    bus.publish_batch([factory.create("orders", {"n": i}) for i in range(3)])
    with pytest.raises(HandlerFailedError) as info:
        bus.poll()
    assert isinstance(info.value.__cause__, ValueError)
    assert seen == [0, 2]
    assert bus.pending_count("orders") == 1
    bus.close()


def test_dead_letter_after_max_deliveries(
    shared_server: RedisServer, prefix: str, factory: EventFactory
) -> None:
    bus = make_bus(shared_server, prefix, max_deliveries=3, error_policy=ErrorPolicy.REPORT)
    attempts: list[str] = []

    def broken(event: Event) -> None:
        attempts.append(event.event_id)
        raise RuntimeError(f"cannot handle {event.event_id}")

    bus.subscribe("orders", broken)
    event = factory.create("orders")
    bus.publish(event)
    assert bus.poll() == 1  # attempt 1
    assert bus.retry_pending(0) == 1  # attempt 2
    assert bus.dead_letters("orders") == []
    assert bus.retry_pending(0) == 1  # attempt 3: the last, so it is dead-lettered
    assert len(attempts) == 3
    assert bus.pending_count("orders") == 0
    assert bus.retry_pending(0) == 0
    [letter] = bus.dead_letters("orders")
    assert Event.decode(letter.data) == event
    assert f"cannot handle {event.event_id}" in letter.error
    assert letter.deliveries == 3
    assert letter.group == bus.group
    assert bus.dead_lettered == 1
    bus.close()


def test_malformed_entry_is_dead_lettered(shared_server: RedisServer, prefix: str) -> None:
    bus = make_bus(shared_server, prefix, error_policy=ErrorPolicy.REPORT)
    got: list[Event] = []
    bus.subscribe("orders", got.append)
    bus._client.xadd(bus.stream_key("orders"), {"e": b"not json"})
    assert bus.poll() == 1
    assert got == []
    [letter] = bus.dead_letters("orders")
    assert letter.data == b"not json"
    assert "JSON" in letter.error
    assert bus.pending_count("orders") == 0
    bus.close()


def test_duplicate_ids_are_dropped(
    shared_server: RedisServer, prefix: str, factory: EventFactory
) -> None:
    bus = make_bus(shared_server, prefix)
    got: list[Event] = []
    bus.subscribe("orders", got.append)
    first, second = factory.create("orders", {"n": 1}), factory.create("orders", {"n": 2})
    bus.publish_batch([first, first, second, first])
    bus.publish(second)
    assert drain(bus) == 5
    assert got == [first, second]
    assert bus.duplicates_dropped == 3
    assert bus.pending_count("orders") == 0  # duplicates are acknowledged too
    bus.close()


def test_two_consumers_share_a_group_without_double_processing(
    shared_server: RedisServer, prefix: str, factory: EventFactory
) -> None:
    one = make_bus(shared_server, prefix, consumer="one")
    two = make_bus(shared_server, prefix, consumer="two")
    handled: dict[str, list[str]] = {"one": [], "two": []}
    one.subscribe("orders", lambda e: handled["one"].append(e.event_id))
    two.subscribe("orders", lambda e: handled["two"].append(e.event_id))
    events = [factory.create("orders", {"n": i}) for i in range(500)]
    one.publish_batch(events)
    while one.poll(count=37) + two.poll(count=37):
        pass
    assert handled["one"]
    assert handled["two"]
    everything = handled["one"] + handled["two"]
    assert sorted(everything) == sorted(e.event_id for e in events)  # each exactly once
    assert len(set(everything)) == len(everything)
    one.close()
    two.close()


def test_another_group_sees_every_event(
    shared_server: RedisServer, prefix: str, factory: EventFactory
) -> None:
    risk = make_bus(shared_server, prefix, group="risk")
    audit = make_bus(shared_server, prefix, group="audit")
    got: dict[str, list[Event]] = {"risk": [], "audit": []}
    risk.subscribe("fills", got["risk"].append)
    audit.subscribe("fills", got["audit"].append)
    events = [factory.create("fills", {"n": i}) for i in range(20)]
    risk.publish_batch(events)
    drain(risk)
    drain(audit)
    assert got["risk"] == events == got["audit"]
    risk.close()
    audit.close()


def test_publish_raises_bus_unavailable_quickly_when_redis_is_down(
    private_server: RedisServer, prefix: str, factory: EventFactory
) -> None:
    bus = make_bus(private_server, prefix)
    bus.subscribe("orders", lambda _e: None)
    bus.publish(factory.create("orders"))
    private_server.stop()
    started = time.monotonic()
    with pytest.raises(BusUnavailableError) as info:
        bus.publish(factory.create("orders"))
    assert time.monotonic() - started < 2.0
    with pytest.raises(BusUnavailableError):
        bus.publish_batch([factory.create("orders") for _ in range(10)])
    with pytest.raises(BusUnavailableError):
        bus.poll()
    assert time.monotonic() - started < 2.0 * 3
    assert info.value.broker == "redis"
    bus.close()


def test_spooling_publisher_over_the_bus_survives_an_outage(
    private_server: RedisServer, prefix: str, factory: EventFactory, tmp_path: Path
) -> None:
    bus = make_bus(private_server, prefix)
    received: list[str] = []
    bus.subscribe("orders", lambda e: received.append(e.event_id))
    with EventBuffer(tmp_path / "spool") as spool:
        publisher = SpoolingPublisher(bus, spool, batch_size=50)
        events = [factory.create("orders", {"n": i}) for i in range(300)]
        for event in events[:100]:
            publisher.publish(event)
        drain(bus)  # consumed before the outage (the server persists nothing)
        private_server.stop()
        for event in events[100:200]:
            publisher.publish(event)  # Redis down: these spool
        assert publisher.spooling
        assert publisher.spooled == 100
        assert publisher.drain() is False  # still down: the spool keeps everything
        private_server.start()
        for event in events[200:250]:
            publisher.publish(event)  # still spooling: nothing overtakes the spool
        assert publisher.drain() is True
        publisher.publish_batch(events[250:])  # direct again
        assert not publisher.spooling
        drain(bus)  # the group was lost with the restart: the bus recreates it
    assert received == [e.event_id for e in events]  # every event once, in order
    assert publisher.published_direct == 150
    bus.close()
