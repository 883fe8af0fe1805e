"""RedisEssStateStore: the Emergency Stop System's latch as JSON in ``{prefix}:ess:state``."""

from __future__ import annotations

from quantum_trader.stores.ports import EssState
from quantum_trader.stores.redis.records import RecordStore


class RedisEssStateStore(RecordStore[EssState]):
    """The EssStateStore on Redis: every worker and the supervisor share one latch."""

    _name = "ess_state"
    _kind = EssState

    def load(self) -> EssState:
        """Return the stored latch (inactive if none was stored)."""
        state = self._record.load()
        return EssState() if state is None else state

    def save(self, state: EssState) -> None:
        """Store ``state`` atomically; IntegrityError (nothing written) if a field is malformed."""
        self._record.save(state)
