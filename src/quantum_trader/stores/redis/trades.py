"""RedisTradeStateStore: trade records in five keys of one hash tag.

Key layout (``{qt}`` is the hash tag of the prefix; ``TS`` is a timestamp in nanoseconds written
as exactly 19 decimal digits, zero-padded, so that byte order is number order up to INT64_MAX):

================================  ====  ======================================================
key                               type  content
================================  ====  ======================================================
``{qt}:trades:records``           hash  field = trade id, value = JSON of
                                        ``TradeRecord.to_dict`` (orjson: every float and int
                                        comes back bit for bit)
``{qt}:trades:index``             hash  field = trade id, value = entry ``TS`` (open) or entry
                                        ``TS`` then exit ``TS`` (closed, liquidated): what
                                        names the trade's members below, so no script parses
                                        JSON
``{qt}:trades:by_entry``          zset  every trade, member ``TS:trade_id`` (entry), score 0
``{qt}:trades:open``              zset  open trades, member ``TS:trade_id`` (entry), score 0
``{qt}:trades:closed_by_exit``    zset  closed and liquidated trades, member ``TS:trade_id``
                                        (exit time), score 0
================================  ====  ======================================================

The sorted sets are ordered by member (all scores are 0, read with ZRANGEBYLEX), never by score:
a double cannot hold a nanosecond timestamp past 2**53 exactly. A member's bytes sort by time,
then by trade id in code point order (UTF-8 keeps it), which is ``trade_sort_key``, so listings
come out of Redis in their final order and ``limit`` can be applied there.

Every write is one Lua script over the five keys, so it is atomic across clients: ``save``
replaces the record and moves its index members; ``close`` reads the record, applies
``closed_trade`` in Python and writes it back by compare-and-set on the stored JSON (a changed
record is read again, so of two closers exactly one wins and the other gets TradeConflictError);
``purge_closed`` takes the ``closed_by_exit`` members below the cutoff and deletes their trades
in the same script. Reads are one script too (members and documents of one snapshot).

A stored value that cannot be read back into a valid record, or that disagrees with its index
member, raises IntegrityError naming the trade id. Redis errors are translated as in
``connection`` (unreachable → TransientError).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Self, cast

import orjson
import redis

from quantum_trader.domain.errors import ConfigError, IntegrityError, TransientError
from quantum_trader.domain.trading import TradeStatus
from quantum_trader.stores.redis.connection import (
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT_SECS,
    RedisKeys,
    connect,
    translating,
)
from quantum_trader.stores.trades import (
    INT64_MAX,
    TradeQuery,
    TradeRecord,
    check_purge_cutoff,
    check_trade_record,
    closed_trade,
)

_TS_DIGITS: Final = 19  # len(str(INT64_MAX))
_MAX_CLOSE_ATTEMPTS: Final = 64

# KEYS: records, index, by_entry, open, closed_by_exit.
# ARGV[1] trade id, ARGV[2] document, ARGV[3] entry TS, ARGV[4] exit TS ('' while open),
# ARGV[5] '1' to write only if the stored document is still ARGV[6]. Returns 1, or 0 if it moved.
_WRITE_LUA: Final = """
local id = ARGV[1]
if ARGV[5] == '1' and redis.call('HGET', KEYS[1], id) ~= ARGV[6] then
  return 0
end
local old = redis.call('HGET', KEYS[2], id)
if old then
  local old_member = string.sub(old, 1, 19) .. ':' .. id
  redis.call('ZREM', KEYS[3], old_member)
  redis.call('ZREM', KEYS[4], old_member)
  if #old > 19 then
    redis.call('ZREM', KEYS[5], string.sub(old, 20) .. ':' .. id)
  end
end
local member = ARGV[3] .. ':' .. id
redis.call('HSET', KEYS[1], id, ARGV[2])
redis.call('HSET', KEYS[2], id, ARGV[3] .. ARGV[4])
redis.call('ZADD', KEYS[3], 0, member)
if ARGV[4] == '' then
  redis.call('ZADD', KEYS[4], 0, member)
