"""SpoolingPublisher: the broker goes down and comes back; nothing is lost or reordered."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from quantum_trader.bus.errors import BusUnavailableError
from quantum_trader.bus.events import Event, EventFactory
from quantum_trader.bus.local import LocalBus
from quantum_trader.bus.ports import EventPublisher
from quantum_trader.bus.spool.buffer import EventBuffer
from quantum_trader.bus.spool.publisher import SpoolingPublisher
from quantum_trader.domain.clock import ManualClock


class FlakyBroker:
    """A broker in front of a consumer LocalBus (which drops duplicates by id).

    While ``down`` it raises BusUnavailableError; ``die_after`` makes the next batch go out
    only partly (that many events) before the broker fails, as a real one can.
    """

    def __init__(self, consumer: LocalBus) -> None:
        self.consumer = consumer
        self.down = False
        self.die_after: int | None = None
        self.sent = 0
        self.error: Exception = BusUnavailableError("connection refused", broker="fake")

    def publish(self, event: Event) -> None:
        self.publish_batch((event,))

    def publish_batch(self, events: Sequence[Event]) -> None:
        if self.down:
            raise self.error
        if self.die_after is not None:
            taken, self.die_after = events[: self.die_after], None
            self.consumer.publish_batch(taken)
            self.sent += len(taken)
            self.down = True
            raise self.error
        self.consumer.publish_batch(events)
        self.sent += len(events)


@pytest.fixture
def received() -> list[str]:
    """The event ids the consumer handled, in order."""
    return []


@pytest.fixture
def broker(received: list[str]) -> FlakyBroker:
    """A broker delivering to one consumer that records event ids."""
    consumer = LocalBus()
    consumer.subscribe("orders", lambda event: received.append(event.event_id))
    return FlakyBroker(consumer)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[EventBuffer]:
    """A spool without real fsyncs, closed at the end."""
    with EventBuffer(tmp_path / "spool", max_segment_records=8, fsync=lambda fd: None) as buffer:
        yield buffer


def _as_port(publisher: EventPublisher) -> EventPublisher:
    return publisher


def test_spooling_publisher_when_broker_is_up_publishes_directly(
    broker: FlakyBroker, spool: EventBuffer, factory: EventFactory, received: list[str]
) -> None:
    publisher = SpoolingPublisher(broker, spool)
    events = [factory.create("orders") for _ in range(3)]

    _as_port(publisher).publish_batch(events)

    assert received == [event.event_id for event in events]
    assert not publisher.spooling
    assert (publisher.published_direct, publisher.spooled) == (3, 0)


def test_spooling_publisher_when_broker_is_down_then_back_delivers_all_once_in_order(
    broker: FlakyBroker, spool: EventBuffer, factory: EventFactory, received: list[str]
) -> None:
    publisher = SpoolingPublisher(broker, spool, batch_size=5)
    events = [factory.create("orders", {"n": n}) for n in range(40)]
    publisher.publish_batch(events[:10])
    broker.die_after = 2  # the broker dies part-way through the next batch
    publisher.publish_batch(events[10:15])
    for event in events[15:25]:
        publisher.publish(event)
    assert publisher.drain() is False  # still down: nothing lost, still spooling
    broker.down = False
    publisher.publish_batch(events[25:30])  # broker is back, but the spool goes first
    assert publisher.spooling

    assert publisher.drain() is True
    publisher.publish_batch(events[30:])

    assert received == [event.event_id for event in events]
    assert broker.consumer.duplicates_dropped == 2
    assert publisher.spooled == 20
    assert publisher.replayed == 20
    assert publisher.published_direct == 20
    assert spool.empty


def test_spooling_publisher_when_broker_flaps_at_random_loses_and_reorders_nothing(
    broker: FlakyBroker, spool: EventBuffer, received: list[str]
) -> None:
    rng = random.Random(20240601)
    factory = EventFactory(ManualClock(0), "flappy", seed=rng.randrange(2**32))
    publisher = SpoolingPublisher(broker, spool, batch_size=3)
    published: list[str] = []
    for _ in range(300):
        roll = rng.random()
        if roll < 0.1:
            broker.down = not broker.down
        elif roll < 0.15 and not broker.down:
            broker.die_after = rng.randrange(3)
        elif roll < 0.3:
            publisher.drain()
        else:
            batch = [factory.create("orders") for _ in range(rng.randrange(1, 5))]
            publisher.publish_batch(batch)
            published.extend(event.event_id for event in batch)
    broker.down, broker.die_after = False, None

    assert publisher.drain() is True
    assert received == published
    assert publisher.spooled > 0
    assert broker.consumer.duplicates_dropped > 0  # partial batches were sent again
    assert broker.sent == len(published) + broker.consumer.duplicates_dropped


def test_spooling_publisher_when_publish_times_out_spools_the_event(
    broker: FlakyBroker, spool: EventBuffer, factory: EventFactory, received: list[str]
) -> None:
    publisher = SpoolingPublisher(broker, spool)
    broker.error = TimeoutError("publish took longer than 2 s")
    broker.down = True
    event = factory.create("orders")

    publisher.publish(event)
    broker.down = False

    assert publisher.spooling
    assert publisher.drain() is True
    assert received == [event.event_id]


def test_spooling_publisher_when_inner_raises_a_non_transient_error_propagates_it(
    broker: FlakyBroker, spool: EventBuffer, factory: EventFactory
) -> None:
    publisher = SpoolingPublisher(broker, spool)
    broker.error = ValueError("payload refused")
    broker.down = True

    with pytest.raises(ValueError, match="payload refused"):
        publisher.publish(factory.create("orders"))
    assert not publisher.spooling


def test_spooling_publisher_when_restarted_with_a_spool_sends_the_old_events_first(
    tmp_path: Path, broker: FlakyBroker, factory: EventFactory, received: list[str]
) -> None:
    folder = tmp_path / "spool"
    broker.down = True
    old = [factory.create("orders") for _ in range(5)]
    with EventBuffer(folder, fsync=lambda fd: None) as first_run:
        SpoolingPublisher(broker, first_run).publish_batch(old)
    broker.down = False

    with EventBuffer(folder, fsync=lambda fd: None) as second_run:
        publisher = SpoolingPublisher(broker, second_run)
        new = factory.create("orders")
        publisher.publish(new)
        assert received == []
        assert publisher.drain() is True

    assert received == [event.event_id for event in [*old, new]]
