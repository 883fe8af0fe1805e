"""Supervisor: the one process of a multi-process run that watches the whole book.

Workers each see their own wallet; the supervisor sees the sum. Every cycle it

1. reads the workers' ``worker.status`` events from the bus (equity, positions, market time);
2. scores the subsystems: execution from the workers' heartbeats (a worker silent for
   ``worker_stale_secs`` of wall time is failed: DEGRADED while some are alive, CRITICAL when
   none is), stores and bus from whether Redis answered, the rest healthy;
3. updates the drawdown monitor with the total equity at the workers' market time (the peak is
   durable in the shared equity-marks store);
4. runs the coordinator (risk mode by health and drawdown, with hysteresis; EMERGENCY health
   activates the ESS) and the ESS evaluators (drawdown, daily loss, health).

When the ESS activates here, the latch is written and broadcast; the supervisor has no venue
to flatten, so its executor does nothing and every worker enforces the latch on its own book
(cancel, flatten) the moment it hears of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quantum_trader.bus.events import Event
from quantum_trader.domain.clock import NANOS_PER_SECOND, Clock
from quantum_trader.domain.errors import QuantumTraderError
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.metrics.recorder import MetricsRecorder
from quantum_trader.risk.coordinator import Coordinator, CycleResult
from quantum_trader.risk.drawdown import DrawdownMonitor, DrawdownReading
from quantum_trader.risk.ess import (
    DailyLossEvaluator,
    DrawdownEvaluator,
    EmergencyStopSystem,
    HealthEvaluator,
    NoVenueExecutor,
)
from quantum_trader.risk.health import Subsystem, SubsystemHealth, SystemHealth, assess
from quantum_trader.risk.policy_service import PolicyService
from quantum_trader.stores.ports import EquityMarksStore, EssStateStore, PolicyStore


@dataclass(slots=True)
class WorkerView:
    """What the supervisor last heard from one worker."""

    equity: float
    market_ts: int
    seen_wall_ns: int
    positions: dict[str, float] = field(default_factory=dict)
    halted: bool = False
    model_score: float | None = None
    model_detail: str = ""


class Supervisor:
    """Coordinator + ESS over the sum of the workers' books; see the module docstring."""

    def __init__(
        self,
        worker_ids: tuple[str, ...],
        policy_store: PolicyStore,
        ess_store: EssStateStore,
        marks_store: EquityMarksStore,
        clock: Clock,
        *,
        audit: AuditRecorder | None = None,
        metrics: MetricsRecorder | None = None,
        worker_stale_secs: float = 10.0,
        up_cycles: int = 5,
        ess_enabled: bool = True,
        probe: Callable[[], bool] | None = None,
    ) -> None:
        """Wire the supervisor for ``worker_ids``; ``probe()`` says whether Redis answers."""
        self.worker_ids = worker_ids
        self.clock = clock
        self.policy = PolicyService(policy_store, clock, audit, metrics, max_age_secs=1.0)
        self.ess = EmergencyStopSystem(
            ess_store,
            self.policy,
            NoVenueExecutor(),
            clock,
            audit,
            metrics,
            evaluators=[DrawdownEvaluator(), DailyLossEvaluator(), HealthEvaluator()]
            if ess_enabled
            else [],
        )
        self.coordinator = Coordinator(
            self.policy, self.ess, clock, audit, metrics, up_cycles=up_cycles
        )
        self.drawdown = DrawdownMonitor(marks_store, clock)
        self.workers: dict[str, WorkerView] = {}
        self.stale_ns = int(worker_stale_secs * NANOS_PER_SECOND)
        self._started_ns = clock.now_ns()
        self._probe = probe
        self.last_cycle: CycleResult | None = None
        self.last_reading: DrawdownReading | None = None

    def on_status(self, event: Event) -> None:
        """Handle one ``worker.status`` event (subscribe this to the bus)."""
        p: Any = event.payload
        wid = str(p.get("worker", ""))
        if wid not in self.worker_ids:
            return
        model = p.get("model_health")
        self.workers[wid] = WorkerView(
            equity=float(p["equity"]),
            market_ts=int(p["market_ts"]),
            seen_wall_ns=self.clock.now_ns(),
            positions={str(k): float(v) for k, v in dict(p.get("positions") or {}).items()},
            halted=bool(p.get("halted", False)),
            model_score=float(model["score"]) if isinstance(model, dict) else None,
            model_detail=str(model.get("detail", "")) if isinstance(model, dict) else "",
        )

    def health(self) -> list[SubsystemHealth]:
        """The subsystems' reports as the supervisor sees them now."""
        now = self.clock.now_ns()
        alive = [w for w in self.workers.values() if now - w.seen_wall_ns <= self.stale_ns]
        # A worker not heard from yet is starting, not silent, until the stale time has passed.
        starting = now - self._started_ns <= self.stale_ns
        unheard = len(self.worker_ids) - len(self.workers)
        missing = len(self.worker_ids) - len(alive) - (unheard if starting else 0)
        if not self.workers:
            execution = SubsystemHealth.at(
                Subsystem.EXECUTION,
                SystemHealth.HEALTHY if starting else SystemHealth.CRITICAL,
                "starting" if starting else "no worker has reported",
            )
        elif not alive:
            execution = SubsystemHealth.at(
                Subsystem.EXECUTION, SystemHealth.CRITICAL, "no worker is reporting"
            )
        elif missing:
            execution = SubsystemHealth.at(
                Subsystem.EXECUTION, SystemHealth.DEGRADED, f"{missing} worker(s) silent"
            )
        else:
            execution = SubsystemHealth.at(Subsystem.EXECUTION, SystemHealth.HEALTHY)
        reachable = True if self._probe is None else self._probe()
        shared = SystemHealth.HEALTHY if reachable else SystemHealth.CRITICAL
        detail = "" if reachable else "redis unreachable"
        return [
            SubsystemHealth.at(Subsystem.MARKET_DATA, SystemHealth.HEALTHY, "replay"),
            execution,
            self._models(alive),
            SubsystemHealth.at(Subsystem.RISK, SystemHealth.HEALTHY),
            SubsystemHealth.at(Subsystem.STORES, shared, detail),
            SubsystemHealth.at(Subsystem.BUS, shared, detail),
        ]

    @staticmethod
    def _models(alive: list[WorkerView]) -> SubsystemHealth:
        """The worst model health any live worker reports (rule-based workers report none)."""
        scored = [w for w in alive if w.model_score is not None]
        if not scored:
            return SubsystemHealth.at(Subsystem.MODELS, SystemHealth.HEALTHY, "no model in use")
        worst = min(scored, key=lambda w: w.model_score or 0.0)
        score = min(max(worst.model_score or 0.0, 0.0), 1.0)
        return SubsystemHealth(Subsystem.MODELS, score, detail=worst.model_detail)

    def total_equity(self) -> tuple[float, int] | None:
        """Sum of the workers' equity and the earliest market time among them (None: not all
        workers have reported yet, so a partial sum cannot be mistaken for a drawdown)."""
        if len(self.workers) < len(self.worker_ids):
            return None
        views = self.workers.values()
        return sum(w.equity for w in views), min(w.market_ts for w in views)

    def cycle(self) -> CycleResult | None:
        """One cycle: drawdown, coordinator, ESS. None when it could not run (stores down)."""
        reports = self.health()
        reading = None
        total = self.total_equity()
        try:
            if total is not None:
                reading = self.drawdown.update(total[0], total[1])
                self.last_reading = reading
            result = self.coordinator.cycle(reports, reading)
            self.last_cycle = result
            if not self.ess.is_active():
                self.ess.check(drawdown=reading, health=assess(reports))
        except QuantumTraderError:
            return None  # Redis is down: the next cycle tries again; workers fail closed
        return result
