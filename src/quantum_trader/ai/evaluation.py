"""Out-of-sample scoring: accuracy, log loss, Brier, a reliability table, naive baselines.

Baselines are fitted on the training rows only, like the model, and scored on the same test rows:

- ``majority``: always the training window's more frequent class, with its base rate as the
  probability;
- ``momentum``: the sign of the return over the last ``horizon`` bars, with the training
  window's hit rate of that rule as the probability.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_EPS = 1e-12


def classification_metrics(prob_up: FloatArray, label: FloatArray) -> dict[str, float]:
    """Return n, accuracy, log loss, Brier score and the test base rate of ``prob_up`` vs labels."""
    p = np.clip(np.asarray(prob_up, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(label, dtype=np.float64)
    n = len(y)
    if n == 0:
        return {
            "n": 0,
            "accuracy": math.nan,
            "log_loss": math.nan,
            "brier": math.nan,
            "base_rate": math.nan,
        }
    predicted = p > 0.5
    return {
        "n": n,
        "accuracy": float((predicted == (y > 0.5)).mean()),
        "log_loss": float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()),
        "brier": float(((p - y) ** 2).mean()),
        "base_rate": float(y.mean()),
    }


def reliability_table(
    prob_up: FloatArray, label: FloatArray, bins: int = 10
) -> list[dict[str, float]]:
    """Return one row per non-empty probability bin: range, count, mean prediction, hit rate."""
    p = np.asarray(prob_up, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        if count:
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": count,
                    "mean_prob": float(p[mask].mean()),
                    "frac_up": float(y[mask].mean()),
                }
            )
    return rows


def majority_baseline(train_label: FloatArray, n_test: int) -> FloatArray:
    """The training base rate as every test row's up-probability."""
    rate = float(np.clip(np.mean(train_label), 0.01, 0.99)) if len(train_label) else 0.5
    return np.full(n_test, rate)


def momentum_baseline(
    train_past_return: FloatArray, train_label: FloatArray, test_past_return: FloatArray
) -> FloatArray:
    """Up-probability from the sign of the past return, at the rule's training hit rate."""
    up = np.asarray(train_past_return) > 0
    hits = (up == (np.asarray(train_label) > 0.5)).mean() if len(train_label) else 0.5
    hit = float(np.clip(hits, 0.01, 0.99))
    return np.where(np.asarray(test_past_return) > 0, hit, 1.0 - hit)
