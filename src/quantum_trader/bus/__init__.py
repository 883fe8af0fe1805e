"""The event bus: ports, the event type, and the in-process and spooled implementations.

``ports`` holds the protocols core code depends on; ``local.LocalBus`` dispatches in one
process; ``spool`` keeps events on disk while a broker is down. Backends are imported from
their modules, not from here.
"""

from quantum_trader.bus.dedupe import Deduplicator
from quantum_trader.bus.errors import BusUnavailableError, HandlerFailedError, HandlerFailure
from quantum_trader.bus.events import Event, EventFactory, EventIdGenerator, JsonValue
from quantum_trader.bus.ports import EventBus, EventHandler, EventPublisher, EventSubscriber

__all__ = [
    "BusUnavailableError",
    "Deduplicator",
    "Event",
    "EventBus",
    "EventFactory",
    "EventHandler",
    "EventIdGenerator",
    "EventPublisher",
    "EventSubscriber",
    "HandlerFailedError",
    "HandlerFailure",
    "JsonValue",
]
