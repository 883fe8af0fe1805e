"""Property tests of the safety core through the real backtest engine (hypothesis, derandomized):
no flapping of the ESS or the coordinator, and the fast path equal to bar-by-bar evaluation with
the safety core acting.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from quantum_trader.data.market import SymbolData
from quantum_trader.domain.policy import RiskMode, TradingState
from quantum_trader.engine.backtest import BacktestEngine
from quantum_trader.engine.settings import (
    BacktestSettings,
    CoordinatorSettings,
    EssSettings,
    RiskSettings,
    ScheduledPolicyChange,
)
from quantum_trader.observability.reports.result import BacktestResult
from quantum_trader.strategies.base import TargetUnit
from quantum_trader.testing.builders import START, ScriptedStrategy, candles, symbol_data

A, B = "AAAUSDT", "BBBUSDT"
CASH = 10_000.0
MINUTE = pd.Timedelta(minutes=1)

PROPERTY = settings(
    max_examples=30,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _limits(**values: float) -> dict[RiskMode, dict[str, float]]:
    """The same limit values in every mode (monotonic by construction)."""
    return {mode: dict(values) for mode in RiskMode}


def _settings(*symbols: str, **kw: Any) -> BacktestSettings:
    base: dict[str, Any] = {
        "cash": CASH,
        "leverage": 10,
        "fee_taker": 0.0004,
        "slippage_bps": 0,
        "funding": False,
    }
    return BacktestSettings(symbols=symbols, **{**base, **kw})


def _path_candles(closes: Sequence[float], first_open: float) -> pd.DataFrame:
    """Bars that open at the previous close (the first at ``first_open``)."""
    opens = [first_open, *closes[:-1]]
    return candles(opens=opens, closes=list(closes))


def _kind(result: BacktestResult, kind: str) -> pd.DataFrame:
    ev = result.risk_events
    return ev[ev["kind"] == kind]


# --------------------------------------------------------------------------- 6a. one ESS per run

_DD_LIMIT = 0.05


@PROPERTY
@given(
    steps=st.lists(st.integers(-60, 60), min_size=30, max_size=150),
    targets=st.lists(st.integers(-80, 80), min_size=1, max_size=150),
    interval=st.integers(1, 10),
)
def test_ess_when_equity_random_walks_activates_at_most_once_at_the_first_breach(
    steps: list[int], targets: list[int], interval: int
) -> None:
    # Price steps of up to 6% a bar; positions of up to 80 @ ~100 (0.8x equity). Every mode has
    # max_drawdown = max_daily_loss = 5%, so the coordinator (enabled) moves modes and sizes but
    # never the ESS threshold. All bars lie in one UTC day whose start equity is the peak's
    # start, so drawdown >= daily loss and the first breach is a drawdown breach.
    n = len(steps)
    closes = list(100.0 * np.cumprod(1.0 + np.asarray(steps) / 1000.0))
    frame = _path_candles(closes, 100.0)
    script = (targets * (n // len(targets) + 1))[:n]
    risk = RiskSettings(
        limits=_limits(max_drawdown=_DD_LIMIT, max_daily_loss=_DD_LIMIT, max_risk_per_trade=0.5),
        coordinator=CoordinatorSettings(interval_bars=interval, up_cycles=2),
    )
    result = BacktestEngine(
        _settings(A),
        ScriptedStrategy({A: script}, TargetUnit.QUANTITY),
        {A: symbol_data(A, frame)},
        risk=risk,
    ).run()

    stops = _kind(result, "emergency_stop")
    assert len(stops) <= 1

    # Independently: the first bar whose closing equity is >= 5% below the running peak
    # (which starts at the initial cash). Paths within 1e-9 of the limit are left out.
    eq = result.equity["equity"].to_numpy()
    peak = np.maximum.accumulate(np.maximum(eq, CASH))
    dd = (peak - eq) / peak
    near = np.flatnonzero(dd >= _DD_LIMIT - 1e-9)
    far = np.flatnonzero(dd >= _DD_LIMIT + 1e-9)
    assume(len(near) == len(far) == 0 or (len(far) > 0 and near[0] == far[0]))
    if len(near) == 0:
        assert stops.empty
        assert result.summary["emergency_stop"] is None
        return
    breach = int(near[0])
    activated = result.equity.index[breach] + MINUTE
    assert list(stops["time"]) == [activated]
    assert list(stops["reason"]) == ["drawdown"]

    # After it: only the flatten fills (each closing a whole position), then nothing.
    fills = result.fills
    later = fills[fills["time"] >= activated]
    assert (later["time"] == activated).all()
    assert later["symbol"].is_unique
    held = fills[fills["time"] < activated]
    signed = held["quantity"].where(held["side"] == "buy", -held["quantity"]).sum()
    if len(later):
        assert later["quantity"].iloc[0] == pytest.approx(abs(signed), rel=1e-12)
        assert later["side"].iloc[0] == ("sell" if signed > 0 else "buy")
    if breach + 1 < n:
        assert (result.equity["unrealized"].iloc[breach + 1 :] == 0.0).all()
    blocked = _kind(result, "risk_blocked")
    assert (blocked.loc[blocked["time"] > activated, "reason"] == "trading_halted").all()


# --------------------------------------------------------------------------- 6b. no mode flapping

# Long 50 @ 100 (fee 2.00) from bar 1 on 10,000; every mode's drawdown and daily-loss limits are
# 20%, so the stress is the drawdown / 0.20. A bar closing at 76 is a 12.02% drawdown (stress
# 0.60: at least SAFE), one closing at 84 a 8.02% drawdown (stress 0.40: no cap). The price
# hovers between the two around the 50% threshold; the ESS (20% in every mode) never fires.
_HIGH, _LOW = 76.0, 84.0


def _reference_modes(flags: Sequence[bool], up_cycles: int) -> list[tuple[int, str]]:
    """The coordinator's hysteresis on its own: (bar, transition) for each mode change."""
    mode, streak, out = "normal", 0, []
    for bar, high in enumerate(flags, start=1):
        if high:
            streak = 0
            if mode == "normal":
                mode = "safe"
                out.append((bar, "normal->safe"))
        elif mode == "safe":
            streak += 1
            if streak >= up_cycles:
                mode, streak = "normal", 0
                out.append((bar, "safe->normal"))
        else:
            streak = 0
    return out


