"""Render a backtest as one self-contained HTML page that works offline.

plotly.js is embedded once, in ``<head>``; each chart is a ``<div>`` plus its figure as JSON.
Long series are min/max-decimated (see ``charts`` and ``decimate``) so crashes and spikes stay
visible while the page stays small: 9 symbols of 43,200 one-minute bars and 10,000 trades come
to about 9 MB, 4.8 MB of it plotly.js.

Charts use WebGL (``Scattergl``). A browser keeps about 16 WebGL contexts alive and plotly takes
two per chart, so drawing every chart at load would blank the first ones on a report with more
than a handful of symbols. Each chart's figure therefore sits in a JSON script tag and a small
loader draws it when it scrolls near the viewport, purging the least recently seen off-screen
chart once ``MAX_LIVE_CHARTS`` are drawn. This also makes the page show up at once.

The safety core (``BacktestResult.risk_events``, see ``safety``) shows as a Safety section after
the summary (emergency-stop box, denials by reason code and symbol, risk-mode changes), header
alerts for an emergency stop or a halt, risk-mode bands and red emergency-stop lines on the
equity and drawdown charts, and denial markers on each symbol's price chart.

All text that comes from the run (symbols, settings, reasons) is HTML-escaped here or in
``formatting``; text inside chart JSON is escaped too, as plotly.js renders a subset of HTML.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from plotly.offline import get_plotlyjs

from quantum_trader.observability.reports.charts import (
    DRAWDOWN_DIV_ID,
    EQUITY_DIV_ID,
    bar_bounds_ns,
    drawdown_figure,
    equity_figure,
    figure_html,
    price_figure,
)
from quantum_trader.observability.reports.formatting import (
    MISSING,
    Formatter,
    format_count,
    format_money,
    format_percent,
    format_ratio,
    format_seconds,
    format_signed_money,
    format_value,
    html_table,
    is_number,
    sign_class,
    signed_cell,
)
from quantum_trader.observability.reports.frames import (
    float_column,
    symbol_trades,
    time_strings,
    times_ns,
)
from quantum_trader.observability.reports.result import BacktestResult
from quantum_trader.observability.reports.safety import (
    SafetyEvents,
    emergency_headline,
    parse_safety_events,
    safety_section,
)
from quantum_trader.observability.reports.tables import breakdown_table, frame_table

__all__ = ["DRAWDOWN_DIV_ID", "EQUITY_DIV_ID", "SYNTHETIC_BANNER", "render_html_report"]

SYNTHETIC_BANNER = "SYNTHETIC DATA — not real market prices"
MAX_LIVE_CHARTS = 6

_HEADER_SUMMARY_KEYS = frozenset({"start", "end", "initial_cash"})
# Shown by the header and the Safety section, not among "Other figures".
_SAFETY_SUMMARY_KEYS = frozenset({"emergency_stop", "halted"})

# (summary key, label, formatter, colored by sign)
_SUMMARY_FIGURES: tuple[tuple[str, str, Formatter, bool], ...] = (
    ("final_equity", "Final equity", format_money, False),
    ("total_pnl", "Total PnL", format_signed_money, True),
    ("total_return", "Total return", format_percent, True),
    ("cagr", "CAGR", format_percent, True),
    ("max_drawdown", "Max drawdown", format_percent, False),
    ("max_drawdown_duration_bars", "Longest drawdown (bars)", format_count, False),
    ("sharpe", "Sharpe (daily, annualised)", format_ratio, True),
    ("sortino", "Sortino (daily, annualised)", format_ratio, True),
    ("trades", "Trades", format_count, False),
    ("closed_trades", "Closed trades", format_count, False),
    ("open_trades", "Open trades", format_count, False),
    ("win_rate", "Win rate", format_percent, False),
    ("profit_factor", "Profit factor", format_ratio, False),
    ("avg_trade_pnl", "Average trade (net)", format_signed_money, True),
    ("best_trade_pnl", "Best trade (net)", format_signed_money, True),
    ("worst_trade_pnl", "Worst trade (net)", format_signed_money, True),
    ("fees", "Fees paid", format_money, False),
    ("funding", "Funding (+ received)", format_signed_money, True),
    ("exposure", "Time in market", format_percent, False),
    ("rejected_orders", "Rejected orders", format_count, False),
    ("risk_denials", "Risk denials", format_count, False),
    ("mode_changes", "Risk mode changes", format_count, False),
    ("bars", "Bars", format_count, False),
    ("elapsed_s", "Run time", format_seconds, False),
    ("bars_per_s", "Bars per second", format_count, False),
)

# Draw charts near the viewport; keep at most %(live)d drawn (plotly takes 2 WebGL contexts each).
_LOADER_JS = """(function(){
var LIVE=%(live)d,CONFIG={displaylogo:false,responsive:true},drawn=[],seen=new Set();
function draw(div){var i=drawn.indexOf(div);if(i>=0){drawn.splice(i,1);drawn.push(div);return;}
var spec=JSON.parse(document.getElementById(div.id+"-spec").textContent);
Plotly.newPlot(div,spec.data,spec.layout,CONFIG);drawn.push(div);
for(var j=0;drawn.length>LIVE&&j<drawn.length;){var old=drawn[j];
if(seen.has(old)){j++;}else{Plotly.purge(old);drawn.splice(j,1);}}}
var charts=document.querySelectorAll("div.qt-chart");
if(!("IntersectionObserver" in window)){charts.forEach(draw);return;}
var io=new IntersectionObserver(function(entries){entries.forEach(function(e){
if(e.isIntersecting){seen.add(e.target);draw(e.target);}else{seen.delete(e.target);}});},
{rootMargin:"400px 0px"});
charts.forEach(function(c){io.observe(c);});})();"""

_CSS = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#fff;--soft:#f9fafb}
*{box-sizing:border-box}
body{margin:0;background:var(--soft);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1280px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:0 0 10px}
h3{font-size:15px;margin:0 0 6px}
section{background:var(--bg);border:1px solid var(--line);border-radius:8px;
padding:14px 16px;margin:14px 0}
nav{font-size:13px;color:var(--muted)}nav a{color:#1d4ed8;margin-right:10px;text-decoration:none}
.banner{background:#fef3c7;border:2px solid #d97706;color:#78350f;font-weight:700;
padding:10px 14px;border-radius:6px;margin:10px 0;letter-spacing:.02em}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:10px 0}
.facts dt{color:var(--muted)}.facts dd{margin:0;word-break:break-word}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 10px;background:var(--soft)}
.card .label{color:var(--muted);font-size:12px}.card .value{font-size:18px;font-weight:600}
table.data{border-collapse:collapse;width:100%;font-size:12.5px}
table.data th,table.data td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;
white-space:nowrap}
table.data th{background:var(--soft);position:sticky;top:0}
table.data .num{text-align:right;font-variant-numeric:tabular-nums}
table.data tr.total td{font-weight:700;border-top:2px solid var(--fg)}
table.data tr.gap td{color:var(--muted);text-align:center;background:var(--soft)}
.scroll{max-height:560px;overflow:auto;border:1px solid var(--line);border-radius:6px}
.alert{background:#fee2e2;border:2px solid #dc2626;color:#7f1d1d;font-weight:700;
padding:10px 14px;border-radius:6px;margin:10px 0}.alert a{color:#7f1d1d}
.ess-box{background:#fef2f2;border:2px solid #dc2626;border-left-width:8px;border-radius:6px;
padding:10px 14px;margin:0 0 14px}.ess-box .ess-title{color:#b91c1c;font-size:17px;
font-weight:800;letter-spacing:.02em}.ess-box p{margin:4px 0}.ess-box .facts{margin:6px 0 0}
.mode{display:inline-block;padding:0 6px;border-radius:4px;border:1px solid var(--line);
font-size:11.5px;font-weight:600;letter-spacing:.03em}
#safety h3{margin:14px 0 6px}#safety h3:first-of-type{margin-top:0}
.card.danger{border-color:#dc2626;background:#fef2f2}.card.danger .value{color:#b91c1c}
.pos{color:#15803d}.neg{color:#b91c1c}.note{color:var(--muted);font-size:12.5px;margin:4px 0}
details summary{cursor:pointer;color:var(--muted)}
"""


