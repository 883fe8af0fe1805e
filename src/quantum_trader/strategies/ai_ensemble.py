"""``ai_ensemble``: trade the calibrated direction ensemble of a model artifact.

At each bar the ensemble gives ``p`` = P(price rises over its horizon), from causal features
(``quantum_trader.ai.features``), so ``target[t]`` depends on bars ``0..t`` only. The rule:

- confidence ``c = max(p, 1 - p)``;
- ``c >= min_confidence``: target ``+fraction`` if ``p > 0.5``, ``-fraction`` if ``p < 0.5``;
- otherwise no opinion (NaN: keep what is held) or, with ``exit_when_unsure``, flat (0).

The per-bar confidence and the model version travel with the targets (``Signals``), so the
engine's RiskGuard gates entries by the policy's minimum confidence and every
``trade.decision`` audit record names the model and its confidence.

With a model registry (``registry=DIR``) the strategy trades the active version, picks up a
promotion at its next call, and runs every version in **shadow** beside it: each bar, each
shadow model's prediction and, a horizon later, its outcome go to the registry's shadow log
(buffered, ``SHADOW_BATCH`` per fsynced append); they never reach a target. That log is what
the promotion gate reads for the shadow period.

``PredictionReplay`` plays saved out-of-sample probabilities through the same rule: the
validation backtest of ``qtrader train`` uses it, so the backtest a validation report shows is
exactly what this strategy does with predictions the model made without seeing those bars.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantum_trader.ai.features import WARMUP_BARS, compute_features
from quantum_trader.domain.errors import ConfigError, QuantumTraderError
from quantum_trader.strategies.base import Bars, FloatArray, Signals, TargetUnit

if TYPE_CHECKING:
    from quantum_trader.ai.artifact import ModelArtifact
    from quantum_trader.ai.health import ModelHealth
    from quantum_trader.ai.registry import ModelRegistry
    from quantum_trader.ai.shadow import ShadowOutcome, ShadowPrediction
    from quantum_trader.ai.sync import ModelWatcher


LIVE_WINDOW = 2_880
"""Bars of live features and resolved predictions the model's health is measured over."""
MIN_DRIFT_ROWS = 500
"""Live feature rows needed before drift is measured (fewer make PSI noise)."""
SHADOW_BATCH = 120
"""Shadow predictions and outcomes buffered before one fsynced append to the shadow log."""
NO_DRIFT_FEATURES = frozenset({"funding_rate", "time_of_day_sin", "time_of_day_cos"})
"""Features whose live distribution over ``LIVE_WINDOW`` bars cannot match training's."""


def targets_from_probability(
    prob_up: FloatArray, fraction: float, min_confidence: float, *, exit_when_unsure: bool = False
) -> tuple[FloatArray, FloatArray]:
    """Return (target, confidence) per bar for up-probabilities ``prob_up`` (NaN: no prediction)."""
    p = np.asarray(prob_up, dtype=np.float64)
    confidence = np.maximum(p, 1.0 - p)
    direction = np.sign(p - 0.5)
    sure = (confidence >= min_confidence) & (direction != 0)
    unsure = 0.0 if exit_when_unsure else np.nan
    target = np.where(sure, direction * fraction, unsure)
    target[np.isnan(p)] = np.nan
    return target, confidence


def _check_rule(name: str, fraction: float, min_confidence: float) -> None:
    if not 0 < fraction <= 10:
        raise ConfigError(f"{name}: fraction must be in (0, 10], got {fraction}")
    if not 0.5 <= min_confidence <= 1.0:
        raise ConfigError(f"{name}: min_confidence must be in [0.5, 1], got {min_confidence}")


