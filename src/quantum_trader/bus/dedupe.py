"""Drop duplicate events by id: delivery is at-least-once, consumers make it once."""

from __future__ import annotations

from collections import OrderedDict


class Deduplicator:
    """Remember the last ``capacity`` event ids seen (least recently seen forgotten first).

    A duplicate arriving after its original was forgotten passes again; size ``capacity`` above
    the most events a replay can repeat (one spool batch per failed delivery, or a broker's
    redelivery window).
    """

    __slots__ = ("_capacity", "_seen", "duplicates")

    def __init__(self, capacity: int = 100_000) -> None:
        """Remember up to ``capacity`` ids (at least 1)."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0

    def __len__(self) -> int:
        """Return how many ids are remembered."""
        return len(self._seen)

    def __contains__(self, event_id: object) -> bool:
        """Return whether ``event_id`` is remembered (without refreshing it)."""
        return event_id in self._seen

    def is_duplicate(self, event_id: str) -> bool:
        """Return True if ``event_id`` was seen before (and count it); else remember it."""
        seen = self._seen
        if event_id in seen:
            seen.move_to_end(event_id)
            self.duplicates += 1
            return True
        seen[event_id] = None
        if len(seen) > self._capacity:
            seen.popitem(last=False)
        return False
