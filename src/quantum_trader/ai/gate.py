"""The promotion gate's statistics: does a candidate beat a reference out of sample?

Both models' out-of-sample predictions are paired on ``(ts_ns, symbol)``; a per-sample score
difference ``d_i = loss_reference_i - loss_candidate_i`` (log loss) or ``d_i =
correct_candidate_i - correct_reference_i`` (accuracy) is positive where the candidate is better.
The gate passes when

* at least ``min_samples`` pairs exist,
* the mean improvement ``delta`` exceeds ``margin``, and
* a seeded **circular block bootstrap** of the mean rejects "improvement <= margin" at
  ``1 - confidence``: ``p = (1 + #{b: mean_b <= margin}) / (B + 1)`` with ``p < 1 - confidence``.

Why blocks: direction labels over a horizon of ``h`` bars overlap, so neighbouring samples are
correlated and an i.i.d. bootstrap would overstate the evidence. Blocks span ``h`` bars of every
symbol (``block_length`` rows when set explicitly), which keeps that dependence inside a block.
The block sums are precomputed once (cumulative sums over the circularly extended series), so a
resample costs ``n / block`` random indices and the gate stays fast for large OOS sets.

The reference is the active model or, for the first model, a naive **baseline**: a constant
probability equal to the sample's up-rate (the best constant for log loss; the majority class
for accuracy). Fitting the constant on the evaluation sample favours the baseline, which is the
conservative side to err on. Pure numpy/pandas, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantum_trader.domain.errors import ConfigError

OOS_COLUMNS = ("ts_ns", "symbol", "prob_up", "label")
PROBABILITY_EPSILON = 1e-6
FloatArray = npt.NDArray[np.float64]


class GateMetric(StrEnum):
    """What the gate compares per sample."""

    LOG_LOSS = "log_loss"
    ACCURACY = "accuracy"


@dataclass(frozen=True, slots=True)
class GateConfig:
    """Settings of the promotion gate (statistics and shadow period).

    Attributes:
        metric: ``log_loss`` (default: rewards calibration, which the confidence gate relies
            on) or ``accuracy``.
        margin: Improvement the candidate must exceed (log-loss nats, or accuracy points as a
            fraction: 0.01 is one point).
        confidence: One-sided confidence of the bootstrap test; p must be below 1 - confidence.
        n_bootstrap: Bootstrap resamples.
        seed: Seed of the bootstrap's random generator (same inputs, same figures).
        min_samples: Fewest paired out-of-sample predictions the gate accepts.
        block_length: Rows per bootstrap block; None derives it from the horizon and symbols.
        min_shadow_secs: Least time a candidate spends in shadow before promotion.
        min_shadow_predictions: Fewest logged shadow predictions before promotion.
        max_shadow_decay: How much worse (in ``metric``) the shadow period's resolved
            predictions may score than the candidate's own out-of-sample figure; None: no check.
    """

    metric: GateMetric = GateMetric.LOG_LOSS
    margin: float = 0.0
    confidence: float = 0.95
    n_bootstrap: int = 2000
    seed: int = 0
    min_samples: int = 200
    block_length: int | None = None
    min_shadow_secs: float = 86_400.0
    min_shadow_predictions: int = 100
    max_shadow_decay: float | None = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", _metric(self.metric))
        if not (math.isfinite(self.margin) and self.margin >= 0.0):
            raise ConfigError(f"gate margin must be >= 0, got {self.margin!r}")
        if not 0.5 <= self.confidence < 1.0:
            raise ConfigError(f"gate confidence must be in [0.5, 1), got {self.confidence!r}")
        for name in ("n_bootstrap", "min_samples", "min_shadow_predictions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"gate {name} must be an integer >= 0, got {value!r}")
        if self.n_bootstrap < 100:
            raise ConfigError(f"gate n_bootstrap must be >= 100, got {self.n_bootstrap}")
        if self.block_length is not None and self.block_length < 1:
            raise ConfigError(f"gate block_length must be >= 1, got {self.block_length}")
        if not (math.isfinite(self.min_shadow_secs) and self.min_shadow_secs >= 0.0):
            raise ConfigError(f"gate min_shadow_secs must be >= 0, got {self.min_shadow_secs!r}")
        decay = self.max_shadow_decay
        if decay is not None and not (math.isfinite(decay) and decay >= 0.0):
            raise ConfigError(f"gate max_shadow_decay must be >= 0 or None, got {decay!r}")


def _metric(value: object) -> GateMetric:
    try:
        return GateMetric(str(value))
    except ValueError:
        valid = ", ".join(m.value for m in GateMetric)
        raise ConfigError(f"gate metric {value!r} is not one of: {valid}") from None


@dataclass(frozen=True, slots=True)
class Comparison:
    """The figures of one out-of-sample comparison; ``passed`` says whether the gate holds.

    ``delta`` is the mean per-sample improvement (positive: the candidate is better);
    ``ci_low``/``ci_high`` the two-sided ``confidence`` bootstrap interval of that mean.
    """

    metric: str
    reference: str
    n: int
    block_length: int
    candidate_score: float
    reference_score: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    margin: float
    confidence: float
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able figures, for the audit trail and the CLI."""
        return asdict(self)


