"""ReadModel: what the API knows from the event bus, kept in memory and thread-safe.

It is fed by ``handle`` (subscribe it to every topic it knows, or give it backfilled events):

- ``worker.status``: each worker's last status (equity, positions, marks, PnL, heartbeat), and
  the run's **equity curve**: one point per market time that every expected worker has
  reached, valued at the sum of each worker's equity at that time (its last status at or
  before it); the drawdown of each point is from the running peak. Past ``max_points`` the
  older points are thinned (every other one dropped); the peak and maximum drawdown stay exact.
- ``orders``, ``fills``: the most recent ones (bounded deques).
- ``ess.ack``: which worker heard which latch activation, and when.

Events are dropped by id when seen before (a backfill overlapping the live feed, a bus
redelivery), and a worker's status older than the one held is ignored. Listeners
(``add_listener``) hear ``(kind, data)`` for every change, in the thread that made it; the
kinds are ``status``, ``order``, ``fill``, ``ack`` here, and ``policy``, ``ess``, ``audit`` from
the service. Heartbeats are the events' own creation time (the worker's wall clock).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quantum_trader.bus.dedupe import Deduplicator
from quantum_trader.bus.events import Event

STATUS_TOPIC = "worker.status"
ORDERS_TOPIC = "orders"
FILLS_TOPIC = "fills"
ACK_TOPIC = "ess.ack"
TOPICS = (STATUS_TOPIC, ORDERS_TOPIC, FILLS_TOPIC, ACK_TOPIC)
"""The bus topics the read model consumes."""

_MAX_PENDING = 10_000

Listener = Callable[[str, Mapping[str, Any]], None]
"""Hears ``(kind, data)`` for every change of the read model or the service."""


def _floats(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, float] = {}
    for key, item in value.items():
        if isinstance(item, int | float) and not isinstance(item, bool):
            out[str(key)] = float(item)
    return out


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """One worker's last ``worker.status``.

    Attributes:
        worker: The worker's id.
        heartbeat_ns: When the worker made the event (its wall clock).
        market_ts_ns: The market time of the bar it had processed.
        equity, wallet, realized, fees, funding: Its account, in USDT.
        positions: Signed quantity per symbol (zero quantities dropped).
        entry_prices, marks, unrealized: Per symbol.
        open_orders: Orders resting at its venue.
        halted: It had heard an ESS latch and sends no new order.
        pending_trade_writes: Trade records waiting for the store.
    """

    worker: str
    heartbeat_ns: int
    market_ts_ns: int
    equity: float
    wallet: float
    realized: float
    fees: float
    funding: float
    positions: dict[str, float] = field(default_factory=dict)
    entry_prices: dict[str, float] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    unrealized: dict[str, float] = field(default_factory=dict)
    open_orders: int = 0
    halted: bool = False
    pending_trade_writes: int = 0

    @classmethod
    def from_event(cls, event: Event) -> WorkerStatus:
        """Read a ``worker.status`` event (missing or odd fields read as zero)."""
        p: Mapping[str, Any] = event.payload
        return cls(
            worker=str(p.get("worker", event.source)),
            heartbeat_ns=event.ts_ns,
            market_ts_ns=_int(p.get("market_ts")),
            equity=_float(p.get("equity")),
            wallet=_float(p.get("wallet")),
            realized=_float(p.get("realized")),
            fees=_float(p.get("fees")),
            funding=_float(p.get("funding")),
            positions={s: q for s, q in _floats(p.get("positions")).items() if q},
            entry_prices=_floats(p.get("entry_prices")),
            marks=_floats(p.get("marks")),
            unrealized=_floats(p.get("unrealized")),
            open_orders=_int(p.get("open_orders")),
            halted=bool(p.get("halted", False)),
            pending_trade_writes=_int(p.get("pending_trade_writes")),
        )

    @property
    def unrealized_total(self) -> float:
        """Sum of the unrealized PnL of its positions."""
        return sum(self.unrealized.values())


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """One point of the run's equity curve: total equity at a market time, and its drawdown."""

    market_ts_ns: int
    equity: float
    drawdown: float


