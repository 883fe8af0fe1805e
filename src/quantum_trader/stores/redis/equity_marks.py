"""RedisEquityMarksStore: the equity peak and start-of-day equity in ``{prefix}:equity:marks``."""

from __future__ import annotations

from quantum_trader.stores.ports import EquityMarks
from quantum_trader.stores.redis.records import RecordStore


class RedisEquityMarksStore(RecordStore[EquityMarks]):
    """The EquityMarksStore on Redis, shared by every process of the deployment."""

    _name = "equity_marks"
    _kind = EquityMarks

    def load(self) -> EquityMarks:
        """Return the stored marks (zeros if none were stored)."""
        marks = self._record.load()
        return EquityMarks() if marks is None else marks

    def save(self, marks: EquityMarks) -> None:
        """Store ``marks`` atomically; IntegrityError (nothing written) if a value is malformed."""
        self._record.save(marks)