class AiEnsemble:
    """Hold ``fraction`` of equity in the direction the model is confident about.

    The model is either ``model``, the folder of an artifact written by ``qtrader train``
    (loaded and verified once, when the strategy is made), or ``registry``, a model registry
    folder (``qtrader models``): then the strategy serves the registry's **active** version and
    checks for a newer one before every ``signals`` call (one ``stat``; ``ai.sync``), so a
    running worker trades a newly promoted model from its next decision on, without a restart.
    A model that fails to load leaves the previous one serving.
    """

    name = "ai_ensemble"

    def __init__(
        self,
        model: str = "",
        fraction: float = 0.2,
        min_confidence: float = 0.55,
        exit_when_unsure: bool = False,
        threads: int = 1,
        registry: str = "",
    ) -> None:
        if bool(model) == bool(registry):
            raise ConfigError(
                "ai_ensemble: give either the model artifact folder (--param model=DIR) or a "
                "model registry folder (--param registry=DIR), not both"
            )
        _check_rule(self.name, fraction, min_confidence)
        # Imported here: LightGBM takes a second to import, and only this strategy needs it.
        from quantum_trader.ai.artifact import load_artifact

        self.fraction = fraction
        self.min_confidence = min_confidence
        self.exit_when_unsure = exit_when_unsure
        self._watcher: ModelWatcher[ModelArtifact] | None = None
        self._seen: dict[str, int] = {}
        self._registry: ModelRegistry | None = None
        self._shadows: dict[str, ModelArtifact] = {}
        self._shadow_seen: dict[str, int] = {}
        self._shadow_pending: dict[str, tuple[list[ShadowPrediction], list[ShadowOutcome]]] = {}
        self._last_features = pd.DataFrame()
        self._live: deque[FloatArray] = deque(maxlen=LIVE_WINDOW)
        self._outcomes: deque[float] = deque(maxlen=LIVE_WINDOW)
        if model:
            self.model_path = Path(model)
            self._artifact: ModelArtifact = load_artifact(self.model_path, threads=threads)
            return
        from quantum_trader.ai.registry import ModelRegistry
        from quantum_trader.ai.sync import ModelWatcher
        from quantum_trader.domain.clock import WallClock

        self.model_path = Path(registry)
        self._registry = ModelRegistry(self.model_path, WallClock())
        self._watcher = ModelWatcher(
            self._registry,
            lambda path, _record: load_artifact(path, threads=threads),
        )
        result = self._watcher.poll()
        served = self._watcher.served
        if served is None:
            raise ConfigError(
                f"ai_ensemble: the registry {self.model_path} has no active model to serve"
                + (f" ({result.error})" if result.error else "")
            )
        self._artifact = served.model
        self._load_shadows()

    @property
    def artifact(self) -> ModelArtifact:
        """The model serving now."""
        return self._artifact

    def _observe(self, bars: Bars, x: FloatArray, prob: FloatArray) -> None:
        """Keep the newest bar's features, and score the prediction made a horizon ago."""
        if not len(bars):
            return
        symbol, ts = bars.symbol, int(bars.ts[-1])
        if ts <= self._seen.get(symbol, -1):
            return
        self._seen[symbol] = ts
        if np.isfinite(x[-1]).all():
            self._live.append(x[-1])
        h = self.artifact.horizon
        if len(bars) > h and np.isfinite(prob[-1 - h]) and prob[-1 - h] != 0.5:
            up = bars.close[-1] > bars.close[-1 - h]
            self._outcomes.append(1.0 if (prob[-1 - h] > 0.5) == up else 0.0)

    def model_health(self) -> ModelHealth:
        """Drift of the live features from training (PSI) and live accuracy vs validation.

        Over the last ``LIVE_WINDOW`` bars seen by ``signals``, all symbols pooled; a stale
        model (the registry's active version failed to load) counts against it. Drift is read
        once ``MIN_DRIFT_ROWS`` live rows are in, and not for the calendar and funding
        features (``NO_DRIFT_FEATURES``): over a day or two their live values cover a few
        hours or a few funding stamps, which is no sample of their training distribution.
        """
        from quantum_trader.ai.health import assess_model

        live = np.asarray(self._live, dtype=np.float64)
        names = list(self.artifact.model.features)
        features: dict[str, FloatArray] = {}
        if len(live) >= MIN_DRIFT_ROWS:
            features = {n: live[:, j] for j, n in enumerate(names) if n not in NO_DRIFT_FEATURES}
        return assess_model(
            version=self.artifact.version,
            references=self.artifact.feature_references(),
            live_features=features,
            validation_accuracy=self.artifact.validation_accuracy(),
            live_correct=list(self._outcomes),
            stale=self._watcher.stale if self._watcher is not None else False,
        )

    def refresh(self) -> bool:
        """With a registry: serve its active version if it changed; True when swapped."""
        if self._watcher is None:
            return False
        result = self._watcher.poll()
        served = self._watcher.served
        if served is not None:
            self._artifact = served.model
        if result.checked:
            self._load_shadows()
        return result.swapped

    def _load_shadows(self) -> None:
        """Load the registry's versions in shadow (kept while they stay in shadow)."""
        from quantum_trader.ai.artifact import load_artifact
        from quantum_trader.ai.registry import ModelStatus

        assert self._registry is not None
        wanted = {r.version for r in self._registry.records() if r.status is ModelStatus.SHADOW}
        for version in list(self._shadows):
            if version not in wanted:
                self._flush_shadow(version)
                del self._shadows[version]
        for version in wanted - self._shadows.keys():
            try:
                self._shadows[version] = load_artifact(self._registry.verify(version))
            except QuantumTraderError:
                continue  # a shadow that cannot load is not logged; the gate will see that

    def _shadow(self, bars: Bars) -> None:
        """Log each shadow model's prediction for the newest bar, and the outcome of its
        prediction a horizon ago; nothing here reaches a target."""
        if not self._shadows or not len(bars):
            return
        from quantum_trader.ai.shadow import ShadowOutcome, ShadowPrediction

        symbol, ts = bars.symbol, int(bars.ts[-1])
        if ts <= self._shadow_seen.get(symbol, -1):
            return
        self._shadow_seen[symbol] = ts
        for version, artifact in self._shadows.items():
            x = self._matrix(artifact, self._last_features)[-1:]
            pending = self._shadow_pending.setdefault(version, ([], []))
            if np.isfinite(x).all():
                p = float(artifact.model.predict_proba(x)[0])
                pending[0].append(ShadowPrediction(ts, symbol, min(max(p, 0.0), 1.0)))
            h = artifact.horizon
            if len(bars) > h:
                up = int(bars.close[-1] > bars.close[-1 - h])
                pending[1].append(ShadowOutcome(int(bars.ts[-1 - h]), symbol, up))
            if len(pending[0]) + len(pending[1]) >= SHADOW_BATCH:
                self._flush_shadow(version)

    def _flush_shadow(self, version: str) -> None:
        predictions, outcomes = self._shadow_pending.pop(version, ([], []))
        if self._registry is None or not (predictions or outcomes):
            return
        try:
            if predictions:
                self._registry.record_shadow_predictions(version, predictions)
            if outcomes:
                self._registry.record_shadow_outcomes(version, outcomes)
        except QuantumTraderError:
            pass  # promoted or retired meanwhile: its shadow period is over

    def close(self) -> None:
        """Write the shadow predictions still buffered."""
        for version in list(self._shadow_pending):
            self._flush_shadow(version)

    @property
    def warmup_bars(self) -> int:
        """Bars before every feature is defined."""
        return WARMUP_BARS

    def params(self) -> dict[str, float | int | str]:
        """Parameters, with the model's version."""
        return {
            "model": str(self.model_path),
            "model_version": self.artifact.version,
            "horizon": self.artifact.horizon,
            "fraction": self.fraction,
            "min_confidence": self.min_confidence,
            "exit_when_unsure": int(self.exit_when_unsure),
        }

    def probabilities(self, bars: Bars) -> FloatArray:
        """The model's calibrated up-probability per bar (NaN during the feature warm-up)."""
        return self._predict(bars)[1]

    def _predict(self, bars: Bars) -> tuple[FloatArray, FloatArray]:
        features = self._features(bars)
        x = self._matrix(self.artifact, features)
        return x, self.artifact.model.predict_proba(x)

    @staticmethod
    def _matrix(artifact: ModelArtifact, features: pd.DataFrame) -> FloatArray:
        wanted = list(artifact.model.features)
        missing = [f for f in wanted if f not in features.columns]
        if missing:
            raise ConfigError(
                f"ai_ensemble: model {artifact.version} needs features this version "
                f"does not compute: {', '.join(missing)}"
            )
        return features[wanted].to_numpy(np.float64)

    def _features(self, bars: Bars) -> pd.DataFrame:
        self._last_features = compute_features(
            bars.ts,
            bars.open,
            bars.high,
            bars.low,
            bars.close,
            bars.volume,
            funding_ts=bars.funding_ts,
            funding_rate=bars.funding_rate,
        )
        return self._last_features

    def signals(self, bars: Bars) -> Signals:
        """Target per bar from the model's probability; confidence per bar alongside."""
        self.refresh()
        x, prob = self._predict(bars)
        self._observe(bars, x, prob)
        self._shadow(bars)
        target, confidence = targets_from_probability(
            prob,
            self.fraction,
            self.min_confidence,
            exit_when_unsure=self.exit_when_unsure,
        )
        return Signals(
            target, TargetUnit.EQUITY_FRACTION, confidence, model_version=self.artifact.version
        )