def render_html_report(result: BacktestResult) -> str:
    """Render a backtest result as a self-contained, offline HTML page.

    Args:
        result: The run to show.

    Returns:
        The full HTML document, plotly.js included.
    """
    symbols = _report_symbols(result)
    settings = _flatten(result.settings)
    strategy = _strategy_name(result.settings)
    safety = parse_safety_events(result.risk_events, result.summary, result.settings)
    bounds = bar_bounds_ns(result.equity.index)
    sections = [
        _header_section(result, settings, symbols, strategy, safety),
        _summary_section(result.summary, safety),
        safety_section(safety, result.equity, bounds[1] if bounds is not None else None),
        _chart_section(
            "equity",
            "Equity",
            figure_html(equity_figure(result.equity, _initial_cash(result), safety), EQUITY_DIV_ID),
            _overlay_note(safety),
        ),
        _chart_section(
            "drawdown",
            "Drawdown",
            figure_html(drawdown_figure(result.equity, safety), DRAWDOWN_DIV_ID),
        ),
        (
            '<section id="by-symbol"><h2>PnL by symbol</h2>'
            '<p class="note">Closed trades; net = gross − fees + funding.</p>'
            f"{breakdown_table(result.trades, symbols)}</section>"
        ),
        *(
            _symbol_section(position, symbol, result, safety)
            for position, symbol in enumerate(symbols)
        ),
        _trades_section(result.trades),
        _rejected_section(result.rejected_orders),
    ]
    title = f"Backtest report: {strategy}" if strategy else "Backtest report"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body><main>{''.join(sections)}</main>"
        f"<script>{_LOADER_JS % {'live': MAX_LIVE_CHARTS}}</script></body></html>\n"
    )


