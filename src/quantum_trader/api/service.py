"""OperationsService: the facade the HTTP API (and any other front end) calls.

It reads and changes the shared state through the same services the engine uses:
``PolicyService`` (compare-and-set, validation, ``policy.changed`` audit) and
``EmergencyStopSystem`` with an executor that reaches no venue: a trigger latches the ESS and
halts trading, the latch is broadcast, and every worker flattens its own book when it hears it
(as ``qtrader ess trigger`` does). Resets need an actor and a reason and are audited.

The bus-fed ``ReadModel`` gives workers, positions, orders and the equity curve. ``refresh``
(called by the feed thread every half second, and after each write) caches the policy and the
latch so ``/status`` and the event stream never wait on the stores; when the stores cannot be
read it keeps the last values and says so (``stores_reachable``).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantum_trader.api.readmodel import EquityPoint, ReadModel, WorkerStatus
from quantum_trader.domain.clock import NANOS_PER_SECOND, Clock
from quantum_trader.domain.errors import QuantumTraderError
from quantum_trader.domain.policy import Policy, RiskMode, TradingState
from quantum_trader.engine.stores import StateStores
from quantum_trader.observability.audit.query import AuditQuery, QueryStats, iter_records
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.metrics.recorder import MetricsRecorder
from quantum_trader.risk.ess import Activation, EmergencyStopSystem, NoVenueExecutor
from quantum_trader.risk.policy_service import PolicyService
from quantum_trader.stores.ports import EssState
from quantum_trader.stores.trades import TradeRecord

API_NOTE = "triggered through the HTTP API: every worker flattens its own positions"
_INT64_MAX = 2**63 - 1


def to_ns(moment: dt.datetime) -> int:
    """Nanoseconds since the epoch of ``moment`` (naive means UTC), clamped to int64."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    seconds = (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds()
    return max(0, min(_INT64_MAX, int(seconds * NANOS_PER_SECOND)))


def from_ns(ts_ns: int) -> dt.datetime | None:
    """The aware UTC datetime of ``ts_ns`` (None for 0 or less)."""
    if ts_ns <= 0:
        return None
    return dt.datetime.fromtimestamp(ts_ns / NANOS_PER_SECOND, tz=dt.UTC)


