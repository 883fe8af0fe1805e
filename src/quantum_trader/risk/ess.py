"""Emergency Stop System (ESS): evaluators, activation (latch, halt, cancel, flatten), reset.

Evaluators look at one ``EssInputs`` snapshot each and return a ``Trigger`` or None:
``HealthEvaluator`` (system health at EMERGENCY, or CRITICAL if so configured),
``DrawdownEvaluator``, ``DailyLossEvaluator``, ``ExecutionErrorsEvaluator`` (N errors or rejects
within a window) and ``StaleDataEvaluator``; a person triggers by hand with ``trigger_manual``.
Every threshold is inclusive: a value *at* the limit fires. An evaluator fires on the **start**
of a breach and re-arms once its condition clears, so one breach gives one trigger, however many
checks see it, and a breach that is still going on when a person resets the ESS does not fire
again at once (the drawdown from a durable peak may never clear while flat). A new process
starts armed: an ongoing breach fires once on its first check (conservative).

Activation order (``trigger``), and why:

1. **persist the latch** (``EssState(active=True)``). First, so that a crash or an error in any
   later step restarts latched, and every process that reads the latch (``is_active``) stops
   sending orders at once; ``enforce`` at start-up finishes an interrupted activation.
2. **halt** (``PolicyControl.set_state(HALTED, actor="ess")``, retried on a version conflict):
   the RiskGuard now denies every new order, so nothing new is opened while we clean up.
3. **cancel all open orders**: a resting order could otherwise fill after the flatten and open
   a position again.
4. **flatten**: close every position with a reduce-only market order. A failed close (False or
   an exception) is retried up to ``max_flatten_attempts`` times in all; reduce-only makes a
   retry with the original quantity safe (it cannot overshoot into a new position). No sleeps:
   back-off belongs to the executor.
5. **audit** ``emergency.triggered``: severity, reason code, positions closed, orders canceled,
   and in its metadata every flatten attempt (``flatten_attempts``: symbol, quantity, attempt,
   filled, error), the closes that still failed after the last attempt (``failed_closes``) and
   any step that raised (``errors``). One record per activation: writing one fsynced record
   per attempt would slow the flatten, and the latch (step 1) already covers a crash mid-way.
6. **metrics**: ``emergency_stops_total{reason}`` and ``emergency_stop_active`` = 1.

The latch is written once, before the flatten, not again after it: ``EssState`` holds no
flatten outcome (that is in the audit record), and a second write could undo a reset that a
person made in the meantime. Steps 2–4 never stop each other: an error in one is recorded and
the next still runs (a failing cancel must not prevent the flatten). An audit failure
(AuditUnavailableError) propagates after the metrics are set; trading is halted by then.

A trigger while the latch is set changes nothing but ``ignored_triggers`` (persisted). The
latch clears only through ``reset(actor, reason)``: it writes the latch inactive first, then
sets the trading state to ``resume`` (REDUCING by default), audits ``emergency.recovered`` and
sets the gauge to 0. Latch first: if setting the state then fails, the system is unlatched but
still HALTED (nothing trades), never latched but trading. Nothing resets automatically.

``EssState.reason`` holds ``"<reason code>: <detail>"``. ``is_active`` reads the store on every
call, so a latch set by another process (``qtrader ess trigger``) is seen; a store that cannot
be read counts as active (fail closed). Activation across processes is not atomic: two
processes may both activate; each flattens (idempotent) and both activations are counted.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from quantum_trader.domain.clock import NANOS_PER_SECOND, Clock
from quantum_trader.domain.errors import ConfigError, ConflictError
from quantum_trader.domain.policy import Policy, RiskMode, TradingState
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.metrics.recorder import MetricsRecorder
from quantum_trader.risk.drawdown import DrawdownReading
from quantum_trader.risk.health import HealthAssessment, SystemHealth, at_least
from quantum_trader.stores.ports import EssState, EssStateStore

ESS_ACTOR = "ess"
HALT_ATTEMPTS = 3  # a version conflict on the halt is retried this many times in all


class EssReason(StrEnum):
    """Why the emergency stop fired (the ``reason`` label of ``emergency_stops_total``)."""

    DRAWDOWN = "drawdown"
    DAILY_LOSS = "daily_loss"
    EXECUTION_ERRORS = "execution_errors"
    STALE_MARKET_DATA = "stale_market_data"
    SUBSYSTEM_CRITICAL = "subsystem_critical"
    MANUAL = "manual"


class Severity(StrEnum):
    """How serious a trigger is: HIGH (operational), CRITICAL (capital), EMERGENCY."""

    HIGH = "high"
    CRITICAL = "critical"
    EMERGENCY = "emergency"


@dataclass(frozen=True, slots=True)
class Trigger:
    """An evaluator's verdict: stop, because of ``reason_code``; ``detail`` says by how much."""

    reason_code: EssReason
    severity: Severity
    detail: str = ""


