"""Model health: PSI by hand, the score's bands, and a degraded model through the coordinator."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest

from quantum_trader.ai.health import (
    FeatureReference,
    HealthThresholds,
    ModelHealth,
    assess_model,
    psi,
)
from quantum_trader.domain.clock import NANOS_PER_SECOND, ManualClock
from quantum_trader.domain.errors import ConfigError
from quantum_trader.domain.policy import RiskMode
from quantum_trader.engine.model_health import models_subsystem_health
from quantum_trader.risk.coordinator import Coordinator
from quantum_trader.risk.ess import EmergencyStopSystem
from quantum_trader.risk.health import Subsystem, SubsystemHealth, SystemHealth
from quantum_trader.risk.policy_service import PolicyService
from quantum_trader.stores.memory import InMemoryEssStateStore, InMemoryPolicyStore
from quantum_trader.testing.fakes import RecordingAuditRecorder

RNG = np.random.default_rng(0)
TRAIN = {"ret_1": RNG.normal(0, 1, 5000), "vol_20": RNG.gamma(2.0, 1.0, 5000)}
REFERENCES = {name: FeatureReference.from_values(values) for name, values in TRAIN.items()}


def _live(shift: float = 0.0, n: int = 2000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"ret_1": rng.normal(shift, 1, n), "vol_20": rng.gamma(2.0, 1.0, n)}


def _assess(**kw: object) -> ModelHealth:
    args: dict[str, object] = {
        "version": "v1",
        "references": REFERENCES,
        "live_features": _live(),
        "validation_accuracy": 0.55,
    }
    args.update(kw)
    return assess_model(**args)  # type: ignore[arg-type]


# ---------------------------------------------------------------- PSI


def test_psi_when_hand_computed_matches() -> None:
    reference = FeatureReference(edges=(0.5,), shares=(0.5, 0.5))
    # Live: 3 of 4 below the edge -> shares (0.75, 0.25).
    expected = 0.25 * math.log(0.75 / 0.5) + (-0.25) * math.log(0.25 / 0.5)
    assert reference.psi([0.1, 0.2, 0.3, 0.9]) == pytest.approx(expected)
    assert expected == pytest.approx(0.25 * math.log(3))


def test_psi_when_same_distribution_is_near_zero_and_shift_is_significant() -> None:
    assert psi(TRAIN["ret_1"], TRAIN["ret_1"]) == pytest.approx(0.0, abs=1e-12)
    assert psi(TRAIN["ret_1"], _live(0.0)["ret_1"]) < 0.10
    assert 0.10 <= psi(TRAIN["ret_1"], _live(0.35)["ret_1"]) < 0.25
    assert psi(TRAIN["ret_1"], _live(0.6)["ret_1"]) >= 0.25


def test_psi_when_live_leaves_a_bin_empty_stays_finite() -> None:
    value = psi(TRAIN["ret_1"], np.full(100, 10.0))
    assert math.isfinite(value)
    assert value > 1.0


def test_psi_when_no_finite_live_value_is_nan() -> None:
    assert math.isnan(REFERENCES["ret_1"].psi([math.nan, math.inf]))


def test_feature_reference_when_round_tripped_gives_the_same_psi() -> None:
    again = FeatureReference.from_dict(REFERENCES["ret_1"].to_dict())
    assert again == REFERENCES["ret_1"]
    with pytest.raises(ConfigError, match="ascending"):
        FeatureReference.from_dict({"edges": [1.0, 0.0], "shares": [0.3, 0.3, 0.4]})


def test_feature_reference_when_shares_mismatch_raises() -> None:
    with pytest.raises(ConfigError, match="one more share"):
        FeatureReference(edges=(0.0,), shares=(1.0,))


# ---------------------------------------------------------------- score


def test_assess_when_inputs_stable_and_accurate_scores_optimal() -> None:
    health = _assess(live_correct=np.r_[np.ones(560), np.zeros(440)])
    assert health.score == 1.0
    assert health.detail == "model v1 healthy"
    assert max(health.psi.values()) < 0.10


@pytest.mark.parametrize(("shift", "score"), [(0.35, 0.8), (0.6, 0.5), (1.0, 0.3)])
def test_assess_when_inputs_drift_lowers_score_by_band(shift: float, score: float) -> None:
    health = _assess(live_features=_live(shift))
    assert health.score == score
    assert "ret_1 PSI" in health.detail


def test_assess_when_live_accuracy_falls_below_validation_lowers_score() -> None:
    good = _assess(live_correct=np.r_[np.ones(540), np.zeros(460)])
    bad = _assess(live_correct=np.r_[np.ones(400), np.zeros(600)])
    assert good.score == 1.0  # 0.54 vs 0.55 is within noise
    assert bad.score == 0.3
    assert bad.accuracy_drop is not None
    assert bad.accuracy_drop > 0.10
    assert "live accuracy 0.400 vs validation 0.550" in bad.detail


def test_assess_when_few_live_predictions_ignores_accuracy() -> None:
    health = _assess(live_correct=np.zeros(50))
    assert health.score == 1.0
    assert health.accuracy_drop is None
    assert health.live_samples == 50


def test_assess_when_stale_or_missing_model_scores_degraded_or_zero() -> None:
    assert _assess(stale=True).score == 0.5
    assert _assess(version=None).score == 0.0


def test_thresholds_when_not_ascending_raise() -> None:
    with pytest.raises(ConfigError, match="ascending"):
        HealthThresholds(moderate_psi=0.3, significant_psi=0.2)


# ---------------------------------------------------------------- through the coordinator


class FlatExecutor:
    def cancel_all_orders(self) -> int:
        return 0

    def open_positions(self) -> Mapping[str, float]:
        return {}

    def close_position(self, symbol: str, quantity: float) -> bool:
        return True


def _coordinator() -> tuple[Coordinator, PolicyService, ManualClock]:
    clock = ManualClock(1_700_000_000 * NANOS_PER_SECOND)
    audit = RecordingAuditRecorder()
    policy = PolicyService(InMemoryPolicyStore(), clock, audit)
    ess = EmergencyStopSystem(InMemoryEssStateStore(), policy, FlatExecutor(), clock, audit)
    return Coordinator(policy, ess, clock, audit, up_cycles=1), policy, clock


def _others() -> list[SubsystemHealth]:
    return [
        SubsystemHealth.at(s, SystemHealth.OPTIMAL) for s in Subsystem if s is not Subsystem.MODELS
    ]


def test_coordinator_when_model_degrades_lowers_system_health_and_mode() -> None:
    coordinator, policy, clock = _coordinator()
    healthy = models_subsystem_health(_assess())
    result = coordinator.cycle([*_others(), healthy])
    assert result.health.system is SystemHealth.OPTIMAL
    assert policy.current().mode is RiskMode.NORMAL
    clock.advance(NANOS_PER_SECOND)
    drifted = models_subsystem_health(_assess(live_features=_live(0.6)))
    assert drifted.subsystem is Subsystem.MODELS
    result = coordinator.cycle([*_others(), drifted])
    assert result.health.subsystems[Subsystem.MODELS] is SystemHealth.DEGRADED
    assert result.health.system is SystemHealth.DEGRADED
    assert "ret_1 PSI" in result.health.details[Subsystem.MODELS]
    assert policy.current().mode is RiskMode.SAFE


def test_coordinator_when_no_model_serves_counts_models_critical() -> None:
    coordinator, _, _ = _coordinator()
    result = coordinator.cycle([*_others(), models_subsystem_health(_assess(version=None))])
    assert result.health.subsystems[Subsystem.MODELS] is SystemHealth.CRITICAL
    assert result.health.system is SystemHealth.DEGRADED
