"""Metrics of a finished backtest, aggregated from its result in one pass.

A backtest does not pay for a metrics call per event: the totals are computed from the result's
frames (a handful of vectorized group-bys) and published once into a MetricsRecorder.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from quantum_trader.observability.metrics.recorder import MetricsRecorder
from quantum_trader.observability.reports.result import BacktestResult


def publish_backtest_metrics(
    result: BacktestResult, metrics: MetricsRecorder, audit_counts: Mapping[str, int] | None = None
) -> None:
    """Record the run's trades, fills, fees, funding, rejections, equity and speed."""
    _publish_trades(result.trades, metrics)
    _publish_fills(result.fills, metrics)
    rejected = result.rejected_orders
    if len(rejected):
        codes = rejected["reason"].str.split(":", n=1).str[0]
        for code, n in codes.value_counts().items():
            metrics.increment("order_rejections_total", float(n), (str(code),))
    equity = result.equity
    if len(equity):
        metrics.set_equity(float(equity["equity"].iloc[-1]))
        metrics.set_unrealized_pnl(float(equity["unrealized"].iloc[-1]))
        metrics.set_drawdown(float(equity["drawdown"].iloc[-1]))
    metrics.record_bars(int(result.summary.get("bars", 0)))
    speed = result.summary.get("bars_per_s")
    if isinstance(speed, int | float):
        metrics.set_backtest_speed(float(speed))
    for event_type, n in (audit_counts or {}).items():
        metrics.increment("audit_records_total", float(n), (event_type,))


def _publish_trades(trades: pd.DataFrame, metrics: MetricsRecorder) -> None:
    if not len(trades):
        return
    entry_side = trades["side"].map({"long": "buy", "short": "sell"}).rename("entry_side")
    _publish_counts(metrics, "trades_total", pd.crosstab(trades["symbol"], entry_side))
    funding = trades["funding"]
    # Funding is published as two counters: received (> 0) and paid (< 0).
    metrics.record_funding(float(funding.clip(lower=0.0).sum()))
    metrics.record_funding(float(funding.clip(upper=0.0).sum()))
    metrics.set_realized_pnl(float(trades["realized_pnl"].sum()))


def _publish_fills(fills: pd.DataFrame, metrics: MetricsRecorder) -> None:
    if not len(fills):
        return
    _publish_counts(metrics, "fills_total", pd.crosstab(fills["symbol"], fills["liquidity"]))
    paid = float(fills["fee"].clip(lower=0.0).sum())
    if paid:
        metrics.record_fee(paid)


def _publish_counts(metrics: MetricsRecorder, name: str, table: pd.DataFrame) -> None:
    """Add each non-zero cell of a two-label count table to counter ``name``."""
    values = table.to_numpy()
    for i, row_label in enumerate(table.index):
        for j, column_label in enumerate(table.columns):
            if values[i, j]:
                metrics.increment(name, float(values[i, j]), (str(row_label), str(column_label)))
