"""What a backtest hands to reporting: frames and a summary, no engine objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

TRADE_COLUMNS = (
    "trade_id",
    "symbol",
    "side",
    "quantity",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "status",
    "realized_pnl",
    "fees",
    "funding",
    "net_pnl",
)
FILL_COLUMNS = (
    "time",
    "symbol",
    "side",
    "quantity",
    "price",
    "fee",
    "liquidity",
    "client_order_id",
    "liquidation",
)
EQUITY_COLUMNS = ("equity", "wallet", "unrealized", "drawdown")
RISK_EVENT_COLUMNS = ("time", "kind", "symbol", "reason", "detail")
RISK_EVENT_KINDS = ("risk_blocked", "mode_changed", "emergency_stop")


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """The outcome of one backtest run.

    Attributes:
        equity: indexed by bar open time (``datetime64[ns, UTC]``), columns ``EQUITY_COLUMNS``;
            mark-to-market at each bar's close; ``drawdown`` is (peak - equity) / peak >= 0.
        trades: one row per round trip, columns ``TRADE_COLUMNS`` (times as UTC timestamps;
            open trades have NaT exit_time and status ``open``).
        fills: one row per fill, columns ``FILL_COLUMNS``.
        prices: per symbol the candles used (canonical candle frame).
        summary: the figures written to ``summary.json`` (see ``summary.compute_summary``).
        settings: the run's settings as plain JSON-able values, for the report header.
        rejected_orders: one row per rejected order (time, symbol, side, quantity, reason).
        synthetic: True when any input was synthetic data; reports say so plainly.
        risk_events: the safety core's actions, columns ``RISK_EVENT_COLUMNS``: ``kind`` is
            ``risk_blocked`` (a RiskGuard denial; ``reason`` its code), ``mode_changed``
            (``reason`` is ``<old>-><new>``) or ``emergency_stop`` (``reason`` the ESS reason
            code); ``symbol`` is empty for account-wide events.
    """

    equity: pd.DataFrame
    trades: pd.DataFrame
    fills: pd.DataFrame
    prices: dict[str, pd.DataFrame]
    summary: dict[str, Any]
    settings: dict[str, Any]
    rejected_orders: pd.DataFrame = field(default_factory=pd.DataFrame)
    synthetic: bool = False
    risk_events: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(RISK_EVENT_COLUMNS))
    )
