"""In-memory backends of the store ports: thread-safe fakes for tests and single-run tools.

They pass the same contract suite as the SQLite backends. Only the composition root
(``engine``) and tests import this package; core code sees the ports.
"""

from quantum_trader.stores.memory.policy import InMemoryPolicyStore
from quantum_trader.stores.memory.records import InMemoryEquityMarksStore, InMemoryEssStateStore
from quantum_trader.stores.memory.trades import InMemoryTradeStateStore

__all__ = [
    "InMemoryEquityMarksStore",
    "InMemoryEssStateStore",
    "InMemoryPolicyStore",
    "InMemoryTradeStateStore",
]
