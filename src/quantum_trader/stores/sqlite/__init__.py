"""SQLite backends of the store ports: one database file (``state.db``) holds every table.

Only the composition root (``engine``) imports this package; core code sees the ports.
"""

from quantum_trader.stores.sqlite.connection import MIGRATIONS, connect, migrate, schema_version
from quantum_trader.stores.sqlite.equity_marks import SqliteEquityMarksStore
from quantum_trader.stores.sqlite.ess import SqliteEssStateStore
from quantum_trader.stores.sqlite.policy import SqlitePolicyStore
from quantum_trader.stores.sqlite.trades import SqliteTradeStateStore

__all__ = [
    "MIGRATIONS",
    "SqliteEquityMarksStore",
    "SqliteEssStateStore",
    "SqlitePolicyStore",
    "SqliteTradeStateStore",
    "connect",
    "migrate",
    "schema_version",
]
