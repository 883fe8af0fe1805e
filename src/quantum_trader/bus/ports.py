"""Bus ports: how core code publishes events and subscribes to them.

Core code depends on these protocols only; ``LocalBus`` (one process, synchronous), the Redis
Streams bus (across processes) and ``SpoolingPublisher`` (disk spool behind a publisher)
implement them. The ports are synchronous like the store ports: the backtest publishes on its
hot path, and a network backend can implement them with a synchronous client.

Delivery is at-least-once wherever a broker or the spool is involved, so a consumer drops
duplicates by ``Event.event_id`` (``Deduplicator``, re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from quantum_trader.bus.dedupe import Deduplicator
from quantum_trader.bus.events import Event

__all__ = ["Deduplicator", "EventBus", "EventHandler", "EventPublisher", "EventSubscriber"]

EventHandler = Callable[[Event], None]
"""A subscriber's callback: called once per event of its topic, in publish order."""


class EventPublisher(Protocol):
    """Anything events can be published to."""

    def publish(self, event: Event) -> None:
        """Publish one event; BusUnavailableError (a TransientError) if the broker is down."""
        ...

    def publish_batch(self, events: Sequence[Event]) -> None:
        """Publish events in order; on BusUnavailableError some of them may have gone out."""
        ...


class EventSubscriber(Protocol):
    """Anything handlers can subscribe to, by topic."""

    def subscribe(self, topic: str, handler: EventHandler) -> None:
        """Call ``handler`` with every later event on ``topic``, after earlier subscribers."""
        ...

    def unsubscribe(self, topic: str, handler: EventHandler) -> None:
        """Stop calling ``handler`` for ``topic``; nothing happens if it was not subscribed."""
        ...


class EventBus(EventPublisher, EventSubscriber, Protocol):
    """A publisher that also dispatches to subscribers."""
