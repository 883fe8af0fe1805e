"""Turn report values into short, escaped HTML text: money, percents, times, tables.

Every function here returns text that is safe to drop into HTML: user-supplied strings pass
through ``html.escape`` exactly once, here.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

MISSING = "—"

Formatter = Callable[[Any], str]


def is_number(value: Any) -> bool:
    """Return True for a finite int or float (not a bool)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and math.isfinite(float(value))


def format_money(value: Any) -> str:
    """Format an amount with thousands separators and 2 decimals, e.g. ``-1,234.50``."""
    return f"{float(value):,.2f}" if is_number(value) else MISSING


def format_signed_money(value: Any) -> str:
    """Format an amount like ``format_money`` with an explicit ``+`` on gains."""
    return f"{float(value):+,.2f}" if is_number(value) else MISSING


def format_percent(value: Any) -> str:
    """Format a fraction as a percent with 2 decimals, e.g. ``0.1234`` → ``12.34%``."""
    return f"{float(value) * 100:.2f}%" if is_number(value) else MISSING


def format_ratio(value: Any) -> str:
    """Format a dimensionless ratio with 2 decimals."""
    return f"{float(value):.2f}" if is_number(value) else MISSING


def format_count(value: Any) -> str:
    """Format a count with thousands separators."""
    return f"{round(float(value)):,}" if is_number(value) else MISSING


def format_seconds(value: Any) -> str:
    """Format a duration in seconds, e.g. ``12.3 s``."""
    return f"{float(value):,.1f} s" if is_number(value) else MISSING


def format_quantity(value: Any) -> str:
    """Format a price or quantity compactly: up to 8 significant digits, 2 decimals past 1,000."""
    if not is_number(value):
        return MISSING
    number = float(value)
    if number != 0 and abs(number) < 1e-4:
        return f"{number:.4e}"
    if abs(number) >= 1000:
        return f"{number:,.2f}"
    return f"{number:.8g}"


def format_time(value: Any) -> str:
    """Format a timestamp as ``YYYY-MM-DD HH:MM[:SS]`` in UTC; missing times give a dash."""
    if value is None or value is pd.NaT:
        return MISSING
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    if pd.isna(stamp):
        return MISSING
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    pattern = (
        "%Y-%m-%d %H:%M" if stamp.second == 0 and stamp.microsecond == 0 else "%Y-%m-%d %H:%M:%S"
    )
    return stamp.strftime(pattern)


def format_value(value: Any) -> str:
    """Format any cell value: numbers compactly, timestamps in UTC, the rest as escaped text."""
    if value is None:
        return MISSING
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return format_time(value)
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        return MISSING
    if is_number(value):
        return format_quantity(value) if isinstance(value, (float, np.floating)) else f"{value:,}"
    return html.escape(str(value))


def sign_class(value: Any) -> str:
    """Return the CSS class for a signed figure: ``pos``, ``neg`` or empty."""
    if not is_number(value) or float(value) == 0:
        return ""
    return "pos" if float(value) > 0 else "neg"


def html_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric: Sequence[bool] | None = None,
    row_classes: Sequence[str] | None = None,
    table_class: str = "data",
) -> str:
    """Render a table whose cells are already-escaped HTML snippets.

    Args:
        headers: Column titles (plain text; escaped here).
        rows: One sequence of cell snippets per row, produced by the ``format_*`` helpers.
        numeric: Per column, True to right-align it.
        row_classes: Per row, a CSS class for the ``<tr>`` (e.g. ``total``).
        table_class: The table's CSS class.

    Returns:
        The ``<table>`` element.
    """
    aligned = list(numeric) if numeric is not None else [False] * len(headers)
    head = "".join(
        f'<th class="num">{html.escape(title)}</th>' if right else f"<th>{html.escape(title)}</th>"
        for title, right in zip(headers, aligned, strict=True)
    )
    body: list[str] = []
    for position, row in enumerate(rows):
        row_class = row_classes[position] if row_classes is not None else ""
        cells = "".join(
            f'<td class="num">{cell}</td>' if right else f"<td>{cell}</td>"
            for cell, right in zip(row, aligned, strict=True)
        )
        opening = f'<tr class="{html.escape(row_class)}">' if row_class else "<tr>"
        body.append(f"{opening}{cells}</tr>")
    return (
        f'<table class="{html.escape(table_class)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def signed_cell(value: Any, formatter: Formatter = format_signed_money) -> str:
    """Return a formatted figure wrapped in a span colored by its sign."""
    css = sign_class(value)
    text = formatter(value)
    return f'<span class="{css}">{text}</span>' if css else text
