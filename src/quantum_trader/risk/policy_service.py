"""PolicyService: read the policy cheaply, change it safely, and leave a trail of every change.

Reads are cached. ``current()`` returns the cached policy and re-reads the store only on the
first call, when ``refresh()`` is called, or, when ``max_age_secs`` is set, once the cached copy
is that old by the injected clock (the data's time in a backtest, the wall clock live); the
service's own ``update`` caches the version it wrote. A process that shares the store with
other writers (the coordinator, the CLI, the API) sets ``max_age_secs`` so their changes reach
it within that time; a backtest leaves it None and pays no store read per bar.

``update`` is the only way to write. It reads the store (not the cache), builds the next version
with ``Policy.changed`` (an invalid value raises ConfigError and nothing is written), and stores
it with compare-and-set on the version it read; a writer that lost a race, or that passed an
``expected_version`` the store no longer has, gets ConflictError, and nothing is written or
audited. A change that leaves every setting as it was writes nothing. After a successful write
the service counts the change (``policy_changes_total{actor_kind}``, the risk-mode transition
and the mode and trading-state gauges; the gauge shows the effective state, so CRITICAL mode
reads as reducing) and audits ``policy.changed`` with the old and new
documents, actor, reason and version. The write comes first: if the audit log is then
unavailable, AuditUnavailableError propagates (the change stands, and the audit logger keeps the
record queued until it can write it).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

from quantum_trader.domain.clock import NANOS_PER_SECOND, Clock
from quantum_trader.domain.errors import ConfigError, ConflictError
from quantum_trader.domain.policy import ModeLimits, Policy, RiskMode, TradingState
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.metrics.recorder import MetricsRecorder
from quantum_trader.stores.ports import PolicyStore

AI_HFOS_ACTOR = "ai-hfos"
SYSTEM_ACTORS = frozenset({"ess", "system"})
LIMIT_FIELDS = tuple(f.name for f in fields(ModeLimits))
_VERSION_FIELDS = ("version", "updated_at_ns", "updated_by", "reason")


def actor_kind(actor: str) -> str:
    """Return the metric label for ``actor``: ``ai_hfos``, ``system`` (ESS, system) or ``human``."""
    name = actor.strip().lower()
    if name == AI_HFOS_ACTOR:
        return "ai_hfos"
    if name in SYSTEM_ACTORS:
        return "system"
    return "human"


def with_limit_changes(
    policy: Policy, limit_changes: Mapping[RiskMode | str, Mapping[str, Any]]
) -> dict[RiskMode, ModeLimits]:
    """Return ``policy``'s limits with ``{mode: {field: value}}`` applied.

    Raises ConfigError naming ``limits.<mode>.<field>`` for an unknown mode or field or a value
    out of range. The monotonic rule across modes is checked when the policy is built.
    """
    limits = dict(policy.limits)
    for mode_name, changes in limit_changes.items():
        try:
            mode = RiskMode(str(mode_name))
        except ValueError:
            valid = ", ".join(m.value for m in RiskMode)
            raise ConfigError(f"limits.{mode_name}: not a risk mode (one of: {valid})") from None
        unknown = sorted(set(changes) - set(LIMIT_FIELDS))
        if unknown:
            raise ConfigError(
                f"limits.{mode.value}.{unknown[0]}: not a limit (one of: {', '.join(LIMIT_FIELDS)})"
            )
        try:
            limits[mode] = replace(limits[mode], **changes)
        except ConfigError as exc:
            raise ConfigError(f"limits.{mode.value}: {exc}") from exc
    return limits


def _settings(policy: Policy) -> dict[str, Any]:
    data = policy.to_dict()
    for name in _VERSION_FIELDS:
        del data[name]
    return data


class PolicyService:
    """The front door to the policy: cached reads, validated compare-and-set writes, audit."""

    def __init__(
        self,
        store: PolicyStore,
        clock: Clock,
        audit: AuditRecorder | None = None,
        metrics: MetricsRecorder | None = None,
        *,
        max_age_secs: float | None = None,
    ) -> None:
        """Serve the policy in ``store``; audit and count changes when given a recorder.

        Args:
            store: Where the versioned policy lives.
            clock: Stamps each new version and ages the cache.
            audit: Receives ``policy.changed`` for every change (None: not audited).
            metrics: Counts changes and sets the mode and trading-state gauges (None: not).
            max_age_secs: Re-read the store in ``current()`` once the cached policy is this
                old by ``clock``; None re-reads only on ``refresh()`` and after ``update``.
        """
        if max_age_secs is not None and not max_age_secs > 0:
            raise ConfigError(f"policy max_age_secs must be > 0, got {max_age_secs!r}")
        self._store = store
        self._clock = clock
        self._audit = audit
        self._metrics = metrics
        self._max_age_ns = None if max_age_secs is None else int(max_age_secs * NANOS_PER_SECOND)
        self._lock = threading.Lock()
        self._cached: Policy | None = None
        self._loaded_at_ns = 0

    def current(self) -> Policy:
        """Return the cached policy, re-reading the store when none is cached or it is too old."""
        cached = self._cached
        if cached is not None:
            if self._max_age_ns is None:
                return cached
            age = self._clock.now_ns() - self._loaded_at_ns
            if 0 <= age < self._max_age_ns:
                return cached
        return self.refresh()

    def refresh(self) -> Policy:
        """Re-read the store, cache the result and return it."""
        policy = self._store.get()
        self._remember(policy)
        return policy

    def update(
        self,
        *,
        actor: str,
        reason: str,
        expected_version: int | None = None,
        limit_changes: Mapping[RiskMode | str, Mapping[str, Any]] | None = None,
        **changes: Any,
    ) -> Policy:
        """Write the next policy version with ``changes`` applied, and return it.

        Args:
            actor: Who makes the change (``ai-hfos``, ``ess``, ``system`` or a person's name).
            reason: Why, in words; stored with the version and audited.
            expected_version: The version the change was based on; ConflictError if the store
                has moved past it. None: the version read here.
            limit_changes: Per-mode limit changes, ``{mode: {field: value}}``, applied to the
                stored limits (use ``limits=`` in ``changes`` to replace them all instead).
            **changes: Policy settings to change (``mode``, ``state``, ``allowed_symbols``, ...).

        Raises:
            ConfigError: A setting is unknown or invalid; nothing is written or audited.
            ConflictError: The store holds another version; nothing is written or audited.
        """
        if not changes and not limit_changes:
            raise ConfigError("a policy change needs at least one setting to change")
        if limit_changes and "limits" in changes:
            raise ConfigError("give either limits or limit_changes, not both")
        old = self._store.get()
        if expected_version is not None and old.version != expected_version:
            self._remember(old)
            raise ConflictError(
                f"policy changed since you read it: expected version {expected_version}, "
                f"store has {old.version}"
            )
        if limit_changes:
            changes["limits"] = with_limit_changes(old, limit_changes)
        new = old.changed(actor=actor, reason=reason, ts_ns=self._clock.now_ns(), **changes)
        if _settings(new) == _settings(old):
            self._remember(old)
            return old
        try:
            stored = self._store.compare_and_set(old.version, new)
        except ConflictError:
            self.refresh()  # another writer won: serve its version from now on
            raise
        self._remember(stored)
        self._record(old, stored, actor=actor, reason=reason)
        return stored

    def set_mode(
        self,
        mode: RiskMode | str,
        *,
        actor: str,
        reason: str,
        expected_version: int | None = None,
    ) -> Policy:
        """Switch the active risk mode (nothing is written if it is already ``mode``)."""
        return self.update(actor=actor, reason=reason, expected_version=expected_version, mode=mode)

    def set_state(
        self,
        state: TradingState | str,
        *,
        actor: str,
        reason: str,
        expected_version: int | None = None,
    ) -> Policy:
        """Set the trading state (nothing is written if it is already ``state``)."""
        return self.update(
            actor=actor, reason=reason, expected_version=expected_version, state=state
        )

    def history(self, limit: int = 50) -> Sequence[Policy]:
        """Return up to ``limit`` stored versions, newest first."""
        return list(self._store.history(limit))

    def _remember(self, policy: Policy) -> None:
        now = self._clock.now_ns()
        with self._lock:
            previous = self._cached
            if previous is not None and policy.version < previous.version:
                return  # a slower reader must not replace a newer cached version
            self._cached = policy
            self._loaded_at_ns = now
        metrics = self._metrics
        if metrics is not None and (
            previous is None
            or previous.mode is not policy.mode
            or previous.effective_state is not policy.effective_state
        ):
            metrics.set_risk_mode(policy.mode)
            metrics.set_trading_state(policy.effective_state)

    def _record(self, old: Policy, new: Policy, *, actor: str, reason: str) -> None:
        metrics = self._metrics
        if metrics is not None:
            metrics.record_policy_change(actor_kind(actor))
            if new.mode is not old.mode:
                metrics.record_risk_mode_transition(old.mode, new.mode)
            metrics.set_risk_mode(new.mode)
            metrics.set_trading_state(new.effective_state)
        if self._audit is not None:
            self._audit.policy_changed(
                actor=actor,
                reason=reason,
                old=old.to_dict(),
                new=new.to_dict(),
                version=new.version,
            )
