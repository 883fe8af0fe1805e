"""Redis backends of the store ports, for deployments past one process (workers, supervisor, API).

Only the composition root (``engine``) and tests import this package; core code sees the ports.
The stores use redis-py's **synchronous** client: the ports are synchronous today (the backtest
calls them on its hot path). DESIGN.md plans redis-py's asyncio client for later; when the ports
become async, these stores move to ``redis.asyncio`` with the same keys and scripts.

Key layout (``{qt}`` is the hash tag of the prefix, ``qt`` by default; Redis Cluster hashes only
the part in braces, so every key of one deployment lands in one slot and the Lua scripts that
touch two keys stay legal on a cluster):

=========================  ======  ==========================================================
key                        type    content
=========================  ======  ==========================================================
``{qt}:policy:versions``   hash    field = version number (``"1"``, ``"2"``, ...), value = JSON
                                   of ``Policy.to_dict`` (keys sorted); never rewritten
``{qt}:policy:current``    string  the newest version number; moves only by compare-and-set
``{qt}:ess:state``         string  JSON object, one member per ``EssState`` field
``{qt}:equity:marks``      string  JSON object, one member per ``EquityMarks`` field
=========================  ======  ==========================================================

Every policy operation is one Lua script over the two policy keys, so it is atomic across
processes: exactly one of two writers holding the same version wins. Keys have no expiry; run
the server with persistence (AOF or RDB) in production, or the state is lost on restart.

Errors (see ``connection``): unreachable, slow or loading server → TransientError (each call
gives up after ``timeout_secs``, 1 s by default; nothing is retried automatically, so a
TransientError from a write means its outcome is unknown: read again); a value that cannot be
read back, or a key of the wrong Redis type → IntegrityError naming the key; refused
credentials → ConfigError. No redis-py exception leaves these stores.

Wiring: build one client with ``connect(url, timeout_secs=...)`` and pass it to all three stores
(one connection pool; close the client once), or open each store with ``from_url``.
"""

from quantum_trader.stores.redis.connection import (
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT_SECS,
    RedisKeys,
    connect,
)
from quantum_trader.stores.redis.equity_marks import RedisEquityMarksStore
from quantum_trader.stores.redis.ess import RedisEssStateStore
from quantum_trader.stores.redis.policy import RedisPolicyStore

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT_SECS",
    "RedisEquityMarksStore",
    "RedisEssStateStore",
    "RedisKeys",
    "RedisPolicyStore",
    "connect",
]
