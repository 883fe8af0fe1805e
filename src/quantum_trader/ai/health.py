"""Model health: input drift (PSI) and live accuracy against validation, as one score.

**Drift.** The population stability index of each feature compares its live distribution with
the training distribution over the training deciles: ``PSI = Σ (a_i - e_i) · ln(a_i / e_i)``
with ``e_i``/``a_i`` the expected/actual share of bin ``i`` (shares floored at ``1e-4`` so an
empty bin does not make it infinite). The usual reading: below 0.10 stable, 0.10-0.25 a
moderate shift, 0.25 and above a significant shift. ``FeatureReference`` keeps only the bin
edges and shares of the training data, so a running engine does not need the training set.

**Accuracy.** Live accuracy over resolved predictions against the validation (out-of-sample)
accuracy. A live figure from few samples is noisy, so the drop counts only beyond two
standard errors: ``drop = validation - live - 2·sqrt(live·(1-live)/n)``, and not at all before
``min_live_samples`` predictions are resolved.

**Score.** Each component gives a score on the coordinator's scale (``risk.health``: >= 0.95
OPTIMAL, >= 0.75 HEALTHY, >= 0.40 DEGRADED, else CRITICAL); the model's score is the worst:

==========================================  =====
worst PSI < 0.10, drop <= 0.02              1.0
worst PSI < 0.25, drop <= 0.05              0.8
worst PSI < ``critical_psi``, drop <= 0.10  0.5
beyond                                      0.3
served model is not the active one (stale)  0.5
no model serving                            0.0
==========================================  =====

This module does not import ``risk`` (a sibling layer); ``engine.model_health`` turns a
``ModelHealth`` into the coordinator's ``SubsystemHealth`` for the ``models`` subsystem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_trader.domain.errors import ConfigError

PSI_STABLE = 0.10
PSI_SIGNIFICANT = 0.25
PSI_FLOOR = 1e-4
FloatArray = npt.NDArray[np.float64]


def _clean(values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def _shares(values: FloatArray, edges: FloatArray) -> FloatArray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return np.maximum(counts / max(len(values), 1), PSI_FLOOR)


@dataclass(frozen=True, slots=True)
class FeatureReference:
    """A feature's training distribution: inner bin edges and the share of each bin."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.shares) != len(self.edges) + 1:
            raise ConfigError("a feature reference needs one more share than inner edges")

    @staticmethod
    def from_values(values: npt.ArrayLike, bins: int = 10) -> FeatureReference:
        """Fit the reference on training ``values`` with ``bins`` quantile bins (NaN ignored)."""
        data = _clean(values)
        if len(data) == 0:
            raise ConfigError("a feature reference needs at least one finite value")
        inner = np.unique(np.quantile(data, np.linspace(0, 1, bins + 1)[1:-1]))
        return FeatureReference(
            tuple(float(e) for e in inner), tuple(float(s) for s in _shares(data, inner))
        )

    def psi(self, actual: npt.ArrayLike) -> float:
        """Return the PSI of ``actual`` against this reference (NaN when no finite value)."""
        data = _clean(actual)
        if len(data) == 0:
            return math.nan
        expected = np.asarray(self.shares, dtype=np.float64)
        observed = _shares(data, np.asarray(self.edges, dtype=np.float64))
        return float(np.sum((observed - expected) * np.log(observed / expected)))

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for storing with a model artifact."""
        return {"edges": list(self.edges), "shares": list(self.shares)}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> FeatureReference:
        """Rebuild a reference from ``to_dict`` output; ConfigError when malformed."""
        try:
            edges = tuple(float(e) for e in data["edges"])
            shares = tuple(float(s) for s in data["shares"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid feature reference: {exc}") from None
        if list(edges) != sorted(edges) or not all(math.isfinite(e) for e in edges):
            raise ConfigError("feature reference edges must be finite and ascending")
        if any(not 0.0 < s <= 1.0 for s in shares):
            raise ConfigError("feature reference shares must be within (0, 1]")
        return FeatureReference(edges, shares)


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike, bins: int = 10) -> float:
    """Return the PSI of ``actual`` against ``expected`` over ``expected``'s quantile bins."""
    return FeatureReference.from_values(expected, bins).psi(actual)


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """Where drift and accuracy loss start to count."""

    moderate_psi: float = PSI_STABLE
    significant_psi: float = PSI_SIGNIFICANT
    critical_psi: float = 0.5
    accuracy_tolerance: float = 0.02
    accuracy_degraded: float = 0.05
    accuracy_critical: float = 0.10
    min_live_samples: int = 100

    def __post_init__(self) -> None:
        psis = (self.moderate_psi, self.significant_psi, self.critical_psi)
        drops = (self.accuracy_tolerance, self.accuracy_degraded, self.accuracy_critical)
        for name, values in (("PSI", psis), ("accuracy", drops)):
            if not all(v > 0 and math.isfinite(v) for v in values) or list(values) != sorted(
                values
            ):
                raise ConfigError(f"{name} thresholds must be positive and ascending: {values}")
        if self.min_live_samples < 1:
            raise ConfigError("min_live_samples must be >= 1")