def _header_section(
    result: BacktestResult,
    settings: list[tuple[str, str]],
    symbols: list[str],
    strategy: str,
    safety: SafetyEvents,
) -> str:
    facts: list[tuple[str, str]] = [
        ("Strategy", strategy or MISSING),
        ("Parameters", _params_text(settings) or MISSING),
        ("Symbols", ", ".join(symbols) or MISSING),
        ("Period", _period_text(result.equity)),
        ("Initial cash", _initial_cash_text(result, settings)),
        ("Leverage", _setting_text(settings, ("leverage",)) or MISSING),
        ("Fees", _setting_text(settings, ("fee",)) or MISSING),
        ("Data", "synthetic" if result.synthetic else "real market data"),
    ]
    fact_rows = "".join(
        f"<dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd>" for label, value in facts
    )
    banner = (
        f'<div class="banner">{html.escape(SYNTHETIC_BANNER)}</div>' if result.synthetic else ""
    )
    banner += _safety_alerts(result.summary, safety)
    settings_table = html_table(
        ("Setting", "Value"),
        [(html.escape(key), html.escape(value)) for key, value in settings],
    )
    title = f"Backtest report: {strategy}" if strategy else "Backtest report"
    links = ["summary", "safety", "equity", "drawdown", "by-symbol", "trades"]
    if not result.rejected_orders.empty:
        links.append("rejected")
    nav = "".join(f'<a href="#{link}">{link.replace("-", " ")}</a>' for link in links)
    symbol_nav = "".join(
        f'<a href="#symbol-{position}">{html.escape(symbol)}</a>'
        for position, symbol in enumerate(symbols)
    )
    return (
        f"<section><h1>{html.escape(title)}</h1>{banner}"
        f'<nav>{nav}</nav><nav>{symbol_nav}</nav><dl class="facts">{fact_rows}</dl>'
        f"<details><summary>All settings ({len(settings)})</summary>"
        f'<div class="scroll">{settings_table}</div></details></section>'
    )


def _safety_alerts(summary: dict[str, Any], safety: SafetyEvents) -> str:
    alerts = [
        f'<div class="alert" role="alert">{emergency_headline(stop)} — '
        '<a href="#safety">see Safety</a></div>'
        for stop in safety.stops
    ]
    halted = summary.get("halted")
    if halted:
        alerts.append(
            f'<div class="alert" role="alert">Trading halted: {html.escape(str(halted))}</div>'
        )
    return "".join(alerts)


def _overlay_note(safety: SafetyEvents) -> str:
    parts = []
    if safety.mode_changes:
        parts.append("Shading: risk mode (none = NORMAL).")
    if safety.stops:
        parts.append("Red line: emergency stop.")
    return " ".join(parts)


def _summary_section(summary: dict[str, Any], safety: SafetyEvents) -> str:
    cards: list[str] = []
    known = set()
    for key, label, formatter, signed in _SUMMARY_FIGURES:
        known.add(key)
        if key not in summary:
            continue
        value = summary[key]
        css = sign_class(value) if signed else ""
        cards.append(
            f'<div class="card"><div class="label">{html.escape(label)}</div>'
            f'<div class="value {css}">{formatter(value)}</div></div>'
        )
    if "emergency_stop" in summary or safety.stops:
        stop = safety.stops[0] if safety.stops else None
        value = html.escape(stop.reason or "yes") if stop is not None else "none"
        css = " danger" if stop is not None else ""
        cards.append(
            f'<div class="card{css}"><div class="label">Emergency stop</div>'
            f'<div class="value">{value}</div></div>'
        )
    hidden = known | _HEADER_SUMMARY_KEYS | _SAFETY_SUMMARY_KEYS
    extra = [
        (html.escape(str(key)), format_value(value))
        for key, value in sorted(summary.items(), key=lambda item: str(item[0]))
        if key not in hidden and not isinstance(value, dict)
    ]
    extra_html = (
        f"<details><summary>Other figures ({len(extra)})</summary>"
        f"{html_table(('Figure', 'Value'), extra)}</details>"
        if extra
        else ""
    )
    body = "".join(cards) if cards else '<p class="note">No summary figures.</p>'
    return (
        f'<section id="summary"><h2>Summary</h2><div class="cards">{body}</div>'
        f"{extra_html}</section>"
    )


