"""The EventBuffer (disk spool): segments of checksummed records, ordered replay.

``records`` defines the bytes on disk, ``buffer`` the EventBuffer (append, replay, corruption
handling, restart), ``publisher`` the SpoolingPublisher that puts the spool behind a broker.
"""

from quantum_trader.bus.spool.buffer import CorruptRecord, EventBuffer
from quantum_trader.bus.spool.publisher import SpoolingPublisher
from quantum_trader.bus.spool.records import CorruptionReason

__all__ = ["CorruptRecord", "CorruptionReason", "EventBuffer", "SpoolingPublisher"]
