"""The direction ensemble: LightGBM + an L2-regularised logistic regression, Platt-calibrated.

``DirectionEnsemble.fit`` takes a training window's rows (time-ordered or not) and:

1. holds out the latest ``calibration_fraction`` of the window's time as a calibration fold,
   and purges from the fitting rows every row whose label window reaches into it;
2. fits both models on the fitting rows — LightGBM (shallow trees, strong regularisation,
   deterministic, seeded, ``threads`` threads) and a logistic regression on standardised
   features clipped to ±5 standard deviations;
3. averages the two probabilities and fits a Platt map ``p = sigmoid(a · logit(raw) + b)`` on
   the calibration fold. When the fold shows no positive relation (``a <= 0``) the map is the
   fold's base rate: a model with no usable signal says so with probabilities near 0.5.

Nothing outside the training window is touched, so walk-forward validation stays honest. The
fitted state is plain data (a LightGBM model string and a handful of float arrays), so an
artifact stores it without pickle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

from quantum_trader.ai.validation import purge
from quantum_trader.domain.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_CLIP_SD = 5.0
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class EnsembleConfig:
    """Hyper-parameters of the ensemble; fixed in advance, not tuned on test data."""

    seed: int = 7
    threads: int = 2
    calibration_fraction: float = 0.2
    n_estimators: int = 200
    learning_rate: float = 0.03
    num_leaves: int = 15
    min_child_samples: int = 500
    subsample: float = 0.7
    colsample: float = 0.7
    reg_lambda: float = 5.0
    linear_c: float = 0.05
    extra_lgbm: dict[str, float | int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.05 <= self.calibration_fraction <= 0.5:
            raise ConfigError(
                f"calibration_fraction must be in [0.05, 0.5], got {self.calibration_fraction}"
            )
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")

    def lgbm_params(self) -> dict[str, object]:
        """LightGBM training parameters (deterministic for a seed)."""
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1,
            "feature_fraction": self.colsample,
            "lambda_l2": self.reg_lambda,
            "seed": self.seed,
            "num_threads": self.threads,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
            **self.extra_lgbm,
        }


@dataclass(frozen=True, slots=True)
class LinearModel:
    """Standardise, clip, then logistic: ``p = sigmoid(clip((x - mean) / scale) · coef + b)``."""

    mean: FloatArray
    scale: FloatArray
    coef: FloatArray
    intercept: float

    def predict(self, x: FloatArray) -> FloatArray:
        """Probability of an up move for each row of ``x``."""
        z = np.clip((x - self.mean) / self.scale, -_CLIP_SD, _CLIP_SD)
        return _sigmoid(z @ self.coef + self.intercept)


@dataclass(frozen=True, slots=True)
class PlattCalibration:
    """``p = sigmoid(slope · logit(raw) + intercept)``; slope >= 0, so it keeps the order."""

    slope: float
    intercept: float

    def apply(self, raw: FloatArray) -> FloatArray:
        """Calibrated probability for raw ensemble probabilities."""
        return _sigmoid(self.slope * _logit(raw) + self.intercept)


@dataclass(frozen=True, slots=True)
class FitReport:
    """What a fit used: rows fitted, calibration rows, rows purged between them."""

    fit_rows: int
    calibration_rows: int
    purged_rows: int
    calibration_start_ns: int


class DirectionEnsemble:
    """Predicts the probability that price rises over the horizon it was trained for."""

    def __init__(
        self,
        features: tuple[str, ...],
        booster_text: str,
        linear: LinearModel,
        calibration: PlattCalibration,
        threads: int = 2,
    ) -> None:
        """Assemble a fitted ensemble (from ``fit`` or from an artifact)."""
        self.features = features
        self.booster_text = booster_text
        self.linear = linear
        self.calibration = calibration
        self.threads = threads
        self._booster = lgb.Booster(model_str=booster_text)
        if self._booster.num_feature() != len(features):
            raise ConfigError(
                f"the LightGBM model has {self._booster.num_feature()} features, "
                f"the ensemble lists {len(features)}"
            )

    @classmethod
    def fit(
        cls,
        x: FloatArray,
        y: FloatArray,
        ts: IntArray,
        label_end: IntArray,
        features: tuple[str, ...],
        config: EnsembleConfig,
    ) -> tuple[DirectionEnsemble, FitReport]:
        """Fit on one training window (rows of ``x`` with labels ``y`` in {0, 1})."""
        if x.shape != (len(y), len(features)):
            raise ConfigError(f"features {x.shape} do not match {len(y)} labels x {len(features)}")
        if len(y) < 100:
            raise ConfigError(f"only {len(y)} labelled rows to train on; need at least 100")
        if np.isnan(x).any() or not np.isin(y, (0.0, 1.0)).all():
            raise ConfigError("training rows must have every feature and a 0/1 label")
        t_lo, t_hi = int(ts.min()), int(ts.max())
        cal_start = t_hi - int((t_hi - t_lo) * config.calibration_fraction)
        cal = np.flatnonzero(ts >= cal_start)
        fit_rows, purged = purge(
            np.flatnonzero(ts < cal_start), ts, label_end, cal_start, t_hi, embargo_ns=0
        )
        if len(fit_rows) < 50 or len(cal) < 50:
            raise ConfigError("the training window is too short to hold out a calibration fold")
        if len(np.unique(y[fit_rows])) < 2:
            raise ConfigError("the training rows have only one label class")
        booster = lgb.train(
            config.lgbm_params(),
            lgb.Dataset(x[fit_rows], label=y[fit_rows], free_raw_data=True),
            num_boost_round=config.n_estimators,
        )
        linear = _fit_linear(x[fit_rows], y[fit_rows], config)
        model = cls(
            features,
            booster.model_to_string(),
            linear,
            PlattCalibration(1.0, 0.0),
            threads=config.threads,
        )
        raw = model.raw_probability(x[cal])
        calibrated = cls(
            features,
            model.booster_text,
            linear,
            _fit_platt(raw, y[cal]),
            threads=config.threads,
        )
        return calibrated, FitReport(len(fit_rows), len(cal), purged, cal_start)

    def feature_importance(self) -> dict[str, float]:
        """Each feature's share of the LightGBM model's total split gain."""
        gain = np.asarray(self._booster.feature_importance("gain"), dtype=np.float64)
        total = float(gain.sum())
        shares = gain / total if total > 0 else gain
        return {name: float(v) for name, v in zip(self.features, shares, strict=True)}

    def component_probabilities(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Uncalibrated up-probabilities of the LightGBM and the linear model."""
        p_tree = np.asarray(self._booster.predict(x, num_threads=self.threads), dtype=np.float64)
        return p_tree, self.linear.predict(x)

    def raw_probability(self, x: FloatArray) -> FloatArray:
        """The average of the two models' probabilities, before calibration."""
        p_tree, p_lin = self.component_probabilities(x)
        return 0.5 * (p_tree + p_lin)

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Calibrated probability of an up move per row; NaN where a feature is missing."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ConfigError(f"expected rows of {len(self.features)} features, got {x.shape}")
        out = np.full(len(x), np.nan)
        ok = ~np.isnan(x).any(axis=1)
        if ok.any():
            out[ok] = self.calibration.apply(self.raw_probability(x[ok]))
        return out


def _fit_linear(x: FloatArray, y: FloatArray, config: EnsembleConfig) -> LinearModel:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.clip((x - mean) / scale, -_CLIP_SD, _CLIP_SD)
    model = LogisticRegression(C=config.linear_c, max_iter=1000, random_state=config.seed)
    model.fit(z, y)
    return LinearModel(
        mean=mean.astype(np.float64),
        scale=scale.astype(np.float64),
        coef=np.asarray(model.coef_[0], dtype=np.float64),
        intercept=float(model.intercept_[0]),
    )


def _fit_platt(raw: FloatArray, y: FloatArray) -> PlattCalibration:
    base = float(np.clip(y.mean(), _EPS, 1 - _EPS))
    z = _logit(raw).reshape(-1, 1)
    if len(np.unique(y)) < 2 or float(np.std(z)) == 0.0:
        return PlattCalibration(0.0, math.log(base / (1 - base)))
    model = LogisticRegression(C=1e4, max_iter=1000)
    model.fit(z, y)
    slope = float(model.coef_[0][0])
    if slope <= 0:
        return PlattCalibration(0.0, math.log(base / (1 - base)))
    return PlattCalibration(slope, float(model.intercept_[0]))


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))), dtype=np.float64)


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)