else
  redis.call('ZADD', KEYS[5], 0, ARGV[4] .. ':' .. id)
end
return 1
"""

# KEYS: records, then the sorted set to read. ARGV[1] min, ARGV[2] max (ZRANGEBYLEX bounds),
# ARGV[3] count (-1 for all). Returns {members, documents (false where missing)}.
_READ_LUA: Final = """
local members = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
local documents = {}
local chunk = 1000
for first = 1, #members, chunk do
  local ids = {}
  for i = first, math.min(first + chunk - 1, #members) do
    ids[#ids + 1] = string.sub(members[i], 21)
  end
  local found = redis.call('HMGET', KEYS[1], unpack(ids))
  for i = 1, #ids do
    documents[#documents + 1] = found[i]
  end
end
return {members, documents}
"""

# KEYS: records, index, by_entry, open, closed_by_exit. ARGV[1] max bound of closed_by_exit.
# Returns the number of trades deleted.
_PURGE_LUA: Final = """
local members = redis.call('ZRANGEBYLEX', KEYS[5], '-', ARGV[1])
for _, member in ipairs(members) do
  local id = string.sub(member, 21)
  local entry = redis.call('HGET', KEYS[2], id)
  if entry then
    redis.call('ZREM', KEYS[3], string.sub(entry, 1, 19) .. ':' .. id)
    redis.call('ZREM', KEYS[4], string.sub(entry, 1, 19) .. ':' .. id)
  end
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[5], member)
end
return #members
"""


@dataclass(frozen=True, slots=True)
class RedisTradeKeys:
    """The trade keys of one deployment, all in the hash tag of ``RedisKeys`` (one slot).

    Attributes:
        records: Hash of trade id to the record's JSON.
        index: Hash of trade id to its entry (and exit) timestamp, 19 digits each.
        by_entry: Sorted set of every trade, member ``TS:trade_id`` by entry time.
        open: Sorted set of the open trades, member ``TS:trade_id`` by entry time.
        closed_by_exit: Sorted set of closed trades, member ``TS:trade_id`` by exit time.
    """

    records: str
    index: str
    by_entry: str
    open: str
    closed_by_exit: str

    @classmethod
    def of(cls, keys: RedisKeys) -> RedisTradeKeys:
        """The trade keys under ``keys``' hash tag."""
        base = f"{keys.hash_tag}:trades"
        return cls(
            records=f"{base}:records",
            index=f"{base}:index",
            by_entry=f"{base}:by_entry",
            open=f"{base}:open",
            closed_by_exit=f"{base}:closed_by_exit",
        )

    def all(self) -> tuple[str, ...]:
        """Every trade key, in the order the scripts take them."""
        return (self.records, self.index, self.by_entry, self.open, self.closed_by_exit)


class RedisTradeStateStore:
    """The TradeStateStore on Redis; safe to share between threads, processes and machines."""

    def __init__(self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        """Use ``client`` (not closed by ``close``) and the keys under ``prefix``.

        Raises ConfigError when ``prefix`` is not a valid key prefix (see ``RedisKeys``).
        """
        self.keys = RedisKeys(prefix)
        self.trade_keys = RedisTradeKeys.of(self.keys)
        self._client = client
        self._owns_client = False
        self._what = f"trade keys {self.keys.hash_tag}:trades:*"
        self._script_keys = list(self.trade_keys.all())
        self._write = client.register_script(_WRITE_LUA)
        self._read = client.register_script(_READ_LUA)
        self._purge = client.register_script(_PURGE_LUA)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, timeout_secs: float = DEFAULT_TIMEOUT_SECS
    ) -> Self:
        """Open a store on its own client for ``url``; ``close_connection`` closes it."""
        client = connect(url, timeout_secs=timeout_secs)
        try:
            store = cls(client, prefix=prefix)
        except BaseException:
            client.close()
            raise
        store._owns_client = True
        return store

    def save(self, record: TradeRecord) -> None:
        """Insert ``record``, or replace the trade with the same id, in one script."""
        self._store(check_trade_record(record), expected=None)

    def get(self, trade_id: str) -> TradeRecord | None:
        """Return the trade stored under ``trade_id``, or None."""
        with translating(self._what):
            raw = self._client.hget(self.trade_keys.records, trade_id)
        return None if raw is None else _decode(trade_id, raw)

    def list_open(self, symbol: str | None = None) -> Sequence[TradeRecord]:
        """Return the open trades (of ``symbol`` only, if given), by entry time."""
        return self.list(symbol=symbol, status=TradeStatus.OPEN)

    def list(
        self,
        *,
        symbol: str | None = None,
        status: TradeStatus | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int | None = None,
    ) -> Sequence[TradeRecord]:
        """Return the trades matching every given filter, by entry time."""
        query = TradeQuery(
            symbol=symbol, status=status, since_ns=since_ns, until_ns=until_ns, limit=limit
        )
        bounds = _entry_bounds(query)
        if bounds is None:
            return []
        source = self.trade_keys.open if status is TradeStatus.OPEN else self.trade_keys.by_entry
        # Only the entry window and the open set are exact in Redis: limit there when no other
        # filter remains, otherwise take the window whole and limit after filtering.
        exact = symbol is None and status in (None, TradeStatus.OPEN)
        count = -1 if limit is None or not exact else min(limit, INT64_MAX)
        with translating(self._what):
            reply = self._read(keys=[self.trade_keys.records, source], args=[*bounds, str(count)])
        found = [record for record in self._decode_listing(reply, source) if query.matches(record)]
        return found if limit is None else found[:limit]

    def close(
        self,
        trade_id: str,
        *,
        exit_price: float,
        exit_ts_ns: int,
        status: TradeStatus,
        realized_pnl: float,
        fees: float,
        funding: float,
        updated_ts_ns: int | None = None,
    ) -> TradeRecord:
        """Close the open trade ``trade_id`` atomically; TradeConflictError if it is not open."""
        for _ in range(_MAX_CLOSE_ATTEMPTS):
            with translating(self._what):
                raw = cast("bytes | None", self._client.hget(self.trade_keys.records, trade_id))
            closed = closed_trade(
                None if raw is None else _decode(trade_id, raw),
                trade_id,
                exit_price=exit_price,
                exit_ts_ns=exit_ts_ns,
                status=status,
                realized_pnl=realized_pnl,
                fees=fees,
                funding=funding,
                updated_ts_ns=updated_ts_ns,
            )
            assert raw is not None  # closed_trade raised otherwise
            if self._store(closed, expected=raw):
                return closed
        raise TransientError(
            f"{self._what}: trade {trade_id!r} changed under every one of "
            f"{_MAX_CLOSE_ATTEMPTS} close attempts; nothing was written"
        )

    def purge_closed(self, before_ns: int) -> int:
        """Delete closed and liquidated trades that exited before ``before_ns``; return how many."""
        check_purge_cutoff(before_ns)
        if before_ns <= 0:
            return 0  # exit times are >= 0
        # Past INT64_MAX every exit time is earlier: take the whole set.
        bound = "+" if before_ns > INT64_MAX else "(" + _ts(before_ns)
        with translating(self._what):
            deleted = self._purge(keys=self._script_keys, args=[bound])
        return int(deleted)

    def count_open(self) -> int:
        """Return the number of open trades."""
        with translating(self._what):
            return int(self._client.zcard(self.trade_keys.open))

    def close_connection(self) -> None:
        """Close the client if ``from_url`` opened it; a client passed in stays open.

        Named as on the SQLite store: ``close`` is the port's close of a trade.
        """
        if self._owns_client:
            self._client.close()

    def _store(self, record: TradeRecord, *, expected: bytes | None) -> bool:
        # Write ``record``; with ``expected``, only if the stored document is still that.
        document = _encode(record)
        exit_ts = "" if record.exit_ts_ns is None else _ts(record.exit_ts_ns)
        args: list[str | bytes] = [
            record.trade_id,
            document,
            _ts(record.entry_ts_ns),
            exit_ts,
            "0" if expected is None else "1",
            b"" if expected is None else expected,
        ]
        with translating(self._what):
            written = self._write(keys=self._script_keys, args=args)
        return int(written) == 1

    def _decode_listing(self, reply: Any, source: str) -> builtins.list[TradeRecord]:
        if not isinstance(reply, list) or len(reply) != 2:
            raise IntegrityError(f"{self._what}: unexpected script reply {reply!r}")
        members, documents = reply
        if not isinstance(members, list) or not isinstance(documents, list):
            raise IntegrityError(f"{self._what}: unexpected script reply {reply!r}")
        if len(members) != len(documents):
            raise IntegrityError(f"{self._what}: unexpected script reply {reply!r}")
        want_open = source == self.trade_keys.open
        records: list[TradeRecord] = []
        for member, document in zip(members, documents, strict=True):
            entry_ts, trade_id = _parse_member(source, member)
            if document is None:
                raise IntegrityError(
                    f"redis key {source} is corrupt: it names trade {trade_id!r}, which has "
                    f"no record in {self.trade_keys.records}"
                )
            record = _decode(trade_id, document)
            if record.entry_ts_ns != entry_ts or (want_open and not record.is_open):
                raise IntegrityError(
                    f"redis key {source} is corrupt: member {member!r} does not match the "
                    f"record of trade {trade_id!r} (entry {record.entry_ts_ns}, "
                    f"{record.status.value})"
                )
            records.append(record)
        return records


def _ts(value: int) -> str:
    return str(value).zfill(_TS_DIGITS)


def _entry_bounds(query: TradeQuery) -> tuple[str, str] | None:
    # The ZRANGEBYLEX bounds of the entry window, or None when no stored time can be in it.
    low, high = "-", "+"
    if query.since_ns is not None and query.since_ns > 0:
        if query.since_ns > INT64_MAX:
            return None
        low = "[" + _ts(query.since_ns)  # "TS:id" sorts after "TS": an entry at since is in
    if query.until_ns is not None and query.until_ns <= INT64_MAX:
        if query.until_ns <= 0:
            return None
        high = "(" + _ts(query.until_ns)  # ...and so an entry at until is out
    return low, high


def _parse_member(key: str, member: Any) -> tuple[int, str]:
    if isinstance(member, bytes) and len(member) > _TS_DIGITS + 1:
        digits, raw_id = member[:_TS_DIGITS], member[_TS_DIGITS + 1 :]
        if digits.isdigit() and member[_TS_DIGITS] == ord(":"):
            try:
                return int(digits), raw_id.decode("utf-8")
            except UnicodeDecodeError:
                pass
    raise IntegrityError(f"redis key {key} is corrupt: member {member!r} is not 'TS:trade_id'")


def _encode(record: TradeRecord) -> bytes:
    try:
        return orjson.dumps(record.to_dict())
    except TypeError as exc:
        # Only a record changed behind its validation (object.__setattr__) gets here.
        raise ConfigError(f"trade {record.trade_id!r} cannot be stored: {exc}") from exc


def _decode(trade_id: str, document: Any) -> TradeRecord:
    try:
        data = orjson.loads(document)
        if not isinstance(data, dict):
            raise TypeError(f"the document is a JSON {type(data).__name__}, not an object")
        record = TradeRecord.from_dict(data)
    except (ValueError, TypeError, RecursionError, ConfigError) as exc:
        raise IntegrityError(f"trade {trade_id!r} in redis is corrupt: {exc}") from exc
    if record.trade_id != trade_id:
        raise IntegrityError(
            f"trade {trade_id!r} in redis is corrupt: its document names trade {record.trade_id!r}"
        )
    return record
