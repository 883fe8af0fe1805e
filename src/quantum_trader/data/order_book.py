"""A local L2 order book rebuilt from a snapshot plus diff-depth updates, as Binance documents.

USDT-M futures ("How to manage a local order book correctly"), for diffs that carry ``pu``:

1. buffer the diffs that arrive before the snapshot;
2. drop every diff with ``u < lastUpdateId``;
3. the first diff applied must have ``U <= lastUpdateId <= u``;
4. afterwards each diff's ``pu`` must equal the previous diff's ``u``; otherwise the book is out
   of sync and must be rebuilt from a new snapshot;
5. quantities are absolute; quantity 0 removes the level (removing an absent level is fine).

Spot diffs (no ``pu``) follow spot's rules: drop ``u <= lastUpdateId``, the first applied diff
must have ``U <= lastUpdateId + 1 <= u``, and each next diff's ``U`` must be the previous
``u + 1``.

A broken sequence is a *gap*: the book marks itself out of sync (:attr:`OrderBook.in_sync` is
False, :attr:`OrderBook.gaps` counts it), drops its levels and buffers the diffs that follow
until :meth:`OrderBook.apply_snapshot` resynchronises it. With ``strict=True`` a gap raises
:class:`BookGapError` instead. Prices and quantities are float64, exact copies of the
exchange's decimal strings parsed once; levels are kept in sorted price lists (bisect), so the
top of the book is O(1) and an update O(levels) memmove at worst.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from enum import StrEnum

from quantum_trader.data.ws_capture import DepthDiff, DepthSnapshot, Level
from quantum_trader.domain.errors import DataError

__all__ = ["BookGapError", "DiffOutcome", "OrderBook"]


class BookGapError(DataError):
    """The diff sequence broke: ``expected`` was the update id wanted, ``diff`` the one seen."""

    def __init__(self, symbol: str, reason: str, *, expected: int, diff: DepthDiff) -> None:
        super().__init__(f"{symbol} order book out of sync: {reason}; resync from a new snapshot")
        self.symbol = symbol
        self.reason = reason
        self.expected = expected
        self.diff = diff


class DiffOutcome(StrEnum):
    """What :meth:`OrderBook.apply_diff` did with a diff."""

    APPLIED = "applied"
    STALE = "stale"  # older than the snapshot: dropped, as Binance says
    BUFFERED = "buffered"  # no snapshot yet (or out of sync): kept for the next snapshot
    GAP = "gap"  # the sequence broke: the book is now out of sync


class _Side:
    """One side's levels: a price -> qty dict plus the prices in ascending order."""

    __slots__ = ("prices", "qty")

    def __init__(self) -> None:
        self.prices: list[float] = []
        self.qty: dict[float, float] = {}

    def clear(self) -> None:
        self.prices.clear()
        self.qty.clear()

    def set(self, price: float, qty: float) -> None:
        book = self.qty
        if qty == 0.0:
            if book.pop(price, None) is not None:
                prices = self.prices
                del prices[bisect_left(prices, price)]
        else:
            if price not in book:
                prices = self.prices
                prices.insert(bisect_left(prices, price), price)
            book[price] = qty


