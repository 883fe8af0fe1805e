"""Coordinator (AI HedgeFund OS, "ai-hfos"): health and drawdown in, risk mode out, no flapping.

Each ``cycle``:

1. **Assess health** (``risk.health``): every expected subsystem's report becomes a level; the
   levels combine into the system level (rule in ``risk.health``); a missing report is CRITICAL.
2. **Target mode** = the safer of two targets:

   - *health*: OPTIMAL → AGGRESSIVE if ``allow_aggressive`` else NORMAL; HEALTHY → NORMAL;
     DEGRADED → SAFE; CRITICAL and EMERGENCY → CRITICAL.
   - *stress*: ``max(drawdown / max_drawdown, daily_loss / max_daily_loss)`` with the limits of
     ``reference_mode`` (NORMAL by default): >= 0.75 → CRITICAL, >= 0.50 → SAFE, else no cap
     (within ``STRESS_TOLERANCE`` of a threshold counts as reaching it).
     The reference is fixed on purpose: measured against the active mode's own limits, a move
     to a safer (tighter) mode would raise the ratio by itself and cascade further down.

3. **Hysteresis**: a safer target applies at once, however many steps away. A riskier target
   must hold for ``up_cycles`` consecutive cycles, then the mode moves up **one** step and the
   count starts again; a cycle whose target is not riskier resets the count. So after any
   transition the next upward move is at least ``up_cycles`` cycles away, and a signal that
   hovers around a threshold moves the mode down at most once per ``up_cycles + 1`` cycles.
4. **Apply** through ``PolicyControl.set_mode`` (actor ``ai-hfos``, a reason naming the cause),
   which audits ``policy.changed``. PolicyService also counts ``risk_mode_transitions_total``;
   with a PolicyControl that does not, pass ``count_transitions=True``. A version conflict is
   reported in the result and the move is tried again next cycle.
5. **EMERGENCY** health activates the ESS (``subsystem_critical``) when it begins; the ESS
   latch then holds whatever health does.
6. **Self-healing** (``SelfHealing``, optional): a CRITICAL or EMERGENCY subsystem is restarted
   (at most once per ``restart_cooldown_secs``); DEGRADED or worse models switch to the fallback
   model (once per episode); DEGRADED or worse market data or execution pauses new entries for
   ``pause_entries_secs`` (renewed when the pause has run out). Each action is audited as
   ``system.state_changed`` and listed in the ``CycleResult``; a hook that raises is recorded,
   never fatal. Errors (a failed hook, a refused mode change, an audit write that failed) are
   listed in ``CycleResult.errors``; a cycle always completes its safety actions.
7. **Gauges**: ``subsystems_critical`` (EMERGENCY included) and ``subsystems_degraded``; a change
   of system level is audited as ``system.state_changed`` of ``system_health``.

Note the interplay with the ESS: the policy's limits tighten towards CRITICAL, and the ESS
evaluators read the *active* mode's limits, so once the coordinator has moved to a safer mode
the ESS fires at that mode's (lower) drawdown limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Protocol

from quantum_trader.domain.clock import NANOS_PER_SECOND, Clock
from quantum_trader.domain.errors import ConfigError, QuantumTraderError
from quantum_trader.domain.policy import MODE_ORDER, ModeLimits, RiskMode
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.metrics.recorder import MetricsRecorder
from quantum_trader.risk.drawdown import DrawdownReading
from quantum_trader.risk.ess import EmergencyStopSystem, EssReason, PolicyControl, Severity
from quantum_trader.risk.health import (
    HealthAssessment,
    Subsystem,
    SubsystemHealth,
    SystemHealth,
    assess,
    at_least,
)

AI_HFOS_ACTOR = "ai-hfos"
SAFE_STRESS = 0.50
CRITICAL_STRESS = 0.75
# A ratio this close below a threshold counts as reaching it: 0.15 / 0.20 computes to
# 0.7499999999999999, and erring towards the safer mode is the right side to err on.
STRESS_TOLERANCE = 1e-9
_RANK = {mode: index for index, mode in enumerate(MODE_ORDER)}  # 0 is the riskiest


def safer(a: RiskMode, b: RiskMode) -> RiskMode:
    """Return the safer of two risk modes."""
    return a if _RANK[a] >= _RANK[b] else b


def stress(reading: DrawdownReading, limits: ModeLimits) -> float:
    """Return how close ``reading`` is to ``limits``: the larger of the two used fractions.

    A zero limit counts as fully used (1.0) once there is any drawdown or loss.
    """

    def used(value: float, limit: float) -> float:
        if limit > 0.0:
            return value / limit
        return 1.0 if value > 0.0 else 0.0

    return max(
        used(reading.drawdown, limits.max_drawdown), used(reading.daily_loss, limits.max_daily_loss)
    )


class HealingKind(StrEnum):
    """A self-healing action the coordinator can take."""

    RESTART = "restart"
    FALLBACK_MODEL = "fallback_model"
    PAUSE_ENTRIES = "pause_entries"


class SelfHealing(Protocol):
    """Hooks the engine provides so the coordinator can repair what it can."""

    def restart(self, subsystem: Subsystem) -> None:
        """Reconnect or restart ``subsystem``."""
        ...

    def use_fallback_model(self) -> None:
        """Switch signal generation to the fallback model."""
        ...

    def pause_entries(self, until_ns: int) -> None:
        """Send no position-opening orders until ``until_ns``."""
        ...


@dataclass(frozen=True, slots=True)
class HealingAction:
    """One self-healing hook called in a cycle; ``error`` is set when the hook raised."""

    kind: HealingKind
    subsystem: Subsystem | None = None
    until_ns: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What one coordinator cycle saw and did."""

    ts_ns: int
    health: HealthAssessment
    stress: float
    mode_before: RiskMode
    target: RiskMode
    mode_after: RiskMode
    up_streak: int
    emergency_triggered: bool = False
    actions: tuple[HealingAction, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def transitioned(self) -> bool:
        """True when the cycle changed the risk mode."""
        return self.mode_after is not self.mode_before


class Coordinator:
    """Move the system between risk modes from health and drawdown, with hysteresis."""

    def __init__(
        self,
        policy: PolicyControl,
        ess: EmergencyStopSystem,
        clock: Clock,
        audit: AuditRecorder | None = None,
        metrics: MetricsRecorder | None = None,
        *,
        up_cycles: int = 5,
        allow_aggressive: bool = False,
        reference_mode: RiskMode = RiskMode.NORMAL,
        expected: Iterable[Subsystem] = tuple(Subsystem),
        self_healing: SelfHealing | None = None,
        restart_cooldown_secs: float = 60.0,
        pause_entries_secs: float = 300.0,
        count_transitions: bool = False,
    ) -> None:
        """Wire the coordinator.

        Args:
            policy: Reads the mode and applies changes (audits ``policy.changed``).
            ess: Activated when system health turns EMERGENCY.
            clock: Stamps cycles and times cooldowns and pauses.
            audit: Receives health changes and healing actions (None: not audited).
            metrics: Subsystem gauges (and transitions with ``count_transitions``).
            up_cycles: Consecutive cycles a riskier target must hold per upward step (>= 1).
            allow_aggressive: Whether OPTIMAL health may target AGGRESSIVE.
            reference_mode: Whose limits drawdown and daily loss are measured against.
            expected: Subsystems that must report; a missing one counts as CRITICAL.
            self_healing: Repair hooks (None: no self-healing).
            restart_cooldown_secs: Least time between two restarts of one subsystem.
            pause_entries_secs: How long one pause of new entries lasts.
            count_transitions: Record ``risk_mode_transitions_total`` here (PolicyService
                already does; set True only for a PolicyControl that does not).
        """
        if isinstance(up_cycles, bool) or not isinstance(up_cycles, int) or up_cycles < 1:
            raise ConfigError(f"up_cycles must be an integer >= 1, got {up_cycles!r}")
        for name, value in (
            ("restart_cooldown_secs", restart_cooldown_secs),
            ("pause_entries_secs", pause_entries_secs),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be > 0, got {value!r}")
        self._policy = policy
        self._ess = ess
        self._clock = clock
        self._audit = audit
        self._metrics = metrics
        self.up_cycles = up_cycles
        self.allow_aggressive = allow_aggressive
        self.reference_mode = RiskMode(reference_mode)
        self.expected = tuple(expected)
        self._healing = self_healing
        self._restart_cooldown_ns = round(restart_cooldown_secs * NANOS_PER_SECOND)
        self._pause_ns = round(pause_entries_secs * NANOS_PER_SECOND)
        self._count_transitions = count_transitions
        self._up_streak = 0
        self._last_health: SystemHealth | None = None
        self._last_restart_ns: dict[Subsystem, int] = {}
        self._fallback_active = False
        self._paused_until_ns = 0
        self._errors: list[str] = []

    def health_target(self, health: SystemHealth) -> RiskMode:
        """Return the mode system health alone allows."""
        if health is SystemHealth.OPTIMAL:
            return RiskMode.AGGRESSIVE if self.allow_aggressive else RiskMode.NORMAL
        if health is SystemHealth.HEALTHY:
            return RiskMode.NORMAL
        if health is SystemHealth.DEGRADED:
            return RiskMode.SAFE
        return RiskMode.CRITICAL

    @staticmethod
    def stress_target(level: float) -> RiskMode | None:
        """Return the mode drawdown stress caps the system at (None: no cap)."""
        if level >= CRITICAL_STRESS - STRESS_TOLERANCE:
            return RiskMode.CRITICAL
        if level >= SAFE_STRESS - STRESS_TOLERANCE:
            return RiskMode.SAFE
        return None

    def cycle(
        self,
        health_inputs: Iterable[SubsystemHealth],
        drawdown: DrawdownReading | None = None,
        ts_ns: int | None = None,
    ) -> CycleResult:
        """Run one cycle on the subsystems' reports and the latest drawdown reading."""
        now = self._clock.now_ns() if ts_ns is None else ts_ns
        errors: list[str] = []
        self._errors = errors
        health = assess(health_inputs, self.expected)
        policy = self._policy.current()
        level = 0.0 if drawdown is None else stress(drawdown, policy.limits[self.reference_mode])
        target = self.health_target(health.system)
        capped = self.stress_target(level)
        if capped is not None:
            target = safer(target, capped)
        before = policy.mode
        after = self._apply(before, target, health, level, errors)
        triggered = self._emergency(health, errors)
        actions = () if self._healing is None else self._heal(self._healing, health, now)
        self._gauges(health)
        return CycleResult(
            ts_ns=now,
            health=health,
            stress=level,
            mode_before=before,
            target=target,
            mode_after=after,
            up_streak=self._up_streak,
            emergency_triggered=triggered,
            actions=actions,
            errors=tuple(errors),
        )

    # ------------------------------------------------------------------ mode
    def _apply(
        self,
        before: RiskMode,
        target: RiskMode,
        health: HealthAssessment,
        level: float,
        errors: list[str],
    ) -> RiskMode:
        if _RANK[target] > _RANK[before]:
            self._up_streak = 0
            return self._set_mode(before, target, health, level, errors, "down")
        if _RANK[target] == _RANK[before]:
            self._up_streak = 0
            return before
        self._up_streak += 1
        if self._up_streak < self.up_cycles:
            return before
        self._up_streak = 0
        step = MODE_ORDER[_RANK[before] - 1]
        return self._set_mode(before, step, health, level, errors, "up")

    def _set_mode(
        self,
        before: RiskMode,
        mode: RiskMode,
        health: HealthAssessment,
        level: float,
        errors: list[str],
        direction: str,
    ) -> RiskMode:
        if direction == "down":
            why = f"risk down: health {health.system}, drawdown stress {level:.2f}"
        else:
            why = (
                f"risk up one step after {self.up_cycles} calm cycles: health {health.system}, "
                f"drawdown stress {level:.2f}"
            )
        try:
            self._policy.set_mode(mode, actor=AI_HFOS_ACTOR, reason=why)
        except QuantumTraderError as exc:
            errors.append(f"set_mode {mode} failed: {type(exc).__name__}: {exc}")
            # The change may stand even so (PolicyService writes before it audits): ask.
            try:
                return self._policy.current().mode
            except QuantumTraderError:
                return before
        if self._count_transitions and self._metrics is not None:
            self._metrics.record_risk_mode_transition(before, mode)
        return mode

    # ------------------------------------------------------------------ emergency
    def _emergency(self, health: HealthAssessment, errors: list[str]) -> bool:
        emergency = health.system is SystemHealth.EMERGENCY
        begins = emergency and self._last_health is not SystemHealth.EMERGENCY
        if self._last_health is not None and health.system is not self._last_health:
            self._audit_state(
                "system_health", self._last_health.value, health.system.value, "health assessed"
            )
        self._last_health = health.system
        if not begins:
            return False
        try:
            self._ess.trigger(
                EssReason.SUBSYSTEM_CRITICAL,
                Severity.EMERGENCY,
                f"system health emergency: {health.describe_critical()}",
                actor=AI_HFOS_ACTOR,
            )
        except QuantumTraderError as exc:
            errors.append(f"ess trigger raised: {type(exc).__name__}: {exc}")
        return True

    # ------------------------------------------------------------------ self-healing
    def _heal(
        self, hooks: SelfHealing, health: HealthAssessment, now: int
    ) -> tuple[HealingAction, ...]:
        actions: list[HealingAction] = []
        for subsystem in health.critical:
            last = self._last_restart_ns.get(subsystem)
            if last is None or now - last >= self._restart_cooldown_ns:
                self._last_restart_ns[subsystem] = now
                actions.append(
                    self._call(HealingKind.RESTART, subsystem, 0, partial(hooks.restart, subsystem))
                )
        models = health.subsystems.get(Subsystem.MODELS, SystemHealth.HEALTHY)
        models_bad = at_least(models, SystemHealth.DEGRADED)
        if models_bad and not self._fallback_active:
            actions.append(
                self._call(
                    HealingKind.FALLBACK_MODEL, Subsystem.MODELS, 0, hooks.use_fallback_model
                )
            )
        self._fallback_active = models_bad
        blind = [
            s
            for s in (Subsystem.MARKET_DATA, Subsystem.EXECUTION)
            if at_least(health.subsystems.get(s, SystemHealth.HEALTHY), SystemHealth.DEGRADED)
        ]
        if blind and now >= self._paused_until_ns:
            until = now + self._pause_ns
            self._paused_until_ns = until
            actions.append(
                self._call(
                    HealingKind.PAUSE_ENTRIES, blind[0], until, partial(hooks.pause_entries, until)
                )
            )
        return tuple(actions)

    def _call(
        self, kind: HealingKind, subsystem: Subsystem, until_ns: int, hook: Callable[[], None]
    ) -> HealingAction:
        error = ""
        try:
            hook()
        except Exception as exc:  # a repair that fails must not stop the coordinator
            error = f"{type(exc).__name__}: {exc}"
        action = HealingAction(kind, subsystem, until_ns, error)
        self._audit_state(
            subsystem.value,
            "unhealthy",
            kind.value if not error else f"{kind.value}_failed",
            f"self-healing: {kind.value}" + (f" ({error})" if error else ""),
            {"until_ns": until_ns} if until_ns else None,
        )
        return action

    # ------------------------------------------------------------------ records
    def _audit_state(
        self,
        component: str,
        old: str,
        new: str,
        reason: str,
        metadata: dict[str, int] | None = None,
    ) -> None:
        if self._audit is None:
            return
        try:
            self._audit.system_state_changed(
                actor=AI_HFOS_ACTOR,
                component=component,
                old=old,
                new=new,
                reason=reason,
                metadata=metadata,
            )
        except QuantumTraderError as exc:  # the cycle's safety actions must still complete
            self._errors.append(f"audit {component} failed: {type(exc).__name__}: {exc}")

    def _gauges(self, health: HealthAssessment) -> None:
        if self._metrics is not None:
            self._metrics.set_subsystem_health(
                critical=len(health.critical), degraded=len(health.degraded)
            )