@dataclass(frozen=True, slots=True)
class EssInputs:
    """What the evaluators see in one check; an input left None is not evaluated.

    ``last_market_data_ns`` is when the last market data arrived (0 if none has yet);
    ``policy`` supplies the active mode's limits to evaluators built without explicit ones.
    """

    ts_ns: int
    drawdown: DrawdownReading | None = None
    last_market_data_ns: int | None = None
    health: HealthAssessment | None = None
    policy: Policy | None = None


class EssEvaluator(Protocol):
    """One emergency condition."""

    def evaluate(self, inputs: EssInputs) -> Trigger | None:
        """Return a Trigger when a breach starts, else None."""
        ...


class _Edge:
    """Fire on the start of a breach only; re-arm when the condition clears."""

    def __init__(self) -> None:
        self._in_breach = False

    @property
    def in_breach(self) -> bool:
        """True while the last evaluated input breached (the evaluator is not armed)."""
        return self._in_breach

    def _edge(self, breached: bool) -> bool:
        fire = breached and not self._in_breach
        self._in_breach = breached
        return fire


def _limit(explicit: float | None, inputs: EssInputs, name: str) -> float:
    if explicit is not None:
        return explicit
    if inputs.policy is None:
        raise ValueError(f"no {name} limit: build the evaluator with one or pass a policy")
    value: float = getattr(inputs.policy.active_limits, name)
    return value


class DrawdownEvaluator(_Edge):
    """Fire when drawdown >= the limit (default: the active mode's ``max_drawdown``)."""

    def __init__(self, max_drawdown: float | None = None) -> None:
        """Use ``max_drawdown`` (a ratio) or, when None, the policy's active limit."""
        super().__init__()
        self.max_drawdown = max_drawdown

    def evaluate(self, inputs: EssInputs) -> Trigger | None:
        """Return a CRITICAL trigger when the drawdown reaches the limit."""
        reading = inputs.drawdown
        if reading is None:
            return None
        limit = _limit(self.max_drawdown, inputs, "max_drawdown")
        if not self._edge(reading.drawdown >= limit):
            return None
        return Trigger(
            EssReason.DRAWDOWN,
            Severity.CRITICAL,
            f"drawdown {reading.drawdown:.2%} >= limit {limit:.2%} "
            f"(equity {reading.equity:.2f}, peak {reading.peak:.2f})",
        )