def _chart_section(anchor: str, title: str, chart: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{note_html}{chart}</section>'


def _symbol_section(
    position: int, symbol: str, result: BacktestResult, safety: SafetyEvents
) -> str:
    trades = symbol_trades(result.trades, symbol)
    denials = safety.symbol_denials(symbol)
    figure, notes = price_figure(result.prices.get(symbol), trades, denials, safety.stops)
    if len(denials):
        notes.insert(0, f"{len(denials):,} risk denials (✕).")
    note = "".join(f" {html.escape(text)}" for text in notes)
    return (
        f'<section id="symbol-{position}" class="symbol">'
        f"<h2>{html.escape(symbol)}</h2>"
        f'<p class="note">{_symbol_line(trades)}{note}</p>'
        f"{figure_html(figure, f'price-chart-{position}')}</section>"
    )


def _trades_section(trades: pd.DataFrame) -> str:
    if trades.empty:
        return '<section id="trades"><h2>Trades</h2><p class="note">No trades.</p></section>'
    table, note = frame_table(trades)
    return (
        f'<section id="trades"><h2>Trades ({len(trades):,})</h2>'
        f'<p class="note">{html.escape(note)}</p><div class="scroll">{table}</div></section>'
    )


def _rejected_section(rejected: pd.DataFrame) -> str:
    if rejected.empty:
        return ""
    table, note = frame_table(rejected)
    return (
        f'<section id="rejected"><h2>Rejected orders ({len(rejected):,})</h2>'
        f'<p class="note">{html.escape(note)}</p><div class="scroll">{table}</div></section>'
    )


def _report_symbols(result: BacktestResult) -> list[str]:
    symbols = [str(symbol) for symbol in result.prices]
    if "symbol" in result.trades.columns:
        extra = sorted({str(symbol) for symbol in result.trades["symbol"]} - set(symbols))
        symbols.extend(extra)
    return symbols


def _symbol_line(trades: pd.DataFrame) -> str:
    if trades.empty:
        return "No trades."
    net = np.nan_to_num(float_column(trades, "net_pnl"))
    return f"{len(trades):,} trades, net PnL {signed_cell(float(net.sum()))}."


def _flatten(settings: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    flat: list[tuple[str, str]] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.extend(_flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat.append((name, ", ".join(str(item) for item in value)))
        else:
            flat.append((name, str(value)))
    return flat


def _strategy_name(settings: dict[str, Any]) -> str:
    strategy = settings.get("strategy")
    if isinstance(strategy, dict):
        return str(strategy.get("name", ""))
    for key in ("strategy", "strategy_name"):
        if settings.get(key):
            return str(settings[key])
    return ""


def _params_text(settings: list[tuple[str, str]]) -> str:
    prefixes = ("params.", "strategy.params.", "strategy_params.", "strategy.parameters.")
    pairs = [
        f"{key.split('.', 2)[-1] if key.startswith('strategy.') else key.split('.', 1)[-1]}={value}"
        for key, value in settings
        if key.startswith(prefixes)
    ]
    return ", ".join(pairs)


def _setting_text(settings: list[tuple[str, str]], fragments: Iterable[str]) -> str:
    wanted = tuple(fragments)
    pairs = [
        (key, value)
        for key, value in settings
        if any(fragment in key.rsplit(".", 1)[-1].lower() for fragment in wanted)
    ]
    if len(pairs) == 1:
        return pairs[0][1]
    return ", ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in pairs)


def _initial_cash(result: BacktestResult) -> float | None:
    cash = result.summary.get("initial_cash")
    return float(cash) if cash is not None and is_number(cash) else None


def _initial_cash_text(result: BacktestResult, settings: list[tuple[str, str]]) -> str:
    cash = _initial_cash(result)
    if cash is not None:
        return format_money(cash)
    text = _setting_text(settings, ("initial_cash", "cash", "balance"))
    return text or MISSING


def _period_text(equity: pd.DataFrame) -> str:
    if equity.empty:
        return MISSING
    times = times_ns(equity.index)
    step = int(np.median(np.diff(times))) if times.size > 1 else 0
    days = (int(times[-1]) - int(times[0]) + step) / 86_400e9
    first, last = time_strings(np.array([times[0], times[-1]]))
    bars = f"{times.size:,} bars of {_step_text(step)}" if step else f"{times.size:,} bars"
    return f"{first} → {last} UTC ({days:,.2f} days, {bars})"


def _step_text(step_ns: int) -> str:
    for unit, size in (("d", 86_400 * 10**9), ("h", 3_600 * 10**9), ("m", 60 * 10**9)):
        if step_ns % size == 0:
            return f"{step_ns // size}{unit}"
    return f"{step_ns / 1e9:g}s"