class PredictionReplay:
    """Trade saved predictions with ``ai_ensemble``'s rule (bars without one: no opinion).

    ``predictions`` maps each symbol to (bar open times in ns, up-probabilities).
    """

    def __init__(
        self,
        predictions: Mapping[str, tuple[npt.NDArray[np.int64], FloatArray]],
        *,
        fraction: float = 0.2,
        min_confidence: float = 0.55,
        exit_when_unsure: bool = False,
        model_version: str | None = None,
        name: str = "ai_ensemble",
    ) -> None:
        _check_rule(name, fraction, min_confidence)
        self.name = name
        self.predictions = dict(predictions)
        self.fraction = fraction
        self.min_confidence = min_confidence
        self.exit_when_unsure = exit_when_unsure
        self.model_version = model_version

    @property
    def warmup_bars(self) -> int:
        """None: the predictions were made elsewhere."""
        return 0

    def params(self) -> dict[str, float | int | str]:
        """The trading rule's parameters."""
        return {
            "fraction": self.fraction,
            "min_confidence": self.min_confidence,
            "exit_when_unsure": int(self.exit_when_unsure),
            "model_version": self.model_version or "",
        }

    def signals(self, bars: Bars) -> Signals:
        """Target per bar from the saved probability at that bar's time."""
        prob = np.full(len(bars), np.nan)
        saved = self.predictions.get(bars.symbol)
        if saved is not None and len(saved[0]):
            ts, p = saved
            order = np.argsort(ts, kind="stable")
            ts, p = ts[order], p[order]
            j = np.clip(np.searchsorted(ts, bars.ts), 0, len(ts) - 1)
            hit = ts[j] == bars.ts
            prob[hit] = p[j[hit]]
        target, confidence = targets_from_probability(
            prob, self.fraction, self.min_confidence, exit_when_unsure=self.exit_when_unsure
        )
        return Signals(
            target, TargetUnit.EQUITY_FRACTION, confidence, model_version=self.model_version
        )
