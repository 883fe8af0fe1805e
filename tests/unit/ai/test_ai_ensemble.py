"""``ai_ensemble`` through the registry and the real backtest engine."""

from __future__ import annotations

import numpy as np
import pytest

from quantum_trader.data.market import SymbolData
from quantum_trader.data.synthetic import generate_market
from quantum_trader.domain.errors import ConfigError
from quantum_trader.engine.backtest import BacktestEngine
from quantum_trader.engine.settings import BacktestSettings
from quantum_trader.engine.training import TrainRun, series_of
from quantum_trader.strategies.ai_ensemble import (
    AiEnsemble,
    PredictionReplay,
    targets_from_probability,
)
from quantum_trader.strategies.base import Bars
from quantum_trader.strategies.registry import create_strategy

from .conftest import SYMBOLS, small_market


def _bars(data: SymbolData) -> Bars:
    s = series_of(data)
    return Bars(
        s.symbol, s.ts, s.open, s.high, s.low, s.close, s.volume, s.funding_ts, s.funding_rate
    )


def test_targets_when_confident_follow_the_side_else_no_opinion_or_flat() -> None:
    p = np.array([0.7, 0.52, 0.3, np.nan, 0.5])
    target, conf = targets_from_probability(p, 0.2, 0.55)
    np.testing.assert_array_equal(target, [0.2, np.nan, -0.2, np.nan, np.nan])
    np.testing.assert_allclose(conf[:3], [0.7, 0.52, 0.7])
    flat, _ = targets_from_probability(p, 0.2, 0.55, exit_when_unsure=True)
    np.testing.assert_array_equal(flat, [0.2, 0.0, -0.2, np.nan, 0.0])


def test_registry_when_model_missing_or_bad_is_a_config_error(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="model=DIR"):
        create_strategy("ai_ensemble", {})
    with pytest.raises(ConfigError, match="not a folder"):
        create_strategy("ai_ensemble", {"model": "/nonexistent/model"})


def test_strategy_when_given_full_history_reproduces_the_out_of_sample_predictions(
    trained: TrainRun,
) -> None:
    # The features the strategy computes at run time are the ones the model was validated on:
    # for the last fold's test bars, the shipped model's probabilities equal the saved ones.
    strategy = create_strategy(
        "ai_ensemble", {"model": str(trained.settings.out), "min_confidence": "0.5"}
    )
    assert isinstance(strategy, AiEnsemble)
    market = small_market()
    oos = strategy.artifact.oos_predictions()
    last = oos[oos["fold"] == oos["fold"].max()]
    for symbol in SYMBOLS:
        bars = _bars(market[symbol])
        prob = strategy.probabilities(bars)
        rows = last[last["symbol"] == symbol]
        idx = np.searchsorted(bars.ts, rows["ts_ns"].to_numpy())
        np.testing.assert_allclose(prob[idx], rows["prob_up"].to_numpy(), rtol=0, atol=1e-12)


def test_strategy_when_future_bars_change_past_targets_stay(trained: TrainRun) -> None:
    strategy = AiEnsemble(str(trained.settings.out), min_confidence=0.5)
    bars = _bars(small_market()["BTCUSDT"])
    t = 3000
    before = strategy.signals(bars)
    scaled = bars.close.copy()
    scaled[t + 1 :] *= 1.3
    volume = bars.volume.copy()
    volume[t + 1 :] *= 2.0
    moved = strategy.signals(
        Bars(
            bars.symbol,
            bars.ts,
            bars.open,
            np.maximum(bars.high, scaled),
            np.minimum(bars.low, scaled),
            scaled,
            volume,
            bars.funding_ts,
            bars.funding_rate,
        )
    )
    np.testing.assert_array_equal(before.target[: t + 1], moved.target[: t + 1])
    assert before.confidence is not None
    assert moved.confidence is not None
    np.testing.assert_array_equal(before.confidence[: t + 1], moved.confidence[: t + 1])
    assert before.model_version == strategy.artifact.version


def test_replay_when_predictions_saved_trades_them_through_the_engine() -> None:
    market = generate_market(("BTCUSDT",), bars=600, seed=3)
    bars = _bars(market["BTCUSDT"])
    prob = np.where(np.arange(len(bars)) % 200 < 100, 0.7, 0.3)
    replay = PredictionReplay({"BTCUSDT": (bars.ts, prob)}, fraction=0.1, min_confidence=0.6)
    settings = BacktestSettings(symbols=("BTCUSDT",), audit=False, synthetic_bars=600)
    result = BacktestEngine(settings, replay, market).run()
    # Long, short, long: one reversal every 100 bars (the last one has no bar to fill at).
    assert len(result.trades) == 6
    assert set(result.trades["side"]) == {"long", "short"}
