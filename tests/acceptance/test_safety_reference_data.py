"""The ESS on real data: 1m BTCUSDT and ETHUSDT, sma_cross sized as a fraction of equity, a 2%
drawdown limit. The activation bar is recomputed from the result's equity frame on its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trader.data.loaders import load_market
from quantum_trader.domain.policy import RiskMode
from quantum_trader.engine.backtest import BacktestEngine
from quantum_trader.engine.settings import BacktestSettings, CoordinatorSettings, RiskSettings
from quantum_trader.strategies.sma_cross import SmaCross

SYMBOLS = ("BTCUSDT", "ETHUSDT")
CASH = 10_000.0
MAX_DD = 0.02
MINUTE = pd.Timedelta(minutes=1)


@pytest.mark.reference_data
def test_ess_when_real_btc_eth_drawdown_reaches_two_percent_halts_there_and_flattens(
    perps: Path,
) -> None:
    market = load_market(perps, SYMBOLS, "1m")
    settings = BacktestSettings(
        symbols=SYMBOLS, cash=CASH, leverage=10, fee_taker=0.0004, slippage_bps=0, funding=True
    )
    # NORMAL's drawdown limit 2% (safer modes may not allow more); the coordinator is off, so
    # the mode stays NORMAL. Drawdown >= daily loss always (the peak is at least the day
    # start), and 2% < NORMAL's 5% daily loss: the drawdown limit is the one reached.
    risk = RiskSettings(
        limits={
            RiskMode.NORMAL: {"max_drawdown": MAX_DD},
            RiskMode.SAFE: {"max_drawdown": MAX_DD},
            RiskMode.CRITICAL: {"max_drawdown": MAX_DD},
        },
        coordinator=CoordinatorSettings(enabled=False),
    )
    result = BacktestEngine(settings, SmaCross(fast=10, slow=50), market, risk=risk).run()

    # The first bar whose closing equity is 2% below the running peak (from the initial cash).
    eq = result.equity
    peak = np.maximum.accumulate(np.maximum(eq["equity"].to_numpy(), CASH))
    drawdown = (peak - eq["equity"].to_numpy()) / peak
    breach = int(np.argmax(drawdown >= MAX_DD))
    assert drawdown[breach] >= MAX_DD
    assert drawdown[breach] - MAX_DD > 1e-9  # not a knife-edge case
    assert breach + 1 < len(eq)
    activated = eq.index[breach] + MINUTE  # stamped at the breach bar's close
    assert eq.index[breach + 1] == activated  # the next bar opens then (no gap here)

    stops = result.risk_events[result.risk_events["kind"] == "emergency_stop"]
    assert list(stops["time"]) == [activated]
    assert list(stops["reason"]) == ["drawdown"]
    stop = result.summary["emergency_stop"]
    assert stop["time"] == activated.isoformat().replace("+00:00", "Z")
    assert stop["reason"] == "drawdown"
    assert stop["detail"].startswith(f"drawdown {drawdown[breach]:.2%} >= limit 2.00%")

    # Positions held through the breach bar, from the fills before the activation.
    fills = result.fills
    signed = fills["quantity"].where(fills["side"] == "buy", -fills["quantity"])
    before = fills["time"] < activated
    held = signed[before].groupby(fills.loc[before, "symbol"]).sum()
    held = held[held.abs() > 1e-12]
    assert len(held) > 0  # the strategy was in the market when the limit was reached

    # At the next open: exactly one close per open position, of its whole size; nothing else,
    # and no fill at all afterwards.
    after = fills[~before]
    assert (after["time"] == activated).all()
    assert sorted(after["symbol"]) == sorted(held.index)
    for _, fill in after.iterrows():
        q = held[fill["symbol"]]
        assert fill["side"] == ("sell" if q > 0 else "buy")
        assert fill["quantity"] == pytest.approx(abs(q), rel=1e-12)
    assert not fills["liquidation"].any()

    # Flat from that bar to the end: no unrealized PnL, no funding, equity constant.
    rest = eq.iloc[breach + 1 :]
    assert (rest["unrealized"] == 0.0).all()
    assert (rest["equity"] == rest["equity"].iloc[0]).all()

    # Every later decision of the strategy is denied trading_halted; none before.
    blocked = result.risk_events[result.risk_events["kind"] == "risk_blocked"]
    assert len(blocked) > 0
    assert (blocked["reason"] == "trading_halted").all()
    assert (blocked["time"] >= activated).all()
    assert result.summary["mode_changes"] == 0
