"""Errors of the event bus, placed in the one exception tree of ``domain.errors``::

    QuantumTraderError
    ├─ TransientError
    │   └─ BusUnavailableError   the broker is down or too slow: spool and retry later
    ├─ IntegrityError            a malformed event or a corrupt spool record
    └─ HandlerFailedError        a subscriber raised while handling an event (a bug)

Callers branch on the class; the fields say which broker, event or handler was involved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quantum_trader.domain.errors import QuantumTraderError, TransientError

if TYPE_CHECKING:
    from quantum_trader.bus.events import Event


class BusUnavailableError(TransientError):
    """The broker cannot take events now (down, or slower than the publish timeout)."""

    def __init__(self, message: str, *, broker: str = "") -> None:
        """Describe the failure; ``broker`` names the broker (``redis``, ``local``...)."""
        super().__init__(message)
        self.broker = broker


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """One handler call that raised: the event, the handler and what it raised."""

    event: Event
    handler: Callable[[Event], None]
    error: Exception


class HandlerFailedError(QuantumTraderError):
    """One or more handlers raised; every other handler still received its events.

    ``failures`` lists each failed call in dispatch order; the first error is the ``__cause__``.
    """

    def __init__(self, failures: tuple[HandlerFailure, ...]) -> None:
        """Wrap the failed calls of one dispatch."""
        first = failures[0]
        super().__init__(
            f"{len(failures)} handler call(s) failed; first on topic {first.event.topic!r} "
            f"event {first.event.event_id}: {first.error!r}"
        )
        self.failures = failures
