"""Built-in strategies: hand-checked signals, and causality (the future never moves the past)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain.errors import ConfigError
from quantum_trader.strategies.base import Bars, Strategy, TargetUnit
from quantum_trader.strategies.breakout import DonchianBreakout
from quantum_trader.strategies.registry import create_strategy
from quantum_trader.strategies.sma_cross import SmaCross


def bars_of(
    close: np.ndarray, high: np.ndarray | None = None, low: np.ndarray | None = None
) -> Bars:
    n = len(close)
    return Bars(
        "TESTUSDT",
        np.arange(n, dtype=np.int64) * 60_000_000_000,
        close.copy(),
        close if high is None else high,
        close if low is None else low,
        close,
        np.ones(n),
    )


def test_sma_cross_when_fast_crosses_above_goes_long_sized_by_qty() -> None:
    close = np.array([5.0, 4.0, 3.0, 4.0, 6.0, 8.0])
    sig = SmaCross(fast=1, slow=3, qty=0.5).signals(bars_of(close))
    # slow SMA from bar 2: 4, 3.667, 4.333, 6; close vs it: below, above, above, above
    np.testing.assert_array_equal(sig.target[:2], [np.nan, np.nan])
    np.testing.assert_array_equal(sig.target[2:], [-0.5, 0.5, 0.5, 0.5])
    assert sig.unit is TargetUnit.QUANTITY


def test_sma_cross_when_no_qty_targets_equity_fraction() -> None:
    sig = SmaCross(fast=1, slow=2, fraction=0.3).signals(bars_of(np.array([1.0, 2.0, 1.0])))
    assert sig.unit is TargetUnit.EQUITY_FRACTION
    np.testing.assert_array_equal(sig.target, [np.nan, 0.3, -0.3])


def test_breakout_when_close_leaves_channel_enters_and_exit_channel_flattens() -> None:
    high = np.array([10, 10, 10, 12, 12.5, 12, 11, 10, 10.0])
    low = np.array([9, 9, 9, 10, 11, 11, 10, 9, 9.0])
    close = np.array([9.5, 9.5, 9.5, 11.5, 12.2, 11.5, 10.5, 9.5, 9.5])
    sig = DonchianBreakout(lookback=3, exit_lookback=2, qty=1.0).signals(bars_of(close, high, low))
    # bar 3: 11.5 > max(high[0:3]) = 10 → long. bar 6: 10.5 < min(low[4:6]) = 11 → exit.
    # bar 7: 9.5 < min(low[4:7]) = 10 → short.
    assert sig.target[3] == 1.0
    assert np.isnan(sig.target[4])
    assert np.isnan(sig.target[5])
    assert sig.target[6] == 0.0
    assert sig.target[7] == -1.0


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("nope", {}, "unknown strategy 'nope'"),
        ("sma_cross", {"fats": "3"}, "no parameter 'fats'"),
        ("sma_cross", {"fast": "ten"}, "fast='ten' is not a number"),
        ("sma_cross", {"fast": "50", "slow": "10"}, "fast < slow"),
        ("breakout", {"lookback": "1"}, "lookback >= 2"),
    ],
)
def test_create_strategy_when_bad_input_raises_config_error_naming_it(
    name: str, params: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        create_strategy(name, params)


def test_create_strategy_when_cli_strings_given_coerces_to_parameter_types() -> None:
    strat = create_strategy("sma_cross", {"fast": "5", "slow": "20", "qty": "0.01"})
    assert isinstance(strat, SmaCross)
    assert (strat.fast, strat.slow, strat.qty) == (5, 20, 0.01)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    cut=st.integers(60, 290),
    which=st.sampled_from(["sma", "breakout"]),
)
def test_signals_when_future_bars_change_past_targets_do_not(
    seed: int, cut: int, which: str
) -> None:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    high, low = close * 1.002, close * 0.998
    strategy: Strategy = (
        SmaCross(fast=5, slow=20)
        if which == "sma"
        else DonchianBreakout(lookback=10, exit_lookback=5)
    )
    base = strategy.signals(bars_of(close, high, low)).target
    shock = rng.uniform(0.5, 1.5, 300 - cut)
    c2, h2, l2 = close.copy(), high.copy(), low.copy()
    c2[cut:] *= shock
    h2[cut:] *= shock
    l2[cut:] *= shock
    perturbed = strategy.signals(bars_of(c2, h2, l2)).target
    np.testing.assert_array_equal(base[:cut], perturbed[:cut])
    truncated = strategy.signals(bars_of(close[:cut], high[:cut], low[:cut])).target
    np.testing.assert_array_equal(base[:cut], truncated)