class OrderBook:
    """One symbol's L2 book: snapshot plus diffs, with top-of-book queries.

    Args:
        symbol: the market, e.g. ``"BTCUSDT"``.
        strict: raise :class:`BookGapError` on a gap instead of only flagging it.
        max_buffer: diffs kept while waiting for a snapshot (the oldest are dropped first).
    """

    def __init__(self, symbol: str, *, strict: bool = False, max_buffer: int = 10_000) -> None:
        self.symbol = symbol
        self.strict = strict
        self._bids = _Side()
        self._asks = _Side()
        self._buffer: deque[DepthDiff] = deque(maxlen=max_buffer)
        self._snapshot_id: int | None = None  # lastUpdateId until the first diff is applied
        self.last_update_id = 0
        """``u`` of the last diff applied (or the snapshot's ``lastUpdateId``)."""
        self.in_sync = False
        """True once a snapshot and a valid first diff are in and no gap has happened since."""
        self.gaps = 0
        """How many times the sequence broke."""
        self.applied = 0
        """Diffs applied."""
        self.stale = 0
        """Diffs dropped as older than the snapshot."""
        self.ts_event = 0
        """Exchange time (ns) of the last diff applied or of the snapshot (0 when unknown)."""

    # ----------------------------------------------------------------- updates
    def apply_snapshot(self, snapshot: DepthSnapshot) -> list[DiffOutcome]:
        """Load ``snapshot``, then apply the diffs buffered before it; return their outcomes."""
        self._bids.clear()
        self._asks.clear()
        for price, qty in snapshot.bids:
            self._bids.set(price, qty)
        for price, qty in snapshot.asks:
            self._asks.set(price, qty)
        self._snapshot_id = snapshot.last_update_id
        self.last_update_id = snapshot.last_update_id
        self.ts_event = snapshot.ts_event or 0
        self.in_sync = True
        pending = list(self._buffer)
        self._buffer.clear()
        return [self.apply_diff(diff) for diff in pending]

    def apply_diff(self, diff: DepthDiff) -> DiffOutcome:
        """Apply one diff by Binance's rules; see the module docstring for the outcomes."""
        if not self.in_sync:
            self._buffer.append(diff)
            return DiffOutcome.BUFFERED
        futures = diff.previous_final_update_id is not None
        first = self._snapshot_id
        if first is not None:
            # Still waiting for the first diff after the snapshot.
            if diff.final_update_id < first or (not futures and diff.final_update_id == first):
                self.stale += 1
                return DiffOutcome.STALE
            want = first if futures else first + 1
            if diff.first_update_id > want:
                return self._gap(
                    f"first diff after snapshot {first} starts at U={diff.first_update_id}",
                    want,
                    diff,
                )
            self._snapshot_id = None
        elif futures and diff.previous_final_update_id != self.last_update_id:
            return self._gap(
                f"pu={diff.previous_final_update_id} does not follow u={self.last_update_id}",
                self.last_update_id,
                diff,
            )
        elif not futures and diff.first_update_id != self.last_update_id + 1:
            return self._gap(
                f"U={diff.first_update_id} does not follow u={self.last_update_id}",
                self.last_update_id + 1,
                diff,
            )
        bids, asks = self._bids, self._asks
        for price, qty in diff.bids:
            bids.set(price, qty)
        for price, qty in diff.asks:
            asks.set(price, qty)
        self.last_update_id = diff.final_update_id
        self.ts_event = diff.ts_event
        self.applied += 1
        return DiffOutcome.APPLIED

    def _gap(self, reason: str, expected: int, diff: DepthDiff) -> DiffOutcome:
        self.gaps += 1
        self.in_sync = False
        self._snapshot_id = None
        self._bids.clear()
        self._asks.clear()
        self._buffer.clear()
        self._buffer.append(diff)
        if self.strict:
            raise BookGapError(self.symbol, reason, expected=expected, diff=diff)
        return DiffOutcome.GAP

    # ----------------------------------------------------------------- queries
    @property
    def best_bid(self) -> Level | None:
        """Highest bid (price, qty), or None when the side is empty."""
        prices = self._bids.prices
        if not prices:
            return None
        price = prices[-1]
        return price, self._bids.qty[price]

    @property
    def best_ask(self) -> Level | None:
        """Lowest ask (price, qty), or None when the side is empty."""
        prices = self._asks.prices
        if not prices:
            return None
        price = prices[0]
        return price, self._asks.qty[price]

    @property
    def mid(self) -> float | None:
        """Mean of the best bid and ask prices, or None when a side is empty."""
        bid, ask = self._bids.prices, self._asks.prices
        if not bid or not ask:
            return None
        return (bid[-1] + ask[0]) / 2.0

    @property
    def spread(self) -> float | None:
        """Best ask minus best bid, or None when a side is empty (negative when crossed)."""
        bid, ask = self._bids.prices, self._asks.prices
        if not bid or not ask:
            return None
        return ask[0] - bid[-1]

    @property
    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (a broken or stale book)."""
        bid, ask = self._bids.prices, self._asks.prices
        return bool(bid and ask and bid[-1] >= ask[0])

    def bids(self, depth: int = 10) -> list[Level]:
        """The best ``depth`` bid levels, best (highest) first."""
        prices = self._bids.prices
        qty = self._bids.qty
        return [(p, qty[p]) for p in prices[: -depth - 1 : -1]] if depth > 0 else []

    def asks(self, depth: int = 10) -> list[Level]:
        """The best ``depth`` ask levels, best (lowest) first."""
        qty = self._asks.qty
        return [(p, qty[p]) for p in self._asks.prices[: max(depth, 0)]]

    def depth(self, levels: int = 10) -> tuple[float, float]:
        """Total bid and ask quantity over the best ``levels`` levels of each side."""
        return (
            sum(q for _, q in self.bids(levels)),
            sum(q for _, q in self.asks(levels)),
        )

    def __len__(self) -> int:
        """Number of price levels on both sides."""
        return len(self._bids.prices) + len(self._asks.prices)