def validate_oos(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Return ``frame`` checked and normalised to ``OOS_COLUMNS``; ConfigError names the fault."""
    missing = [c for c in OOS_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what}: missing column(s) {', '.join(missing)}")
    out = frame.loc[:, list(OOS_COLUMNS)].copy()
    prob = pd.to_numeric(out["prob_up"], errors="coerce").to_numpy(np.float64)
    if not np.all(np.isfinite(prob)) or np.any((prob < 0.0) | (prob > 1.0)):
        raise ConfigError(f"{what}: prob_up must be finite and within 0..1")
    label = pd.to_numeric(out["label"], errors="coerce").to_numpy(np.float64)
    if not np.all(np.isin(label, (0.0, 1.0))):
        raise ConfigError(f"{what}: label must be 1 (up) or 0 (down)")
    out["prob_up"] = prob
    out["label"] = label.astype(np.int64)
    out["ts_ns"] = pd.to_numeric(out["ts_ns"], errors="raise").astype(np.int64)
    out["symbol"] = out["symbol"].astype(str)
    if out.duplicated(["ts_ns", "symbol"]).any():
        raise ConfigError(f"{what}: more than one prediction for a (ts_ns, symbol)")
    return out.sort_values(["ts_ns", "symbol"], kind="mergesort").reset_index(drop=True)


def per_sample_log_loss(prob_up: FloatArray, label: npt.NDArray[np.int64]) -> FloatArray:
    """Return each sample's log loss, probabilities clipped to ``[eps, 1 - eps]``."""
    p = np.clip(prob_up, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    return np.asarray(-np.where(label == 1, np.log(p), np.log1p(-p)), dtype=np.float64)


def per_sample_correct(prob_up: FloatArray, label: npt.NDArray[np.int64]) -> FloatArray:
    """Return 1.0 where the call (up when ``prob_up > 0.5``) matches the label, else 0.0."""
    return np.asarray((prob_up > 0.5).astype(np.int64) == label, dtype=np.float64)


def score(prob_up: FloatArray, label: npt.NDArray[np.int64], metric: GateMetric) -> float:
    """Return the mean log loss (lower is better) or accuracy (higher is better)."""
    if len(label) == 0:
        return math.nan
    if metric is GateMetric.LOG_LOSS:
        return float(per_sample_log_loss(prob_up, label).mean())
    return float(per_sample_correct(prob_up, label).mean())


def baseline_predictions(oos: pd.DataFrame) -> pd.DataFrame:
    """Return the naive baseline on the same samples: a constant probability, the up-rate."""
    base = oos.loc[:, ["ts_ns", "symbol", "label"]].copy()
    rate = float(oos["label"].mean()) if len(oos) else 0.5
    base["prob_up"] = rate
    return base


def block_bootstrap_means(
    values: FloatArray, block: int, n_bootstrap: int, seed: int
) -> FloatArray:
    """Return ``n_bootstrap`` circular-block-bootstrap means of ``values`` (seeded)."""
    n = len(values)
    block = max(1, min(block, n))
    blocks = math.ceil(n / block)
    extended = np.concatenate([values, values[: block - 1]])
    csum = np.concatenate([[0.0], np.cumsum(extended)])
    sums = csum[block : block + n] - csum[:n]  # sums[j] = values[j] + ... + values[j+block-1]
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(n_bootstrap, blocks))
    return np.asarray(sums[starts].sum(axis=1) / (blocks * block), dtype=np.float64)


def _block_length(paired: pd.DataFrame, horizon: int, config: GateConfig) -> int:
    if config.block_length is not None:
        return config.block_length
    symbols = max(1, int(paired["symbol"].nunique()))
    return max(1, horizon) * symbols


def compare(
    candidate: pd.DataFrame,
    reference: pd.DataFrame | None,
    config: GateConfig,
    *,
    horizon: int = 1,
    reference_name: str = "baseline",
) -> Comparison:
    """Compare ``candidate``'s OOS predictions with ``reference``'s (None: the naive baseline).

    Both frames have ``OOS_COLUMNS``; only pairs present in both count, and a pair whose labels
    disagree is an error (the two were not scored on the same truth).
    """
    cand = validate_oos(candidate, "candidate predictions")
    if reference is None:
        ref = baseline_predictions(cand)
        reference_name = "baseline"
    else:
        ref = validate_oos(reference, f"{reference_name} predictions")
    paired = cand.merge(ref, on=["ts_ns", "symbol"], suffixes=("_c", "_r"), how="inner")
    if (paired["label_c"] != paired["label_r"]).any():
        raise ConfigError(
            f"candidate and {reference_name} disagree on labels of the same (ts_ns, symbol): "
            "they were not evaluated on the same data"
        )
    paired = paired.sort_values(["ts_ns", "symbol"], kind="mergesort").reset_index(drop=True)
    n = len(paired)
    metric = config.metric
    label = paired["label_c"].to_numpy(np.int64)
    p_c = paired["prob_up_c"].to_numpy(np.float64)
    p_r = paired["prob_up_r"].to_numpy(np.float64)
    block = _block_length(paired, horizon, config)
    common: dict[str, Any] = {
        "metric": metric.value,
        "reference": reference_name,
        "n": n,
        "block_length": block,
        "margin": config.margin,
        "confidence": config.confidence,
    }
    if n < max(config.min_samples, 2):
        return Comparison(
            **common,
            candidate_score=score(p_c, label, metric),
            reference_score=score(p_r, label, metric),
            delta=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            p_value=1.0,
            passed=False,
            reason=f"too few paired out-of-sample predictions: {n} < {config.min_samples}",
        )
    if metric is GateMetric.LOG_LOSS:
        diff = per_sample_log_loss(p_r, label) - per_sample_log_loss(p_c, label)
    else:
        diff = per_sample_correct(p_c, label) - per_sample_correct(p_r, label)
    delta = float(diff.mean())
    means = block_bootstrap_means(diff, block, config.n_bootstrap, config.seed)
    alpha = 1.0 - config.confidence
    p_value = float((1 + np.count_nonzero(means <= config.margin)) / (len(means) + 1))
    ci_low, ci_high = (float(x) for x in np.quantile(means, [alpha / 2, 1 - alpha / 2]))
    passed = delta > config.margin and p_value < alpha
    if passed:
        reason = (
            f"beats {reference_name} on {metric.value} by {delta:.5f} > margin "
            f"{config.margin:g} (p={p_value:.4f} < {alpha:.3g}, n={n})"
        )
    elif delta <= config.margin:
        reason = (
            f"improvement over {reference_name} on {metric.value} is {delta:.5f}, not above "
            f"the margin {config.margin:g} (p={p_value:.4f}, n={n})"
        )
    else:
        reason = (
            f"improvement over {reference_name} on {metric.value} of {delta:.5f} is not "
            f"significant: p={p_value:.4f} >= {alpha:.3g} (n={n}, block={block})"
        )
    return Comparison(
        **common,
        candidate_score=score(p_c, label, metric),
        reference_score=score(p_r, label, metric),
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        passed=passed,
        reason=reason,
    )
