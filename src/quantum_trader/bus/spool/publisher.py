"""SpoolingPublisher: publish through a broker, and through the disk spool while it is down.

While the spool is empty, events go straight to the inner publisher. When it raises a
transient error (TransientError, BusUnavailableError, TimeoutError: the inner publisher turns
"too slow" into one of these), the batch goes to the spool, and so does every later event
until ``drain`` has delivered the whole spool: events never overtake each other. A spool left
over from an earlier run counts too, so order holds across restarts.

``drain`` replays the spool through the inner publisher; the engine calls it from a background
task with backoff, tests call it directly. Delivery is at-least-once: a batch that failed
part-way is spooled or replayed again whole, and consumers drop duplicates by event id.

A non-transient error from the inner publisher propagates: from ``publish`` (nothing is
spooled: the event itself is at fault), and from ``drain`` (the spool keeps the batch).
"""

from __future__ import annotations

from collections.abc import Sequence

from quantum_trader.bus.events import Event
from quantum_trader.bus.ports import EventPublisher
from quantum_trader.bus.spool.buffer import EventBuffer
from quantum_trader.domain.errors import TransientError

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (TransientError, TimeoutError)
"""Errors that send events to the spool instead of up to the caller."""


class SpoolingPublisher:
    """An EventPublisher that keeps events in an EventBuffer while the inner one fails.

    Attributes:
        published_direct: Events the inner publisher took at the first try.
        spooled: Events written to the spool.
        publish_failures: Inner publish calls that raised a transient error.
        replayed: Events delivered from the spool by ``drain``.
    """

    def __init__(
        self,
        inner: EventPublisher,
        spool: EventBuffer,
        *,
        batch_size: int = 1000,
        transient_errors: tuple[type[Exception], ...] = TRANSIENT_ERRORS,
    ) -> None:
        """Publish to ``inner``, falling back to ``spool``.

        Args:
            inner: The broker publisher (Redis Streams, or a LocalBus in one process).
            spool: The disk spool; it may already hold events from an earlier run.
            batch_size: The most events per inner publish call during ``drain``.
            transient_errors: What counts as "broker down": these send events to the spool.
        """
        self._inner = inner
        self._spool = spool
        self._batch_size = batch_size
        self._transient = transient_errors
        self.published_direct = 0
        self.spooled = 0
        self.publish_failures = 0
        self.replayed = 0

    @property
    def spooling(self) -> bool:
        """True while events go to the spool (it holds events not yet delivered)."""
        return not self._spool.empty

    def publish(self, event: Event) -> None:
        """Publish one event, or spool it; see ``publish_batch``."""
        self.publish_batch((event,))

    def publish_batch(self, events: Sequence[Event]) -> None:
        """Publish events in order through the inner publisher, or spool them durably.

        Raises:
            OSError: The broker is down and the spool cannot be written either.
        """
        if not events:
            return
        if self._spool.empty:
            try:
                self._inner.publish_batch(events)
            except self._transient:
                self.publish_failures += 1
            else:
                self.published_direct += len(events)
                return
        self._spool.append_batch(events)
        self.spooled += len(events)

    def drain(self) -> bool:
        """Deliver the spool through the inner publisher, in order; True when it is empty.

        Returns False, keeping the undelivered events, when the inner publisher fails with a
        transient error; call again later.
        """
        try:
            self.replayed += self._spool.replay(
                self._inner.publish_batch, batch_size=self._batch_size
            )
        except self._transient:
            return False
        return self._spool.empty
