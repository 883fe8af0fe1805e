"""HTML tables of a backtest: PnL by symbol, and long frames shown by their first and last rows."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from quantum_trader.observability.reports.formatting import (
    MISSING,
    Formatter,
    format_count,
    format_money,
    format_percent,
    format_time,
    format_value,
    html_table,
    signed_cell,
)
from quantum_trader.observability.reports.frames import float_column, side_is_long, symbol_trades

TABLE_EDGE_ROWS = 100

_MONEY_COLUMNS = frozenset({"realized_pnl", "fees", "funding", "net_pnl", "fee"})
_SIGNED_COLUMNS = frozenset({"realized_pnl", "funding", "net_pnl"})


def breakdown_table(trades: pd.DataFrame, symbols: list[str]) -> str:
    """Return the PnL-by-symbol table (closed trades), with a total row.

    Args:
        trades: All trades.
        symbols: The symbols to list, in order; each gets a row even without trades.

    Returns:
        The ``<table>`` element.
    """
    headers = (
        "Symbol",
        "Trades",
        "Open",
        "Win rate",
        "Long net",
        "Short net",
        "Gross PnL",
        "Fees",
        "Funding",
        "Net PnL",
        "Best",
        "Worst",
    )
    rows = [
        _breakdown_row(html.escape(symbol), symbol_trades(trades, symbol)) for symbol in symbols
    ]
    rows.append(_breakdown_row("Total", trades))
    return html_table(
        headers,
        rows,
        numeric=[False] + [True] * (len(headers) - 1),
        row_classes=[""] * (len(rows) - 1) + ["total"],
    )


def _breakdown_row(label: str, trades: pd.DataFrame) -> list[str]:
    if trades.empty:
        return [label, "0", "0"] + [MISSING] * 9
    status = trades.get("status", pd.Series("", index=trades.index)).astype(str).str.lower()
    closed = (status != "open").to_numpy()
    is_long = side_is_long(trades)
    net = np.nan_to_num(float_column(trades, "net_pnl"))
    closed_net = net[closed]
    wins = np.count_nonzero(closed_net > 0)
    return [
        label,
        format_count(len(trades)),
        format_count(int((~closed).sum())),
        format_percent(wins / closed_net.size) if closed_net.size else MISSING,
        signed_cell(float(net[closed & is_long].sum())),
        signed_cell(float(net[closed & ~is_long].sum())),
        signed_cell(_closed_sum(trades, "realized_pnl", closed)),
        format_money(_closed_sum(trades, "fees", closed)),
        signed_cell(_closed_sum(trades, "funding", closed)),
        signed_cell(float(closed_net.sum())),
        signed_cell(float(closed_net.max())) if closed_net.size else MISSING,
        signed_cell(float(closed_net.min())) if closed_net.size else MISSING,
    ]


def frame_table(frame: pd.DataFrame) -> tuple[str, str]:
    """Return a frame as a table, cut to its first and last ``TABLE_EDGE_ROWS`` rows if long.

    Times show in UTC, PnL columns as signed money colored by sign, text is escaped.

    Args:
        frame: The rows to show (trades, rejected orders, ...).

    Returns:
        The ``<table>`` element, and a note saying how many rows it shows.
    """
    total = len(frame)
    gap = total > 2 * TABLE_EDGE_ROWS
    shown = pd.concat([frame.head(TABLE_EDGE_ROWS), frame.tail(TABLE_EDGE_ROWS)]) if gap else frame
    columns = [str(column) for column in frame.columns]
    formatters = [_column_formatter(column, frame[column]) for column in frame.columns]
    rows = [
        [formatter(value) for formatter, value in zip(formatters, record, strict=True)]
        for record in shown.itertuples(index=False, name=None)
    ]
    row_classes = [""] * len(rows)
    if gap:
        omitted = total - 2 * TABLE_EDGE_ROWS
        rows.insert(TABLE_EDGE_ROWS, [f"… {omitted:,} rows …"] + [""] * (len(columns) - 1))
        row_classes.insert(TABLE_EDGE_ROWS, "gap")
        note = (
            f"Showing the first and last {TABLE_EDGE_ROWS} of {total:,} rows; "
            "the CSV files next to this report hold them all."
        )
    else:
        note = f"All {total:,} rows."
    numeric = [
        pd.api.types.is_numeric_dtype(frame[column])
        and not pd.api.types.is_bool_dtype(frame[column])
        for column in frame.columns
    ]
    return html_table(columns, rows, numeric=numeric, row_classes=row_classes), note


def _column_formatter(name: Any, column: pd.Series) -> Formatter:
    if str(name) in _SIGNED_COLUMNS:
        return signed_cell
    if str(name) in _MONEY_COLUMNS:
        return format_money
    if pd.api.types.is_datetime64_any_dtype(column):
        return format_time
    return format_value


def _closed_sum(trades: pd.DataFrame, column: str, closed: np.ndarray) -> float:
    return float(np.nansum(float_column(trades, column)[closed]))
