"""A small model trained once per test session on the synthetic market, shared by the AI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantum_trader.data.market import SymbolData
from quantum_trader.data.synthetic import generate_market
from quantum_trader.domain.clock import ManualClock
from quantum_trader.engine.training import TrainRun, TrainSettings, run_training_job

CREATED_NS = 1_750_000_000_000_000_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def small_market() -> dict[str, SymbolData]:
    """Four days of 1m bars for two synthetic symbols (seeded)."""
    return generate_market(SYMBOLS, bars=4 * 1440, seed=11)


def train_small(out: Path, **overrides: object) -> TrainRun:
    """Train on the small market: 2-day training windows, 1-day test windows."""
    params: dict[str, object] = {
        "data": out.parent / "synthetic",
        "symbols": SYMBOLS,
        "horizon": 10,
        "train_days": 2.0,
        "test_days": 1.0,
        "out": out,
        "threads": 1,
        **overrides,
    }
    settings = TrainSettings(**params)  # type: ignore[arg-type]
    return run_training_job(settings, clock=ManualClock(CREATED_NS), market=small_market())


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainRun:
    """A trained artifact in a session temp folder."""
    return train_small(tmp_path_factory.mktemp("model") / "artifact")
