"""Composition of the safety core's state stores: the one place that names their backends.

``open_state_stores(location)`` gives the policy, ESS, equity-marks and trade stores on one SQLite
file (``state.db``), on a Redis server when ``location`` is a ``redis://`` (``rediss://``,
``unix://``) URL — the deployment past one process — or in memory when it is None (tests,
one-off backtests). Everything else takes the ports from the returned ``StateStores``. The
Redis key prefix is ``redis_prefix``, else ``$QT_REDIS_PREFIX``, else ``qt``.
"""

from __future__ import annotations

import os
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
from quantum_trader.stores.redis import (
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT_SECS,
    RedisEquityMarksStore,
    RedisEssStateStore,
    RedisPolicyStore,
    RedisTradeStateStore,
    connect,
)
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


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis_url(location: str | Path | None) -> bool:
    """True when ``location`` names a Redis server rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(REDIS_SCHEMES)


REDIS_PREFIX_ENV = "QT_REDIS_PREFIX"


def state_exists(location: Path | str) -> bool:
    """True when the state at ``location`` may hold something (a Redis server always may)."""
    return is_redis_url(location) or Path(location).exists()


def open_state_stores(
    location: Path | str | None,
    *,
    redis_prefix: str | None = None,
    redis_timeout_secs: float = DEFAULT_TIMEOUT_SECS,
) -> StateStores:
    """Open the stores at ``location``: a SQLite file (created if missing), a Redis URL, or None.

    Raises ConfigError when the file cannot be opened or has a newer schema, or the URL or
    prefix is invalid; IntegrityError when the file is not a SQLite database. A Redis server is
    not contacted until the first call (which raises TransientError if it is unreachable).
    """
    if is_redis_url(location):
        assert isinstance(location, str)
        if redis_prefix is None:  # the command line's way to pick a deployment's keys
            redis_prefix = os.environ.get(REDIS_PREFIX_ENV) or DEFAULT_PREFIX
        client = connect(location, timeout_secs=redis_timeout_secs)
        return StateStores(
            RedisPolicyStore(client, prefix=redis_prefix),
            RedisEssStateStore(client, prefix=redis_prefix),
            RedisEquityMarksStore(client, prefix=redis_prefix),
            (client.close,),
            trades=RedisTradeStateStore(client, prefix=redis_prefix),
        )
    path = None if location is None else Path(location)
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