class DailyLossEvaluator(_Edge):
    """Fire when the loss since the UTC day start >= the limit (default: ``max_daily_loss``)."""

    def __init__(self, max_daily_loss: float | None = None) -> None:
        """Use ``max_daily_loss`` (a ratio) or, when None, the policy's active limit."""
        super().__init__()
        self.max_daily_loss = max_daily_loss

    def evaluate(self, inputs: EssInputs) -> Trigger | None:
        """Return a CRITICAL trigger when the daily loss reaches the limit."""
        reading = inputs.drawdown
        if reading is None:
            return None
        limit = _limit(self.max_daily_loss, inputs, "max_daily_loss")
        if not self._edge(reading.daily_loss >= limit):
            return None
        return Trigger(
            EssReason.DAILY_LOSS,
            Severity.CRITICAL,
            f"daily loss {reading.daily_loss:.2%} >= limit {limit:.2%} "
            f"(equity {reading.equity:.2f}, day start {reading.day_start_equity:.2f})",
        )


class ExecutionErrorsEvaluator(_Edge):
    """Fire when ``max_errors`` execution errors or rejects fall within ``window_secs``.

    The window is inclusive: an error exactly ``window_secs`` old still counts. Only the last
    ``max_errors`` timestamps are kept, so memory is bounded however many errors arrive.
    """

    def __init__(self, max_errors: int = 10, window_secs: float = 60.0) -> None:
        """Count up to ``max_errors`` (>= 1) errors within ``window_secs`` (> 0)."""
        super().__init__()
        if isinstance(max_errors, bool) or not isinstance(max_errors, int) or max_errors < 1:
            raise ConfigError(f"max_errors must be an integer >= 1, got {max_errors!r}")
        if not (math.isfinite(window_secs) and window_secs > 0):
            raise ConfigError(f"window_secs must be > 0, got {window_secs!r}")
        self.max_errors = max_errors
        self.window_secs = window_secs
        self._window_ns = round(window_secs * NANOS_PER_SECOND)
        self._errors: deque[int] = deque(maxlen=max_errors)
        self.errors_total = 0
        self.rejects_total = 0

    def record_error(self, ts_ns: int) -> None:
        """Count an execution failure (timeout, exchange error) at ``ts_ns``."""
        self._errors.append(ts_ns)
        self.errors_total += 1

    def record_reject(self, ts_ns: int) -> None:
        """Count an order the venue rejected at ``ts_ns``."""
        self._errors.append(ts_ns)
        self.rejects_total += 1

    def recent(self, ts_ns: int) -> int:
        """Return how many of the kept errors are within the window ending at ``ts_ns``."""
        oldest = ts_ns - self._window_ns
        return sum(1 for ts in self._errors if ts >= oldest)

    def evaluate(self, inputs: EssInputs) -> Trigger | None:
        """Return a HIGH trigger when the window holds ``max_errors`` errors."""
        errors = self._errors
        breached = len(errors) == self.max_errors and errors[0] >= inputs.ts_ns - self._window_ns
        if not self._edge(breached):
            return None
        return Trigger(
            EssReason.EXECUTION_ERRORS,
            Severity.HIGH,
            f"{self.max_errors} execution errors or rejects within {self.window_secs:g}s",
        )


class StaleDataEvaluator(_Edge):
    """Fire when the last market data is ``max_age_secs`` old or older."""

    def __init__(self, max_age_secs: float = 300.0) -> None:
        """Allow market data up to (not including) ``max_age_secs`` (> 0) old."""
        super().__init__()
        if not (math.isfinite(max_age_secs) and max_age_secs > 0):
            raise ConfigError(f"max_age_secs must be > 0, got {max_age_secs!r}")
        self.max_age_secs = max_age_secs
        self._max_age_ns = round(max_age_secs * NANOS_PER_SECOND)

    def evaluate(self, inputs: EssInputs) -> Trigger | None:
        """Return a HIGH trigger when the market data reaches the maximum age."""
        last = inputs.last_market_data_ns
        if last is None:
            return None
        age_ns = inputs.ts_ns - last
        if not self._edge(age_ns >= self._max_age_ns):
            return None
        return Trigger(
            EssReason.STALE_MARKET_DATA,
            Severity.HIGH,
            f"last market data {age_ns / NANOS_PER_SECOND:.3f}s old "
            f">= {self.max_age_secs:g}s allowed",
        )


