"""The safety core in the report: risk denials, risk-mode changes and emergency stops.

``BacktestResult.risk_events`` (columns ``RISK_EVENT_COLUMNS``) is read once into
``SafetyEvents``; the charts draw it (mode bands, emergency-stop lines, denial markers) and
``safety_section`` lists it. Everything tolerates an empty or column-less frame, times that are
naive or missing, and a summary that carries the emergency stop when the frame does not.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantum_trader.observability.reports.formatting import (
    MISSING,
    format_count,
    format_money,
    format_percent,
    html_table,
    is_number,
)
from quantum_trader.observability.reports.frames import (
    NAT_NS,
    closed_bar_positions,
    time_strings,
)

RISK_BLOCKED = "risk_blocked"
MODE_CHANGED = "mode_changed"
EMERGENCY_STOP = "emergency_stop"
HALTED_REASON = "trading_halted"
DEFAULT_MODE = "normal"
MODE_TABLE_EDGE_ROWS = 50
NO_SAFETY_EVENTS = "No risk denials, mode changes or emergency stops."
NO_SYMBOL = "(account)"

# Background of each risk mode on the charts; NORMAL has none.
MODE_COLORS: Mapping[str, str] = {
    "aggressive": "rgba(59,130,246,0.13)",
    "safe": "rgba(245,158,11,0.18)",
    "critical": "rgba(220,38,38,0.16)",
}
UNKNOWN_MODE_COLOR = "rgba(107,114,128,0.14)"
_MODE_ORDER = ("aggressive", "normal", "safe", "critical")
_TEXT_COLUMNS = ("kind", "symbol", "reason", "detail")


@dataclass(frozen=True, slots=True)
class EmergencyStop:
    """One Emergency Stop System activation; ``time_ns`` is ``NAT_NS`` when unknown."""

    time_ns: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class ModeChange:
    """The risk mode moved from ``old`` to ``new`` (lower-case names; ``old`` may be empty)."""

    time_ns: int
    old: str
    new: str
    detail: str


@dataclass(frozen=True, slots=True)
class ModeSpan:
    """A stretch ``[start_ns, end_ns)`` spent in one risk mode."""

    start_ns: int
    end_ns: int
    mode: str


@dataclass(frozen=True, slots=True)
class SafetyEvents:
    """The run's safety events, parsed and sorted by time.

    Attributes:
        denials: One row per RiskGuard denial: ``time_ns`` (int64, ``NAT_NS`` if unknown),
            ``symbol``, ``reason``, ``detail`` (strings), in time order.
        mode_changes: In time order.
        stops: In time order.
        initial_mode: The mode before the first change.
    """

    denials: pd.DataFrame
    mode_changes: tuple[ModeChange, ...]
    stops: tuple[EmergencyStop, ...]
    initial_mode: str

    @property
    def empty(self) -> bool:
        """True when nothing happened: no denial, mode change or emergency stop."""
        return self.denials.empty and not self.mode_changes and not self.stops

    def symbol_denials(self, symbol: str) -> pd.DataFrame:
        """Return the denials of one symbol."""
        if self.denials.empty:
            return self.denials
        return self.denials[self.denials["symbol"] == symbol]


def parse_safety_events(
    frame: pd.DataFrame | None, summary: Mapping[str, Any], settings: Mapping[str, Any]
) -> SafetyEvents:
    """Read a result's risk events (and the summary's emergency stop) into ``SafetyEvents``.

    Args:
        frame: ``BacktestResult.risk_events``; missing columns read as empty.
        summary: The run summary; its ``emergency_stop`` is used when the frame has none.
        settings: The run settings; ``risk.mode`` is the starting mode when no change says.

    Returns:
        The parsed events.
    """
    events = _normalised(frame)
    kinds = events["kind"].str.strip().str.lower()
    denials = events.loc[kinds == RISK_BLOCKED, ["time_ns", "symbol", "reason", "detail"]]
    changes = tuple(
        _mode_change(int(time_ns), reason, detail)
        for time_ns, reason, detail in events.loc[
            kinds == MODE_CHANGED, ["time_ns", "reason", "detail"]
        ].itertuples(index=False, name=None)
    )
    stops = tuple(
        EmergencyStop(int(time_ns), reason.strip(), detail)
        for time_ns, reason, detail in events.loc[
            kinds == EMERGENCY_STOP, ["time_ns", "reason", "detail"]
        ].itertuples(index=False, name=None)
    )
    if not stops:
        summary_stop = _summary_stop(summary.get("emergency_stop"))
        stops = (summary_stop,) if summary_stop is not None else ()
    return SafetyEvents(
        denials=denials.reset_index(drop=True),
        mode_changes=changes,
        stops=stops,
        initial_mode=_initial_mode(changes, settings),
    )


def mode_spans(safety: SafetyEvents, start_ns: int, end_ns: int) -> list[ModeSpan]:
    """Return the stretches of ``[start_ns, end_ns)`` spent in each risk mode, in order.

    Changes before ``start_ns`` set the starting mode; changes without a time are skipped.
    Adjacent stretches in the same mode are merged.

    Args:
        safety: The run's events.
        start_ns: Where the chart starts (first bar).
        end_ns: Where it ends (after the last bar).

    Returns:
        The spans, covering ``[start_ns, end_ns)`` without gaps; empty if the range is empty.
    """
    if end_ns <= start_ns:
        return []
    spans: list[ModeSpan] = []
    mode, since = safety.initial_mode, start_ns
    for change in safety.mode_changes:
        if change.time_ns == NAT_NS:
            continue
        if change.time_ns >= end_ns:
            break
        if change.time_ns > since:
            spans.append(ModeSpan(since, change.time_ns, mode))
            since = change.time_ns
        mode = change.new or mode
    spans.append(ModeSpan(since, end_ns, mode))
    merged: list[ModeSpan] = []
    for span in spans:
        if merged and merged[-1].mode == span.mode:
            merged[-1] = ModeSpan(merged[-1].start_ns, span.end_ns, span.mode)
        else:
            merged.append(span)
    return merged


def mode_color(mode: str) -> str | None:
    """Return a mode's background color on the charts; None for ``normal``."""
    if mode == DEFAULT_MODE:
        return None
    return MODE_COLORS.get(mode, UNKNOWN_MODE_COLOR)


