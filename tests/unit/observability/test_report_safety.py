"""The safety core in the HTML report: denials, risk-mode bands, emergency stops."""

from __future__ import annotations

import base64
import dataclasses
import html
import itertools
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quantum_trader.observability.reports import html as report_html
from quantum_trader.observability.reports.charts import MAX_DENIAL_MARKERS
from quantum_trader.observability.reports.decimate import first_per_bucket
from quantum_trader.observability.reports.frames import closed_bar_positions
from quantum_trader.observability.reports.html import render_html_report
from quantum_trader.observability.reports.result import RISK_EVENT_COLUMNS, BacktestResult
from quantum_trader.observability.reports.safety import (
    NO_SAFETY_EVENTS,
    ModeSpan,
    mode_spans,
    parse_safety_events,
)

MakeResult = Callable[..., BacktestResult]

START = pd.Timestamp("2024-01-01 00:00", tz="UTC")
EVIL = "<script>alert(1)</script>"
ESS_DETAIL = f"drawdown 12.5% >= limit 10% {EVIL}"


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


def at(minute: float) -> pd.Timestamp:
    return START + pd.Timedelta(minutes=minute)


def risk_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(RISK_EVENT_COLUMNS))


def safety_events() -> pd.DataFrame:
    return risk_frame(
        [
            (at(2), "mode_changed", "", "normal->safe", "stress 0.62, health degraded"),
            (at(3.5), "risk_blocked", "BTCUSDT", "leverage", "notional 4.1x > limit 3x"),
            (at(4), "risk_blocked", "BTCUSDT", "leverage", "notional 3.2x > limit 3x"),
            (at(4), "risk_blocked", "ETHUSDT", "daily_loss", f"loss 2.1% {EVIL}"),
            (at(6), "mode_changed", "", "safe->critical", "stress 0.91, health critical"),
            (at(7), "emergency_stop", "", "drawdown", ESS_DETAIL),
            (at(8), "risk_blocked", "BTCUSDT", "trading_halted", "trading is halted"),
        ]
    )


def with_events(
    make_result: MakeResult,
    events: pd.DataFrame | None = None,
    summary: dict[str, Any] | None = None,
    **overrides: Any,
) -> BacktestResult:
    base = make_result(**overrides)
    return dataclasses.replace(
        base,
        risk_events=safety_events() if events is None else events,
        summary={**base.summary, **(summary or {})},
    )


def section(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}"')
    return page[start : page.index("</section>", start)]


def table_rows(fragment: str) -> list[list[str]]:
    """Return the text of each body row's cells in the first table of ``fragment``."""
    body = fragment[fragment.index("<tbody>") : fragment.index("</tbody>")]
    return [
        [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body)
    ]


