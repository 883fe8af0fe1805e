"""LocalBus: order, duplicates, failing handlers, re-entrant publishing; the Deduplicator."""

from __future__ import annotations

import pytest

from quantum_trader.bus.dedupe import Deduplicator
from quantum_trader.bus.errors import HandlerFailedError, HandlerFailure
from quantum_trader.bus.events import Event, EventFactory
from quantum_trader.bus.local import ErrorPolicy, LocalBus
from quantum_trader.bus.ports import EventBus


def _as_port(bus: EventBus) -> EventBus:
    return bus


def test_local_bus_when_publishing_delivers_in_publish_then_subscription_order(
    factory: EventFactory,
) -> None:
    bus = _as_port(LocalBus())
    calls: list[tuple[str, str]] = []
    bus.subscribe("orders", lambda event: calls.append(("first", event.event_id)))
    bus.subscribe("orders", lambda event: calls.append(("second", event.event_id)))
    events = [factory.create("orders", {"n": n}) for n in range(3)]

    bus.publish(events[0])
    bus.publish_batch(events[1:])

    assert calls == [(name, e.event_id) for e in events for name in ("first", "second")]


def test_local_bus_when_topics_differ_routes_each_event_to_its_topic_only(
    factory: EventFactory,
) -> None:
    bus = LocalBus()
    fills: list[Event] = []
    risk: list[Event] = []
    bus.subscribe("fills", fills.append)
    bus.subscribe("risk", risk.append)
    fill, alert, other = factory.create("fills"), factory.create("risk"), factory.create("ess")

    bus.publish_batch([fill, alert, other])

    assert (fills, risk) == ([fill], [alert])
    assert (bus.published, bus.delivered, bus.unrouted) == (3, 2, 1)


def test_local_bus_when_event_id_repeats_drops_the_duplicate(factory: EventFactory) -> None:
    bus = LocalBus()
    seen: list[Event] = []
    bus.subscribe("orders", seen.append)
    first, second = factory.create("orders"), factory.create("orders")

    bus.publish_batch([first, second, first])
    bus.publish(second)

    assert seen == [first, second]
    assert bus.duplicates_dropped == 2


def test_local_bus_when_dedupe_is_off_delivers_duplicates(factory: EventFactory) -> None:
    bus = LocalBus(dedupe=False)
    seen: list[Event] = []
    bus.subscribe("orders", seen.append)
    event = factory.create("orders")

    bus.publish_batch([event, event])

    assert seen == [event, event]


def test_local_bus_when_a_handler_raises_runs_the_others_then_raises_all_failures(
    factory: EventFactory,
) -> None:
    bus = LocalBus()
    seen: list[str] = []
    boom = ValueError("boom")

    def failing(event: Event) -> None:
        raise boom

    bus.subscribe("orders", failing)
    bus.subscribe("orders", lambda event: seen.append(event.event_id))
    events = [factory.create("orders") for _ in range(3)]

    with pytest.raises(HandlerFailedError) as caught:
        bus.publish_batch(events)

    assert seen == [event.event_id for event in events]
    assert [failure.event for failure in caught.value.failures] == events
    assert caught.value.__cause__ is boom
    assert (bus.handler_errors, bus.delivered) == (3, 3)


def test_local_bus_when_policy_is_report_reports_each_failure_and_returns(
    factory: EventFactory,
) -> None:
    reported: list[HandlerFailure] = []
    bus = LocalBus(error_policy=ErrorPolicy.REPORT, on_error=reported.append)
    seen: list[Event] = []

    def failing(event: Event) -> None:
        raise RuntimeError(event.event_id)

    bus.subscribe("fills", failing)
    bus.subscribe("fills", seen.append)
    events = [factory.create("fills") for _ in range(2)]

    bus.publish_batch(events)
    bus.publish(factory.create("fills"))

    assert len(seen) == 3
    assert [failure.handler for failure in reported] == [failing] * 3
    assert str(reported[0].error) == events[0].event_id
    assert bus.handler_errors == 3


def test_local_bus_when_handler_publishes_dispatches_it_after_earlier_events(
    factory: EventFactory,
) -> None:
    bus = LocalBus()
    order: list[str] = []
    reaction = factory.create("risk", {"reaction": True})

    def react(event: Event) -> None:
        order.append(f"react:{event.payload['n']}")
        if event.payload["n"] == 0:
            bus.publish(reaction)

    bus.subscribe("orders", react)
    bus.subscribe("orders", lambda event: order.append(f"audit:{event.payload['n']}"))
    bus.subscribe("risk", lambda event: order.append("risk"))

    bus.publish_batch([factory.create("orders", {"n": 0}), factory.create("orders", {"n": 1})])

    assert order == ["react:0", "audit:0", "react:1", "audit:1", "risk"]


def test_local_bus_when_unsubscribed_stops_calling_the_handler(factory: EventFactory) -> None:
    bus = LocalBus()
    seen: list[Event] = []
    bus.subscribe("orders", seen.append)
    first = factory.create("orders")
    bus.publish(first)

    bus.unsubscribe("orders", seen.append)
    bus.unsubscribe("orders", seen.append)
    bus.publish(factory.create("orders"))

    assert seen == [first]
    assert bus.handlers("orders") == ()


def test_local_bus_when_handler_raises_base_exception_lets_it_through(
    factory: EventFactory,
) -> None:
    bus = LocalBus(error_policy=ErrorPolicy.REPORT)

    def interrupt(event: Event) -> None:
        raise KeyboardInterrupt

    bus.subscribe("ess", interrupt)

    with pytest.raises(KeyboardInterrupt):
        bus.publish(factory.create("ess"))
    assert bus.handler_errors == 0


def test_deduplicator_when_full_forgets_the_least_recently_seen() -> None:
    dedupe = Deduplicator(capacity=2)

    assert not dedupe.is_duplicate("a")
    assert not dedupe.is_duplicate("b")
    assert dedupe.is_duplicate("a")  # refreshes a: b is now the oldest
    assert not dedupe.is_duplicate("c")

    assert "a" in dedupe
    assert "b" not in dedupe
    assert len(dedupe) == 2
    assert dedupe.duplicates == 1


def test_deduplicator_when_capacity_is_below_one_raises() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Deduplicator(capacity=0)
