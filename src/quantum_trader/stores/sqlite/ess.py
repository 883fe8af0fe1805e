"""SqliteEssStateStore: the Emergency Stop System's latch in the single-row table ``ess_state``."""

from __future__ import annotations

from pathlib import Path

from quantum_trader.stores.ports import EssState
from quantum_trader.stores.sqlite.connection import DEFAULT_BUSY_TIMEOUT_MS
from quantum_trader.stores.sqlite.rows import SingleRowTable

TABLE = "ess_state"


class SqliteEssStateStore:
    """The EssStateStore on a SQLite file; shared by every process that opens the file."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        """Open (creating and migrating if needed) the state database at ``path``."""
        self.path = Path(path)
        self._table = SingleRowTable(path, TABLE, EssState, busy_timeout_ms=busy_timeout_ms)

    def load(self) -> EssState:
        """Return the stored latch (inactive if none was stored)."""
        state = self._table.load()
        return EssState() if state is None else state

    def save(self, state: EssState) -> None:
        """Store ``state`` atomically; IntegrityError (nothing written) if a field is malformed."""
        self._table.save(state)

    def close(self) -> None:
        """Close the connection."""
        self._table.close()
