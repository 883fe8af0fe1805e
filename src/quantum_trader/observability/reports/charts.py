"""Plotly figures of a backtest: equity, drawdown, and per-symbol price with trade markers.

Every line goes through min/max decimation (``decimate``) so a long series ships at most about
``DEFAULT_MAX_POINTS`` points with its crashes and spikes intact; times ship as epoch
milliseconds in compact binary arrays. Text placed in figures (trade ids, risk reasons and
details) is HTML-escaped, as plotly.js renders a subset of HTML in hover labels.

Safety overlays: risk modes as background bands (one filled trace per mode on a hidden overlay
axis, however many changes), emergency stops as red vertical lines with an annotation, and risk
denials as small crosses on the price charts, thinned by ``decimate.first_per_bucket``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from quantum_trader.observability.reports.decimate import (
    DEFAULT_MAX_POINTS,
    decimate_indices,
    first_per_bucket,
)
from quantum_trader.observability.reports.formatting import (
    format_quantity,
    format_signed_money,
    is_number,
)
from quantum_trader.observability.reports.frames import (
    NAT_NS,
    closed_bar_positions,
    float_column,
    side_is_long,
    time_strings,
    times_ms,
    times_ns,
)
from quantum_trader.observability.reports.safety import (
    HALTED_REASON,
    EmergencyStop,
    SafetyEvents,
    emergency_headline,
    mode_color,
    mode_label,
    mode_spans,
)

EQUITY_DIV_ID = "equity-chart"
DRAWDOWN_DIV_ID = "drawdown-chart"
MAX_MARKERS_PER_SYMBOL = 20_000
MAX_DENIAL_MARKERS = 1_000
DENIAL_DETAIL_CHARS = 200
EMERGENCY_COLOR = "#dc2626"

_LONG_COLOR = "#15803d"
_SHORT_COLOR = "#b91c1c"


@dataclass(frozen=True, slots=True)
class _Markers:
    name: str
    shape: str
    color: str
    x: np.ndarray
    y: np.ndarray
    text: list[str]


def figure_html(figure: go.Figure, div_id: str) -> str:
    """Return a chart placeholder ``<div>`` and its figure as a JSON script tag.

    The page's loader script draws the figure when the div nears the viewport.

    Args:
        figure: The figure to ship.
        div_id: The div's id; the JSON tag gets ``<div_id>-spec``. Must be HTML-safe.

    Returns:
        The two elements, concatenated.
    """
    # plotly's JSON escapes "<", ">" and "/", so it cannot close the script tag early.
    spec: str = pio.to_json(figure, validate=False)
    height = int(figure.layout.height or 400)
    return (
        f'<div id="{div_id}" class="qt-chart" style="height:{height}px"></div>'
        f'<script type="application/json" id="{div_id}-spec">{spec}</script>'
    )


def _layout(height: int, *, hovermode: str, y_suffix: str = "") -> dict[str, Any]:
    return {
        "template": "plotly_white",
        "height": height,
        "margin": {"l": 70, "r": 20, "t": 30, "b": 40},
        "hovermode": hovermode,
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "xaxis": {"type": "date", "showspikes": True, "spikemode": "across", "spikethickness": 1},
        "yaxis": {"ticksuffix": y_suffix, "zeroline": False},
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
    }


def bar_bounds_ns(index: pd.Index) -> tuple[int, int] | None:
    """Return ``(first bar start, last bar end)`` of a bar-time index in epoch ns, or None."""
    if not len(index):
        return None
    times = times_ns(index)
    step = int(np.median(np.diff(times))) if times.size > 1 else 0
    return int(times[0]), int(times[-1]) + step


def add_safety_overlays(
    figure: go.Figure,
    safety: SafetyEvents | None,
    bounds: tuple[int, int] | None,
    *,
    bands: bool = True,
    legend: bool = True,
    short_labels: bool = False,
) -> None:
    """Draw the risk modes as background bands and each emergency stop as a red line.

    A band per stretch in a non-normal mode (adjacent equal modes merged) is one rectangle of
    a filled trace per mode on a hidden ``[0, 1]`` axis, so hundreds of mode changes cost a few
    traces, not hundreds of shapes. An emergency stop is a red vertical line across the plot
    with its reason on top and the detail on hover.

    Args:
        figure: The figure to decorate (a date x axis in epoch ms).
        safety: The run's events; None draws nothing.
        bounds: The chart's time range in epoch ns (bands span it); None for no bands.
        bands: False to draw only the emergency stops.
        legend: Whether the bands get legend entries.
        short_labels: Label stops ``ESS: <reason>`` rather than the full headline.
    """
    if safety is None:
        return
    if bands and bounds is not None:
        _add_mode_bands(figure, mode_spans(safety, *bounds), legend=legend)
    for stop in safety.stops:
        _add_emergency_line(figure, stop, bounds, short_label=short_labels)


def _add_mode_bands(figure: go.Figure, spans: Sequence[Any], *, legend: bool) -> None:
    by_mode: dict[str, list[tuple[float, float]]] = {}
    for span in spans:
        if mode_color(span.mode) is not None:
            by_mode.setdefault(span.mode, []).append((span.start_ns / 1e6, span.end_ns / 1e6))
    for mode, stretches in by_mode.items():
        starts = np.array([start for start, _ in stretches])
        ends = np.array([end for _, end in stretches])
        gaps = np.full(starts.size, np.nan)
        x = np.column_stack((starts, starts, ends, ends, starts, gaps)).ravel()
        y = np.tile(np.array([0.0, 1.0, 1.0, 0.0, 0.0, np.nan]), starts.size)
        figure.add_trace(
            go.Scatter(
                x=x,
                y=y,
                yaxis="y2",
                mode="lines",
                fill="toself",
                fillcolor=mode_color(mode),
                line={"width": 0},
                name=f"{mode_label(mode)} mode",
                legendgroup=f"mode-{mode}",
                showlegend=legend,
                hoverinfo="skip",
            )
        )
    if by_mode:
        figure.update_layout(
            yaxis2={
                "overlaying": "y",
                "range": [0, 1],
                "visible": False,
                "fixedrange": True,
                "showgrid": False,
            }
        )


def _add_emergency_line(
    figure: go.Figure,
    stop: EmergencyStop,
    bounds: tuple[int, int] | None,
    *,
    short_label: bool,
) -> None:
    if stop.time_ns == NAT_NS:
        return
    if bounds is not None and not bounds[0] <= stop.time_ns <= bounds[1]:
        return
    x = stop.time_ns / 1e6
    figure.add_shape(
        type="line",
        x0=x,
        x1=x,
        xref="x",
        y0=0,
        y1=1,
        yref="paper",
        layer="above",
        line={"color": EMERGENCY_COLOR, "width": 2.5},
    )
    late = bounds is not None and (stop.time_ns - bounds[0]) > 0.7 * (bounds[1] - bounds[0])
    reason = html.escape(stop.reason) or "?"
    text = f"ESS: {reason}" if short_label else emergency_headline(stop)
    detail = html.escape(stop.detail)
    figure.add_annotation(
        x=x,
        xref="x",
        y=0.99,
        yref="paper",
        yanchor="top",
        xanchor="right" if late else "left",
        xshift=-4 if late else 4,
        showarrow=False,
        text=f"<b>{text}</b>",
        hovertext=f"{emergency_headline(stop)}<br>{detail}" if detail else emergency_headline(stop),
        font={"color": EMERGENCY_COLOR, "size": 12},
        bgcolor="rgba(255,255,255,0.9)",
        bordercolor=EMERGENCY_COLOR,
        borderwidth=1,
        borderpad=3,
    )


def _line(x: np.ndarray, y: np.ndarray, **style: Any) -> go.Scattergl:
    keep = decimate_indices(y, DEFAULT_MAX_POINTS)
    return go.Scattergl(x=x[keep], y=y[keep], mode="lines", **style)


def equity_figure(
    equity: pd.DataFrame, initial_cash: float | None, safety: SafetyEvents | None = None
) -> go.Figure:
    """Return the equity (and wallet) curve, with the initial cash as a dashed line.

    With ``safety``, risk modes shade the background and emergency stops are red lines.

    Args:
        equity: Indexed by bar time (UTC), with ``equity`` and optionally ``wallet`` columns.
        initial_cash: Where to draw the reference line; None for no line.
        safety: The run's safety events, or None.

    Returns:
        The figure.
    """
    figure = go.Figure()
    x = _index_ms(equity.index)
    styles = (
        ("equity", "Equity (mark-to-market)", {"color": "#1d4ed8", "width": 1.6}),
        ("wallet", "Wallet (realized)", {"color": "#9ca3af", "width": 1, "dash": "dot"}),
    )
    for column, name, line in styles:
        if column in equity.columns:
            values = equity[column].to_numpy(dtype=np.float64, na_value=np.nan)
            figure.add_trace(_line(x, values, name=name, line=line))
    if initial_cash is not None and is_number(initial_cash):
        figure.add_hline(
            y=float(initial_cash), line={"color": "#6b7280", "dash": "dash", "width": 1}
        )
    add_safety_overlays(figure, safety, bar_bounds_ns(equity.index))
    figure.update_layout(**_layout(380, hovermode="x unified"))
    figure.update_layout(yaxis={"tickformat": ",.2f"})
    return figure


def drawdown_figure(equity: pd.DataFrame, safety: SafetyEvents | None = None) -> go.Figure:
    """Return the drawdown as a filled area of negative percents.

    With ``safety``, risk modes shade the background (no legend: the equity chart has it) and
    emergency stops are red lines.

    Args:
        equity: Indexed by bar time (UTC), with ``drawdown`` (positive fraction) or ``equity``.
        safety: The run's safety events, or None.

    Returns:
        The figure.
    """
    figure = go.Figure()
    if "drawdown" in equity.columns:
        drawdown = equity["drawdown"].to_numpy(dtype=np.float64, na_value=np.nan)
    elif "equity" in equity.columns:
        values = equity["equity"].to_numpy(dtype=np.float64, na_value=np.nan)
        peak = np.fmax.accumulate(values)
        drawdown = (peak - values) / peak
    else:
        drawdown = np.empty(0)
    figure.add_trace(
        _line(
            _index_ms(equity.index),
            -100.0 * drawdown,
            name="Drawdown",
            fill="tozeroy",
            line={"color": "#b91c1c", "width": 1},
            fillcolor="rgba(185,28,28,0.25)",
        )
    )
    add_safety_overlays(figure, safety, bar_bounds_ns(equity.index), legend=False)
    figure.update_layout(**_layout(260, hovermode="x unified", y_suffix="%"), showlegend=False)
    figure.update_layout(yaxis={"tickformat": ".1f", "hoverformat": ".2f"})
    return figure


def _trade_markers(trades: pd.DataFrame) -> list[_Markers]:
    if trades.empty:
        return []
    is_long = side_is_long(trades)
    status = trades.get("status", pd.Series("", index=trades.index)).astype(str).str.lower()
    entry_ns = times_ns(trades["entry_time"])
    exit_ns = (
        times_ns(trades["exit_time"])
        if "exit_time" in trades.columns
        else np.full(len(trades), NAT_NS)
    )
    closed = (exit_ns != NAT_NS) & (status != "open").to_numpy()
    liquidated = (status == "liquidated").to_numpy() & closed
    entry_price = float_column(trades, "entry_price")
    exit_price = float_column(trades, "exit_price")
    quantity = float_column(trades, "quantity")
    net = float_column(trades, "net_pnl")
    ids = [html.escape(str(value)) for value in trades.get("trade_id", trades.index)]
    entry_text = _hover_text(ids, is_long, "entry", entry_ns, quantity, entry_price, net, closed)
    exit_text = _hover_text(ids, is_long, "exit", exit_ns, quantity, exit_price, net, closed)
    groups = (
        ("Long entry (buy)", "triangle-up", _LONG_COLOR, is_long, True),
        ("Short entry (sell)", "triangle-down", _SHORT_COLOR, ~is_long, True),
        (
            "Long exit (sell)",
            "triangle-down-open",
            _LONG_COLOR,
            is_long & closed & ~liquidated,
            False,
        ),
        (
            "Short exit (buy)",
            "triangle-up-open",
            _SHORT_COLOR,
            ~is_long & closed & ~liquidated,
            False,
        ),
        ("Liquidation", "x", "#111827", liquidated, False),
    )
    markers: list[_Markers] = []
    for name, shape, color, mask, is_entry in groups:
        if not mask.any():
            continue
        times, prices, texts = (
            (entry_ns, entry_price, entry_text) if is_entry else (exit_ns, exit_price, exit_text)
        )
        chosen = np.flatnonzero(mask)
        markers.append(
            _Markers(
                name=name,
                shape=shape,
                color=color,
                x=times[chosen] / 1e6,
                y=prices[chosen],
                text=[texts[i] for i in chosen],
            )
        )
    return markers


def _hover_text(
    ids: Sequence[str],
    is_long: np.ndarray,
    leg: str,
    times_ns: np.ndarray,
    quantity: np.ndarray,
    price: np.ndarray,
    net: np.ndarray,
    closed: np.ndarray,
) -> list[str]:
    stamps = time_strings(times_ns)
    texts: list[str] = []
    for i, trade_id in enumerate(ids):
        side = "long" if is_long[i] else "short"
        action = "buy" if is_long[i] == (leg == "entry") else "sell"
        pnl = f"net PnL {format_signed_money(net[i])}" if closed[i] else "open"
        texts.append(
            f"Trade {trade_id}: {side} {leg}<br>{stamps[i]} UTC<br>"
            f"{action} {format_quantity(quantity[i])} @ {format_quantity(price[i])}<br>{pnl}"
        )
    return texts


def price_figure(
    candles: pd.DataFrame | None,
    trades: pd.DataFrame,
    denials: pd.DataFrame | None = None,
    stops: Sequence[EmergencyStop] = (),
) -> tuple[go.Figure, list[str]]:
    """Return one symbol's close price with its trades' entries and exits marked.

    Entries are filled triangles, exits open ones, pointing up for buys and down for sells;
    longs are green and shorts red; liquidations are black crosses. Hovering a marker shows the
    trade id, side, time, quantity, price and net PnL. Past ``MAX_MARKERS_PER_SYMBOL`` markers
    only the trades with the largest absolute net PnL are marked.

    Risk denials are small crosses at the close of the last bar closed by then (orange; grey for
    ``trading_halted``), hover giving time, reason code and detail; past
    ``MAX_DENIAL_MARKERS`` they are thinned (see ``decimate.first_per_bucket``) and the legend
    says so. Emergency stops are red vertical lines.

    Args:
        candles: The symbol's candle frame (``date``, ``close``), or None.
        trades: The symbol's trades.
        denials: The symbol's risk denials (``time_ns``, ``reason``, ``detail``; see
            ``safety.SafetyEvents``), or None.
        stops: The run's emergency stops.

    Returns:
        The figure, and notes for the reader about what was left out.
    """
    notes: list[str] = []
    if len(trades) * 2 > MAX_MARKERS_PER_SYMBOL:
        notes.append(
            f"{len(trades):,} trades: the chart marks the {MAX_MARKERS_PER_SYMBOL // 2:,} with "
            "the largest |net PnL|; all are in trades.csv."
        )
        magnitude = np.abs(np.nan_to_num(float_column(trades, "net_pnl")))
        order = np.argsort(-magnitude, kind="stable")
        trades = trades.iloc[np.sort(order[: MAX_MARKERS_PER_SYMBOL // 2])]
    figure = go.Figure()
    x_range: list[float] | None = None
    has_candles = candles is not None and {"date", "close"} <= set(candles.columns)
    if candles is not None and has_candles and len(candles):
        dates = times_ms(candles["date"])
        # Pin the x range to the candles: markers would otherwise pad it by a few days.
        x_range = [float(dates[0]), float(dates[-1])]
        figure.add_trace(
            _line(
                dates,
                candles["close"].to_numpy(dtype=np.float64, na_value=np.nan),
                name="Close",
                line={"color": "#334155", "width": 1},
                hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>close %{y}<extra></extra>",
            )
        )
    else:
        notes.append("No candles for this symbol.")
    for markers in _trade_markers(trades):
        figure.add_trace(
            go.Scattergl(
                x=markers.x,
                y=markers.y,
                mode="markers",
                name=markers.name,
                hovertext=markers.text,
                hoverinfo="text",
                marker={
                    "symbol": markers.shape,
                    "color": markers.color,
                    "size": 7,
                    "opacity": 0.85,
                    "line": {"color": markers.color, "width": 1.5},
                },
            )
        )
    if denials is not None and not denials.empty and candles is not None and has_candles:
        for markers in _denial_markers(candles, denials):
            figure.add_trace(markers)
    bounds = (round(x_range[0] * 1e6), round(x_range[1] * 1e6)) if x_range is not None else None
    for stop in stops:
        _add_emergency_line(figure, stop, bounds, short_label=True)
    figure.update_layout(**_layout(420, hovermode="closest"))
    if x_range is not None:
        figure.update_xaxes(range=x_range)
    return figure, notes


def _denial_markers(candles: pd.DataFrame, denials: pd.DataFrame) -> list[go.Scattergl]:
    timed = denials[denials["time_ns"] != NAT_NS]
    if timed.empty or not len(candles):
        return []
    dates = times_ns(candles["date"])
    close = float_column(candles, "close")
    halted = (timed["reason"] == HALTED_REASON).to_numpy()
    groups = (
        ("Risk denial", "#ea580c", 0.8, ~halted),
        ("Denied: trading halted", "#6b7280", 0.6, halted),
    )
    traces: list[go.Scattergl] = []
    for name, color, opacity, mask in groups:
        if not mask.any():
            continue
        group = timed[mask]
        times = group["time_ns"].to_numpy(dtype=np.int64)
        codes, _ = pd.factorize(group["reason"])
        keep, counts = first_per_bucket(
            times, np.asarray(codes, dtype=np.int64), MAX_DENIAL_MARKERS
        )
        label = (
            name
            if keep.size == times.size
            else f"{name} (thinned: {keep.size:,} of {times.size:,} shown)"
        )
        kept_times = times[keep]
        # The close the guard saw: that of the last bar closed by the denial time.
        bar = np.clip(closed_bar_positions(dates, kept_times), 0, dates.size - 1)
        stamps = time_strings(kept_times)
        reasons = group["reason"].to_numpy()[keep]
        details = group["detail"].to_numpy()[keep]
        texts = [
            _denial_text(str(reasons[i]), str(details[i]), stamps[i], int(counts[i]))
            for i in range(keep.size)
        ]
        traces.append(
            go.Scattergl(
                x=kept_times / 1e6,
                y=close[bar],
                mode="markers",
                name=label,
                hovertext=texts,
                hoverinfo="text",
                marker={
                    "symbol": "x-thin",
                    "color": color,
                    "size": 7,
                    "opacity": opacity,
                    "line": {"color": color, "width": 1.2},
                },
            )
        )
    return traces


def _denial_text(reason: str, detail: str, stamp: str, count: int) -> str:
    if len(detail) > DENIAL_DETAIL_CHARS:
        detail = detail[: DENIAL_DETAIL_CHARS - 1] + "…"
    text = f"Risk denial: {html.escape(reason) or '?'}<br>{stamp} UTC"
    if detail:
        text += f"<br>{html.escape(detail)}"
    if count > 1:
        text += f"<br>(+{count - 1:,} more {html.escape(reason)} denials nearby, not marked)"
    return text


def _index_ms(index: pd.Index) -> np.ndarray:
    if not len(index):
        return np.empty(0)
    return times_ms(index)