def mode_label(mode: str) -> str:
    """Return a mode's display name (upper case; ``?`` when unknown), not escaped."""
    return mode.upper() if mode else "?"


def emergency_headline(stop: EmergencyStop) -> str:
    """Return ``EMERGENCY STOP: <reason> at <time> UTC`` as escaped HTML."""
    reason = html.escape(stop.reason) if stop.reason else "unknown reason"
    when = f" at {_time_text(stop.time_ns)} UTC" if stop.time_ns != NAT_NS else ""
    return f"EMERGENCY STOP: {reason}{when}"


def safety_section(safety: SafetyEvents, equity: pd.DataFrame, bar_end_ns: int | None) -> str:
    """Return the report's Safety section.

    It holds the emergency-stop box, the denials by reason code and symbol, the time spent in
    each risk mode and the mode changes (first and last ``MODE_TABLE_EDGE_ROWS`` if many), or
    one line when nothing happened.

    Args:
        safety: The run's events.
        equity: The equity frame, to show equity and drawdown at an emergency stop.
        bar_end_ns: When the last bar ends (for time in mode); None without bars.

    Returns:
        The ``<section id="safety">`` element.
    """
    if safety.empty:
        body = f'<p class="note">{html.escape(NO_SAFETY_EVENTS)}</p>'
    else:
        body = "".join(
            [
                *(_stop_box(stop, equity) for stop in safety.stops),
                _denials_part(safety.denials),
                _modes_part(safety, equity, bar_end_ns),
            ]
        )
    return f'<section id="safety"><h2>Safety</h2>{body}</section>'


def mode_pill(mode: str) -> str:
    """Return a mode name as a small colored label (escaped HTML)."""
    color = mode_color(mode) or "transparent"
    return f'<span class="mode" style="background:{color}">{html.escape(mode_label(mode))}</span>'


# ----------------------------------------------------------------------------- parsing


