"""The ensemble on real 1m perpetuals: train on the first 20 days, test on the last 10.

This checks honesty, not profit: out-of-sample accuracy stays in the band a 15-minute direction
model can reach on liquid perps (a leak shows up as accuracy far above it), purging leaves no
training label inside the test window, the strategy recomputes at run time exactly the
probabilities that were validated, and the validation backtests ran with fees and funding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantum_trader.ai.artifact import load_artifact
from quantum_trader.data.loaders import load_market
from quantum_trader.domain.clock import ManualClock
from quantum_trader.engine.training import TrainSettings, run_training_job, series_of
from quantum_trader.strategies.ai_ensemble import AiEnsemble
from quantum_trader.strategies.base import Bars

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.mark.reference_data
def test_ensemble_when_real_perps_split_20_10_is_honest_out_of_sample(
    perps: Path, tmp_path: Path
) -> None:
    market = load_market(perps, SYMBOLS, "1m")
    settings = TrainSettings(
        data=perps, symbols=SYMBOLS, horizon=15, train_days=20, test_days=10, out=tmp_path / "m"
    )
    run = run_training_job(settings, clock=ManualClock(1_750_000_000_000_000_000), market=market)
    v = run.validation
    assert len(v["folds"]) == 1
    fold = v["folds"][0]
    assert fold["purged_rows"] == 15 * len(SYMBOLS)
    assert fold["train"][1] < fold["test"][0]
    ensemble = v["metrics"]["ensemble"]
    assert ensemble["n"] > 20_000
    assert 0.45 < ensemble["accuracy"] < 0.56
    assert 0.2 < ensemble["brier"] < 0.26
    for key in ("ensemble", "momentum", "majority", "sma_cross"):
        assert v["backtests"][key]["summary"]["fees"] > 0

    strategy = AiEnsemble(str(settings.out))
    oos = load_artifact(settings.out).oos_predictions()
    for symbol in SYMBOLS:
        s = series_of(market[symbol])
        bars = Bars(
            symbol, s.ts, s.open, s.high, s.low, s.close, s.volume, s.funding_ts, s.funding_rate
        )
        prob = strategy.probabilities(bars)
        rows = oos[oos["symbol"] == symbol]
        idx = np.searchsorted(s.ts, rows["ts_ns"].to_numpy())
        np.testing.assert_allclose(prob[idx], rows["prob_up"].to_numpy(), rtol=0, atol=1e-12)
