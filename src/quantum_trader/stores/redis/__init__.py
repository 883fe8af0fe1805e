"""Redis backends of the store ports, for deployments past one process (workers, supervisor, API).

Only the composition root (``engine``) and tests import this package; core code sees the ports.
The stores use redis-py's **synchronous** client: the ports are synchronous today (the backtest
calls them on its hot path). DESIGN.md plans redis-py's asyncio client for later; when the ports
become async, these stores move to ``redis.asyncio`` with the same keys and scripts.

Key layout (``{qt}`` is the hash tag of the prefix, ``qt`` by default; Redis Cluster hashes only
the part in braces, so every key of one deployment lands in one slot and the Lua scripts that
touch two keys stay legal on a cluster):

================================  ======  ===================================================
key                               type    content
================================  ======  ===================================================
``{qt}:policy:versions``          hash    field = version number (``"1"``, ``"2"``, ...),
                                          value = JSON of ``Policy.to_dict`` (keys sorted);
                                          never rewritten
``{qt}:policy:current``           string  the newest version number; moves only by
                                          compare-and-set
``{qt}:ess:state``                string  JSON object, one member per ``EssState`` field
``{qt}:equity:marks``             string  JSON object, one member per ``EquityMarks`` field
``{qt}:trades:records``           hash    field = trade id, value = JSON of
                                          ``TradeRecord.to_dict``
``{qt}:trades:index``             hash    field = trade id, value = its entry (and exit)
                                          time, 19 digits each
``{qt}:trades:by_entry``          zset    every trade as ``TS:trade_id`` (entry), score 0
``{qt}:trades:open``              zset    open trades as ``TS:trade_id`` (entry), score 0
``{qt}:trades:closed_by_exit``    zset    closed trades as ``TS:trade_id`` (exit), score 0
================================  ======  ===================================================

The trade sets are read by member (ZRANGEBYLEX; ``TS`` is 19 zero-padded digits), never by
score, so order and time windows stay exact past 2**53 ns (see ``trades``).

Every policy operation is one Lua script over the two policy keys, so it is atomic across
processes: exactly one of two writers holding the same version wins; every trade write is one
Lua script over the five trade keys. Keys have no expiry; run
the server with persistence (AOF or RDB) in production, or the state is lost on restart.

Errors (see ``connection``): unreachable, slow or loading server → TransientError (each call
gives up after ``timeout_secs``, 1 s by default; nothing is retried automatically, so a
TransientError from a write means its outcome is unknown: read again); a value that cannot be
read back, or a key of the wrong Redis type → IntegrityError naming the key; refused
credentials → ConfigError. No redis-py exception leaves these stores.

Wiring: build one client with ``connect(url, timeout_secs=...)`` and pass it to all four stores
(one connection pool; close the client once), or open each store with ``from_url`` (the trade
store closes its own client with ``close_connection``: its ``close`` closes a trade).
"""

from quantum_trader.stores.redis.connection import (
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT_SECS,
    RedisKeys,
    connect,
)
from quantum_trader.stores.redis.equity_marks import RedisEquityMarksStore
from quantum_trader.stores.redis.ess import LatchWatcher, RedisEssStateStore
from quantum_trader.stores.redis.policy import RedisPolicyStore
from quantum_trader.stores.redis.trades import RedisTradeKeys, RedisTradeStateStore

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT_SECS",
    "LatchWatcher",
    "RedisEquityMarksStore",
    "RedisEssStateStore",
    "RedisKeys",
    "RedisPolicyStore",
    "RedisTradeKeys",
    "RedisTradeStateStore",
    "connect",
]
