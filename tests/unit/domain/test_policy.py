"""The policy document: validation before anything is stored, monotonic limits, versions."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_trader.domain.errors import ConfigError
from quantum_trader.domain.policy import (
    DEFAULT_LIMITS,
    MODE_ORDER,
    ModeLimits,
    Policy,
    RiskMode,
    TradingState,
)


def test_default_policy_when_built_is_valid_and_normal_active() -> None:
    p = Policy()
    assert (p.version, p.mode, p.state) == (1, RiskMode.NORMAL, TradingState.ACTIVE)
    assert p.active_limits == DEFAULT_LIMITS[RiskMode.NORMAL]
    assert p.symbol_allowed("ANYUSDT")


def test_policy_when_a_safer_mode_is_looser_names_the_limit_and_modes() -> None:
    limits = dict(DEFAULT_LIMITS)
    limits[RiskMode.SAFE] = replace(limits[RiskMode.SAFE], max_leverage=15.0)
    with pytest.raises(ConfigError, match=r"max_leverage is 10\.0 in normal but 15\.0 in safe"):
        Policy(limits=limits)


def test_policy_when_min_confidence_falls_in_a_safer_mode_rejects() -> None:
    limits = dict(DEFAULT_LIMITS)
    limits[RiskMode.CRITICAL] = replace(limits[RiskMode.CRITICAL], min_confidence=0.4)
    with pytest.raises(ConfigError, match="min_confidence"):
        Policy(limits=limits)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("max_leverage", 0.5, r"outside \[1, 125\]"),
        ("max_daily_loss", float("nan"), "outside"),
        ("max_open_positions", 2.5, "integer"),
        ("min_confidence", "high", "must be a number"),
    ],
)
def test_mode_limits_when_value_invalid_raises_config_error(
    field: str, value: object, match: str
) -> None:
    base = DEFAULT_LIMITS[RiskMode.NORMAL]
    with pytest.raises(ConfigError, match=match):
        replace(base, **{field: value})


def test_changed_when_valid_bumps_version_and_records_actor() -> None:
    p = Policy().changed(actor="alice", reason="news", ts_ns=5, mode=RiskMode.SAFE)
    assert (p.version, p.mode, p.updated_by, p.reason, p.updated_at_ns) == (
        2,
        RiskMode.SAFE,
        "alice",
        "news",
        5,
    )


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"mode": "yolo"}, "not one of"),
        ({"colour": "red"}, "not a policy setting: colour"),
        ({"version": 9}, "not a policy setting: version"),
        ({"allowed_symbols": frozenset({"btc/usdt"})}, "exchange symbol"),
        ({"max_price_deviation": 0.0}, "max_price_deviation"),
    ],
)
def test_changed_when_invalid_raises_and_leaves_original(
    changes: dict[str, object], match: str
) -> None:
    p = Policy()
    with pytest.raises(ConfigError, match=match):
        p.changed(actor="bob", reason="x", ts_ns=1, **changes)
    assert p.version == 1


def test_changed_when_no_actor_or_reason_refuses() -> None:
    with pytest.raises(ConfigError, match="actor and a reason"):
        Policy().changed(actor="", reason="x", ts_ns=1, mode=RiskMode.SAFE)


def test_critical_mode_means_reducing() -> None:
    assert Policy(mode=RiskMode.CRITICAL).effective_state is TradingState.REDUCING
    assert (
        Policy(mode=RiskMode.CRITICAL, state=TradingState.HALTED).effective_state
        is TradingState.HALTED
    )


def test_to_dict_when_round_tripped_gives_equal_policy() -> None:
    p = Policy(allowed_symbols=frozenset({"BTCUSDT", "ETHUSDT"})).changed(
        actor="a", reason="r", ts_ns=3, state=TradingState.REDUCING
    )
    assert Policy.from_dict(p.to_dict()) == p


@given(
    scale=st.lists(st.floats(0.1, 1.0), min_size=3, max_size=3),
)
def test_limits_when_scaled_down_mode_by_mode_always_validate(scale: list[float]) -> None:
    limits: dict[RiskMode, ModeLimits] = {}
    current = DEFAULT_LIMITS[RiskMode.AGGRESSIVE]
    limits[MODE_ORDER[0]] = current
    for mode, k in zip(MODE_ORDER[1:], scale, strict=True):
        current = replace(
            current,
            max_leverage=max(1.0, current.max_leverage * k),
            max_risk_per_trade=current.max_risk_per_trade * k,
            max_position_notional=current.max_position_notional * k,
            max_open_positions=int(current.max_open_positions * k),
            max_symbol_exposure=current.max_symbol_exposure * k,
            max_gross_exposure=current.max_gross_exposure * k,
            max_daily_loss=current.max_daily_loss * k,
            max_drawdown=current.max_drawdown * k,
            min_confidence=min(1.0, current.min_confidence / k),
            size_scale=current.size_scale * k,
        )
        limits[mode] = current
    Policy(limits=limits)