class ReadModel:
    """The bus-fed view of the run; see the module docstring."""

    def __init__(
        self,
        worker_ids: Iterable[str] = (),
        *,
        max_points: int = 20_000,
        max_orders: int = 1_000,
        max_fills: int = 1_000,
    ) -> None:
        """Expect ``worker_ids`` (empty: every worker seen counts); keep bounded histories."""
        self.expected = tuple(worker_ids)
        self._max_points = max(4, max_points)
        self._lock = threading.Lock()
        self._workers: dict[str, WorkerStatus] = {}
        self._curve: list[EquityPoint] = []
        self._peak = 0.0
        self._peak_before_last = 0.0
        self._max_drawdown = 0.0
        self._orders: deque[dict[str, Any]] = deque(maxlen=max_orders)
        self._fills: deque[dict[str, Any]] = deque(maxlen=max_fills)
        self._acks: deque[dict[str, Any]] = deque(maxlen=200)
        self._dedupe = Deduplicator()
        self._pending: dict[str, list[tuple[int, float]]] = {}
        self._carry: dict[str, float] = {}
        self._emitted_ts = -1
        self._listeners: tuple[Listener, ...] = ()
        self.orders_seen = 0
        self.fills_seen = 0
        self.revision = 0
        """Grows with every change; a stream sends a new snapshot when it moved."""

    # ------------------------------------------------------------------ listeners
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(kind, data)`` on every later change."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (nothing happens if it was not added)."""
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    def notify(self, kind: str, data: Mapping[str, Any]) -> None:
        """Tell every listener about a change (the service's policy, ESS and audit news)."""
        with self._lock:
            self.revision += 1
            listeners = self._listeners
        for listener in listeners:
            listener(kind, data)

    # ------------------------------------------------------------------ feeding
    def handle(self, event: Event) -> None:
        """Take one bus event (subscribe this to each of ``TOPICS``)."""
        if self._dedupe.is_duplicate(event.event_id):
            return
        if event.topic == STATUS_TOPIC:
            status = WorkerStatus.from_event(event)
            if self._take_status(status):
                self.notify("status", {"worker": status.worker})
        elif event.topic == ORDERS_TOPIC:
            order = {**event.payload, "ts_ns": event.ts_ns}
            with self._lock:
                self._orders.append(order)
                self.orders_seen += 1
            self.notify("order", order)
        elif event.topic == FILLS_TOPIC:
            fill = {**event.payload, "ts_ns": event.ts_ns}
            with self._lock:
                self._fills.append(fill)
                self.fills_seen += 1
            self.notify("fill", fill)
        elif event.topic == ACK_TOPIC:
            ack = {**event.payload, "ts_ns": event.ts_ns}
            with self._lock:
                self._acks.append(ack)
            self.notify("ack", ack)

    def _take_status(self, status: WorkerStatus) -> bool:
        with self._lock:
            held = self._workers.get(status.worker)
            if held is not None and (
                status.market_ts_ns < held.market_ts_ns
                or (
                    status.market_ts_ns == held.market_ts_ns
                    and status.heartbeat_ns < held.heartbeat_ns
                )
            ):
                return False
            self._workers[status.worker] = status
            pending = self._pending.setdefault(status.worker, [])
            if pending and pending[-1][0] == status.market_ts_ns:
                pending.pop()
            pending.append((status.market_ts_ns, status.equity))
            if len(pending) > _MAX_PENDING:  # a silent worker: keep the others bounded
                self._carry[status.worker] = pending[0][1]
                del pending[0]
            self._advance()
            return True

    def _advance(self) -> None:
        """Add the points every expected worker has reached (each at its value then)."""
        expected = self.expected or tuple(self._workers)
        if any(w not in self._workers for w in expected):
            return  # a partial sum is not the run's equity
        frontier = min(self._workers[w].market_ts_ns for w in expected)
        times = sorted(
            {
                ts
                for w in expected
                for ts, _ in self._pending.get(w, ())
                if self._emitted_ts <= ts <= frontier
            }
        )
        for t in times:
            total = 0.0
            for w in expected:
                value = self._carry.get(w)
                for ts, equity in self._pending.get(w, ()):
                    if ts > t:
                        break
                    value = equity
                if value is None:
                    break  # this worker had not started at t
                total += value
            else:
                self._append(t, total)
        for w in expected:
            entries = self._pending.get(w, [])
            done = [e for e in entries if e[0] <= frontier]
            if done:
                self._carry[w] = done[-1][1]
                self._pending[w] = [e for e in entries if e[0] > frontier]
        self._emitted_ts = max(self._emitted_ts, frontier)

    def _append(self, ts: int, total: float) -> None:
        curve = self._curve
        if curve and curve[-1].market_ts_ns > ts:
            return
        if curve and curve[-1].market_ts_ns == ts:
            curve.pop()
            self._peak = self._peak_before_last
        self._peak_before_last = self._peak
        self._peak = max(self._peak, total)
        drawdown = (self._peak - total) / self._peak if self._peak > 0 else 0.0
        self._max_drawdown = max(self._max_drawdown, drawdown)
        curve.append(EquityPoint(ts, total, drawdown))
        if len(curve) > self._max_points:
            last = curve[-1]
            del curve[-1]
            self._curve = [*curve[::2], last]

    # ------------------------------------------------------------------ reading
    def workers(self) -> dict[str, WorkerStatus]:
        """Each worker's last status, by id."""
        with self._lock:
            return dict(self._workers)

    def curve(self) -> list[EquityPoint]:
        """The equity curve, oldest first."""
        with self._lock:
            return list(self._curve)

    def last_point(self) -> EquityPoint | None:
        """The newest point of the equity curve, if any."""
        with self._lock:
            return self._curve[-1] if self._curve else None

    def peak(self) -> tuple[float, float]:
        """The equity peak and the largest drawdown seen (a fraction of the peak)."""
        with self._lock:
            return self._peak, self._max_drawdown

    def orders(self) -> list[dict[str, Any]]:
        """The most recent orders, oldest first."""
        with self._lock:
            return list(self._orders)

    def fills(self) -> list[dict[str, Any]]:
        """The most recent fills, oldest first."""
        with self._lock:
            return list(self._fills)

    def acks(self) -> list[dict[str, Any]]:
        """The most recent ESS acknowledgements of the workers, oldest first."""
        with self._lock:
            return list(self._acks)