@PROPERTY
@given(
    flags=st.lists(st.booleans(), min_size=5, max_size=80),
    up_cycles=st.integers(1, 6),
)
def test_coordinator_when_stress_hovers_around_threshold_moves_with_hysteresis(
    flags: list[bool], up_cycles: int
) -> None:
    closes = [100.0] + [_HIGH if high else _LOW for high in flags]  # bar i >= 1 per flag
    frame = _path_candles(closes, 100.0)
    risk = RiskSettings(
        limits=_limits(max_drawdown=0.20, max_daily_loss=0.20, max_risk_per_trade=0.5),
        coordinator=CoordinatorSettings(interval_bars=1, up_cycles=up_cycles),
    )
    result = BacktestEngine(
        _settings(A),
        ScriptedStrategy({A: [50.0] * len(closes)}, TargetUnit.QUANTITY),
        {A: symbol_data(A, frame)},
        risk=risk,
    ).run()

    assert _kind(result, "emergency_stop").empty
    changes = _kind(result, "mode_changed")
    got = [
        (int((t - START) / MINUTE) - 1, reason)  # a cycle is stamped at its bar's close
        for t, reason in zip(changes["time"], changes["reason"], strict=True)
    ]
    assert got == _reference_modes(flags, up_cycles)
    # The bound that follows from the hysteresis, and the hysteresis itself.
    n_cycles = len(closes)
    assert len(got) <= 2 * n_cycles / (up_cycles + 1) + 1
    for (prev_bar, _), (bar, reason) in itertools.pairwise(got):
        if reason == "safe->normal":
            assert bar - prev_bar >= up_cycles
    assert result.summary["mode_changes"] == len(got)


# --------------------------------------------------------------------------- 9. fast == bar-by-bar