def traces_by_name(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {trace.get("name", ""): trace for trace in spec["data"]}


def ms(stamp: pd.Timestamp) -> float:
    return stamp.value / 1e6


# ----------------------------------------------------------------------------- Safety section


def test_safety_section_when_denials_counts_them_by_reason_and_symbol(
    make_result: MakeResult,
) -> None:
    page = render_html_report(with_events(make_result))

    safety = section(page, "safety")
    assert "<h3>Risk denials (4)</h3>" in safety
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", safety.split("</table>")[0])
    assert headers == ["Reason code", "BTCUSDT", "ETHUSDT", "Total", "First", "Last"]
    rows = {row[0]: row[1:] for row in table_rows(safety.split("</table>")[0])}
    assert rows["leverage"] == ["2", "·", "2", "2024-01-01 00:03:30", "2024-01-01 00:04:00"]
    assert rows["daily_loss"][:3] == ["·", "1", "1"]
    assert rows["trading_halted"][:3] == ["1", "·", "1"]
    assert rows["Total"] == ["3", "1", "4", "", ""]
    # Most frequent reason first, Total last.
    assert list(rows) == ["leverage", "daily_loss", "trading_halted", "Total"]


def test_safety_section_when_modes_change_lists_each_change(make_result: MakeResult) -> None:
    page = render_html_report(with_events(make_result))

    safety = section(page, "safety")
    assert "<h3>Risk mode changes (2)</h3>" in safety
    rows = table_rows(safety.split("<h3>Risk mode changes")[1])
    assert rows == [
        ["2024-01-01 00:02", "NORMAL", "SAFE", "stress 0.62, health degraded"],
        ["2024-01-01 00:06", "SAFE", "CRITICAL", "stress 0.91, health critical"],
    ]
    # 10 one-minute bars: NORMAL 00:00-00:02, SAFE 00:02-00:06, CRITICAL 00:06-00:10.
    assert "NORMAL</span> 20.00%" in safety
    assert "SAFE</span> 40.00%" in safety
    assert "CRITICAL</span> 40.00%" in safety


def test_safety_section_when_emergency_stop_shows_red_box_with_reason_and_detail(
    make_result: MakeResult,
) -> None:
    page = render_html_report(with_events(make_result))

    safety = section(page, "safety")
    box = safety[safety.index('<div class="ess-box"') :]
    assert "EMERGENCY STOP: drawdown at 2024-01-01 00:07 UTC" in box
    assert "<dt>Reason</dt><dd>drawdown</dd>" in box
    assert f"<dt>Detail</dt><dd>{html.escape(ESS_DETAIL)}</dd>" in box
    # At 00:07 the 00:06 bar has just closed: equity 1,011.00, 0.13% under the 1,012.34 peak.
    assert "<dt>Equity at stop</dt><dd>1,011.00</dd>" in box
    assert "<dt>Drawdown at stop</dt><dd>0.13%</dd>" in box
    # The header points at it too, and the summary has a card.
    header = page[: page.index('<section id="summary">')]
    assert "EMERGENCY STOP: drawdown at 2024-01-01 00:07 UTC" in header
    assert '<div class="card danger"><div class="label">Emergency stop</div>' in page


def test_safety_section_comes_right_after_summary(make_result: MakeResult) -> None:
    page = render_html_report(with_events(make_result))

    assert page.index('<section id="summary">') < page.index('<section id="safety">')
    assert page.index('<section id="safety">') < page.index('<section id="equity">')
    assert '<a href="#safety">safety</a>' in page


def test_render_when_no_risk_events_says_so_and_draws_no_safety_marks(
    make_result: MakeResult,
) -> None:
    page = render_html_report(make_result())

    assert f'<section id="safety"><h2>Safety</h2><p class="note">{NO_SAFETY_EVENTS}</p>' in page
    assert 'class="ess-box"' not in page
    assert "EMERGENCY STOP" not in page
    for div_id in (report_html.EQUITY_DIV_ID, report_html.DRAWDOWN_DIV_ID, "price-chart-0"):
        spec = chart_spec(page, div_id)
        names = {trace.get("name", "") for trace in spec["data"]}
        assert not any("mode" in name or "denial" in name.lower() for name in names)
        assert all(trace.get("yaxis", "y") == "y" for trace in spec["data"])
        assert "annotations" not in spec["layout"]
        assert all(
            shape.get("line", {}).get("color") != "#dc2626"
            for shape in spec["layout"].get("shapes", [])
        )


def test_render_when_risk_events_frame_is_empty_says_so(make_result: MakeResult) -> None:
    empty = pd.DataFrame(columns=list(RISK_EVENT_COLUMNS))

    page = render_html_report(with_events(make_result, empty))

    assert NO_SAFETY_EVENTS in page
    assert "<h3>" not in section(page, "safety")


def test_safety_section_when_many_mode_changes_shows_first_and_last_50(
    make_result: MakeResult,
) -> None:
    modes = ["normal", "safe"] * 80
    rows = [
        (at(index * 0.05), "mode_changed", "", f"{old}->{new}", f"change {index}")
        for index, (old, new) in enumerate(itertools.pairwise(modes))
    ]

    page = render_html_report(with_events(make_result, risk_frame(rows)))

    safety = section(page, "safety")
    assert "Showing the first and last 50 of 159." in safety
    assert "… 59 changes …" in safety
    assert ">change 49<" in safety
    assert ">change 50<" not in safety
    assert ">change 109<" in safety
    assert ">change 158<" in safety


def test_render_when_summary_has_safety_figures_shows_cards_and_halt_warning(
    make_result: MakeResult,
) -> None:
    summary = {"risk_denials": 4, "mode_changes": 2, "halted": f"audit unavailable {EVIL}"}

    page = render_html_report(with_events(make_result, summary=summary))

    assert '<div class="label">Risk denials</div><div class="value ">4</div>' in page
    assert '<div class="label">Risk mode changes</div><div class="value ">2</div>' in page
    header = page[: page.index('<section id="summary">')]
    assert f"Trading halted: audit unavailable {html.escape(EVIL)}" in header
    # Not repeated as a raw "Other figures" row.
    assert ">halted<" not in page


def test_render_when_only_summary_knows_the_emergency_stop_still_shows_it(
    make_result: MakeResult,
) -> None:
    stop = {"time": "2024-01-01T00:05:00Z", "reason": "stale_market_data", "detail": "no data"}

    page = render_html_report(
        with_events(make_result, pd.DataFrame(), summary={"emergency_stop": stop})
    )

    assert "EMERGENCY STOP: stale_market_data at 2024-01-01 00:05 UTC" in section(page, "safety")
    annotations = chart_spec(page, report_html.EQUITY_DIV_ID)["layout"]["annotations"]
    assert [note["x"] for note in annotations] == [ms(at(5))]


def test_render_when_summary_emergency_stop_is_null_shows_none_card(
    make_result: MakeResult,
) -> None:
    page = render_html_report(make_result(summary={"initial_cash": 1000.0, "emergency_stop": None}))

    assert '<div class="label">Emergency stop</div><div class="value">none</div>' in page
    assert NO_SAFETY_EVENTS in page


def test_render_when_text_has_script_tags_escapes_safety_text(make_result: MakeResult) -> None:
    events = safety_events()
    events.loc[len(events)] = (at(9), "risk_blocked", EVIL, EVIL, EVIL)
    events.loc[len(events)] = (at(9), "mode_changed", "", f"critical->{EVIL}", EVIL)

    page = render_html_report(
        with_events(make_result, events, summary={"halted": EVIL}, symbols=(EVIL, "ETHUSDT"))
    )

    assert EVIL not in page
    assert "alert(1)</" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ----------------------------------------------------------------------------- charts


def test_equity_chart_when_emergency_stop_draws_red_line_and_annotation(
    make_result: MakeResult,
) -> None:
    page = render_html_report(with_events(make_result))

    for div_id in (report_html.EQUITY_DIV_ID, report_html.DRAWDOWN_DIV_ID):
        layout = chart_spec(page, div_id)["layout"]
        lines = [shape for shape in layout["shapes"] if shape["type"] == "line"]
        stop = next(shape for shape in lines if shape["line"]["color"] == "#dc2626")
        assert stop["x0"] == stop["x1"] == ms(at(7))
        assert (stop["yref"], stop["y0"], stop["y1"]) == ("paper", 0, 1)
        (note,) = layout["annotations"]
        assert note["x"] == ms(at(7))
        assert "EMERGENCY STOP: drawdown at 2024-01-01 00:07 UTC" in note["text"]
        assert html.escape(ESS_DETAIL) in note["hovertext"]
        assert EVIL not in note["hovertext"]


def test_equity_chart_when_modes_change_shades_each_mode_band(make_result: MakeResult) -> None:
    page = render_html_report(with_events(make_result))

    equity = traces_by_name(chart_spec(page, report_html.EQUITY_DIV_ID))
    assert "NORMAL mode" not in equity  # normal has no band
    safe, critical = equity["SAFE mode"], equity["CRITICAL mode"]
    for band in (safe, critical):
        assert band["yaxis"] == "y2"
        assert band["fill"] == "toself"
        assert band["hoverinfo"] == "skip"
    safe_x = trace_values(safe["x"])
    assert safe_x[:5].tolist() == [ms(at(2)), ms(at(2)), ms(at(6)), ms(at(6)), ms(at(2))]
    # The last band runs to the end of the last bar.
    assert np.nanmax(trace_values(critical["x"])) == ms(at(10))
    layout = chart_spec(page, report_html.EQUITY_DIV_ID)["layout"]
    assert layout["yaxis2"]["overlaying"] == "y"
    assert layout["yaxis2"]["visible"] is False
    drawdown = traces_by_name(chart_spec(page, report_html.DRAWDOWN_DIV_ID))
    assert drawdown["SAFE mode"]["showlegend"] is False


def test_price_chart_when_denied_marks_denials_at_bar_close_with_hover(
    make_result: MakeResult,
) -> None:
    page = render_html_report(with_events(make_result))

    btc = traces_by_name(chart_spec(page, "price-chart-0"))
    denial = btc["Risk denial"]
    assert denial["marker"]["symbol"] == "x-thin"
    assert trace_values(denial["x"]).tolist() == [ms(at(3.5)), ms(at(4))]
    # The last close the guard saw: at 00:03:30 the 00:02 bar's (42,010); at 00:04 the 00:03
    # bar's, which closed then (41,990).
    assert trace_values(denial["y"]).tolist() == [42010.0, 41990.0]
    assert denial["hovertext"] == [
        "Risk denial: leverage<br>2024-01-01 00:03:30 UTC<br>notional 4.1x &gt; limit 3x",
        "Risk denial: leverage<br>2024-01-01 00:04:00 UTC<br>notional 3.2x &gt; limit 3x",
    ]
    halted = btc["Denied: trading halted"]
    assert halted["hovertext"] == [
        "Risk denial: trading_halted<br>2024-01-01 00:08 UTC<br>trading is halted"
    ]
    eth = traces_by_name(chart_spec(page, "price-chart-1"))
    assert eth["Risk denial"]["hovertext"][0].endswith(f"loss 2.1% {html.escape(EVIL)}")
    assert "3 risk denials (✕)." in section(page, "symbol-0")


def test_price_chart_when_thousands_of_denials_thins_them_and_says_so(
    make_result: MakeResult,
) -> None:
    count = 12_000
    times = START + pd.to_timedelta(np.linspace(0, 9 * 60, count), unit="s")
    reasons = np.where(np.arange(count) % 1000 == 7, "max_position", "leverage")
    events = pd.DataFrame(
        {
            "time": times,
            "kind": "risk_blocked",
            "symbol": "BTCUSDT",
            "reason": reasons,
            "detail": "x",
        }
    )

    page = render_html_report(with_events(make_result, events))

    denial = next(
        trace
        for trace in chart_spec(page, "price-chart-0")["data"]
        if trace.get("name", "").startswith("Risk denial")
    )
    shown = len(denial["hovertext"])
    assert shown <= MAX_DENIAL_MARKERS
    assert denial["name"] == f"Risk denial (thinned: {shown:,} of {count:,} shown)"
    assert any("max_position" in text for text in denial["hovertext"])
    assert any("more leverage denials nearby" in text for text in denial["hovertext"])
    assert "<h3>Risk denials (12,000)</h3>" in page


# ----------------------------------------------------------------------------- parsing


def test_mode_spans_when_adjacent_modes_repeat_merges_them() -> None:
    events = risk_frame(
        [
            (at(1), "mode_changed", "", "normal->safe", ""),
            (at(2), "mode_changed", "", "safe->safe", ""),
            (at(3), "mode_changed", "", "safe->normal", ""),
            (at(3), "mode_changed", "", "normal->critical", ""),
            (at(20), "mode_changed", "", "critical->normal", ""),
        ]
    )
    safety = parse_safety_events(events, {}, {})

    spans = mode_spans(safety, at(0).value, at(10).value)

    assert spans == [
        ModeSpan(at(0).value, at(1).value, "normal"),
        ModeSpan(at(1).value, at(3).value, "safe"),
        ModeSpan(at(3).value, at(10).value, "critical"),
    ]


@pytest.mark.parametrize(
    ("events", "settings", "expected"),
    [
        ([(at(1), "mode_changed", "", "aggressive->safe", "")], {}, "aggressive"),
        ([], {"risk": {"mode": "SAFE"}}, "safe"),
        ([], {"risk": "off"}, "normal"),
    ],
)
def test_parse_safety_events_when_starting_mode_infers_it(
    events: list[tuple[Any, ...]], settings: dict[str, Any], expected: str
) -> None:
    assert parse_safety_events(risk_frame(events), {}, settings).initial_mode == expected


def test_parse_safety_events_when_frame_is_odd_still_reads_it() -> None:
    # Naive times, a missing column, NaN text and an unparsable time.
    events = pd.DataFrame(
        {
            "time": ["2024-01-01 00:03", None, "not a time"],
            "kind": ["risk_blocked", "risk_blocked", "emergency_stop"],
            "reason": ["leverage", np.nan, "manual"],
        }
    )

    safety = parse_safety_events(events, {}, {})

    assert safety.denials["reason"].tolist() == ["", "leverage"]
    assert safety.denials["symbol"].tolist() == ["", ""]
    assert safety.denials["time_ns"].iloc[1] == at(3).value
    assert [stop.reason for stop in safety.stops] == ["manual"]


def test_render_when_result_built_without_risk_events_renders(make_result: MakeResult) -> None:
    base = make_result()
    legacy = BacktestResult(
        equity=base.equity,
        trades=base.trades,
        fills=base.fills,
        prices=base.prices,
        summary=base.summary,
        settings=base.settings,
    )

    assert NO_SAFETY_EVENTS in render_html_report(legacy)


def test_first_per_bucket_when_short_keeps_everything() -> None:
    keep, counts = first_per_bucket(np.arange(5), np.zeros(5, dtype=np.int64), 10)

    assert keep.tolist() == [0, 1, 2, 3, 4]
    assert counts.tolist() == [1] * 5


def test_first_per_bucket_when_long_keeps_first_of_each_key_per_bucket() -> None:
    times = np.arange(1000)
    keys = np.zeros(1000, dtype=np.int64)
    keys[[500, 501]] = 1  # a rare kind in the middle

    keep, counts = first_per_bucket(times, keys, 20)

    assert keep.size <= 20
    assert 500 in keep  # the rare kind's first event survives
    assert 501 not in keep
    assert counts.sum() == 1000
    assert np.all(np.diff(keep) > 0)
    assert keep[0] == 0


def test_closed_bar_positions_when_event_on_boundary_maps_to_bar_that_just_closed() -> None:
    starts = np.array([0, 60, 120, 180], dtype=np.int64)

    positions = closed_bar_positions(starts, np.array([30, 60, 90, 120, 240, 999]))

    assert positions.tolist() == [-1, 0, 0, 1, 3, 3]
