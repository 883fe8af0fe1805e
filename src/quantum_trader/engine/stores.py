"""Composition of the safety core's state stores: the one place that names their backends.

``open_state_stores(path)`` gives the policy, ESS, equity-marks and trade stores on one SQLite
file (``state.db``), or in memory when ``path`` is None (tests, one-off backtests). Everything else
takes the ports from the returned ``StateStores``. ``WallClock`` is the real clock for the
front ends (CLI, API) that sit on this composition edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from quantum_trader.stores.memory import (
    InMemoryEquityMarksStore,
    InMemoryEssStateStore,
    InMemoryPolicyStore,
    InMemoryTradeStateStore,
)
from quantum_trader.stores.ports import EquityMarksStore, EssStateStore, PolicyStore
from quantum_trader.stores.sqlite import (
    SqliteEquityMarksStore,
    SqliteEssStateStore,
    SqlitePolicyStore,
    SqliteTradeStateStore,
)
from quantum_trader.stores.trades import TradeStateStore

DEFAULT_STATE_DB = Path("runs/state.db")


@dataclass(frozen=True, slots=True)
class StateStores:
    """The safety core's stores, as ports; ``close`` releases whatever the backend holds.

    Attributes:
        policy: The versioned policy document.
        ess: The emergency stop latch.
        equity_marks: The equity peak and start-of-day equity.
        closers: What ``close`` calls, one per opened backend object (empty in memory).
        trades: The trade records (open trades reload from here on restart); keyword-only.
    """

    policy: PolicyStore
    ess: EssStateStore
    equity_marks: EquityMarksStore
    closers: tuple[Callable[[], None], ...] = field(default=(), repr=False, compare=False)
    trades: TradeStateStore = field(kw_only=True)

    def close(self) -> None:
        """Release the backends' connections (a no-op in memory)."""
        for close in self.closers:
            close()

    def __enter__(self) -> StateStores:
        """Use the stores in a ``with`` block that closes them."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the stores."""
        self.close()


def open_state_stores(path: Path | None) -> StateStores:
    """Open the stores on the SQLite file ``path`` (created if missing), or in memory for None.

    Raises ConfigError when the file cannot be opened or has a newer schema, IntegrityError when
    it is not a SQLite database.
    """
    if path is None:
        return StateStores(
            InMemoryPolicyStore(),
            InMemoryEssStateStore(),
            InMemoryEquityMarksStore(),
            trades=InMemoryTradeStateStore(),
        )
    policy = SqlitePolicyStore(path)
    opened: list[Callable[[], None]] = [policy.close]
    try:
        ess = SqliteEssStateStore(path)
        opened.append(ess.close)
        marks = SqliteEquityMarksStore(path)
        opened.append(marks.close)
        trades = SqliteTradeStateStore(path)
        opened.append(trades.close_connection)
    except BaseException:
        for close in opened:
            close()
        raise
    return StateStores(policy, ess, marks, tuple(opened), trades=trades)