def _random_market(rng: np.random.Generator, n: int) -> dict[str, SymbolData]:
    """Two random-walk symbols from 23:00 (so a UTC day turns); B has holes, some stale."""
    start = pd.Timestamp("2025-01-01T23:00:00Z")
    out = {}
    for name, price in ((A, 100.0), (B, 20.0)):
        rets = rng.normal(0.0, 0.004, n)
        jumps = rng.random(n) < 0.01
        rets[jumps] += rng.choice([-0.06, 0.06], int(jumps.sum()))
        closes = price * np.cumprod(1.0 + rets)
        opens = np.concatenate([[price], closes[:-1]]) * (1.0 + rng.normal(0.0, 0.001, n))
        wick = np.abs(rng.normal(0.0, 0.003, n))
        frame = candles(
            opens=opens,
            highs=np.maximum(opens, closes) * (1.0 + wick),
            lows=np.minimum(opens, closes) * (1.0 - wick),
            closes=closes,
            start=start,
        )
        if name == B:
            keep = np.ones(n, dtype=bool)
            for _ in range(int(rng.integers(0, 4))):
                at = int(rng.integers(10, n - 20))
                keep[at : at + int(rng.integers(1, 9))] = False  # 5+ missing bars: stale
            frame = frame[keep].reset_index(drop=True)
        out[name] = symbol_data(name, frame)
    return out


def _random_targets(rng: np.random.Generator, n: int) -> list[float]:
    change = rng.random(n) < 0.04
    values = np.where(change, rng.uniform(-4.0, 4.0, n).round(2), np.nan)
    values[0] = 0.0
    return list(pd.Series(values).ffill())


def _random_run(seed: int, *, bar_by_bar: bool) -> BacktestResult:
    rng = np.random.default_rng(seed)
    n = 400
    market = _random_market(rng, n)
    targets = {s: _random_targets(rng, len(market[s].candles)) for s in (A, B)}
    max_dd = float(rng.uniform(0.02, 0.10))
    changes = ()
    if rng.random() < 0.5:
        at = pd.Timestamp("2025-01-01T23:00:00Z") + int(rng.integers(50, n)) * MINUTE
        changes = (
            ScheduledPolicyChange(
                at=at.to_pydatetime(), actor="dana", reason="what-if", state=TradingState.REDUCING
            ),
        )
    risk = RiskSettings(
        limits=_limits(
            max_leverage=20.0,
            max_risk_per_trade=1.0,
            max_position_notional=1e9,
            max_symbol_exposure=10.0,
            max_gross_exposure=20.0,
            max_drawdown=max_dd,
            max_daily_loss=max_dd * float(rng.uniform(0.5, 1.5)),
        ),
        coordinator=CoordinatorSettings(interval_bars=int(rng.integers(1, 15)), up_cycles=2),
        ess=EssSettings(stale_data_secs=300),
        policy_changes=changes,
    )
    stop_loss = float(rng.choice([0.0, 0.01, 0.03])) or None
    st_ = _settings(A, B, leverage=20, stop_loss=stop_loss)
    strategy = ScriptedStrategy(targets, TargetUnit.EQUITY_FRACTION)
    return BacktestEngine(st_, strategy, market, risk=risk, bar_by_bar=bar_by_bar).run()


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1))
def test_backtest_when_safety_core_acts_fast_path_equals_bar_by_bar(seed: int) -> None:
    fast = _random_run(seed, bar_by_bar=False)
    slow = _random_run(seed, bar_by_bar=True)
    pd.testing.assert_frame_equal(fast.fills, slow.fills)
    pd.testing.assert_frame_equal(fast.equity, slow.equity)
    pd.testing.assert_frame_equal(fast.trades, slow.trades)
    pd.testing.assert_frame_equal(fast.risk_events, slow.risk_events)
    pd.testing.assert_frame_equal(fast.rejected_orders, slow.rejected_orders)
    for key in ("emergency_stop", "halted", "risk_denials", "mode_changes", "liquidations"):
        assert fast.summary[key] == slow.summary[key], key


def test_backtest_when_random_markets_are_generated_the_safety_core_acts_in_them() -> None:
    # The generator of the equivalence test above makes the safety core do things: ESS stops
    # (drawdown, daily loss, stale data), mode changes and denials all occur across seeds.
    kinds: set[str] = set()
    reasons: set[str] = set()
    for seed in range(12):
        events = _random_run(seed, bar_by_bar=False).risk_events
        kinds |= set(events["kind"])
        reasons |= set(events.loc[events["kind"] == "emergency_stop", "reason"])
    assert kinds == {"emergency_stop", "mode_changed", "risk_blocked"}
    assert {"stale_market_data", "drawdown"} <= reasons