def _normalised(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame(
            {
                "time_ns": np.empty(0, dtype=np.int64),
                **{name: pd.Series([], dtype=object) for name in _TEXT_COLUMNS},
            }
        )
    text = {name: _text_column(frame, name) for name in _TEXT_COLUMNS}
    if "time" in frame.columns:
        times = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="mixed")
        nanos = times.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    else:
        nanos = np.full(len(frame), NAT_NS, dtype=np.int64)
    normal = pd.DataFrame({"time_ns": nanos, **text})
    order = np.argsort(normal["time_ns"].to_numpy(), kind="stable")
    return normal.iloc[order].reset_index(drop=True)


def _text_column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series([""] * len(frame), dtype=object)
    column = frame[name].reset_index(drop=True)
    return column.where(column.notna(), "").astype(str)


def _mode_change(time_ns: int, reason: str, detail: str) -> ModeChange:
    old, arrow, new = reason.partition("->")
    if not arrow:
        old, new = "", reason
    return ModeChange(time_ns, old.strip().lower(), new.strip().lower(), detail)


def _summary_stop(value: Any) -> EmergencyStop | None:
    if value is None or value is False:
        return None
    if isinstance(value, str):
        return EmergencyStop(NAT_NS, value, "")
    fields = {
        name: (value.get(name) if isinstance(value, Mapping) else getattr(value, name, None))
        for name in ("time", "reason", "detail")
    }
    time_ns = NAT_NS
    if fields["time"] is not None:
        stamp = pd.to_datetime(fields["time"], utc=True, errors="coerce")
        if not pd.isna(stamp):
            time_ns = int(pd.Timestamp(stamp).as_unit("ns").value)
    return EmergencyStop(
        time_ns,
        "" if fields["reason"] is None else str(fields["reason"]),
        "" if fields["detail"] is None else str(fields["detail"]),
    )


def _initial_mode(changes: Sequence[ModeChange], settings: Mapping[str, Any]) -> str:
    if changes and changes[0].old:
        return changes[0].old
    risk = settings.get("risk")
    if isinstance(risk, Mapping) and isinstance(risk.get("mode"), str) and risk["mode"]:
        return str(risk["mode"]).strip().lower()
    return DEFAULT_MODE


# ----------------------------------------------------------------------------- section parts


def _stop_box(stop: EmergencyStop, equity: pd.DataFrame) -> str:
    facts = [
        ("Time", f"{_time_text(stop.time_ns)} UTC" if stop.time_ns != NAT_NS else MISSING),
        ("Reason", html.escape(stop.reason) or MISSING),
        ("Detail", html.escape(stop.detail) or MISSING),
        *_equity_at(equity, stop.time_ns),
    ]
    rows = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts)
    return (
        f'<div class="ess-box" role="alert"><div class="ess-title">{emergency_headline(stop)}'
        "</div><p>The Emergency Stop System halted trading and closed positions; nothing "
        f'trades again until a person resets it.</p><dl class="facts">{rows}</dl></div>'
    )


def _equity_at(equity: pd.DataFrame, time_ns: int) -> list[tuple[str, str]]:
    if time_ns == NAT_NS or equity.empty or "equity" not in equity.columns:
        return []
    index = pd.DatetimeIndex(pd.to_datetime(equity.index, utc=True)).as_unit("ns").asi8
    position = int(closed_bar_positions(index, np.array([time_ns], dtype=np.int64))[0])
    if position < 0:
        return []
    facts = [("Equity at stop", format_money(float(equity["equity"].iloc[position])))]
    if "drawdown" in equity.columns and is_number(equity["drawdown"].iloc[position]):
        facts.append(("Drawdown at stop", format_percent(float(equity["drawdown"].iloc[position]))))
    return facts