class HealthEvaluator(_Edge):
    """Fire when system health reaches ``trigger_at`` (EMERGENCY by default).

    CRITICAL health is the coordinator's to handle (CRITICAL risk mode: reduce only); pass
    ``trigger_at=SystemHealth.CRITICAL`` to halt on it instead.
    """

    def __init__(self, trigger_at: SystemHealth = SystemHealth.EMERGENCY) -> None:
        """Fire at ``trigger_at`` (CRITICAL or EMERGENCY)."""
        super().__init__()
        if not at_least(trigger_at, SystemHealth.CRITICAL):
            raise ConfigError(f"HealthEvaluator fires at critical or emergency, not {trigger_at}")
        self.trigger_at = trigger_at

    def evaluate(self, inputs: EssInputs) -> Trigger | None:
        """Return a trigger naming the critical subsystems when health reaches the threshold."""
        health = inputs.health
        if health is None:
            return None
        if not self._edge(at_least(health.system, self.trigger_at)):
            return None
        severity = (
            Severity.EMERGENCY if health.system is SystemHealth.EMERGENCY else Severity.CRITICAL
        )
        return Trigger(
            EssReason.SUBSYSTEM_CRITICAL,
            severity,
            f"system health {health.system}: {health.describe_critical()}",
        )


def default_evaluators() -> list[EssEvaluator]:
    """Return one of each evaluator with its default threshold, in priority order."""
    return [
        HealthEvaluator(),
        DrawdownEvaluator(),
        DailyLossEvaluator(),
        ExecutionErrorsEvaluator(),
        StaleDataEvaluator(),
    ]


class PolicyControl(Protocol):
    """The part of the policy service the safety core drives (PolicyService satisfies it)."""

    def current(self) -> Policy:
        """Return the current policy."""
        ...

    def set_mode(self, mode: RiskMode, *, actor: str, reason: str) -> object:
        """Switch the active risk mode (audited by the implementation)."""
        ...

    def set_state(self, state: TradingState, *, actor: str, reason: str) -> object:
        """Set the trading state (audited by the implementation)."""
        ...


class FlattenExecutor(Protocol):
    """What the ESS needs from the exchange side to stop trading."""

    def cancel_all_orders(self) -> int:
        """Cancel every open order; return how many were canceled."""
        ...

    def open_positions(self) -> Mapping[str, float]:
        """Return the open positions, symbol to signed quantity (short is negative)."""
        ...

    def close_position(self, symbol: str, quantity: float) -> bool:
        """Close the signed position ``quantity`` with a reduce-only market order.

        Return True when the close filled or was accepted; False (or raise) when it did not.
        """
        ...


class NoVenueExecutor:
    """The executor of a process that reaches no venue (the CLI, the API, the supervisor).

    It cancels and closes nothing and reports no positions: such a process only writes the
    latch, and the processes that trade see it (broadcast, or their next read) and flatten their
    own books with ``enforce``.
    """

    def cancel_all_orders(self) -> int:
        """Cancel nothing (no venue connected)."""
        return 0

    def open_positions(self) -> Mapping[str, float]:
        """Report no positions: this process cannot see them."""
        return {}

    def close_position(self, symbol: str, quantity: float) -> bool:
        """Close nothing (never called: no positions are reported)."""
        return False


