"""The model registry: immutable versioned artifacts, one status table, gated promotion.

Layout of a registry folder (shared by every process that trades with it)::

    <root>/registry.json        the index: statuses, history, gate decisions, the active version
    <root>/registry.json.prev   the previous good index (kept on every write)
    <root>/registry.lock        flock'ed by every writer
    <root>/models/<version>/    a copy of each registered artifact (files read-only)
    <root>/shadow/<version>.jsonl  shadow predictions and outcomes (``ai.shadow``)

An artifact is a folder with ``manifest.json`` (at least ``version``, ``created_ns``,
``horizon``, ``features``, ``metrics``) and ``oos_predictions.parquet`` (``ts_ns``, ``symbol``,
``prob_up``, ``label``: out-of-sample predictions from walk-forward validation). Its SHA-256 is
kept in the index and checked before a model is served. Versions are immutable: registering a
version again is refused.

Statuses move through one transition table (``TRANSITIONS``); anything else raises
ModelTransitionError::

    candidate ─start_shadow─► shadow ─promote (gate)─► active ─supersede/rollback─► retired
        │ └────────force_promote──────────────────────►  ▲                            │
        └─retire─► retired ◄─retire─ shadow               └──────────restore──────────┘

**Promotion** passes only through the gate: (1) the shadow period has lasted
``min_shadow_secs`` by the injected clock and logged ``min_shadow_predictions``; (2) the resolved
shadow predictions score no worse than the candidate's own out-of-sample figure by more than
``max_shadow_decay``; (3) the candidate beats the active model (the naive baseline for the first
model) out of sample by ``margin`` with a block-bootstrap test (``ai.gate``). A forced promotion
skips the gate, needs an actor and a reason, and is audited as ``forced``. Every gate decision,
passed or refused, is stored with the version and audited as ``model.promoted`` (outcome
``gated``, ``forced`` or ``refused``) with its figures. **Rollback** retires the active version
and restores the one active before it (``model.demoted``, then ``model.promoted``).

Writes take an exclusive ``flock`` on ``registry.lock``, re-read the index, change it, and
replace it atomically (temp file, fsync, ``os.replace``, directory fsync). The write comes
before the audit record, as for the policy: if the audit log then fails, AuditUnavailableError
propagates and the logger keeps the record queued. A corrupt index raises IntegrityError naming
the file; nothing is written over it.

Errors::

    QuantumTraderError
    ├─ ConfigError
    │   ├─ ArtifactError          the artifact folder is malformed (ai.registry_files)
    │   └─ UnknownModelError      no such version in the registry
    ├─ ConflictError
    │   └─ ModelVersionExistsError   versions are immutable
    ├─ ModelTransitionError       the status table forbids this change
    └─ IntegrityError             registry.json or an artifact is corrupt
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from quantum_trader.ai.gate import Comparison, GateConfig, GateMetric, compare
from quantum_trader.ai.promotion import PromotionResult, ShadowCheck
from quantum_trader.ai.registry_files import (
    artifact_digest,
    atomic_write,
    fsync_dir,
    read_manifest,
    read_oos,
)
from quantum_trader.ai.shadow import ShadowLog, ShadowOutcome, ShadowPrediction
from quantum_trader.domain.clock import NANOS_PER_SECOND, Clock
from quantum_trader.domain.errors import (
    ConfigError,
    ConflictError,
    IntegrityError,
    QuantumTraderError,
)
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.audit.records import AuditEventType

INDEX_FILE = "registry.json"
LOCK_FILE = "registry.lock"
INDEX_FORMAT = 1
REGISTRY_ACTOR = "model-registry"


class UnknownModelError(ConfigError):
    """No model with this version is registered."""

    def __init__(self, version: str) -> None:
        super().__init__(f"no model version {version!r} in the registry")
        self.version = version


class ModelVersionExistsError(ConflictError):
    """The version is already registered; versions are immutable."""

    def __init__(self, version: str) -> None:
        super().__init__(
            f"model version {version!r} is already registered (versions are immutable)"
        )
        self.version = version


class ModelTransitionError(QuantumTraderError):
    """A status change the transition table forbids."""

    def __init__(self, version: str, status: str, trigger: str) -> None:
        super().__init__(f"model {version}: cannot {trigger} in status {status!r}")
        self.version = version
        self.status = status
        self.trigger = trigger


class ModelStatus(StrEnum):
    """Where a model version is in its life."""

    CANDIDATE = "candidate"
    SHADOW = "shadow"
    ACTIVE = "active"
    RETIRED = "retired"


class ModelTrigger(StrEnum):
    """What moves a model version from one status to another."""

    START_SHADOW = "start_shadow"
    PROMOTE = "promote"
    FORCE_PROMOTE = "force_promote"
    SUPERSEDE = "supersede"
    ROLLBACK = "rollback"
    RESTORE = "restore"
    RETIRE = "retire"


_S, _T = ModelStatus, ModelTrigger
TRANSITIONS: Mapping[tuple[ModelStatus, ModelTrigger], ModelStatus] = {
    (_S.CANDIDATE, _T.START_SHADOW): _S.SHADOW,
    (_S.CANDIDATE, _T.FORCE_PROMOTE): _S.ACTIVE,
    (_S.CANDIDATE, _T.RETIRE): _S.RETIRED,
    (_S.SHADOW, _T.PROMOTE): _S.ACTIVE,
    (_S.SHADOW, _T.FORCE_PROMOTE): _S.ACTIVE,
    (_S.SHADOW, _T.RETIRE): _S.RETIRED,
    (_S.ACTIVE, _T.SUPERSEDE): _S.RETIRED,
    (_S.ACTIVE, _T.ROLLBACK): _S.RETIRED,
    (_S.RETIRED, _T.RESTORE): _S.ACTIVE,
}
"""The one status table: (status, trigger) → next status. Anything else is illegal."""


def next_status(version: str, status: ModelStatus, trigger: ModelTrigger) -> ModelStatus:
    """Return the status ``trigger`` leads to from ``status``; ModelTransitionError if none."""
    try:
        return TRANSITIONS[(status, trigger)]
    except KeyError:
        raise ModelTransitionError(version, status.value, trigger.value) from None


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One registered version as the index holds it."""

    version: str
    status: ModelStatus
    registered_ns: int
    created_ns: int
    horizon: int
    features: tuple[str, ...]
    metrics: Mapping[str, Any]
    sha256: str
    shadow_started_ns: int | None
    history: tuple[Mapping[str, Any], ...]
    gate_decisions: tuple[Mapping[str, Any], ...]

    @staticmethod
    def from_dict(version: str, data: Mapping[str, Any]) -> ModelRecord:
        """Rebuild a record from the index; KeyError/ValueError/TypeError when malformed."""
        return ModelRecord(
            version=version,
            status=ModelStatus(data["status"]),
            registered_ns=int(data["registered_ns"]),
            created_ns=int(data["created_ns"]),
            horizon=int(data["horizon"]),
            features=tuple(str(f) for f in data["features"]),
            metrics=dict(data["metrics"]),
            sha256=str(data["sha256"]),
            shadow_started_ns=(
                None if data.get("shadow_started_ns") is None else int(data["shadow_started_ns"])
            ),
            history=tuple(data.get("history", ())),
            gate_decisions=tuple(data.get("gate_decisions", ())),
        )


