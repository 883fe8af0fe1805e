"""PaperVenue: the simulated exchange, journaled to SQLite so that it outlives its worker.

In paper mode the simulated exchange plays the venue, and the venue is the truth a restarting
worker reconciles against (DESIGN.md, TradeStateStore). So it must survive the worker's
process exactly as a real exchange would: every call that changes it commits one SQLite
transaction before it returns, and a new ``PaperVenue`` on the same file continues from there.
A ``kill -9`` at any moment loses nothing the venue acknowledged, and half of a call is never
seen (one transaction per call).

The journal (``venue.db``)::

    meta    key -> JSON      the account settings, the last market time processed, last prices
    orders  client_order_id  every order ever accepted or rejected, as it is now, with the book
                             it waits in ("awaiting" the next open, "resting", "" when done) and
                             the wall-clock time it was submitted
    ledger  seq -> entry     fills, funding settlements and liquidations, in the order they
                             happened

On open the account is rebuilt by replaying the ledger through the same ``Account`` code that
booked it, so positions, wallet, trades (ids included) and every figure come back bit for bit;
open orders go back into their books. Nothing is derived twice: a fill's effect on an order is
in the order's row, its effect on the account is in the ledger.

``advance(ts, bars)`` processes one market time once: asking again for a time at or before the
last one processed does nothing, so a worker that crashed after the venue moved on can replay
its feed from where it stood. ``submit`` refuses a client order id it has seen (the order is
returned as it stands): together with deterministic ids this is what makes a restarted worker
unable to send an order twice. The settings are stored on creation; reopening with different
ones is a ConfigError naming the difference, never a silent mix of two accounts.
"""

from __future__ import annotations

import fcntl
import math
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import orjson

