"""Offline training of the sizing agent: episodes from a real backtest, rewards, determinism."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from quantum_trader.ai.sizing import CAP_SAFETY, RuleBasedSizer, SizingAction
from quantum_trader.ai.sizing_training import (
    EPISODE_COLUMNS,
    EpisodeSettings,
    SizerTrainingConfig,
    action_rewards,
    episodes_from_backtest,
    train_sizing_agent,
)
from quantum_trader.domain.errors import ConfigError
from quantum_trader.domain.policy import DEFAULT_LIMITS, Policy, RiskMode
from quantum_trader.engine.backtest import BacktestEngine
from quantum_trader.engine.runs import load_backtest_market
from quantum_trader.engine.settings import BacktestSettings
from quantum_trader.observability.reports.result import BacktestResult
from quantum_trader.strategies.registry import create_strategy

CONFIG = SizerTrainingConfig(min_samples=20, n_bootstrap=100, seed=5)
SMALL_WINDOWS = EpisodeSettings(
    bars_per_day=1440, vol_window_bars=60, regime_window_bars=240, confidence_window_bars=10
)


def _episodes(
    n: int, *, seed: int = 0, mean_return: float = 0.0, mae: float = 0.01
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "symbol": "BTCUSDT",
            "entry_time": pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC"),
            "net_return": rng.normal(mean_return, 0.01, n),
            "adverse_excursion": np.abs(rng.normal(mae, mae / 4, n)),
            "volatility": rng.uniform(0.015, 0.025, n),
            "reference_volatility": 0.02,
            "confidence": rng.uniform(0.5, 0.9, n),
            "drawdown": rng.uniform(0.0, 0.04, n),
        }
    )


@pytest.fixture(scope="module")
def backtest() -> BacktestResult:
    settings = BacktestSettings(symbols=("BTCUSDT",), synthetic_bars=3000, audit=False)
    strategy = create_strategy("sma_cross", {"fast": 5, "slow": 20})
    return BacktestEngine(settings, strategy, load_backtest_market(settings)).run()


def test_action_rewards_when_hand_computed_match_log_growth() -> None:
    episodes = _episodes(2)
    episodes["volatility"] = 0.02
    episodes["net_return"] = [0.01, 0.01]
    episodes["adverse_excursion"] = [0.0, 0.5]
    limits = DEFAULT_LIMITS[RiskMode.NORMAL]
    rewards = action_rewards(
        episodes, limits, [SizingAction(1.0, 2.0), SizingAction(1.0, 50.0)], RuleBasedSizer(), 0.005
    )
    f = 0.04 * CAP_SAFETY  # raw 0.01 / 0.02 = 0.5, risk cap 0.02 * 2
    assert rewards[0, 0] == pytest.approx(math.log1p(f * 0.01))
    assert rewards[1, 0] == pytest.approx(math.log1p(-f / 2))  # 0.5 >= 1/2 - 0.005: liquidated
    assert np.isneginf(rewards[:, 1]).all()  # above NORMAL's max leverage: infeasible


def test_train_when_same_seed_gives_the_same_agent() -> None:
    episodes = _episodes(400, seed=1, mean_return=0.001)
    first, report = train_sizing_agent(episodes, Policy(), config=CONFIG)
    second, _ = train_sizing_agent(episodes, Policy(), config=CONFIG)
    assert first.to_dict() == second.to_dict()
    assert report.train_episodes == 280
    assert report.holdout_episodes == 120


def test_train_when_trades_profitable_and_calm_sizes_up() -> None:
    agent, report = train_sizing_agent(
        _episodes(400, seed=2, mean_return=0.01, mae=0.005), Policy(), config=CONFIG
    )
    # The most exposure each mode allows: its max leverage, and a multiplier that reaches
    # the risk-per-trade cap there (0.5 * 0.5 raw = 0.25 >= 0.02 * 10 in NORMAL).
    for key, entry in agent.table.items():
        mode = RiskMode(key.split("|")[-1])
        assert entry.action.leverage == min(DEFAULT_LIMITS[mode].max_leverage, 20.0), key
    assert agent.table["normal|c2|d0|normal"].action == SizingAction(0.5, 10.0)
    assert report.holdout_agent_reward > report.holdout_rule_reward


def test_train_when_adverse_moves_are_large_avoids_leverage_that_liquidates() -> None:
    agent, _ = train_sizing_agent(
        _episodes(400, seed=3, mean_return=0.01, mae=0.12), Policy(), config=CONFIG
    )
    assert agent.trained
    # A 12 % adverse move liquidates at 10x (1/10 - 0.005 < 0.12): the agent never picks it.
    assert all(entry.action.leverage < 10.0 for entry in agent.table.values())


def test_train_when_trades_lose_sizes_down() -> None:
    agent, _ = train_sizing_agent(
        _episodes(400, seed=4, mean_return=-0.005), Policy(), config=CONFIG
    )
    assert {entry.action.multiplier for entry in agent.table.values()} == {0.25}


def test_train_when_states_are_sparse_backs_off_and_when_too_few_stays_untrained() -> None:
    agent, report = train_sizing_agent(_episodes(60, seed=5), Policy(), config=CONFIG)
    assert agent.trained
    assert set(report.per_level) <= {"regime+confidence", "regime", "all"}
    empty, _ = train_sizing_agent(_episodes(10, seed=5), Policy(), config=CONFIG)
    assert not empty.trained


def test_train_when_columns_missing_raises() -> None:
    with pytest.raises(ConfigError, match="lack column"):
        train_sizing_agent(pd.DataFrame({"symbol": []}), Policy())


def test_episodes_when_read_from_a_real_backtest_have_one_row_per_closed_trade(
    backtest: BacktestResult,
) -> None:
    episodes = episodes_from_backtest(backtest, SMALL_WINDOWS)
    closed = backtest.trades[backtest.trades["status"] != "open"]
    assert tuple(episodes.columns) == EPISODE_COLUMNS
    assert 0 < len(episodes) <= len(closed)
    assert (episodes["adverse_excursion"] >= 0).all()
    assert episodes["confidence"].between(0, 1).all()
    first = closed.iloc[-1]
    row = episodes[episodes["entry_time"] == first["entry_time"]].iloc[0]
    notional = first["quantity"] * first["entry_price"]
    assert row["net_return"] == pytest.approx(first["net_pnl"] / notional)


def test_episodes_when_future_bars_change_keep_the_state_of_earlier_trades(
    backtest: BacktestResult,
) -> None:
    episodes = episodes_from_backtest(backtest, SMALL_WINDOWS)
    cut = episodes["entry_time"].iloc[len(episodes) // 2]
    candles = backtest.prices["BTCUSDT"].copy()
    future = candles["date"] >= cut
    candles.loc[future, ["open", "high", "low", "close"]] *= 1.5
    changed = dataclasses.replace(backtest, prices={"BTCUSDT": candles})
    again = episodes_from_backtest(changed, SMALL_WINDOWS)
    before = episodes["entry_time"] <= cut
    state = ["volatility", "reference_volatility", "confidence", "drawdown"]
    pd.testing.assert_frame_equal(episodes.loc[before, state], again.loc[before, state])
