"""SqliteTradeStateStore: trade records in table ``trades`` of the state database.

One row per trade (``trade_id`` is the primary key). The ``record`` column holds the whole
``TradeRecord.to_dict`` as JSON, which keeps every value exactly (a REAL column would turn
``-0.0`` into ``0.0``); ``symbol``, ``status``, ``entry_ts_ns`` and ``exit_ts_ns`` are indexed
copies used to filter, order and purge, and are checked against the document on every read.

Every write runs in one ``BEGIN IMMEDIATE`` transaction on the store's single connection (WAL,
``synchronous=FULL``: a saved trade survives a power loss). ``close`` reads, checks and writes
inside that transaction, so of two processes closing the same trade exactly one succeeds and the
other gets TradeConflictError. A row that cannot be read back into a valid record raises
IntegrityError naming the trade id.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from quantum_trader.domain.errors import ConfigError, IntegrityError
from quantum_trader.domain.trading import TradeStatus
from quantum_trader.stores.sqlite.connection import (
    DEFAULT_BUSY_TIMEOUT_MS,
    connect,
    transaction,
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

TABLE = "trades"
_COLUMNS = "trade_id, symbol, status, entry_ts_ns, exit_ts_ns, record"
# The document is read as bytes: orjson parses them directly, and text that is not UTF-8
# becomes an IntegrityError naming the trade instead of a decoding error in sqlite3.
_SELECTED = "trade_id, symbol, status, entry_ts_ns, exit_ts_ns, CAST(record AS BLOB)"
_SELECT = f"SELECT {_SELECTED} FROM {TABLE}"  # noqa: S608 - constant names
_ORDER = " ORDER BY entry_ts_ns, trade_id"
_UPSERT = (
    f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"  # noqa: S608
    " ON CONFLICT (trade_id) DO UPDATE SET symbol = excluded.symbol,"
    " status = excluded.status, entry_ts_ns = excluded.entry_ts_ns,"
    " exit_ts_ns = excluded.exit_ts_ns, record = excluded.record"
)
_OPEN = TradeStatus.OPEN.value


class SqliteTradeStateStore:
    """The TradeStateStore on a SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        """Open (creating and migrating if needed) the state database at ``path``."""
        self.path = Path(path)
        self._what = f"{TABLE} in {self.path}"
        self._conn = connect(self.path, busy_timeout_ms=busy_timeout_ms)
        self._lock = threading.Lock()

    def save(self, record: TradeRecord) -> None:
        """Insert ``record``, or replace the trade with the same id, in one transaction."""
        row = _encode(check_trade_record(record))
        with self._lock, translating(self._what), transaction(self._conn):
            self._conn.execute(_UPSERT, row)

    def get(self, trade_id: str) -> TradeRecord | None:
        """Return the trade stored under ``trade_id``, or None."""
        with self._lock, translating(self._what):
            row = self._conn.execute(f"{_SELECT} WHERE trade_id = ?", (trade_id,)).fetchone()
        return None if row is None else _decode(row)

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
        select = _select(query)
        if select is None:
            return []
        sql, parameters = select
        with self._lock, translating(self._what):
            rows = self._conn.execute(sql, parameters).fetchall()
        return [_decode(row) for row in rows]

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
        with self._lock, translating(self._what), transaction(self._conn):
            row = self._conn.execute(f"{_SELECT} WHERE trade_id = ?", (trade_id,)).fetchone()
            closed = closed_trade(
                None if row is None else _decode(row),
                trade_id,
                exit_price=exit_price,
                exit_ts_ns=exit_ts_ns,
                status=status,
                realized_pnl=realized_pnl,
                fees=fees,
                funding=funding,
                updated_ts_ns=updated_ts_ns,
            )
            self._conn.execute(_UPSERT, _encode(closed))
        return closed

    def purge_closed(self, before_ns: int) -> int:
        """Delete closed and liquidated trades that exited before ``before_ns``; return how many."""
        check_purge_cutoff(before_ns)
        if before_ns <= 0:
            return 0  # exit times are >= 0
        # Past INT64_MAX (which SQLite cannot bind) every exit time is earlier: use <= the max.
        sql = f"DELETE FROM {TABLE} WHERE status != ? AND exit_ts_ns "  # noqa: S608
        sql += "< ?" if before_ns <= INT64_MAX else "<= ?"
        with self._lock, translating(self._what), transaction(self._conn):
            cursor = self._conn.execute(sql, (_OPEN, min(before_ns, INT64_MAX)))
            return cursor.rowcount

    def count_open(self) -> int:
        """Return the number of open trades."""
        with self._lock, translating(self._what):
            row = self._conn.execute(
                f"SELECT count(*) FROM {TABLE} WHERE status = ?",  # noqa: S608
                (_OPEN,),
            ).fetchone()
        return int(row[0])

    def close_connection(self) -> None:
        """Close the connection (the store cannot be used afterwards)."""
        with self._lock:
            self._conn.close()


def _select(query: TradeQuery) -> tuple[str, tuple[object, ...]] | None:
    # The SQL for ``query``, or None when no stored timestamp (0..INT64_MAX) can match it.
    # Bounds outside that range are dropped or short-circuited: SQLite cannot bind them.
    conditions: list[str] = []
    parameters: list[object] = []
    if query.symbol is not None:
        conditions.append("symbol = ?")
        parameters.append(query.symbol)
    if query.status is not None:
        conditions.append("status = ?")
        parameters.append(query.status.value)
    if query.since_ns is not None and query.since_ns > 0:
        if query.since_ns > INT64_MAX:
            return None
        conditions.append("entry_ts_ns >= ?")
        parameters.append(query.since_ns)
    if query.until_ns is not None and query.until_ns <= INT64_MAX:
        if query.until_ns <= 0:
            return None
        conditions.append("entry_ts_ns < ?")
        parameters.append(query.until_ns)
    sql = _SELECT
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += _ORDER
    if query.limit is not None:
        sql += " LIMIT ?"
        parameters.append(min(query.limit, INT64_MAX))
    return sql, tuple(parameters)


def _encode(record: TradeRecord) -> tuple[object, ...]:
    try:
        document = json.dumps(
            record.to_dict(), allow_nan=False, ensure_ascii=False, separators=(",", ":")
        )
    except (ValueError, TypeError) as exc:
        # Only a record changed behind its validation (object.__setattr__) gets here.
        raise ConfigError(f"trade {record.trade_id!r} cannot be stored: {exc}") from exc
    return (
        record.trade_id,
        record.symbol,
        record.status.value,
        record.entry_ts_ns,
        record.exit_ts_ns,
        document,
    )


def _decode(row: tuple[Any, ...]) -> TradeRecord:
    trade_id, symbol, status, entry_ts_ns, exit_ts_ns, document = row
    try:
        data = orjson.loads(document)  # exact floats, 3x faster than json on a restart
        if not isinstance(data, dict):
            raise TypeError(f"the document is a JSON {type(data).__name__}, not an object")
        record = TradeRecord.from_dict(data)
    except (ValueError, TypeError, RecursionError, ConfigError) as exc:
        raise IntegrityError(f"{TABLE} row for trade {trade_id!r} is corrupt: {exc}") from exc
    columns = (trade_id, symbol, status, entry_ts_ns, exit_ts_ns)
    expected = (
        record.trade_id,
        record.symbol,
        record.status.value,
        record.entry_ts_ns,
        record.exit_ts_ns,
    )
    if columns != expected:
        raise IntegrityError(
            f"{TABLE} row for trade {trade_id!r} is corrupt: its columns {columns!r} do not "
            f"match its document {expected!r}"
        )
    return record