@dataclass(slots=True)
class _Index:
    name: str
    revision: int = 0
    active: str | None = None
    activations: list[str] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "name": self.name,
            "revision": self.revision,
            "active": self.active,
            "activations": self.activations,
            "models": self.models,
        }


class ModelRegistry:
    """A registry folder: register, shadow, promote through the gate, roll back, serve."""

    def __init__(
        self,
        root: Path,
        clock: Clock,
        audit: AuditRecorder | None = None,
        *,
        name: str = "ensemble",
        gate: GateConfig | None = None,
    ) -> None:
        """Open (or start) the registry in ``root``.

        Args:
            root: The registry folder (created on the first write).
            clock: Stamps every change and measures the shadow period.
            audit: Receives ``model.promoted`` / ``model.demoted`` (None: not audited).
            name: The model's name in audit targets (``<name>:<version>``).
            gate: The promotion gate's settings (default ``GateConfig()``).
        """
        self.root = Path(root)
        self._clock = clock
        self._audit = audit
        self.name = name
        self.gate = gate or GateConfig()

    @property
    def index_path(self) -> Path:
        """The index file, ``registry.json``."""
        return self.root / INDEX_FILE

    def artifact_path(self, version: str) -> Path:
        """The registry's copy of ``version``'s artifact."""
        return self.root / "models" / version

    # ------------------------------------------------------------------ reading

    def _read(self) -> _Index:
        path = self.index_path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return _Index(self.name)
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
                raise ValueError(f"not a format-{INDEX_FORMAT} registry index")
            index = _Index(
                name=str(data["name"]),
                revision=int(data["revision"]),
                active=data["active"],
                activations=[str(v) for v in data["activations"]],
                models={str(k): dict(v) for k, v in data["models"].items()},
            )
            for version, record in index.models.items():
                ModelRecord.from_dict(version, record)
            if index.active is not None and index.active not in index.models:
                raise ValueError(f"active version {index.active!r} is not registered")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(
                f"{path} is corrupt ({exc}); nothing was written. The previous good index is "
                f"{path.with_name(INDEX_FILE + '.prev')} and the artifacts are under "
                f"{self.root / 'models'}"
            ) from None
        return index

    def _write(self, index: _Index) -> None:
        index.revision += 1
        self.root.mkdir(parents=True, exist_ok=True)
        current = self.index_path
        if current.exists():
            atomic_write(current.with_name(INDEX_FILE + ".prev"), current.read_bytes())
        payload = json.dumps(index.to_dict(), indent=2, sort_keys=True).encode()
        atomic_write(current, payload)

    @contextmanager
    def _locked(self) -> Iterator[_Index]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self._read()
        finally:
            os.close(fd)

    def records(self) -> list[ModelRecord]:
        """Every registered version, oldest registration first."""
        index = self._read()
        records = [ModelRecord.from_dict(v, d) for v, d in index.models.items()]
        return sorted(records, key=lambda r: (r.registered_ns, r.version))

    def get(self, version: str) -> ModelRecord:
        """The record of ``version``; UnknownModelError if it is not registered."""
        data = self._read().models.get(version)
        if data is None:
            raise UnknownModelError(version)
        return ModelRecord.from_dict(version, data)

    def active_version(self) -> str | None:
        """The active version, or None before the first promotion."""
        return self._read().active

    def oos_predictions(self, version: str) -> pd.DataFrame:
        """The out-of-sample predictions stored with ``version``."""
        self.get(version)
        return read_oos(self.artifact_path(version))

    def verify(self, version: str) -> Path:
        """Check ``version``'s artifact against its stored SHA-256 and return its folder.

        Raises IntegrityError when a file was changed, added or removed.
        """
        record = self.get(version)
        path = self.artifact_path(version)
        if not path.is_dir():
            raise IntegrityError(f"artifact of model {version} is missing: {path}")
        actual = artifact_digest(path)
        if actual != record.sha256:
            raise IntegrityError(
                f"artifact of model {version} at {path} was modified: sha256 {actual} differs "
                f"from the registered {record.sha256}"
            )
        return path

    # ------------------------------------------------------------------ writing

    def register(self, source: Path, *, actor: str = REGISTRY_ACTOR) -> ModelRecord:
        """Copy the artifact in ``source`` into the registry as a candidate.

        Raises ArtifactError for a malformed artifact and ModelVersionExistsError when its
        version is already registered.
        """
        manifest = read_manifest(Path(source))
        read_oos(Path(source))
        version = manifest["version"]
        with self._locked() as index:
            if version in index.models:
                raise ModelVersionExistsError(version)
            target = self.artifact_path(version)
            staging = target.with_name(f".{version}.{uuid.uuid4().hex}.staging")
            shutil.copytree(source, staging)
            try:
                for path in staging.rglob("*"):
                    if path.is_file():
                        with path.open("rb") as handle:
                            os.fsync(handle.fileno())
                        path.chmod(0o444)
                digest = artifact_digest(staging)
                if target.exists():
                    # Left by a writer that died between the copy and the index write.
                    shutil.rmtree(target)
                os.replace(staging, target)
                fsync_dir(target.parent)
            finally:
                if staging.exists():
                    shutil.rmtree(staging)
            now = self._clock.now_ns()
            index.models[version] = {
                "status": ModelStatus.CANDIDATE.value,
                "registered_ns": now,
                "created_ns": manifest["created_ns"],
                "horizon": manifest["horizon"],
                "features": manifest["features"],
                "metrics": manifest["metrics"],
                "sha256": digest,
                "shadow_started_ns": None,
                "history": [_event(now, None, ModelStatus.CANDIDATE, "register", actor, "")],
                "gate_decisions": [],
            }
            self._write(index)
            return ModelRecord.from_dict(version, index.models[version])

    def start_shadow(self, version: str, *, actor: str, reason: str = "") -> ModelRecord:
        """Move a candidate into shadow: its predictions are logged from now on, never traded."""
        with self._locked() as index:
            record = self._move(index, version, ModelTrigger.START_SHADOW, actor, reason)
            record["shadow_started_ns"] = self._clock.now_ns()
            self._write(index)
            return ModelRecord.from_dict(version, record)

    def retire(self, version: str, *, actor: str, reason: str) -> ModelRecord:
        """Retire a candidate or shadow version (the active one leaves through ``rollback``)."""
        with self._locked() as index:
            record = self._move(index, version, ModelTrigger.RETIRE, actor, reason)
            self._write(index)
        return ModelRecord.from_dict(version, record)

    def shadow_log(self, version: str) -> ShadowLog:
        """The shadow log of ``version`` (it must be in shadow to record into it)."""
        return ShadowLog(self.root / "shadow", version)

    def record_shadow_predictions(self, version: str, predictions: list[ShadowPrediction]) -> int:
        """Log shadow predictions of ``version`` (in shadow status); return how many."""
        record = self.get(version)
        if record.status is not ModelStatus.SHADOW:
            raise ModelTransitionError(version, record.status.value, "record shadow predictions")
        return self.shadow_log(version).record_predictions(predictions)

    def record_shadow_outcomes(self, version: str, outcomes: list[ShadowOutcome]) -> int:
        """Log the outcomes that resolve ``version``'s shadow predictions; return how many."""
        self.get(version)
        return self.shadow_log(version).record_outcomes(outcomes)

    def evaluate(self, version: str) -> PromotionResult:
        """Run the gate for ``version`` without changing anything (what ``promote`` would say)."""
        index = self._read()
        return self._gate(index, version)

    def promote(
        self,
        version: str,
        *,
        actor: str,
        reason: str,
        force: bool = False,
    ) -> PromotionResult:
        """Make ``version`` active if it passes the gate (or ``force``, which needs a reason).

        Returns the decision with its figures; a refused gate changes no status. Raises
        ModelTransitionError when the status table forbids the move, ConfigError for a forced
        promotion without an actor or a reason.
        """
        if not actor.strip():
            raise ConfigError("a promotion needs an actor")
        if force and not reason.strip():
            raise ConfigError("a forced promotion needs a reason")
        with self._locked() as index:
            data = index.models.get(version)
            if data is None:
                raise UnknownModelError(version)
            trigger = ModelTrigger.FORCE_PROMOTE if force else ModelTrigger.PROMOTE
            next_status(version, ModelStatus(data["status"]), trigger)
            decision = self._gate(index, version, force=force)
            data["gate_decisions"].append({**decision.to_dict(), "actor": actor, "reason": reason})
            previous = index.active
            if decision.promoted:
                if previous is not None:
                    self._move(
                        index, previous, ModelTrigger.SUPERSEDE, actor, f"superseded by {version}"
                    )
                self._move(index, version, trigger, actor, reason)
                index.active = version
                index.activations.append(version)
            self._write(index)
        self._audit_decision(decision, actor=actor, reason=reason)
        return decision

    def rollback(self, *, actor: str, reason: str) -> tuple[str, str]:
        """Retire the active version and restore the one active before it.

        Returns ``(retired, restored)``. Raises ModelTransitionError when there is no earlier
        active version to go back to.
        """
        if not actor.strip() or not reason.strip():
            raise ConfigError("a rollback needs an actor and a reason")
        with self._locked() as index:
            current = index.active
            if current is None or len(index.activations) < 2:
                raise ModelTransitionError(
                    current or "-",
                    "active" if current else "none",
                    "roll back (no earlier active version)",
                )
            previous = index.activations[-2]
            self._move(index, current, ModelTrigger.ROLLBACK, actor, reason)
            self._move(
                index, previous, ModelTrigger.RESTORE, actor, f"rollback from {current}: {reason}"
            )
            index.activations.pop()
            index.active = previous
            self._write(index)
        if self._audit is not None:
            meta = {"restored": previous, "rollback": True}
            self._audit.model_demoted(
                actor=actor, model=self.name, version=current, reason=reason, metadata=meta
            )
            self._audit.model_promoted(
                actor=actor,
                model=self.name,
                version=previous,
                reason=f"rollback from {current}: {reason}",
                forced=True,
                metadata={"rolled_back": current, "rollback": True},
            )
        return current, previous

    # ------------------------------------------------------------------ internals

    def _move(
        self, index: _Index, version: str, trigger: ModelTrigger, actor: str, reason: str
    ) -> dict[str, Any]:
        data = index.models.get(version)
        if data is None:
            raise UnknownModelError(version)
        old = ModelStatus(data["status"])
        new = next_status(version, old, trigger)
        data["status"] = new.value
        data["history"].append(_event(self._clock.now_ns(), old, new, trigger.value, actor, reason))
        return data

    def _gate(self, index: _Index, version: str, *, force: bool = False) -> PromotionResult:
        data = index.models.get(version)
        if data is None:
            raise UnknownModelError(version)
        record = ModelRecord.from_dict(version, data)
        now = self._clock.now_ns()
        config = self.gate
        candidate_oos = read_oos(self.artifact_path(version))
        reference = None
        reference_name = "baseline"
        comparison: Comparison | None = None
        error = ""
        try:
            if index.active is not None and index.active != version:
                reference_name = index.active
                reference = read_oos(self.artifact_path(index.active))
            comparison = compare(
                candidate_oos,
                reference,
                config,
                horizon=record.horizon,
                reference_name=reference_name,
            )
        except ConfigError as exc:
            # Figures that cannot be computed refuse the gate (a forced promotion goes ahead).
            error = f"out-of-sample comparison with {reference_name} failed: {exc}"
        shadow = self._shadow_check(record, comparison, now)
        common: dict[str, Any] = {
            "gate": config,
            "version": version,
            "previous_active": index.active,
            "comparison": comparison,
            "shadow": shadow,
            "ts_ns": now,
        }
        if force:
            return PromotionResult(
                promoted=True, forced=True, reason="forced: gate bypassed", **common
            )
        failures = [c.reason for c in (shadow, comparison) if c is not None and not c.passed]
        if error:
            failures.append(error)
        if failures or comparison is None:
            return PromotionResult(
                promoted=False, forced=False, reason="; ".join(failures), **common
            )
        return PromotionResult(
            promoted=True, forced=False, reason=f"gate passed: {comparison.reason}", **common
        )

    def _shadow_check(
        self, record: ModelRecord, comparison: Comparison | None, now: int
    ) -> ShadowCheck:
        config = self.gate
        started = record.shadow_started_ns
        elapsed = 0.0 if started is None else (now - started) / NANOS_PER_SECOND
        summary = self.shadow_log(record.version).summary() if started is not None else None
        predictions = 0 if summary is None else summary.predictions
        figures: dict[str, Any] = {
            "elapsed_secs": elapsed,
            "min_secs": config.min_shadow_secs,
            "predictions": predictions,
            "min_predictions": config.min_shadow_predictions,
            "summary": summary,
        }
        if started is None or record.status is not ModelStatus.SHADOW:
            return ShadowCheck(False, "no shadow period: start_shadow first", **figures)
        if elapsed < config.min_shadow_secs:
            return ShadowCheck(
                False,
                f"shadow period {elapsed:.0f}s < required {config.min_shadow_secs:.0f}s",
                **figures,
            )
        if predictions < config.min_shadow_predictions:
            return ShadowCheck(
                False,
                f"{predictions} shadow predictions < required {config.min_shadow_predictions}",
                **figures,
            )
        decay = config.max_shadow_decay
        if decay is not None and summary is not None and comparison is not None:
            metric = config.metric
            live = summary.score(metric)
            oos = comparison.candidate_score
            if summary.resolved == 0:
                if config.min_shadow_predictions > 0:
                    return ShadowCheck(False, "no shadow prediction has an outcome yet", **figures)
                return ShadowCheck(True, "shadow period complete (no live check)", **figures)
            worse = live - oos if metric is GateMetric.LOG_LOSS else oos - live
            if worse > decay:
                return ShadowCheck(
                    False,
                    f"shadow {metric.value} {live:.4f} is worse than out-of-sample {oos:.4f} "
                    f"by {worse:.4f} > {decay:g} over {summary.resolved} resolved predictions",
                    **figures,
                )
        return ShadowCheck(True, "shadow period complete", **figures)

    def _audit_decision(self, decision: PromotionResult, *, actor: str, reason: str) -> None:
        if self._audit is None:
            return
        meta = decision.to_dict()
        if decision.promoted:
            if decision.previous_active is not None:
                self._audit.model_demoted(
                    actor=actor,
                    model=self.name,
                    version=decision.previous_active,
                    reason=f"superseded by {decision.version}",
                    metadata={"superseded_by": decision.version},
                )
            self._audit.model_promoted(
                actor=actor,
                model=self.name,
                version=decision.version,
                reason=reason or decision.reason,
                forced=decision.forced,
                metadata=meta,
            )
        else:
            self._audit.append(
                AuditEventType.MODEL_PROMOTED,
                actor=actor,
                action="promote_model",
                target=f"{self.name}:{decision.version}",
                reason=decision.reason,
                outcome="refused",
                metadata=meta,
            )


def _event(
    ts_ns: int,
    old: ModelStatus | None,
    new: ModelStatus,
    trigger: str,
    actor: str,
    reason: str,
) -> dict[str, Any]:
    return {
        "ts_ns": ts_ns,
        "from": None if old is None else old.value,
        "to": new.value,
        "trigger": trigger,
        "actor": actor,
        "reason": reason,
    }