from quantum_trader.data.ws_capture import CaptureEvent
from quantum_trader.domain.clock import Clock
from quantum_trader.domain.errors import ConfigError, IntegrityError
from quantum_trader.domain.instruments import Instrument
from quantum_trader.domain.orders import (
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from quantum_trader.domain.trading import Fill, Liquidity, MarginMode
from quantum_trader.execution.sim.costs import FeeModel, SlippageModel
from quantum_trader.execution.sim.exchange import SimulatedExchange
from quantum_trader.execution.sim.tick_exchange import TickExchange
from quantum_trader.portfolio.account import Account

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    body TEXT NOT NULL,
    book TEXT NOT NULL,
    submitted_wall_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class VenueSettings:
    """The account a paper venue simulates; fixed when the journal is created.

    Attributes:
        cash: Starting wallet in USDT.
        leverage: Leverage of every position.
        margin_mode: Cross or isolated.
        fee_maker: Maker fee rate.
        fee_taker: Taker fee rate.
        slippage_bps: Taker slippage in basis points.
        matching: ``bars`` (orders meet the next bar's open and its range) or ``ticks`` (they
            meet replayed quotes and prints: ``TickExchange``).
    """

    cash: float = 10_000.0
    leverage: float = 10.0
    margin_mode: MarginMode = MarginMode.CROSS
    fee_maker: float = 0.0002
    fee_taker: float = 0.0004
    slippage_bps: float = 0.0
    matching: str = "bars"

    def __post_init__(self) -> None:
        if self.matching not in ("bars", "ticks"):
            raise ConfigError(f"venue matching must be 'bars' or 'ticks', got {self.matching!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-able values."""
        return {
            "matching": self.matching,
            "cash": self.cash,
            "leverage": self.leverage,
            "margin_mode": self.margin_mode.value,
            "fee_maker": self.fee_maker,
            "fee_taker": self.fee_taker,
            "slippage_bps": self.slippage_bps,
        }


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of one symbol as the venue meets it: open first, then the range, then close."""

    open: float
    high: float
    low: float
    close: float


def order_to_dict(order: Order) -> dict[str, Any]:
    """Every field of ``order`` as JSON-able values (``order_from_dict`` reverses it)."""
    return {
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "quantity": order.quantity,
        "ts_init": order.ts_init,
        "price": order.price,
        "trigger_price": order.trigger_price,
        "time_in_force": order.time_in_force.value,
        "reduce_only": order.reduce_only,
        "tag": order.tag,
        "status": order.status.value,
        "filled_qty": order.filled_qty,
        "avg_fill_price": order.avg_fill_price,
        "reject_reason": order.reject_reason,
        "history": [[ts, status.value] for ts, status in order.history],
    }


def order_from_dict(data: Mapping[str, Any]) -> Order:
    """The order ``order_to_dict`` wrote; IntegrityError naming the order if it is malformed."""
    cid = str(data.get("client_order_id", "?"))
    try:
        return Order(
            client_order_id=data["client_order_id"],
            symbol=data["symbol"],
            side=OrderSide(data["side"]),
            type=OrderType(data["type"]),
            quantity=float(data["quantity"]),
            ts_init=int(data["ts_init"]),
            price=None if data["price"] is None else float(data["price"]),
            trigger_price=None if data["trigger_price"] is None else float(data["trigger_price"]),
            time_in_force=TimeInForce(data["time_in_force"]),
            reduce_only=bool(data["reduce_only"]),
            tag=str(data["tag"]),
            status=OrderStatus(data["status"]),
            filled_qty=float(data["filled_qty"]),
            avg_fill_price=float(data["avg_fill_price"]),
            reject_reason=str(data["reject_reason"]),
            history=[(int(ts), OrderStatus(status)) for ts, status in data["history"]],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"venue journal: order {cid!r} cannot be read back: {exc}") from exc


def _fill_to_dict(fill: Fill) -> dict[str, Any]:
    return {
        "client_order_id": fill.client_order_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": fill.quantity,
        "price": fill.price,
        "fee": fill.fee,
        "liquidity": fill.liquidity.value,
        "ts_event": fill.ts_event,
    }


def _fill_from_dict(data: Mapping[str, Any]) -> Fill:
    return Fill(
        client_order_id=data["client_order_id"],
        symbol=data["symbol"],
        side=OrderSide(data["side"]),
        quantity=float(data["quantity"]),
        price=float(data["price"]),
        fee=float(data["fee"]),
        liquidity=Liquidity(data["liquidity"]),
        ts_event=int(data["ts_event"]),
    )


class PaperVenue:
    """A SimulatedExchange whose every change is committed to a SQLite journal first.

    Attributes:
        exchange: The simulated exchange (read it; change it only through this venue).
        account: The exchange's account.
        last_ts: The last market time processed (0 before the first).
        marks: The last price of every symbol seen so far.
    """

    def __init__(
        self,
        path: Path,
        instruments: Mapping[str, Instrument],
        settings: VenueSettings,
        wall_clock: Clock,
        *,
        durable: bool = True,
    ) -> None:
        """Open (or create) the journal at ``path`` and rebuild the venue from it.

        Args:
            path: The journal file; its folder is created if missing.
            instruments: The symbols the venue trades.
            settings: The account; must equal the stored settings when the journal exists.
            wall_clock: Stamps ``submitted_wall_ns`` (the real time an order reached the venue).
            durable: fsync every commit (``synchronous=FULL``); False keeps WAL's crash safety
                for a killed process but not for a power cut (tests, fast replays).

        Raises:
            ConfigError: the settings differ from the stored ones, or the file cannot be opened.
            IntegrityError: the journal cannot be read back.
        """
        self.path = path
        self._wall = wall_clock
        self.settings = settings
        path.parent.mkdir(parents=True, exist_ok=True)
        # One venue object per journal: a second one (the same worker started twice) would
        # rebuild the same state and then diverge from the first while both write.
        self._lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock)
            raise ConfigError(
                f"venue journal {path} is open elsewhere (is this worker already running?)"
            ) from exc
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            os.close(self._lock)
            raise IntegrityError(f"venue journal {path} cannot be opened: {exc}") from exc
        self.account = Account(
            settings.cash,
            instruments,
            leverage=settings.leverage,
            margin_mode=settings.margin_mode,
        )
        kind = TickExchange if settings.matching == "ticks" else SimulatedExchange
        self.exchange = kind(
            self.account,
            fees=FeeModel(settings.fee_maker, settings.fee_taker),
            slippage=SlippageModel(settings.slippage_bps),
        )
        self.last_ts = 0
        self.marks: dict[str, float] = {}
        self._order_seq = 0
        self._journaled_fills = 0
        self._journaled_funding = 0
        self._open_ids: set[str] = set()
        self._broken = False
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- loading
    def _load(self) -> None:
        rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not rows:
            with self._transaction():
                self._put_meta("schema", SCHEMA_VERSION)
                self._put_meta("settings", self.settings.to_dict())
                self._put_meta("last_ts", 0)
                self._put_meta("marks", {})
            return
        meta = {key: self._json(value, f"meta {key}") for key, value in rows.items()}
        if meta.get("schema") != SCHEMA_VERSION:
            raise ConfigError(
                f"venue journal {self.path} has schema {meta.get('schema')!r}, "
                f"this version reads {SCHEMA_VERSION}"
            )
        stored = meta.get("settings")
        stored = stored if isinstance(stored, dict) else {}
        wanted = self.settings.to_dict()
        if stored != wanted:
            diff = ", ".join(
                f"{k}: stored {stored.get(k)!r}, configured {wanted[k]!r}"
                for k in wanted
                if stored.get(k) != wanted[k]
            )
            raise ConfigError(
                f"venue journal {self.path} belongs to another account ({diff}); "
                "use a new state folder or the stored settings"
            )
        self.last_ts = int(meta["last_ts"])
        self.marks = {str(k): float(v) for k, v in meta["marks"].items()}
        for _seq, kind, body in self._db.execute("SELECT seq, kind, body FROM ledger ORDER BY seq"):
            self._replay(kind, self._json(body, f"ledger entry {_seq}"))
        self._journaled_fills = len(self.exchange.fills)
        self._journaled_funding = len(self.exchange.funding_payments)
        for seq, body, book in self._db.execute("SELECT seq, body, book FROM orders ORDER BY seq"):
            order = order_from_dict(self._json(body, f"order row {seq}"))
            self.exchange.restore(order, book)
            if order.status is OrderStatus.REJECTED:
                self.exchange.rejected.append(order)
            if order.status.is_open:
                self._open_ids.add(order.client_order_id)
            self._order_seq = max(self._order_seq, int(seq))

    def _replay(self, kind: str, body: Mapping[str, Any]) -> None:
        try:
            if kind == "fill":
                fill = _fill_from_dict(body)
                self.account.apply_fill(fill)
                self.exchange.fills.append(fill)
            elif kind == "funding":
                self.exchange.settle_funding(
                    body["symbol"], float(body["rate"]), float(body["mark"]), int(body["ts"])
                )
            elif kind == "liquidation_cross":
                fills = self.account.liquidate_cross(
                    {k: float(v) for k, v in body["prices"].items()}, int(body["ts"])
                )
                self.exchange.fills.extend(fills)
            elif kind == "liquidation_isolated":
                fill = self.account.liquidate_isolated(body["symbol"], int(body["ts"]))
                self.exchange.fills.append(fill)
            else:
                raise IntegrityError(f"venue journal {self.path}: unknown ledger kind {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"venue journal {self.path}: a {kind} entry cannot be replayed: {exc}"
            ) from exc

    def _json(self, raw: str, what: str) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise IntegrityError(f"venue journal {self.path}: {what} is not JSON: {exc}") from exc

    # ----------------------------------------------------------------- queries
    def has_order(self, client_order_id: str) -> bool:
        """True when the venue has seen an order with this client order id (in any state)."""
        return client_order_id in self.exchange.orders

    def order(self, client_order_id: str) -> Order | None:
        """The order with this client order id, as it stands, or None."""
        return self.exchange.orders.get(client_order_id)

    def positions(self) -> dict[str, float]:
        """Signed quantity of every open position."""
        return {s: p.quantity for s, p in self.account.positions.items() if p.quantity != 0.0}

    def open_orders(self) -> list[Order]:
        """Orders that can still fill, oldest first."""
        return self.exchange.open_orders()

    def equity(self) -> float:
        """Wallet plus unrealized PnL at the last prices."""
        marks = {s: self.marks.get(s, p.entry_price) for s, p in self.account.positions.items()}
        return self.account.equity(marks)

    def submitted_wall_ns(self) -> dict[str, int]:
        """When (wall clock) each order reached the venue, by client order id."""
        return dict(self._db.execute("SELECT client_order_id, submitted_wall_ns FROM orders"))

    def note(self, key: str, default: float = 0) -> float:
        """A number a client keeps beside the venue (e.g. how many fills it has passed on)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (f"client:{key}",))
        found = row.fetchone()
        if found is None:
            return default
        value = self._json(found[0], f"note {key}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise IntegrityError(f"venue journal {self.path}: note {key} is not a number")
        return float(value)

    def set_note(self, key: str, value: float) -> None:
        """Store a client's number (committed at once); see ``note``."""
        self._db.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            (f"client:{key}", orjson.dumps(value).decode()),
        )

    # ----------------------------------------------------------------- changes
    def submit(self, order: Order, marks: Mapping[str, float] | None = None) -> Order:
        """Accept or reject ``order`` and commit; an id seen before returns that order as is.

        ``marks`` are the prices for the margin check (the venue's last prices by default).
        """
        known = self.exchange.orders.get(order.client_order_id)
        if known is not None:
            return known
        with self._transaction():
            self.exchange.submit(order, {**self.marks, **(marks or {})})
            self._write_order(order, submitted=True)
        return order

    def cancel(self, client_order_id: str, ts_ns: int) -> Order | None:
        """Cancel one open order and commit; return it, or None if unknown or not open."""
        with self._transaction():
            order = self.exchange.cancel(client_order_id, ts_ns)
            if order is not None:
                self._write_order(order)
        return order

    def cancel_all(self, ts_ns: int, symbol: str | None = None) -> list[Order]:
        """Cancel every open order (of ``symbol``) and commit; return those canceled."""
        with self._transaction():
            canceled = self.exchange.cancel_all(ts_ns, symbol)
            for order in canceled:
                self._write_order(order)
        return canceled

    def advance(
        self,
        ts_ns: int,
        bars: Mapping[str, Bar],
        funding: Mapping[str, tuple[float, float]] | None = None,
        ticks: Sequence[CaptureEvent] | None = None,
    ) -> list[Fill]:
        """Meet the market at ``ts_ns`` once, commit, and return the fills it caused.

        With bar matching, in order: orders waiting for the open meet each bar's open;
        funding settles for the positions held then (``funding`` maps symbol to (rate, mark
        price)); resting orders meet its range; positions whose liquidation price the range
        reached are liquidated; the closes become the last prices. With tick matching, the
        bar's ``ticks`` (replayed quotes and prints) meet the orders instead of its open and
        range. A time at or before ``last_ts`` changes nothing.
        """
        if ts_ns <= self.last_ts:
            return []
        first_fill = len(self.exchange.fills)
        with self._transaction():
            if isinstance(self.exchange, TickExchange):
                for event in ticks or ():  # quotes and prints in the order they happened
                    self.exchange.on_event(event)
            else:
                for symbol, bar in bars.items():
                    self.marks[symbol] = bar.open
                    self.exchange.on_open(symbol, bar.open, ts_ns, self.marks)
            self._flush_ledger()
            for symbol, (rate, mark) in sorted((funding or {}).items()):
                self.exchange.settle_funding(symbol, rate, mark, ts_ns)
            self._flush_ledger()
            if not isinstance(self.exchange, TickExchange):
                for symbol, bar in bars.items():
                    self.exchange.on_bar(symbol, bar.high, bar.low, ts_ns, self.marks)
                self._flush_ledger()
            self._liquidate(ts_ns, bars)
            for symbol, bar in bars.items():
                self.marks[symbol] = bar.close
            self.last_ts = ts_ns
            self._put_meta("last_ts", ts_ns)
            self._put_meta("marks", self.marks)
        return self.exchange.fills[first_fill:]

    def _liquidate(self, ts_ns: int, bars: Mapping[str, Bar]) -> None:
        acct = self.account
        for symbol, pos in acct.positions.items():
            if pos.quantity == 0.0 or pos.margin_mode is not MarginMode.ISOLATED:
                continue
            bar = bars.get(symbol)
            level = acct.isolated_liquidation_price(symbol)
            if bar is None or math.isnan(level):
                continue
            if (bar.low <= level) if pos.quantity > 0 else (bar.high >= level):
                self._flush_ledger()
                self.exchange.liquidate_isolated(symbol, ts_ns)
                self._ledger("liquidation_isolated", {"symbol": symbol, "ts": ts_ns})
        # Cross: every position at its own adverse extreme of the bar (conservative).
        worst = {
            s: (bars[s].low if p.quantity > 0 else bars[s].high) if s in bars else self.marks[s]
            for s, p in acct.positions.items()
            if p.quantity != 0.0 and p.margin_mode is MarginMode.CROSS
        }
        if worst:
            marks = {**self.marks, **worst}
            if acct.equity(marks) <= acct.maintenance_margin(marks):
                self._flush_ledger()
                self.exchange.liquidate_cross(marks, ts_ns)
                self._ledger("liquidation_cross", {"prices": worst, "ts": ts_ns})

    # ----------------------------------------------------------------- journal
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._broken:
            raise IntegrityError(
                f"venue {self.path}: an earlier change failed half-way; reopen the venue "
                "(it rebuilds from the journal, which holds only whole changes)"
            )
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._flush_changes()
            self._db.execute("COMMIT")
        except BaseException:
            # The journal rolls back, the objects in memory cannot: refuse to go on with them.
            self._broken = True
            self._db.execute("ROLLBACK")
            raise

    def _flush_changes(self) -> None:
        self._flush_ledger()
        now_open = {o.client_order_id for o in self.exchange.open_orders()}
        for cid in self._open_ids | now_open:
            self._write_order(self.exchange.orders[cid])
        self._open_ids = now_open

    def _flush_ledger(self) -> None:
        """Journal the fills and funding booked since the last call, in that order.

        Called after each phase of ``advance`` and before a liquidation is journaled, so the
        ledger replays in the order things happened (a liquidation after the fills that led
        to it).
        """
        for fill in self.exchange.fills[self._journaled_fills :]:
            if not fill.liquidation:  # liquidations are journaled as what caused them
                self._ledger("fill", _fill_to_dict(fill))
        self._journaled_fills = len(self.exchange.fills)
        for payment in self.exchange.funding_payments[self._journaled_funding :]:
            self._ledger(
                "funding",
                {
                    "symbol": payment.symbol,
                    "rate": payment.rate,
                    "mark": payment.mark_price,
                    "ts": payment.ts_event,
                },
            )
        self._journaled_funding = len(self.exchange.funding_payments)

    def _write_order(self, order: Order, *, submitted: bool = False) -> None:
        body = orjson.dumps(order_to_dict(order)).decode()
        book = self.exchange.book_of(order)
        if submitted:
            self._order_seq += 1
            self._db.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
                (
                    order.client_order_id,
                    self._order_seq,
                    order.symbol,
                    body,
                    book,
                    self._wall.now_ns(),
                ),
            )
        else:
            self._db.execute(
                "UPDATE orders SET body = ?, book = ? WHERE client_order_id = ?",
                (body, book, order.client_order_id),
            )

    def _ledger(self, kind: str, body: Mapping[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO ledger (kind, body) VALUES (?, ?)", (kind, orjson.dumps(body).decode())
        )

    def _put_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, orjson.dumps(value).decode())
        )

    def close(self) -> None:
        """Close the journal and let another venue object open it."""
        self._db.close()
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    def __enter__(self) -> Self:
        """Use the venue in a ``with`` block that closes it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the journal."""
        self.close()