@dataclass(frozen=True, slots=True)
class CloseAttempt:
    """One reduce-only close sent during a flatten."""

    symbol: str
    quantity: float
    attempt: int
    filled: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class FailedClose:
    """A position still open after the last allowed close attempt."""

    symbol: str
    quantity: float
    attempts: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class StopReport:
    """What halting, canceling and flattening did; ``errors`` lists steps that raised."""

    orders_canceled: int = 0
    positions_closed: tuple[str, ...] = ()
    failed_closes: tuple[FailedClose, ...] = ()
    attempts: tuple[CloseAttempt, ...] = ()
    errors: tuple[str, ...] = ()

    def metadata(self) -> dict[str, Any]:
        """Return the audit metadata for this report (JSON-able)."""
        return {
            "flatten_attempts": [
                {
                    "symbol": a.symbol,
                    "quantity": a.quantity,
                    "attempt": a.attempt,
                    "filled": a.filled,
                    "error": a.error,
                }
                for a in self.attempts
            ],
            "failed_closes": [
                {
                    "symbol": f.symbol,
                    "quantity": f.quantity,
                    "attempts": f.attempts,
                    "error": f.error,
                }
                for f in self.failed_closes
            ],
            "errors": list(self.errors),
        }


@dataclass(frozen=True, slots=True)
class Activation:
    """The outcome of a trigger: activated, or ignored because the latch was already set."""

    activated: bool
    trigger: Trigger
    actor: str
    ts_ns: int
    stop: StopReport = field(default_factory=StopReport)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


