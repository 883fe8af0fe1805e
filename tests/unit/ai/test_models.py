"""The ensemble: learns a planted signal, calibrates monotonically, is deterministic for a seed."""

from __future__ import annotations

import numpy as np
import pytest

from quantum_trader.ai.evaluation import classification_metrics, reliability_table
from quantum_trader.ai.models import DirectionEnsemble, EnsembleConfig, PlattCalibration
from quantum_trader.domain.errors import ConfigError

MIN = 60_000_000_000
FEATURES = ("a", "b", "c")


def _data(n: int, signal: float, seed: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    p = 1.0 / (1.0 + np.exp(-signal * x[:, 0]))
    y = (rng.uniform(size=n) < p).astype(np.float64)
    ts = np.arange(n, dtype=np.int64) * MIN
    return x, y, ts, ts + 5 * MIN


CONFIG = EnsembleConfig(seed=1, threads=1, n_estimators=60, min_child_samples=50)


def test_ensemble_when_signal_planted_predicts_better_than_chance_and_calibrated() -> None:
    x, y, ts, end = _data(6000, signal=1.5)
    model, report = DirectionEnsemble.fit(
        x[:4000], y[:4000], ts[:4000], end[:4000], FEATURES, CONFIG
    )
    # The calibration fold (last 20 % of the window) is purged from the fitting rows.
    assert report.purged_rows == 5
    assert report.fit_rows + report.calibration_rows + report.purged_rows == 4000
    prob = model.predict_proba(x[4000:])
    m = classification_metrics(prob, y[4000:])
    assert m["accuracy"] > 0.65
    assert m["log_loss"] < 0.65
    table = reliability_table(prob, y[4000:], bins=5)
    big = [r for r in table if r["count"] >= 100]
    assert [r["frac_up"] for r in big] == sorted(r["frac_up"] for r in big)
    for row in big:
        assert abs(row["frac_up"] - row["mean_prob"]) < 0.08


def test_calibration_when_raw_rises_calibrated_never_falls() -> None:
    x, y, ts, end = _data(3000, signal=1.0)
    model, _ = DirectionEnsemble.fit(x, y, ts, end, FEATURES, CONFIG)
    assert model.calibration.slope > 0
    raw = np.linspace(0.01, 0.99, 200)
    assert (np.diff(model.calibration.apply(raw)) >= 0).all()
    grid = np.zeros((200, 3))
    grid[:, 0] = np.linspace(-3, 3, 200)
    # Along the planted feature the linear part rises; the ensemble's average is not forced to,
    # but the calibrated output must keep the raw ensemble's order.
    order = np.argsort(model.raw_probability(grid), kind="stable")
    assert (np.diff(model.predict_proba(grid)[order]) >= -1e-12).all()


def test_calibration_when_no_signal_falls_back_to_the_base_rate() -> None:
    x, y, ts, end = _data(3000, signal=0.0)
    model, _ = DirectionEnsemble.fit(x, y, ts, end, FEATURES, CONFIG)
    if model.calibration.slope == 0.0:
        prob = model.predict_proba(x[:100])
        assert np.allclose(prob, prob[0])
    # Either way a noise model is never confident.
    assert np.abs(model.predict_proba(x) - 0.5).max() < 0.1


def test_platt_when_slope_zero_is_constant() -> None:
    cal = PlattCalibration(0.0, 0.0)
    np.testing.assert_allclose(cal.apply(np.array([0.1, 0.9])), [0.5, 0.5])


def test_ensemble_when_fitted_twice_with_a_seed_is_identical() -> None:
    x, y, ts, end = _data(3000, signal=1.0)
    a, _ = DirectionEnsemble.fit(x, y, ts, end, FEATURES, CONFIG)
    b, _ = DirectionEnsemble.fit(x, y, ts, end, FEATURES, CONFIG)
    assert a.booster_text == b.booster_text
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))


def test_ensemble_when_features_missing_predicts_nan_and_refuses_to_train() -> None:
    x, y, ts, end = _data(3000, signal=1.0)
    model, _ = DirectionEnsemble.fit(x, y, ts, end, FEATURES, CONFIG)
    x2 = x[:3].copy()
    x2[1, 2] = np.nan
    prob = model.predict_proba(x2)
    assert np.isnan(prob[1])
    assert np.isfinite(prob[[0, 2]]).all()
    x_bad = x.copy()
    x_bad[10, 0] = np.nan
    with pytest.raises(ConfigError, match="every feature"):
        DirectionEnsemble.fit(x_bad, y, ts, end, FEATURES, CONFIG)
    with pytest.raises(ConfigError, match="rows of 3 features"):
        model.predict_proba(x[:, :2])
