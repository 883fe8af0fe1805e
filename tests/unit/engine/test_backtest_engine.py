"""The backtest engine on small hand-made markets: every number computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain.errors import DataError, StrategyError
from quantum_trader.domain.trading import MarginMode
from quantum_trader.engine.backtest import BacktestEngine, run_backtest
from quantum_trader.engine.settings import BacktestSettings
from quantum_trader.strategies.base import Bars, Signals, TargetUnit
from quantum_trader.testing.builders import ScriptedStrategy, candles, symbol_data

SYM = "TESTUSDT"


def settings_for(**kw: object) -> BacktestSettings:
    base: dict[str, object] = {
        "symbols": (SYM,),
        "cash": 10_000.0,
        "leverage": 10.0,
        "fee_taker": 0.0004,
    }
    base.update(kw)
    return BacktestSettings.model_validate(base)


def test_run_when_target_changes_fills_at_next_open_not_same_close() -> None:
    frame = candles([100, 101, 102, 103], closes=[100.5, 101.5, 102.5, 103.5])
    res = run_backtest(
        settings_for(), ScriptedStrategy({SYM: [1, 1, 1, 1]}), {SYM: symbol_data(SYM, frame)}
    )
    fill = res.fills.iloc[0]
    assert fill["time"] == frame["date"][1]
    assert fill["price"] == 101.0  # bar 1's open, not bar 0's close 100.5
    # equity at the last close: 10000 - 101 * 0.0004 + (103.5 - 101)
    assert res.summary["final_equity"] == pytest.approx(10_000 - 0.0404 + 2.5, rel=1e-12)
    assert res.equity["equity"].iloc[0] == 10_000.0  # nothing held at bar 0's close


def test_run_when_stop_loss_touched_exits_at_stop_and_does_not_reenter() -> None:
    opens = [100, 100, 99.5, 99.0, 98.5, 99.0]
    lows = [100, 99.8, 99.0, 97.0, 98.0, 98.5]
    highs = [100, 100.2, 99.8, 99.2, 99.0, 99.5]
    frame = candles(opens, highs, lows, closes=[*opens[1:], 99.0])
    res = run_backtest(
        settings_for(stop_loss=0.02),
        ScriptedStrategy({SYM: [1] * 6}),
        {SYM: symbol_data(SYM, frame)},
    )
    assert list(res.fills["price"]) == [100.0, 98.0]  # entry at bar 1's open; stop at 100 * 0.98
    assert res.fills["time"].iloc[1] == frame["date"][3]  # the first bar whose low reaches 98
    trade = res.trades.iloc[0]
    assert trade["status"] == "closed"
    # -2 on one unit; fees 100 * 0.0004 + 98 * 0.0004
    assert trade["net_pnl"] == pytest.approx(-2.0 - 0.0792, rel=1e-12)
    assert res.summary["final_equity"] == pytest.approx(10_000 - 2.0792, rel=1e-12)


def test_run_when_isolated_position_breaches_liquidation_loses_exactly_its_margin() -> None:
    opens = [100, 100, 99, 95, 92, 91]
    lows = [100, 99.5, 96, 93, 90.0, 90]
    frame = candles(opens, [o + 1 for o in opens], lows)
    res = run_backtest(
        settings_for(margin_mode=MarginMode.ISOLATED),
        ScriptedStrategy({SYM: [1] * 6}),
        {SYM: symbol_data(SYM, frame)},
    )
    liq = res.fills[res.fills["liquidation"]]
    assert len(liq) == 1
    assert liq["time"].iloc[0] == frame["date"][4]  # low 90 <= 90 / 0.995 = 90.45
    assert liq["price"].iloc[0] == pytest.approx(90 / 0.995, rel=1e-12)
    # margin 100 / 10 = 10 lost, plus the entry fee 0.04
    assert res.equity["wallet"].iloc[-1] == pytest.approx(10_000 - 10.04, rel=1e-12)
    assert res.trades["status"].tolist() == ["liquidated"]
    assert res.summary["liquidations"] == 1


def test_run_when_cross_account_breaches_maintenance_wallet_goes_to_zero() -> None:
    # 9 units at 100 on 100 USDT at 10x: margin 90, fee 0.36. Liquidation when
    # 99.64 + 9 (p - 100) <= 0.045 p, i.e. p <= 89.375; bar 3's low 89 breaches it.
    opens = [100, 100, 95, 91, 90]
    lows = [100, 99, 92, 89, 89]
    frame = candles(opens, [o + 1 for o in opens], lows)
    res = run_backtest(
        settings_for(cash=100.0), ScriptedStrategy({SYM: [9] * 5}), {SYM: symbol_data(SYM, frame)}
    )
    liq = res.fills[res.fills["liquidation"]]
    assert liq["time"].tolist() == [frame["date"][3]]
    assert liq["price"].iloc[0] == 89.0
    assert liq["fee"].iloc[0] == pytest.approx(99.64 - 99.0, rel=1e-9)  # equity left at 89
    assert res.equity["wallet"].iloc[-1] == pytest.approx(0.0, abs=1e-9)
    assert res.equity["equity"].iloc[-1] == pytest.approx(0.0, abs=1e-9)


def test_run_when_margin_insufficient_rejects_order_and_keeps_running() -> None:
    frame = candles([100] * 5)
    res = run_backtest(
        settings_for(cash=100.0, leverage=1.0),
        ScriptedStrategy({SYM: [5, 5, 0.5, 0.5, 0.5]}),
        {SYM: symbol_data(SYM, frame)},
    )
    assert len(res.rejected_orders) == 1
    assert res.rejected_orders["reason"].iloc[0].startswith("insufficient_margin")
    assert res.fills["quantity"].tolist() == [0.5]  # the later, affordable target went through
    assert res.summary["rejected_orders"] == 1


def test_run_when_funding_time_inside_a_bar_charges_position_held_after_its_open() -> None:
    frame = candles([100, 100, 102, 104], closes=[100, 102, 104, 104])
    funding = pd.DataFrame(
        {"date": [frame["date"][1] + pd.Timedelta(milliseconds=5)], "rate": [0.001]}
    )
    res = run_backtest(
        settings_for(fee_taker=0.0),
        ScriptedStrategy({SYM: [2, 2, 2, 2]}),
        {SYM: symbol_data(SYM, frame, funding)},
    )
    # filled at bar 1's open (100); funding at bar 1: -2 * 100 (its open, no mark data) * 0.001
    assert res.summary["funding"] == pytest.approx(-0.2, rel=1e-12)
    assert res.trades["funding"].iloc[0] == pytest.approx(-0.2, rel=1e-12)


def test_run_when_no_funding_flag_ignores_funding_data() -> None:
    frame = candles([100, 100, 102, 104])
    funding = pd.DataFrame({"date": [frame["date"][2]], "rate": [0.01]})
    res = run_backtest(
        settings_for(funding=False),
        ScriptedStrategy({SYM: [2] * 4}),
        {SYM: symbol_data(SYM, frame, funding)},
    )
    assert res.summary["funding"] == 0.0


class _Broken:
    name = "broken"
    warmup_bars = 0

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def params(self) -> dict[str, float | int | str]:
        return {}

    def signals(self, bars: Bars) -> Signals:
        if self.mode == "raise":
            raise ZeroDivisionError("boom")
        return Signals(np.zeros(len(bars) - 1), TargetUnit.QUANTITY)


@pytest.mark.parametrize(
    ("mode", "match"),
    [("raise", "failed on TESTUSDT: boom"), ("short", r"returned \(3,\) targets")],
)
def test_run_when_strategy_misbehaves_raises_strategy_error(mode: str, match: str) -> None:
    with pytest.raises(StrategyError, match=match):
        run_backtest(settings_for(), _Broken(mode), {SYM: symbol_data(SYM, candles([100] * 4))})  # type: ignore[arg-type]


def test_engine_when_symbol_missing_from_market_raises_data_error() -> None:
    with pytest.raises(DataError, match="no market data for ETHUSDT"):
        BacktestEngine(
            settings_for(symbols=(SYM, "ETHUSDT")),
            ScriptedStrategy({}),
            {SYM: symbol_data(SYM, candles([1.0]))},
        )


def _random_market(seed: int, n: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    out = {}
    for k, sym in enumerate(("AAAUSDT", "BBBUSDT")):
        steps = rng.standard_t(3, n) * 0.004 * (1 + k)
        close = 100.0 * (k + 1) * np.exp(np.cumsum(steps))
        opens = np.r_[close[0], close[:-1]]
        spread = np.abs(rng.normal(0, 0.003, n)) * close
        out[sym] = candles(
            np.round(opens, 3),
            np.round(np.maximum(opens, close) + spread, 3),
            np.round(np.minimum(opens, close) - spread, 3),
            np.round(close, 3),
        )
    return out


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    isolated=st.booleans(),
    stop=st.sampled_from([None, 0.01, 0.03]),
    leverage=st.sampled_from([5.0, 20.0, 50.0]),
)
def test_skip_ahead_when_compared_with_bar_by_bar_gives_identical_results(
    seed: int, isolated: bool, stop: float | None, leverage: float
) -> None:
    n = 400
    frames = _random_market(seed, n)
    rng = np.random.default_rng(seed + 1)
    targets = {
        s: np.repeat(rng.choice([-1.0, 0.0, 1.0, np.nan], n // 20), 20) * 4.0 for s in frames
    }
    market = {s: symbol_data(s, f) for s, f in frames.items()}
    cfg = settings_for(
        symbols=tuple(frames),
        cash=1_000.0,
        leverage=leverage,
        stop_loss=stop,
        margin_mode=MarginMode.ISOLATED if isolated else MarginMode.CROSS,
    )
    strategy = ScriptedStrategy(targets, unit=TargetUnit.EQUITY_FRACTION)
    fast = BacktestEngine(cfg, strategy, market).run()
    slow = BacktestEngine(cfg, strategy, market, bar_by_bar=True).run()
    pd.testing.assert_frame_equal(fast.fills, slow.fills)
    pd.testing.assert_frame_equal(fast.equity, slow.equity)
    pd.testing.assert_frame_equal(fast.trades, slow.trades)
