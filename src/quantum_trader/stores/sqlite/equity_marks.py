"""SqliteEquityMarksStore: equity peak and start-of-day equity in the table ``equity_marks``."""

from __future__ import annotations

from pathlib import Path

from quantum_trader.stores.ports import EquityMarks
from quantum_trader.stores.sqlite.connection import DEFAULT_BUSY_TIMEOUT_MS
from quantum_trader.stores.sqlite.rows import SingleRowTable

TABLE = "equity_marks"


class SqliteEquityMarksStore:
    """The EquityMarksStore on a SQLite file; shared by every process that opens the file."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        """Open (creating and migrating if needed) the state database at ``path``."""
        self.path = Path(path)
        self._table = SingleRowTable(path, TABLE, EquityMarks, busy_timeout_ms=busy_timeout_ms)

    def load(self) -> EquityMarks:
        """Return the stored marks (zeros if none were stored)."""
        marks = self._table.load()
        return EquityMarks() if marks is None else marks

    def save(self, marks: EquityMarks) -> None:
        """Store ``marks`` atomically; IntegrityError (nothing written) if a value is malformed."""
        self._table.save(marks)

    def close(self) -> None:
        """Close the connection."""
        self._table.close()
