"""LocalBus: the in-process, synchronous event dispatcher (backtests and one-process modes).

Order is deterministic: events are dispatched in publish order, and each event goes to its
topic's handlers in subscription order. An event published by a handler is queued and
dispatched after everything published before it (first in, first out, never nested), so every
handler sees events in the same order. Subscribing or unsubscribing during dispatch takes
effect from the next event.

Duplicates (an ``event_id`` seen before, within the Deduplicator's memory) are dropped and
counted in ``duplicates_dropped``.

Handler failures: a handler that raises an ``Exception`` never stops the other handlers or the
later events; the failure is counted in ``handler_errors`` and then, per ``error_policy``:

- ``ErrorPolicy.RAISE`` (default): once the whole ``publish``/``publish_batch`` call has
  dispatched everything, it raises HandlerFailedError listing every failure (the first error
  is its ``__cause__``). Bugs surface where they happen: right for backtests and tests.
- ``ErrorPolicy.REPORT``: ``on_error(failure)`` is called for each failure and publishing
  returns normally: right for live processes, where one broken consumer must not stop others.

``BaseException`` that is not an ``Exception`` (KeyboardInterrupt, CancelledError) is never
caught. Not thread-safe: publish from one thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from enum import StrEnum

from quantum_trader.bus.dedupe import Deduplicator
from quantum_trader.bus.errors import HandlerFailedError, HandlerFailure
from quantum_trader.bus.events import Event
from quantum_trader.bus.ports import EventHandler


class ErrorPolicy(StrEnum):
    """What LocalBus does after a handler raised (the other handlers always run)."""

    RAISE = "raise"
    REPORT = "report"


class LocalBus:
    """Dispatch events to handlers in this process, synchronously and in order.

    Attributes:
        published: Events given to ``publish``/``publish_batch`` (duplicates included).
        delivered: Handler calls that returned normally.
        duplicates_dropped: Events dropped because their id was seen before.
        unrouted: Events no handler was subscribed to.
        handler_errors: Handler calls that raised.
    """

    def __init__(
        self,
        *,
        error_policy: ErrorPolicy = ErrorPolicy.RAISE,
        on_error: Callable[[HandlerFailure], None] | None = None,
        deduplicator: Deduplicator | None = None,
        dedupe: bool = True,
    ) -> None:
        """Make a bus.

        Args:
            error_policy: Raise after the dispatch, or report each failure and go on.
            on_error: Called with each failure as it happens, under either policy; it must not
                raise (what it raises propagates and stops the dispatch).
            deduplicator: The id memory to use; a fresh one of 100,000 ids when None.
            dedupe: False to dispatch duplicates too (saves the id lookup).
        """
        self._handlers: dict[str, tuple[EventHandler, ...]] = {}
        self._policy = ErrorPolicy(error_policy)
        self._on_error = on_error
        self._dedupe = (deduplicator or Deduplicator()) if dedupe else None
        self._queue: deque[Event] = deque()
        self._dispatching = False
        self._failures: list[HandlerFailure] = []
        self.published = 0
        self.delivered = 0
        self.duplicates_dropped = 0
        self.unrouted = 0
        self.handler_errors = 0

    def subscribe(self, topic: str, handler: EventHandler) -> None:
        """Call ``handler`` with every later event on ``topic``, after earlier subscribers."""
        self._handlers[topic] = (*self._handlers.get(topic, ()), handler)

    def unsubscribe(self, topic: str, handler: EventHandler) -> None:
        """Stop calling ``handler`` for ``topic`` (its first subscription is removed)."""
        handlers = list(self._handlers.get(topic, ()))
        if handler in handlers:
            handlers.remove(handler)
            if handlers:
                self._handlers[topic] = tuple(handlers)
            else:
                del self._handlers[topic]

    def handlers(self, topic: str) -> tuple[EventHandler, ...]:
        """Return the handlers of ``topic`` in call order."""
        return self._handlers.get(topic, ())

    def publish(self, event: Event) -> None:
        """Dispatch one event; see the module docstring for order and failures."""
        self.publish_batch((event,))

    def publish_batch(self, events: Sequence[Event]) -> None:
        """Dispatch events in order; see the module docstring for order and failures."""
        self.published += len(events)
        if self._dispatching:
            self._queue.extend(events)  # a handler published: first in, first out
            return
        self._dispatching = True
        try:
            self._dispatch(events)
            queue = self._queue
            while queue:
                pending = tuple(queue)
                queue.clear()
                self._dispatch(pending)
        finally:
            self._dispatching = False
            self._queue.clear()
        if self._failures:
            failures, self._failures = tuple(self._failures), []
            if self._policy is ErrorPolicy.RAISE:
                raise HandlerFailedError(failures) from failures[0].error

    def _dispatch(self, events: Sequence[Event]) -> None:
        routes = self._handlers
        dedupe = self._dedupe
        delivered = 0
        try:
            for event in events:
                if dedupe is not None and dedupe.is_duplicate(event.event_id):
                    self.duplicates_dropped += 1
                    continue
                handlers = routes.get(event.topic)
                if handlers is None:
                    self.unrouted += 1
                    continue
                for handler in handlers:
                    try:
                        handler(event)
                    except Exception as exc:  # isolate: the other handlers still run
                        self._fail(event, handler, exc)
                    else:
                        delivered += 1
        finally:
            self.delivered += delivered

    def _fail(self, event: Event, handler: EventHandler, exc: Exception) -> None:
        self.handler_errors += 1
        failure = HandlerFailure(event, handler, exc)
        self._failures.append(failure)
        if self._on_error is not None:
            self._on_error(failure)
