"""The promotion gate's statistics: paired comparison, block bootstrap, figures, refusals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quantum_trader.ai.gate import (
    GateConfig,
    GateMetric,
    block_bootstrap_means,
    compare,
    per_sample_log_loss,
)
from quantum_trader.domain.errors import ConfigError
from quantum_trader.testing.models import oos_labels, predictions_with_skill

CONFIG = GateConfig(min_samples=100, n_bootstrap=500, seed=3)


def test_compare_when_candidate_clearly_beats_baseline_passes_with_figures() -> None:
    oos = predictions_with_skill(oos_labels(600, seed=1), 0.2, noise=0.05)
    result = compare(oos, None, CONFIG)
    assert result.passed
    assert result.reference == "baseline"
    assert result.n == 600
    assert result.delta > 0.05
    assert result.ci_low > 0.0
    assert result.p_value < 0.05
    assert result.candidate_score < result.reference_score


def test_compare_when_candidate_equals_reference_refuses_with_p_value() -> None:
    oos = predictions_with_skill(oos_labels(600, seed=1), 0.1, noise=0.05)
    result = compare(oos, oos.copy(), CONFIG, reference_name="v1")
    assert not result.passed
    assert result.delta == 0.0
    assert result.p_value == 1.0
    assert "not above the margin" in result.reason
    assert "p=1.0000" in result.reason


def test_compare_when_improvement_is_noise_refuses_as_not_significant() -> None:
    labels = oos_labels(400, seed=5)
    reference = predictions_with_skill(labels, 0.05, seed=11, noise=0.2)
    candidate = predictions_with_skill(labels, 0.05, seed=12, noise=0.2)
    config = GateConfig(min_samples=100, n_bootstrap=500, seed=3, metric=GateMetric.LOG_LOSS)
    result = compare(candidate, reference, config, reference_name="v1")
    assert not result.passed
    assert result.p_value >= 0.05


def test_compare_when_margin_is_larger_than_the_edge_refuses() -> None:
    oos = predictions_with_skill(oos_labels(600, seed=1), 0.2, noise=0.05)
    config = GateConfig(min_samples=100, n_bootstrap=500, margin=1.0)
    result = compare(oos, None, config)
    assert not result.passed
    assert "margin" in result.reason


def test_compare_when_too_few_pairs_refuses_without_bootstrap() -> None:
    labels = oos_labels(300, seed=1)
    candidate = predictions_with_skill(labels.iloc[:150], 0.2)
    reference = predictions_with_skill(labels.iloc[100:], 0.1)
    result = compare(candidate, reference, CONFIG, reference_name="v1")
    assert not result.passed
    assert result.n == 50
    assert "too few paired" in result.reason
    assert math.isnan(result.delta)


def test_compare_when_seeded_repeats_the_same_figures() -> None:
    oos = predictions_with_skill(oos_labels(500, seed=2), 0.03, noise=0.2)
    first, second = compare(oos, None, CONFIG), compare(oos, None, CONFIG)
    assert first == second


def test_compare_when_accuracy_metric_counts_correct_calls() -> None:
    labels = oos_labels(400, seed=4)
    candidate = predictions_with_skill(labels, 0.2)  # always right
    config = GateConfig(min_samples=100, n_bootstrap=500, metric="accuracy")  # type: ignore[arg-type]
    result = compare(candidate, None, config)
    assert result.candidate_score == 1.0
    assert result.reference_score == pytest.approx(max(labels["label"].mean(), 0.5), abs=0.5)
    assert result.passed


def test_block_length_when_horizon_and_symbols_given_spans_both() -> None:
    oos = predictions_with_skill(oos_labels(600, symbols=("BTCUSDT", "ETHUSDT"), seed=1), 0.2)
    assert compare(oos, None, CONFIG, horizon=5).block_length == 10
    assert compare(oos, None, GateConfig(min_samples=10, block_length=7)).block_length == 7


def test_block_bootstrap_when_values_constant_every_mean_is_that_constant() -> None:
    means = block_bootstrap_means(np.full(50, 0.25), 7, 200, 0)
    assert np.allclose(means, 0.25)


def test_block_bootstrap_when_block_is_one_matches_mean_of_iid_resample() -> None:
    values = np.arange(10, dtype=np.float64)
    means = block_bootstrap_means(values, 1, 100, 9)
    rng = np.random.default_rng(9)
    expected = values[rng.integers(0, 10, size=(100, 10))].mean(axis=1)
    assert np.allclose(means, expected)


def test_log_loss_when_hand_computed_matches() -> None:
    loss = per_sample_log_loss(np.array([0.8, 0.8]), np.array([1, 0]))
    assert loss == pytest.approx([-math.log(0.8), -math.log(0.2)])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"ts_ns": [1], "symbol": ["X"], "prob_up": [0.5]}), "missing column"),
        (pd.DataFrame({"ts_ns": [1], "symbol": ["X"], "prob_up": [1.5], "label": [1]}), "0..1"),
        (pd.DataFrame({"ts_ns": [1], "symbol": ["X"], "prob_up": [0.5], "label": [2]}), "label"),
        (
            pd.DataFrame(
                {"ts_ns": [1, 1], "symbol": ["X"] * 2, "prob_up": [0.5] * 2, "label": [1] * 2}
            ),
            "more than one",
        ),
    ],
)
def test_compare_when_predictions_malformed_raises_config_error(
    frame: pd.DataFrame, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        compare(frame, None, CONFIG)


def test_compare_when_labels_disagree_raises() -> None:
    labels = oos_labels(200, seed=1)
    reference = predictions_with_skill(labels, 0.1)
    reference["label"] = 1 - reference["label"]
    with pytest.raises(ConfigError, match="disagree on labels"):
        compare(predictions_with_skill(labels, 0.1), reference, CONFIG)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"margin": -0.1},
        {"confidence": 1.0},
        {"n_bootstrap": 10},
        {"metric": "auc"},
        {"block_length": 0},
    ],
)
def test_gate_config_when_invalid_raises(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        GateConfig(**kwargs)  # type: ignore[arg-type]
