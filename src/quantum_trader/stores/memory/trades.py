"""InMemoryTradeStateStore: trade records in a dict under a lock, for tests and one-off runs.

Same contract as the SQLite store (the contract suite runs against both). Records are immutable
(their metadata is a read-only copy), so the store keeps and hands out the objects themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from quantum_trader.domain.trading import TradeStatus
from quantum_trader.stores.trades import (
    TradeQuery,
    TradeRecord,
    check_purge_cutoff,
    check_trade_record,
    closed_trade,
    purgeable,
    trade_sort_key,
)


class InMemoryTradeStateStore:
    """A thread-safe TradeStateStore that lives as long as the object does."""

    def __init__(self) -> None:
        """Start with no trades."""
        self._trades: dict[str, TradeRecord] = {}
        self._lock = threading.Lock()

    def save(self, record: TradeRecord) -> None:
        """Insert ``record``, or replace the trade with the same id."""
        check_trade_record(record)
        with self._lock:
            self._trades[record.trade_id] = record

    def get(self, trade_id: str) -> TradeRecord | None:
        """Return the trade stored under ``trade_id``, or None."""
        with self._lock:
            return self._trades.get(trade_id)

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
        with self._lock:
            found = [record for record in self._trades.values() if query.matches(record)]
        found.sort(key=trade_sort_key)
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
        with self._lock:
            closed = closed_trade(
                self._trades.get(trade_id),
                trade_id,
                exit_price=exit_price,
                exit_ts_ns=exit_ts_ns,
                status=status,
                realized_pnl=realized_pnl,
                fees=fees,
                funding=funding,
                updated_ts_ns=updated_ts_ns,
            )
            self._trades[trade_id] = closed
        return closed

    def purge_closed(self, before_ns: int) -> int:
        """Delete closed and liquidated trades that exited before ``before_ns``; return how many."""
        check_purge_cutoff(before_ns)
        with self._lock:
            doomed = [key for key, record in self._trades.items() if purgeable(record, before_ns)]
            for key in doomed:
                del self._trades[key]
        return len(doomed)

    def count_open(self) -> int:
        """Return the number of open trades."""
        with self._lock:
            return sum(1 for record in self._trades.values() if record.is_open)
