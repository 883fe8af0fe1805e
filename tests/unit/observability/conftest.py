"""Hand-built backtest results for the report tests; no engine involved."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quantum_trader.observability.reports.result import BacktestResult

START = pd.Timestamp("2024-01-01 00:00", tz="UTC")


def minutes(count: int) -> pd.DatetimeIndex:
    """Return ``count`` one-minute bar times from ``START``."""
    return pd.date_range(START, periods=count, freq="1min", tz="UTC")


def candles(close: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """Return a canonical candle frame around the given closes."""
    close_array = np.asarray(close, dtype=np.float64)
    return pd.DataFrame(
        {
            "date": minutes(close_array.size),
            "open": close_array,
            "high": close_array * 1.001,
            "low": close_array * 0.999,
            "close": close_array,
            "volume": np.ones(close_array.size),
        }
    )


def build_result(
    *,
    symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
    synthetic: bool = False,
    settings: dict[str, Any] | None = None,
    rejected: bool = False,
    summary: dict[str, Any] | None = None,
) -> BacktestResult:
    """Return a 10-bar, two-trade result: T1 a closed long on the first symbol, T2 an open short."""
    times = minutes(10)
    equity_values = np.array([1000, 1005, 1010, 1003, 1012, 1012.34, 1011, 1014, 1013, 1015.0])
    peak = np.maximum.accumulate(np.maximum(equity_values, 1000.0))
    equity = pd.DataFrame(
        {
            "equity": equity_values,
            "wallet": np.full(10, 1000.0),
            "unrealized": equity_values - 1000.0,
            "drawdown": (peak - equity_values) / peak,
        },
        index=times,
    )
    first, second = symbols[0], symbols[-1]
    trades = pd.DataFrame(
        {
            "trade_id": ["T1", "T2"],
            "symbol": [first, second],
            "side": ["buy", "sell"],
            "quantity": [0.5, 2.0],
            "entry_time": [times[1], times[6]],
            "entry_price": [42000.0, 2300.0],
            "exit_time": [times[5], pd.NaT],
            "exit_price": [42030.0, np.nan],
            "status": ["closed", "open"],
            "realized_pnl": [15.0, 0.0],
            "fees": [2.66, 1.0],
            "funding": [0.0, 0.0],
            "net_pnl": [12.34, 0.0],
        }
    )
    trades["exit_time"] = pd.to_datetime(trades["exit_time"], utc=True)
    fills = pd.DataFrame(
        {
            "time": [times[1], times[5], times[6]],
            "symbol": [first, first, second],
            "side": ["buy", "sell", "sell"],
            "quantity": [0.5, 0.5, 2.0],
            "price": [42000.0, 42030.0, 2300.0],
            "fee": [1.33, 1.33, 1.0],
            "liquidity": ["taker", "taker", "taker"],
            "client_order_id": ["o1", "o2", "o3"],
            "liquidation": [False, False, False],
        }
    )
    rejected_orders = (
        pd.DataFrame(
            {
                "time": [times[3]],
                "symbol": [first],
                "side": ["buy"],
                "quantity": [9.0],
                "reason": ["insufficient_margin"],
            }
        )
        if rejected
        else pd.DataFrame()
    )
    prices = {symbol: candles(np.linspace(100.0, 110.0, 10)) for symbol in symbols}
    prices[first] = candles([42000, 42000, 42010, 41990, 42020, 42030, 42025, 42040, 42035, 42050])
    return BacktestResult(
        equity=equity,
        trades=trades,
        fills=fills,
        prices=prices,
        summary=summary
        if summary is not None
        else {"initial_cash": 1000.0, "final_equity": 1015.0, "max_drawdown": 0.1},
        settings=settings
        if settings is not None
        else {
            "strategy": {"name": "ema_cross", "params": {"fast": 12, "slow": 48}},
            "symbols": list(symbols),
            "initial_cash": 1000.0,
            "leverage": 3,
            "fees": {"maker_fee": 0.0002, "taker_fee": 0.0005},
        },
        rejected_orders=rejected_orders,
        synthetic=synthetic,
    )


MakeResult = Callable[..., BacktestResult]


@pytest.fixture
def make_result() -> MakeResult:
    """Return the result builder; call it with keyword overrides."""
    return build_result
