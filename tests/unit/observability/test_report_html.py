"""The HTML report: sections, charts, trade markers, banner and escaping."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from quantum_trader.observability.reports import html as report_html
from quantum_trader.observability.reports.html import render_html_report
from quantum_trader.observability.reports.result import BacktestResult

MakeResult = Callable[..., BacktestResult]


def chart_spec(page: str, div_id: str) -> dict[str, Any]:
    match = re.search(
        rf'<script type="application/json" id="{re.escape(div_id)}-spec">(.*?)</script>', page
    )
    assert match is not None, f"no chart {div_id}"
    spec: dict[str, Any] = json.loads(match.group(1))
    return spec


def trace_values(values: Any) -> np.ndarray:
    # plotly ships numpy arrays as base64 typed arrays
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def test_render_html_report_when_rendered_is_self_contained_page(make_result: MakeResult) -> None:
    page = render_html_report(make_result())

    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<html") == 1
    # plotly.js is inline, once, and nothing is fetched from the network.
    assert page.count("Plotly.newPlot") == 1
    assert "<script src=" not in page
    assert "<link" not in page


def test_render_html_report_when_rendered_has_equity_and_drawdown_charts(
    make_result: MakeResult,
) -> None:
    page = render_html_report(make_result())

    assert f'<div id="{report_html.EQUITY_DIV_ID}"' in page
    assert f'<div id="{report_html.DRAWDOWN_DIV_ID}"' in page
    equity = chart_spec(page, report_html.EQUITY_DIV_ID)
    assert trace_values(equity["data"][0]["y"])[-1] == 1015.0
    drawdown = chart_spec(page, report_html.DRAWDOWN_DIV_ID)["data"][0]
    assert drawdown["fill"] == "tozeroy"
    assert drawdown["type"] == "scattergl"
    # Drawdown is drawn as a negative percent: 1012.34 → 1011 from the 1012.34 peak.
    assert trace_values(drawdown["y"]).min() < 0


def test_render_html_report_when_synthetic_shows_banner(make_result: MakeResult) -> None:
    assert report_html.SYNTHETIC_BANNER in render_html_report(make_result(synthetic=True))


def test_render_html_report_when_real_data_has_no_banner(make_result: MakeResult) -> None:
    page = render_html_report(make_result(synthetic=False))

    assert report_html.SYNTHETIC_BANNER not in page
    assert "SYNTHETIC" not in page


def test_render_html_report_when_several_symbols_has_section_each(make_result: MakeResult) -> None:
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT")

    page = render_html_report(make_result(symbols=symbols))

    for position, symbol in enumerate(symbols):
        assert f'<section id="symbol-{position}" class="symbol"><h2>{symbol}</h2>' in page
        close = chart_spec(page, f"price-chart-{position}")["data"][0]
        assert close["name"] == "Close"
        assert trace_values(close["y"]).size == 10


def test_render_html_report_when_trade_closed_marks_entry_and_exit_with_hover(
    make_result: MakeResult,
) -> None:
    page = render_html_report(make_result())

    traces = {trace["name"]: trace for trace in chart_spec(page, "price-chart-0")["data"]}
    entry = traces["Long entry (buy)"]
    exit_ = traces["Long exit (sell)"]
    assert entry["marker"]["symbol"] == "triangle-up"
    assert exit_["marker"]["symbol"] == "triangle-down-open"
    assert entry["hovertext"] == [
        "Trade T1: long entry<br>2024-01-01 00:01 UTC<br>buy 0.5 @ 42,000.00<br>net PnL +12.34"
    ]
    assert exit_["hovertext"] == [
        "Trade T1: long exit<br>2024-01-01 00:05 UTC<br>sell 0.5 @ 42,030.00<br>net PnL +12.34"
    ]
    assert trace_values(entry["y"]).tolist() == [42000.0]
    entry_ms = pd.Timestamp("2024-01-01 00:01", tz="UTC").value / 1e6
    assert trace_values(entry["x"]).tolist() == [entry_ms]


def test_render_html_report_when_trade_open_marks_entry_only(make_result: MakeResult) -> None:
    page = render_html_report(make_result())

    traces = {trace["name"]: trace for trace in chart_spec(page, "price-chart-1")["data"]}
    assert set(traces) == {"Close", "Short entry (sell)"}
    assert traces["Short entry (sell)"]["hovertext"][0].endswith("<br>open")


def test_render_html_report_when_rendered_formats_summary_and_breakdown(
    make_result: MakeResult,
) -> None:
    page = render_html_report(make_result())

    assert '<div class="value ">10.00%</div>' in page  # max_drawdown 0.1
    assert "1,015.00" in page  # final equity, money with 2 decimals
    assert "fast=12, slow=48" in page
    assert '<section id="by-symbol">' in page
    assert '<span class="pos">+12.34</span>' in page  # BTCUSDT net in the breakdown


def test_render_html_report_when_orders_rejected_lists_them(make_result: MakeResult) -> None:
    with_rejections = render_html_report(make_result(rejected=True))
    without = render_html_report(make_result(rejected=False))

    assert '<section id="rejected">' in with_rejections
    assert "insufficient_margin" in with_rejections
    assert '<section id="rejected">' not in without


def test_render_html_report_when_text_has_script_tags_escapes_it(make_result: MakeResult) -> None:
    evil = "<script>alert(1)</script>"
    result = make_result(
        symbols=(evil, "ETHUSDT"),
        settings={"strategy": {"name": evil, "params": {"note": evil}}, "leverage": evil},
    )

    page = render_html_report(result)

    assert evil not in page
    assert "alert(1)</" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f"<h2>{'&lt;script&gt;alert(1)&lt;/script&gt;'}</h2>" in page


def test_render_html_report_when_many_trades_truncates_table_and_says_so(
    make_result: MakeResult,
) -> None:
    base = make_result()
    many = pd.concat([base.trades.iloc[[0]]] * 450, ignore_index=True)
    many["trade_id"] = [f"T{index}" for index in range(450)]
    result = BacktestResult(
        equity=base.equity,
        trades=many,
        fills=base.fills,
        prices=base.prices,
        summary=base.summary,
        settings=base.settings,
    )

    page = render_html_report(result)

    table = page[page.index('<section id="trades">') :]
    assert "Showing the first and last 100 of 450 rows" in table
    assert "… 250 rows …" in table
    assert ">T99<" in table
    assert ">T100<" not in table
    assert ">T350<" in table


def test_render_html_report_when_series_is_long_decimates_keeping_extremes(
    make_result: MakeResult,
) -> None:
    base = make_result()
    size = 50_000
    times = pd.date_range("2024-01-01", periods=size, freq="1min", tz="UTC")
    walk = 1000 + np.cumsum(np.random.default_rng(5).normal(0, 1, size))
    walk[31_337] = walk.min() - 100  # a one-bar crash
    equity = pd.DataFrame(
        {"equity": walk, "wallet": walk, "unrealized": 0.0, "drawdown": 0.0}, index=times
    )
    prices = {
        symbol: pd.DataFrame(
            {"date": times, "close": walk, "open": walk, "high": walk, "low": walk, "volume": 1.0}
        )
        for symbol in ("BTCUSDT", "ETHUSDT")
    }
    result = BacktestResult(
        equity=equity,
        trades=base.trades,
        fills=base.fills,
        prices=prices,
        summary=base.summary,
        settings=base.settings,
    )

    page = render_html_report(result)

    for div_id in (report_html.EQUITY_DIV_ID, "price-chart-0"):
        line = trace_values(chart_spec(page, div_id)["data"][0]["y"])
        assert line.size <= 4002
        assert line.min() == walk.min()
        assert line.max() == walk.max()