@dataclass(frozen=True, slots=True)
class Position:
    """An open position of one worker, valued at its last mark."""

    symbol: str
    worker: str
    quantity: float
    entry_price: float | None
    mark_price: float | None
    unrealized_pnl: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What ``/status`` and the event stream show: cached state plus the read model."""

    as_of_ns: int
    policy: Policy | None
    ess: EssState | None
    stores_reachable: bool
    bus_connected: bool | None
    workers: dict[str, WorkerStatus]
    expected: tuple[str, ...]
    stale_ns: int
    peak_equity: float
    max_drawdown: float
    last_point: EquityPoint | None
    orders_seen: int
    fills_seen: int

    def is_stale(self, status: WorkerStatus) -> bool:
        """True when ``status`` is older than the staleness window."""
        return self.as_of_ns - status.heartbeat_ns > self.stale_ns


class OperationsService:
    """Read and change the running system; see the module docstring."""

    def __init__(
        self,
        stores: StateStores,
        clock: Clock,
        *,
        read_model: ReadModel | None = None,
        audit: AuditRecorder | None = None,
        metrics: MetricsRecorder | None = None,
        audit_dir: Path | None = None,
        worker_stale_secs: float = 10.0,
    ) -> None:
        """Serve ``stores``; audit writes to ``audit`` and read the trail from ``audit_dir``."""
        self.stores = stores
        self.clock = clock
        self.read = read_model if read_model is not None else ReadModel()
        self.audit_dir = audit_dir
        self.policy_service = PolicyService(stores.policy, clock, audit, metrics)
        self.ess = EmergencyStopSystem(
            stores.ess, self.policy_service, NoVenueExecutor(), clock, audit, metrics, evaluators=()
        )
        self.stale_ns = int(worker_stale_secs * NANOS_PER_SECOND)
        self.bus_connected: bool | None = None
        """None without a bus; else whether the last poll reached it (set by the feed)."""
        self.closing = threading.Event()
        """Set on shutdown: event streams end."""
        self._lock = threading.Lock()
        self._policy: Policy | None = None
        self._ess: EssState | None = None
        self._reachable = False
        self._audit_events: deque[dict[str, Any]] = deque(maxlen=200)

    # ------------------------------------------------------------------ cached state
    def refresh(self) -> bool:
        """Re-read the policy and the latch; tell listeners what changed. False: unreachable."""
        try:
            policy = self.stores.policy.get()
            ess = self.stores.ess.load()
        except QuantumTraderError:
            with self._lock:
                self._reachable = False
            return False
        with self._lock:
            old_policy, old_ess = self._policy, self._ess
            self._policy, self._ess, self._reachable = policy, ess, True
        if old_policy is not None and old_policy.version != policy.version:
            self.read.notify("policy", policy_summary(policy))
        if old_ess is not None and old_ess != ess:
            self.read.notify("ess", {"active": ess.active, "reason": ess.reason})
        return True

    def snapshot(self) -> Snapshot:
        """The cached policy and latch with the read model, as of now."""
        with self._lock:
            policy, ess, reachable = self._policy, self._ess, self._reachable
        peak, max_drawdown = self.read.peak()
        return Snapshot(
            as_of_ns=self.clock.now_ns(),
            policy=policy,
            ess=ess,
            stores_reachable=reachable,
            bus_connected=self.bus_connected,
            workers=self.read.workers(),
            expected=self.read.expected,
            stale_ns=self.stale_ns,
            peak_equity=peak,
            max_drawdown=max_drawdown,
            last_point=self.read.last_point(),
            orders_seen=self.read.orders_seen,
            fills_seen=self.read.fills_seen,
        )

    def readiness(self) -> list[tuple[str, bool, str]]:
        """``(check, ok, detail)`` for the stores and for each expected worker's heartbeat."""
        checks: list[tuple[str, bool, str]] = []
        try:
            self.stores.policy.get()
            self.stores.ess.load()
        except QuantumTraderError as exc:
            checks.append(("stores", False, f"state stores unreachable: {exc}"))
        else:
            checks.append(("stores", True, ""))
        if self.bus_connected is not None:
            checks.append(("bus", self.bus_connected, "" if self.bus_connected else "bus down"))
        now = self.clock.now_ns()
        workers = self.read.workers()
        for wid in self.read.expected:
            status = workers.get(wid)
            if status is None:
                checks.append((f"worker {wid}", False, "no status heard yet"))
                continue
            age = (now - status.heartbeat_ns) / NANOS_PER_SECOND
            fresh = now - status.heartbeat_ns <= self.stale_ns
            detail = "" if fresh else f"last status {age:.1f} s ago"
            checks.append((f"worker {wid}", fresh, detail))
        return checks

    # ------------------------------------------------------------------ the book
    def positions(self) -> list[Position]:
        """Every worker's open positions, by symbol."""
        out = [
            Position(
                symbol=symbol,
                worker=status.worker,
                quantity=quantity,
                entry_price=status.entry_prices.get(symbol),
                mark_price=status.marks.get(symbol),
                unrealized_pnl=status.unrealized.get(symbol, 0.0),
            )
            for status in self.read.workers().values()
            for symbol, quantity in status.positions.items()
            if quantity
        ]
        return sorted(out, key=lambda p: (p.symbol, p.worker))

    def orders(
        self, *, limit: int = 100, symbol: str | None = None, worker: str | None = None
    ) -> list[dict[str, Any]]:
        """Recent orders from the bus, newest first."""
        out: list[dict[str, Any]] = []
        for order in reversed(self.read.orders()):
            if symbol is not None and order.get("symbol") != symbol:
                continue
            if worker is not None and order.get("worker") != worker:
                continue
            out.append(order)
            if len(out) >= limit:
                break
        return out

    def trades(
        self,
        *,
        symbol: str | None = None,
        status: Any = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        worker: str | None = None,
        limit: int = 100,
    ) -> list[TradeRecord]:
        """Stored trades matching the filters, newest entry first (at most ``limit``)."""
        records = self.stores.trades.list(
            symbol=symbol, status=status, since_ns=since_ns, until_ns=until_ns
        )
        out: list[TradeRecord] = []
        for record in reversed(records):
            if worker is not None and record.metadata.get("worker") != worker:
                continue
            out.append(record)
            if len(out) >= limit:
                break
        return out

    def equity(self, max_points: int) -> list[EquityPoint]:
        """The equity curve thinned to at most ``max_points`` (the newest point always kept)."""
        curve = self.read.curve()
        if len(curve) <= max_points:
            return curve
        step = -(-len(curve) // max_points)
        thinned = curve[:-1][::step]
        return [*thinned[: max_points - 1], curve[-1]]

    # ------------------------------------------------------------------ policy
    def policy(self) -> Policy:
        """The stored policy (read now)."""
        return self.policy_service.refresh()

    def update_policy(
        self,
        *,
        actor: str,
        reason: str,
        expected_version: int | None,
        limit_changes: Mapping[RiskMode | str, Mapping[str, Any]] | None = None,
        **changes: Any,
    ) -> Policy:
        """Change the policy by compare-and-set (ConflictError, ConfigError: nothing written)."""
        policy = self.policy_service.update(
            actor=actor,
            reason=reason,
            expected_version=expected_version,
            limit_changes=limit_changes,
            **changes,
        )
        self.refresh()
        return policy

    def mode_history(self, limit: int) -> Sequence[Policy]:
        """Stored policy versions, newest first."""
        return self.policy_service.history(limit)

    # ------------------------------------------------------------------ emergency stop
    def ess_state(self) -> EssState:
        """The latch (read now)."""
        return self.ess.state()

    def trigger(self, actor: str, reason: str) -> Activation:
        """Latch the ESS and halt; the workers flatten when they hear the broadcast."""
        activation = self.ess.trigger_manual(
            actor, reason, metadata={"executor": "none", "via": "api", "note": API_NOTE}
        )
        self.refresh()
        return activation

    def reset(self, actor: str, reason: str, resume: TradingState) -> bool:
        """Clear the latch and resume in ``resume``; False when it was not set."""
        done = self.ess.reset(actor, reason, resume)
        self.refresh()
        return done

    # ------------------------------------------------------------------ audit
    def audit(self, query: AuditQuery, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The newest ``limit`` records matching ``query``, newest first, and damaged lines."""
        if self.audit_dir is None or not self.audit_dir.is_dir():
            return [], 0
        stats = QueryStats()
        newest: deque[dict[str, Any]] = deque(maxlen=limit)
        newest.extend(iter_records(self.audit_dir, query, stats=stats))
        return list(reversed(newest)), stats.damaged

    def note_audit(self, records: Sequence[dict[str, Any]]) -> None:
        """Tell listeners about new audit records (the feed's tail of the trail)."""
        for record in records:
            self._audit_events.append(record)
            self.read.notify("audit", record)

    def recent_audit(self) -> list[dict[str, Any]]:
        """The audit records the feed saw last, oldest first."""
        return list(self._audit_events)


def policy_summary(policy: Policy) -> dict[str, Any]:
    """The fields of ``policy`` a dashboard shows beside the risk mode."""
    return {
        "version": policy.version,
        "mode": policy.mode.value,
        "state": policy.state.value,
        "effective_state": policy.effective_state.value,
        "updated_by": policy.updated_by,
        "reason": policy.reason,
    }