class EmergencyStopSystem:
    """The latched emergency stop; see the module docstring for the activation order."""

    def __init__(
        self,
        store: EssStateStore,
        policy: PolicyControl,
        executor: FlattenExecutor,
        clock: Clock,
        audit: AuditRecorder | None = None,
        metrics: MetricsRecorder | None = None,
        *,
        max_flatten_attempts: int = 3,
        evaluators: Sequence[EssEvaluator] | None = None,
    ) -> None:
        """Wire the ESS; it sets the ``emergency_stop_active`` gauge from the stored latch.

        Args:
            store: Where the latch lives (shared by every process).
            policy: Sets the trading state (HALTED on activation, ``resume`` on reset).
            executor: Cancels orders and closes positions.
            clock: Stamps activations and resets; times checks given no ``ts_ns``.
            audit: Receives ``emergency.triggered``/``emergency.recovered`` (None: not audited).
            metrics: Counts activations and sets the latch gauge (None: not recorded).
            max_flatten_attempts: Close attempts per position, first one included (>= 1).
            evaluators: Checked in order by ``check``; None: ``default_evaluators()``.
        """
        if (
            isinstance(max_flatten_attempts, bool)
            or not isinstance(max_flatten_attempts, int)
            or max_flatten_attempts < 1
        ):
            raise ConfigError(
                f"max_flatten_attempts must be an integer >= 1, got {max_flatten_attempts!r}"
            )
        self._store = store
        self._policy = policy
        self._executor = executor
        self._clock = clock
        self._audit = audit
        self._metrics = metrics
        self.max_flatten_attempts = max_flatten_attempts
        self.evaluators: tuple[EssEvaluator, ...] = tuple(
            default_evaluators() if evaluators is None else evaluators
        )
        self._lock = threading.RLock()
        if metrics is not None:
            metrics.set_emergency_stop_active(self.is_active())

    # ------------------------------------------------------------------ state
    def state(self) -> EssState:
        """Return the stored latch (read from the store on every call)."""
        return self._store.load()

    def is_active(self) -> bool:
        """Return True while the latch is set; True as well when the store cannot be read."""
        try:
            return self._store.load().active
        except Exception:  # fail closed: an unreadable latch must stop trading, not allow it
            return True

    # ------------------------------------------------------------------ evaluation
    def check(
        self,
        *,
        drawdown: DrawdownReading | None = None,
        last_market_data_ns: int | None = None,
        health: HealthAssessment | None = None,
        ts_ns: int | None = None,
    ) -> Activation | None:
        """Run every evaluator on these inputs and trigger on the first that fires.

        Returns the Activation (``activated`` False when the latch was already set), or None
        when nothing fired. Every evaluator runs, so each one's breach state stays current.
        """
        inputs = EssInputs(
            ts_ns=self._clock.now_ns() if ts_ns is None else ts_ns,
            drawdown=drawdown,
            last_market_data_ns=last_market_data_ns,
            health=health,
            policy=self._policy.current(),
        )
        return self.evaluate(inputs)

    def evaluate(self, inputs: EssInputs) -> Activation | None:
        """Run every evaluator on ``inputs``; trigger (actor ``ess``) on the first that fires."""
        fired: Trigger | None = None
        for evaluator in self.evaluators:
            verdict = evaluator.evaluate(inputs)
            if fired is None:
                fired = verdict
        if fired is None:
            return None
        return self.trigger(fired.reason_code, fired.severity, fired.detail)

    # ------------------------------------------------------------------ activation
    def trigger_manual(
        self,
        actor: str,
        detail: str,
        severity: Severity = Severity.CRITICAL,
        metadata: Mapping[str, Any] | None = None,
    ) -> Activation:
        """Activate by hand; ConfigError unless ``actor`` and ``detail`` are given."""
        if not actor.strip() or not detail.strip():
            raise ConfigError("a manual emergency stop needs an actor and a reason")
        return self.trigger(EssReason.MANUAL, severity, detail, actor=actor, metadata=metadata)

    def trigger(
        self,
        reason: EssReason,
        severity: Severity = Severity.CRITICAL,
        detail: str = "",
        *,
        actor: str = ESS_ACTOR,
        metadata: Mapping[str, Any] | None = None,
    ) -> Activation:
        """Activate: latch, halt, cancel, flatten, audit, count (see the module docstring).

        When the latch is already set, only ``ignored_triggers`` grows. ``metadata`` is added
        to the ``emergency.triggered`` record.
        """
        trigger = Trigger(EssReason(reason), Severity(severity), detail)
        with self._lock:
            now = self._clock.now_ns()
            errors: list[str] = []
            try:
                state = self._store.load()
            except Exception as exc:  # cannot read the latch: stop anyway
                errors.append(f"reading the latch failed: {_describe(exc)}")
                state = EssState()
            if state.active:
                self._store.save(replace(state, ignored_triggers=state.ignored_triggers + 1))
                return Activation(False, trigger, actor, now)
            stored_reason = (
                f"{trigger.reason_code.value}: {detail}" if detail else trigger.reason_code.value
            )
            latched = replace(
                state,
                active=True,
                reason=stored_reason,
                severity=trigger.severity.value,
                activated_at_ns=now,
                activated_by=actor,
                activations=state.activations + 1,
            )
            try:
                self._store.save(latched)
            except Exception as exc:  # halting and flattening still protect the capital
                errors.append(f"persisting the latch failed: {_describe(exc)}")
            report = self._stop(f"emergency stop: {stored_reason}", errors)
            try:
                if self._audit is not None:
                    self._audit.emergency_triggered(
                        actor=actor,
                        reason=trigger.reason_code.value,
                        severity=trigger.severity.value,
                        positions_closed=list(report.positions_closed),
                        orders_canceled=report.orders_canceled,
                        metadata={
                            "detail": detail,
                            "activation": latched.activations,
                            **report.metadata(),
                            **(metadata or {}),
                        },
                    )
            finally:
                if self._metrics is not None:
                    self._metrics.record_emergency_stop(trigger.reason_code)
                    self._metrics.set_emergency_stop_active(True)
            return Activation(True, trigger, actor, now, report)

    def enforce(self, actor: str = ESS_ACTOR) -> StopReport | None:
        """If the latch is set, halt, cancel and flatten again; None when it is not set.

        Call at start-up (finishes an activation a crash interrupted) and whenever a latch set
        by another process is seen (``qtrader ess trigger`` cannot reach the exchange). Audited
        as ``system.state_changed`` of ``emergency_stop``; no new activation is counted.
        """
        with self._lock:
            if not self.is_active():
                return None
            try:
                reason = self._store.load().reason
            except Exception:
                reason = "unreadable latch"
            report = self._stop(f"emergency stop enforced: {reason}", [])
            try:
                if self._audit is not None:
                    self._audit.system_state_changed(
                        actor=actor,
                        component="emergency_stop",
                        old="latched",
                        new="enforced",
                        reason=reason,
                        metadata={
                            "positions_closed": list(report.positions_closed),
                            "orders_canceled": report.orders_canceled,
                            **report.metadata(),
                        },
                    )
            finally:
                if self._metrics is not None:
                    self._metrics.set_emergency_stop_active(True)
            return report

    def _stop(self, reason: str, errors: list[str]) -> StopReport:
        self._halt(reason, errors)
        canceled = 0
        try:
            canceled = int(self._executor.cancel_all_orders())
        except Exception as exc:
            errors.append(f"cancel_all_orders failed: {_describe(exc)}")
        try:
            positions = dict(self._executor.open_positions())
        except Exception as exc:
            errors.append(f"open_positions failed: {_describe(exc)}")
            positions = {}
        closed: list[str] = []
        failed: list[FailedClose] = []
        attempts: list[CloseAttempt] = []
        for symbol, quantity in sorted(positions.items()):
            if quantity == 0.0:
                continue
            result = self._close(symbol, quantity, attempts)
            if result is None:
                closed.append(symbol)
            else:
                failed.append(result)
        return StopReport(canceled, tuple(closed), tuple(failed), tuple(attempts), tuple(errors))

    def _halt(self, reason: str, errors: list[str]) -> None:
        for attempt in range(1, HALT_ATTEMPTS + 1):
            try:
                self._policy.set_state(TradingState.HALTED, actor=ESS_ACTOR, reason=reason)
                return
            except ConflictError as exc:  # another writer won the race: read again and retry
                if attempt == HALT_ATTEMPTS:
                    errors.append(f"halting failed: {_describe(exc)}")
            except Exception as exc:
                errors.append(f"halting failed: {_describe(exc)}")
                return

    def _close(
        self, symbol: str, quantity: float, attempts: list[CloseAttempt]
    ) -> FailedClose | None:
        error = ""
        for attempt in range(1, self.max_flatten_attempts + 1):
            try:
                filled = bool(self._executor.close_position(symbol, quantity))
                error = "" if filled else "not filled"
            except Exception as exc:
                filled = False
                error = _describe(exc)
            attempts.append(CloseAttempt(symbol, quantity, attempt, filled, error))
            if filled:
                return None
        return FailedClose(symbol, quantity, self.max_flatten_attempts, error)

    # ------------------------------------------------------------------ reset
    def reset(self, actor: str, reason: str, resume: TradingState = TradingState.REDUCING) -> bool:
        """Clear the latch (a person's decision) and resume trading in ``resume``.

        Raises ConfigError unless ``actor`` and ``reason`` are non-empty. Returns False, doing
        nothing, when the latch is not set.
        """
        if not actor.strip() or not reason.strip():
            raise ConfigError("resetting the emergency stop needs an actor and a reason")
        resume = TradingState(resume)
        with self._lock:
            state = self._store.load()
            if not state.active:
                return False
            now = self._clock.now_ns()
            self._store.save(
                replace(state, active=False, reset_at_ns=now, reset_by=actor, reset_reason=reason)
            )
            self._policy.set_state(resume, actor=actor, reason=f"emergency stop reset: {reason}")
            try:
                if self._audit is not None:
                    self._audit.emergency_recovered(
                        actor=actor,
                        reason=reason,
                        new_state=resume.value,
                        metadata={
                            "previous_reason": state.reason,
                            "severity": state.severity,
                            "activated_at_ns": state.activated_at_ns,
                            "activated_by": state.activated_by,
                            "activations": state.activations,
                            "ignored_triggers": state.ignored_triggers,
                        },
                    )
            finally:
                if self._metrics is not None:
                    self._metrics.set_emergency_stop_active(False)
            return True