def _denials_part(denials: pd.DataFrame) -> str:
    if denials.empty:
        return '<h3>Risk denials</h3><p class="note">No order intent was denied.</p>'
    symbols = denials["symbol"].where(denials["symbol"] != "", NO_SYMBOL)
    reasons = denials["reason"].where(denials["reason"] != "", "(no reason)")
    counts = pd.crosstab(reasons, symbols)
    counts = counts.loc[counts.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    columns = sorted(counts.columns, key=lambda name: (name == NO_SYMBOL, str(name)))
    counts = counts[columns]
    timed = denials["time_ns"] != NAT_NS
    by_reason = denials.loc[timed].groupby(reasons[timed])["time_ns"]
    first = by_reason.min().reindex(counts.index, fill_value=NAT_NS).to_numpy(dtype=np.int64)
    last = by_reason.max().reindex(counts.index, fill_value=NAT_NS).to_numpy(dtype=np.int64)
    # One call for both columns, so they all show seconds or none do.
    stamps = _times_text(np.concatenate((first, last)))
    rows: list[list[str]] = []
    for position, (reason, row) in enumerate(counts.iterrows()):
        rows.append(
            [
                f"<code>{html.escape(str(reason))}</code>",
                *(format_count(int(value)) if value else "·" for value in row.to_numpy()),
                format_count(int(row.sum())),
                stamps[position],
                stamps[len(first) + position],
            ]
        )
    rows.append(
        [
            "Total",
            *(format_count(int(value)) for value in counts.sum(axis=0).to_numpy()),
            format_count(len(denials)),
            "",
            "",
        ]
    )
    headers = ["Reason code", *(str(name) for name in columns), "Total", "First", "Last"]
    table = html_table(
        headers,
        rows,
        numeric=[False, *([True] * (len(columns) + 1)), False, False],
        row_classes=[""] * (len(rows) - 1) + ["total"],
    )
    return (
        f"<h3>Risk denials ({len(denials):,})</h3>"
        '<p class="note">Order intents the RiskGuard refused, by reason code and symbol '
        "(times UTC). Marked ✕ on each symbol's price chart.</p>"
        f'<div class="scroll">{table}</div>'
    )


def _modes_part(safety: SafetyEvents, equity: pd.DataFrame, bar_end_ns: int | None) -> str:
    changes = safety.mode_changes
    if not changes:
        return (
            f'<h3>Risk mode</h3><p class="note">Stayed {mode_pill(safety.initial_mode)} '
            "for the whole run.</p>"
        )
    share = _time_in_mode(safety, equity, bar_end_ns)
    edge = MODE_TABLE_EDGE_ROWS
    gap = len(changes) > 2 * edge
    shown = [*changes[:edge], *changes[-edge:]] if gap else list(changes)
    stamps = _times_text(np.array([change.time_ns for change in shown], dtype=np.int64))
    rows = [
        [stamp, mode_pill(change.old), mode_pill(change.new), html.escape(change.detail)]
        for stamp, change in zip(stamps, shown, strict=True)
    ]
    row_classes = [""] * len(rows)
    note = "Shaded on the equity and drawdown charts."
    if gap:
        rows.insert(edge, [f"… {len(changes) - 2 * edge:,} changes …", "", "", ""])
        row_classes.insert(edge, "gap")
        note = f"Showing the first and last {edge} of {len(changes):,}. {note}"
    table = html_table(("Time (UTC)", "From", "To", "Detail"), rows, row_classes=row_classes)
    return (
        f"<h3>Risk mode changes ({len(changes):,})</h3>"
        f'<p class="note">{share}{html.escape(note)}</p><div class="scroll">{table}</div>'
    )


def _time_in_mode(safety: SafetyEvents, equity: pd.DataFrame, bar_end_ns: int | None) -> str:
    if equity.empty or bar_end_ns is None:
        return ""
    start = int(pd.DatetimeIndex(pd.to_datetime(equity.index[:1], utc=True)).as_unit("ns").asi8[0])
    spans = mode_spans(safety, start, bar_end_ns)
    total = float(bar_end_ns - start)
    if not spans or total <= 0:
        return ""
    durations: dict[str, float] = {}
    for span in spans:
        durations[span.mode] = durations.get(span.mode, 0.0) + (span.end_ns - span.start_ns)
    ranked = sorted(
        durations,
        key=lambda mode: _MODE_ORDER.index(mode) if mode in _MODE_ORDER else len(_MODE_ORDER),
    )
    parts = ", ".join(
        f"{mode_pill(mode)} {format_percent(durations[mode] / total)}" for mode in ranked
    )
    return f"Time in mode: {parts}. "


def _time_text(time_ns: int) -> str:
    return _times_text(np.array([time_ns], dtype=np.int64))[0]


def _times_text(times_ns: np.ndarray) -> list[str]:
    missing = times_ns == NAT_NS
    return [
        MISSING if gone else text
        for text, gone in zip(time_strings(times_ns), missing, strict=True)
    ]