@dataclass(frozen=True, slots=True)
class ModelHealth:
    """One model-health reading: the score, its parts and a line for humans."""

    score: float
    detail: str
    version: str | None
    psi: Mapping[str, float] = field(default_factory=dict)
    worst_feature: str | None = None
    live_accuracy: float | None = None
    validation_accuracy: float | None = None
    live_samples: int = 0
    accuracy_drop: float | None = None
    stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able figures."""
        return {
            "score": self.score,
            "detail": self.detail,
            "version": self.version,
            "psi": dict(self.psi),
            "worst_feature": self.worst_feature,
            "live_accuracy": self.live_accuracy,
            "validation_accuracy": self.validation_accuracy,
            "live_samples": self.live_samples,
            "accuracy_drop": self.accuracy_drop,
            "stale": self.stale,
        }


def _step(value: float, limits: tuple[float, float, float]) -> float:
    if value < limits[0]:
        return 1.0
    if value < limits[1]:
        return 0.8
    if value < limits[2]:
        return 0.5
    return 0.3


def assess_model(
    *,
    version: str | None,
    references: Mapping[str, FeatureReference],
    live_features: Mapping[str, npt.ArrayLike],
    validation_accuracy: float | None,
    live_correct: npt.ArrayLike = (),
    stale: bool = False,
    thresholds: HealthThresholds | None = None,
) -> ModelHealth:
    """Score a served model from live feature values and resolved live predictions.

    Args:
        version: The served version (None: no model serves, which scores 0).
        references: Training distributions per feature.
        live_features: Recent live values per feature (features without a reference are
            ignored; a referenced feature with no live values does not count).
        validation_accuracy: The model's out-of-sample accuracy (None: accuracy not checked).
        live_correct: 1/0 per resolved live prediction (right/wrong call).
        stale: The served model is not the registry's active one (a failed sync).
        thresholds: Where drift and accuracy loss count.
    """
    th = thresholds or HealthThresholds()
    if version is None:
        return ModelHealth(0.0, "no model is serving", None, stale=stale)
    drift = {
        name: ref.psi(live_features[name])
        for name, ref in references.items()
        if name in live_features
    }
    drift = {name: value for name, value in drift.items() if math.isfinite(value)}
    parts: list[tuple[float, str]] = [(1.0, f"model {version} healthy")]
    worst = max(drift, key=lambda name: drift[name]) if drift else None
    if worst is not None:
        value = drift[worst]
        label = (
            "stable"
            if value < th.moderate_psi
            else "moderate shift"
            if value < th.significant_psi
            else "significant shift"
        )
        parts.append(
            (
                _step(value, (th.moderate_psi, th.significant_psi, th.critical_psi)),
                f"input drift: {worst} PSI {value:.3f} ({label})",
            )
        )
    correct = _clean(live_correct)
    live = float(correct.mean()) if len(correct) else None
    drop = None
    if validation_accuracy is not None and live is not None and len(correct) >= th.min_live_samples:
        allowance = 2.0 * math.sqrt(max(live * (1.0 - live), 0.0) / len(correct))
        drop = validation_accuracy - live - allowance
        parts.append(
            (
                _step(drop, (th.accuracy_tolerance, th.accuracy_degraded, th.accuracy_critical)),
                f"live accuracy {live:.3f} vs validation {validation_accuracy:.3f} "
                f"over {len(correct)} predictions",
            )
        )
    if stale:
        parts.append((0.5, f"serving {version}, not the active model (sync failed)"))
    score, detail = min(parts, key=lambda part: part[0])
    return ModelHealth(
        score=score,
        detail=detail,
        version=version,
        psi=drift,
        worst_feature=worst,
        live_accuracy=live,
        validation_accuracy=validation_accuracy,
        live_samples=len(correct),
        accuracy_drop=drop,
        stale=stale,
    )
