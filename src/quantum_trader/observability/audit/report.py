"""Compliance report over an audit folder: what happened in a period, and whether to trust it.

``build_compliance_report(directory, start, end)`` reads the records with ``ts`` in
``[start, end)`` (one streaming pass, see ``query.py``) and verifies the whole chain with
``verify_audit_dir``: a report over a chain that does not verify says so first, in a banner,
in every format. Sections: chain status; records by event type; emergency stops and recoveries;
risk blocks by reason code, by symbol and reason × symbol; policy changes by actor; model
promotions and demotions; trades (decisions, executions filled / rejected / other, closed,
liquidated) with closed-trade PnL in total and per symbol; liquidations; configuration updates.

Money is float, summed as logged in ``trade.closed`` metadata (``realized_pnl``, ``fees``,
``funding``, ``net_pnl``; ``net_pnl`` is recomputed as ``realized_pnl - fees + funding`` when a
record lacks it). Closed trades include liquidated ones; liquidations are also listed apart.

Renderers: ``render_markdown``, ``render_html`` (one self-contained page, every value escaped
with ``html.escape``) and ``render_csv``: one flat table, columns ``section,key,subkey,value``.
Counts use an empty subkey; listed items use their number (1, 2, ...) as key and the field as
subkey. Rows, as ``section: key / subkey``:

- ``period``: ``start``, ``end`` (ISO, end excluded), ``directory``, ``records``,
  ``damaged_lines`` (lines skipped as unreadable)
- ``chain``: ``ok`` (``true``/``false``), ``records``, ``files``, ``first_seq``, ``last_seq``,
  ``last_hash``; when broken ``problem``, ``problem_file``, ``problem_line``, ``problem_seq``;
  ``note`` / note number
- ``events``: event type → record count
- ``emergency_stop``: n / ``ts``, ``actor``, ``reason``, ``severity``, ``positions_closed``
  (``;``-joined symbols), ``orders_canceled``
- ``emergency_recovery``: n / ``ts``, ``actor``, ``reason``, ``new_state``
- ``risk_blocks_by_reason``: reason code; ``risk_blocks_by_symbol``: symbol;
  ``risk_blocks``: reason code / symbol → count
- ``policy_changes_by_actor``: actor → count; ``policy_change``: n / ``ts``, ``actor``,
  ``reason``, ``outcome``
- ``model_change``: n / ``ts``, ``event`` (promoted/demoted), ``actor``, ``target``, ``reason``,
  ``gate`` (forced/gated/demoted)
- ``trades``: ``decisions``, ``executions_filled``, ``executions_rejected``,
  ``executions_other``, ``closed``, ``liquidated`` → count
- ``pnl_total``: ``trades``, ``realized_pnl``, ``fees``, ``funding``, ``net_pnl``;
  ``pnl_by_symbol``: symbol / the same names
- ``liquidation``: n / ``ts``, ``symbol``, ``trade_id``, ``net_pnl``
- ``config_update``: n / ``ts``, ``actor``, ``section``, ``reason``, ``keys`` (``;``-joined)

Text cells that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``,
tab or carriage return) get a leading ``'``; numbers are written plainly.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from quantum_trader.observability.audit.query import (
    AuditQuery,
    InvalidAuditQueryError,
    QueryStats,
    format_ts,
    iter_records,
)
from quantum_trader.observability.audit.records import AuditEventType as Ev
from quantum_trader.observability.audit.verify import VerifyProblem, verify_audit_dir

# ---------------------------------------------------------------------------- report model


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """Result of verifying the whole chain (not only the period)."""

    ok: bool
    records: int
    files: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str
    problem: VerifyProblem | None
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EmergencyStop:
    """One ``emergency.triggered`` record."""

    ts: str
    actor: str
    reason: str
    severity: str
    positions_closed: tuple[str, ...]
    orders_canceled: int


@dataclass(frozen=True, slots=True)
class EmergencyRecovery:
    """One ``emergency.recovered`` record (``new_state``: the trading state after the reset)."""

    ts: str
    actor: str
    reason: str
    new_state: str


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """One ``policy.changed`` record (``outcome`` names the new version)."""

    ts: str
    actor: str
    reason: str
    outcome: str


@dataclass(frozen=True, slots=True)
class ModelChange:
    """A promotion (``gate`` ``forced`` or ``gated``) or a demotion (``gate`` ``demoted``)."""

    ts: str
    event: str
    actor: str
    target: str
    reason: str
    gate: str


@dataclass(frozen=True, slots=True)
class ConfigUpdate:
    """One ``config.updated`` record: the section and the keys it changed."""

    ts: str
    actor: str
    section: str
    reason: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A ``trade.closed`` record whose outcome is ``liquidated``."""

    ts: str
    symbol: str
    trade_id: str
    net_pnl: float


@dataclass(frozen=True, slots=True)
class PnlLine:
    """Closed-trade PnL summed over ``trades`` round trips."""

    trades: int = 0
    realized_pnl: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    net_pnl: float = 0.0

    def plus(self, realized: float, fees: float, funding: float, net: float) -> PnlLine:
        """Return this line with one more closed trade added."""
        return PnlLine(
            self.trades + 1,
            self.realized_pnl + realized,
            self.fees + fees,
            self.funding + funding,
            self.net_pnl + net,
        )


@dataclass(frozen=True, slots=True)
class TradeCounts:
    """Trade events in the period; ``closed`` includes the ``liquidated`` ones."""

    decisions: int = 0
    executions_filled: int = 0
    executions_rejected: int = 0
    executions_other: int = 0
    closed: int = 0
    liquidated: int = 0


@dataclass(frozen=True, slots=True)
class ComplianceReport:
    """Everything the compliance report shows; render it with ``render_*``.

    Count mappings are ordered by count (highest first), then name.
    """

    directory: str
    start: dt.datetime
    end: dt.datetime
    records: int
    damaged_lines: int
    chain: ChainStatus
    events: Mapping[str, int]
    emergency_stops: tuple[EmergencyStop, ...]
    recoveries: tuple[EmergencyRecovery, ...]
    risk_blocks_by_reason: Mapping[str, int]
    risk_blocks_by_symbol: Mapping[str, int]
    risk_blocks_by_reason_symbol: Mapping[tuple[str, str], int]
    policy_changes_by_actor: Mapping[str, int]
    policy_changes: tuple[PolicyChange, ...]
    model_changes: tuple[ModelChange, ...]
    trades: TradeCounts
    pnl_total: PnlLine
    pnl_by_symbol: Mapping[str, PnlLine]
    liquidations: tuple[Liquidation, ...]
    config_updates: tuple[ConfigUpdate, ...]

    @property
    def risk_blocks(self) -> int:
        """Total risk blocks in the period."""
        return sum(self.risk_blocks_by_reason.values())


# ---------------------------------------------------------------------------- building


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _float(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    return int(_float(value))


def _texts(record: Mapping[str, Any], *names: str) -> list[str]:
    return [_text(record.get(name)) for name in names]


def _meta(record: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = record.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _ranked(counter: Counter[Any]) -> dict[Any, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(slots=True)
class _Builder:
    records: int = 0
    events: Counter[str] = field(default_factory=Counter)
    stops: list[EmergencyStop] = field(default_factory=list)
    recoveries: list[EmergencyRecovery] = field(default_factory=list)
    blocks: Counter[tuple[str, str]] = field(default_factory=Counter)
    policy: list[PolicyChange] = field(default_factory=list)
    models: list[ModelChange] = field(default_factory=list)
    decisions: int = 0
    executions: Counter[str] = field(default_factory=Counter)
    closed: int = 0
    pnl_total: PnlLine = field(default_factory=PnlLine)
    pnl_by_symbol: dict[str, PnlLine] = field(default_factory=dict)
    liquidations: list[Liquidation] = field(default_factory=list)
    configs: list[ConfigUpdate] = field(default_factory=list)

    def add(self, record: Mapping[str, Any]) -> None:
        self.records += 1
        event_type = _text(record.get("event_type"))
        self.events[event_type] += 1
        handler = _HANDLERS.get(event_type)
        if handler is not None:
            handler(self, record)

    def decision(self, record: Mapping[str, Any]) -> None:
        self.decisions += 1

    def executed(self, record: Mapping[str, Any]) -> None:
        outcome = _text(record.get("outcome"))
        self.executions[outcome if outcome in ("filled", "rejected") else "other"] += 1

    def trade_closed(self, record: Mapping[str, Any]) -> None:
        meta = _meta(record)
        symbol = _text(record.get("target")) or _text(meta.get("symbol"))
        realized, fees, funding = (
            _float(meta.get("realized_pnl")),
            _float(meta.get("fees")),
            _float(meta.get("funding")),
        )
        net = _float(meta["net_pnl"]) if "net_pnl" in meta else realized - fees + funding
        self.closed += 1
        self.pnl_total = self.pnl_total.plus(realized, fees, funding, net)
        line = self.pnl_by_symbol.get(symbol, PnlLine())
        self.pnl_by_symbol[symbol] = line.plus(realized, fees, funding, net)
        if record.get("outcome") == "liquidated":
            self.liquidations.append(
                Liquidation(_text(record.get("ts")), symbol, _text(meta.get("trade_id")), net)
            )

    def blocked(self, record: Mapping[str, Any]) -> None:
        symbol = _text(record.get("target")) or _text(_meta(record).get("symbol"))
        self.blocks[(_text(record.get("reason")), symbol)] += 1

    def emergency(self, record: Mapping[str, Any]) -> None:
        meta = _meta(record)
        closed = meta.get("positions_closed")
        positions = (
            tuple(_text(p) for p in closed)
            if isinstance(closed, list | tuple)
            else tuple("?" for _ in range(_int(closed)))
        )
        ts, actor, reason = _texts(record, "ts", "actor", "reason")
        severity, canceled = _text(meta.get("severity")), _int(meta.get("orders_canceled"))
        self.stops.append(EmergencyStop(ts, actor, reason, severity, positions, canceled))

    def recovered(self, record: Mapping[str, Any]) -> None:
        self.recoveries.append(
            EmergencyRecovery(*_texts(record, "ts", "actor", "reason", "outcome"))
        )

    def policy_changed(self, record: Mapping[str, Any]) -> None:
        self.policy.append(PolicyChange(*_texts(record, "ts", "actor", "reason", "outcome")))

    def model(self, record: Mapping[str, Any]) -> None:
        event = "promoted" if record.get("event_type") == Ev.MODEL_PROMOTED else "demoted"
        ts, actor, target, reason, gate = _texts(
            record, "ts", "actor", "target", "reason", "outcome"
        )
        self.models.append(ModelChange(ts, event, actor, target, reason, gate))

    def config(self, record: Mapping[str, Any]) -> None:
        changes = _meta(record).get("changes")
        keys = tuple(str(k) for k in changes) if isinstance(changes, Mapping) else ()
        ts, actor, section, reason = _texts(record, "ts", "actor", "target", "reason")
        self.configs.append(ConfigUpdate(ts, actor, section, reason, keys))


_HANDLERS: dict[str, Callable[[_Builder, Mapping[str, Any]], None]] = {
    Ev.TRADE_DECISION: _Builder.decision,
    Ev.TRADE_EXECUTED: _Builder.executed,
    Ev.TRADE_CLOSED: _Builder.trade_closed,
    Ev.RISK_BLOCKED: _Builder.blocked,
    Ev.EMERGENCY_TRIGGERED: _Builder.emergency,
    Ev.EMERGENCY_RECOVERED: _Builder.recovered,
    Ev.POLICY_CHANGED: _Builder.policy_changed,
    Ev.MODEL_PROMOTED: _Builder.model,
    Ev.MODEL_DEMOTED: _Builder.model,
    Ev.CONFIG_UPDATED: _Builder.config,
}


def build_compliance_report(
    directory: Path, start: dt.datetime, end: dt.datetime, *, key: bytes | None = None
) -> ComplianceReport:
    """Summarize the records with ``start <= ts < end`` and verify the whole chain.

    ``start`` and ``end`` must be aware datetimes; ``key`` is the chain's HMAC key, if any.
    Raises InvalidAuditQueryError for a naive time or an empty period.
    """
    if format_ts(start) >= format_ts(end):
        raise InvalidAuditQueryError(
            f"report period is empty: start {start.isoformat()} is not before end {end.isoformat()}"
        )
    directory = Path(directory)
    verified = verify_audit_dir(directory, key=key)
    chain = ChainStatus(
        ok=verified.ok,
        records=verified.records,
        files=verified.files,
        first_seq=verified.first_seq,
        last_seq=verified.last_seq,
        last_hash=verified.last_hash,
        problem=verified.problem,
        notes=tuple(verified.notes),
    )
    builder = _Builder()
    stats = QueryStats()
    for record in iter_records(directory, AuditQuery(since=start, until=end), stats=stats):
        builder.add(record)
    by_reason: Counter[str] = Counter()
    by_symbol: Counter[str] = Counter()
    for (reason, symbol), count in builder.blocks.items():
        by_reason[reason] += count
        by_symbol[symbol] += count
    execs = builder.executions
    return ComplianceReport(
        directory=str(directory),
        start=start,
        end=end,
        records=builder.records,
        damaged_lines=stats.damaged,
        chain=chain,
        events=_ranked(builder.events),
        emergency_stops=tuple(builder.stops),
        recoveries=tuple(builder.recoveries),
        risk_blocks_by_reason=_ranked(by_reason),
        risk_blocks_by_symbol=_ranked(by_symbol),
        risk_blocks_by_reason_symbol=_ranked(builder.blocks),
        policy_changes_by_actor=_ranked(Counter(c.actor for c in builder.policy)),
        policy_changes=tuple(builder.policy),
        model_changes=tuple(builder.models),
        trades=TradeCounts(
            decisions=builder.decisions,
            executions_filled=execs["filled"],
            executions_rejected=execs["rejected"],
            executions_other=execs["other"],
            closed=builder.closed,
            liquidated=len(builder.liquidations),
        ),
        pnl_total=builder.pnl_total,
        pnl_by_symbol=dict(sorted(builder.pnl_by_symbol.items())),
        liquidations=tuple(builder.liquidations),
        config_updates=tuple(builder.configs),
    )


# ---------------------------------------------------------------------------- shared text


def _when(moment: dt.datetime) -> str:
    text = format_ts(moment)
    return text.replace(".000000Z", "Z")


def _money(value: float) -> str:
    text = f"{value:,.8f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _plain(value: float) -> str:
    text = f"{value:.8f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _chain_line(chain: ChainStatus) -> str:
    if not chain.ok:
        return f"FAILED at {chain.problem}"
    if chain.records == 0:
        return "no records to verify"
    return (
        f"verified: {chain.records:,} records in {chain.files:,} files, "
        f"seq {chain.first_seq}..{chain.last_seq}, last hash {chain.last_hash}"
    )


def _failure_text(report: ComplianceReport) -> str:
    return (
        f"AUDIT CHAIN VERIFICATION FAILED: {report.chain.problem}. The trail was altered, "
        "truncated or damaged: the figures below may be incomplete or wrong."
    )


def _stop_row(s: EmergencyStop) -> list[str]:
    closed = f"{len(s.positions_closed)}"
    if s.positions_closed and "?" not in s.positions_closed:
        closed += f" ({', '.join(s.positions_closed)})"
    return [s.ts, s.actor, s.reason, s.severity, closed, str(s.orders_canceled)]


def _pnl_row(name: str, line: PnlLine) -> list[str]:
    return [
        name,
        str(line.trades),
        _money(line.realized_pnl),
        _money(line.fees),
        _money(line.funding),
        _money(line.net_pnl),
    ]


_Table = tuple[str, list[str], list[list[str]]]


def _reason_symbol_table(report: ComplianceReport) -> tuple[list[str], list[list[str]]]:
    symbols = sorted(report.risk_blocks_by_symbol)
    grid = report.risk_blocks_by_reason_symbol
    rows = [
        [reason, *(str(grid.get((reason, s), 0)) for s in symbols), str(total)]
        for reason, total in report.risk_blocks_by_reason.items()
    ]
    return ["Reason", *symbols, "Total"], rows


def _sections(report: ComplianceReport) -> list[tuple[str, list[_Table]]]:
    """Every section as (title, [(subtitle, header, rows)]), shared by Markdown and HTML."""
    t = report.trades
    matrix_header, matrix_rows = _reason_symbol_table(report)
    return [
        (
            "Records by event type",
            [("", ["Event type", "Records"], [[k, str(v)] for k, v in report.events.items()])],
        ),
        (
            "Emergency stops",
            [
                (
                    "Activations",
                    ["Time", "Actor", "Reason", "Severity", "Positions closed", "Orders canceled"],
                    [_stop_row(s) for s in report.emergency_stops],
                ),
                (
                    "Recoveries",
                    ["Time", "Actor", "Reason", "New state"],
                    [[r.ts, r.actor, r.reason, r.new_state] for r in report.recoveries],
                ),
            ],
        ),
        (
            f"Risk blocks ({report.risk_blocks})",
            [
                (
                    "By reason",
                    ["Reason", "Blocks"],
                    [[k, str(v)] for k, v in report.risk_blocks_by_reason.items()],
                ),
                (
                    "By symbol",
                    ["Symbol", "Blocks"],
                    [[k, str(v)] for k, v in report.risk_blocks_by_symbol.items()],
                ),
                ("Reason × symbol", matrix_header, matrix_rows),
            ],
        ),
        (
            f"Policy changes ({len(report.policy_changes)})",
            [
                (
                    "By actor",
                    ["Actor", "Changes"],
                    [[k, str(v)] for k, v in report.policy_changes_by_actor.items()],
                ),
                (
                    "Changes",
                    ["Time", "Actor", "Reason", "Outcome"],
                    [[c.ts, c.actor, c.reason, c.outcome] for c in report.policy_changes],
                ),
            ],
        ),
        (
            "Model promotions and demotions",
            [
                (
                    "",
                    ["Time", "Event", "Actor", "Model", "Reason", "Gate"],
                    [
                        [m.ts, m.event, m.actor, m.target, m.reason, m.gate]
                        for m in report.model_changes
                    ],
                )
            ],
        ),
        (
            "Trades",
            [
                (
                    "Counts",
                    ["Event", "Count"],
                    [
                        ["Decisions", str(t.decisions)],
                        ["Executions filled", str(t.executions_filled)],
                        ["Executions rejected", str(t.executions_rejected)],
                        ["Executions other", str(t.executions_other)],
                        ["Closed trades", str(t.closed)],
                        ["Liquidations", str(t.liquidated)],
                    ],
                ),
                (
                    "Closed-trade PnL",
                    ["Symbol", "Trades", "Realized PnL", "Fees", "Funding", "Net PnL"],
                    [_pnl_row(s, line) for s, line in report.pnl_by_symbol.items()]
                    + ([_pnl_row("Total", report.pnl_total)] if report.pnl_by_symbol else []),
                ),
                (
                    "Liquidations",
                    ["Time", "Symbol", "Trade", "Net PnL"],
                    [[q.ts, q.symbol, q.trade_id, _money(q.net_pnl)] for q in report.liquidations],
                ),
            ],
        ),
        (
            "Configuration updates",
            [
                (
                    "",
                    ["Time", "Actor", "Section", "Reason", "Keys changed"],
                    [
                        [c.ts, c.actor, c.section, c.reason, ", ".join(c.keys)]
                        for c in report.config_updates
                    ],
                )
            ],
        ),
    ]


def _overview(report: ComplianceReport) -> list[tuple[str, str]]:
    rows = [
        ("Period", f"{_when(report.start)} → {_when(report.end)} (end excluded)"),
        ("Audit folder", report.directory),
        ("Records in period", f"{report.records:,}"),
        ("Chain", _chain_line(report.chain)),
    ]
    if report.damaged_lines:
        rows.append(("Damaged lines skipped", f"{report.damaged_lines:,}"))
    rows += [("Chain note", note) for note in report.chain.notes]
    return rows


# ---------------------------------------------------------------------------- Markdown


def _md(value: str) -> str:
    out = value.replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<").replace("`", "\\`")
    return " ".join(out.splitlines()) if ("\n" in out or "\r" in out) else out


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["_None._", ""]
    lines = [
        "| " + " | ".join(_md(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def render_markdown(report: ComplianceReport) -> str:
    """Render the report as Markdown; a broken chain opens the page with a warning block."""
    lines = ["# Audit compliance report", ""]
    if not report.chain.ok:
        lines += [f"> **⚠ {_md(_failure_text(report))}**", ""]
    lines += _md_table(["Item", "Value"], [[k, v] for k, v in _overview(report)])
    for title, tables in _sections(report):
        lines += [f"## {_md(title)}", ""]
        for subtitle, header, rows in tables:
            if subtitle:
                lines += [f"### {_md(subtitle)}", ""]
            lines += _md_table(header, rows)
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#1f2328;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.5rem}h2{font-size:1.25rem;margin-top:2rem;
border-bottom:1px solid #d0d7de;padding-bottom:.3rem}h3{font-size:1rem;color:#57606a}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.banner{padding:1rem 1.2rem;border-radius:6px;margin:1rem 0;font-weight:600}
.banner.fail{background:#d1242f;color:#fff;font-size:1.1rem}
.banner.ok{background:#dafbe1;color:#116329;border:1px solid #4ac26b}
.none{color:#57606a;font-style:italic}code{font-size:.85rem;word-break:break-all}
"""


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _html_table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ['<p class="none">None.</p>']
    esc = html.escape
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = "".join(
            f'<td class="num">{esc(c)}</td>' if _is_number(c) else f"<td>{esc(c)}</td>" for c in row
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return out


def render_html(report: ComplianceReport) -> str:
    """Render the report as one self-contained HTML page (inline CSS, no scripts).

    Every value from the trail is escaped; a broken chain shows a red banner at the top.
    """
    esc = html.escape
    period = f"{_when(report.start)} → {_when(report.end)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Audit compliance report {esc(period)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Audit compliance report</h1>",
    ]
    if report.chain.ok:
        parts.append(f'<div class="banner ok">Audit chain {esc(_chain_line(report.chain))}</div>')
    else:
        parts.append(f'<div class="banner fail" role="alert">⚠ {esc(_failure_text(report))}</div>')
    parts += _html_table(["Item", "Value"], [[k, v] for k, v in _overview(report)])
    for title, tables in _sections(report):
        parts.append(f"<h2>{esc(title)}</h2>")
        for subtitle, header, rows in tables:
            if subtitle:
                parts.append(f"<h3>{esc(subtitle)}</h3>")
            parts += _html_table(header, rows)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------- CSV

CSV_COLUMNS = ("section", "key", "subkey", "value")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _plain(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def _items(
    section: str, items: Iterable[Any], fields: tuple[str, ...]
) -> Iterable[tuple[str, str, str, str | int | float]]:
    for number, item in enumerate(items, 1):
        for name in fields:
            value = getattr(item, name)
            if isinstance(value, tuple):
                value = ";".join(value)
            yield section, str(number), name, value


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _chain_rows(chain: ChainStatus) -> Iterable[tuple[str, str, str, str | int | float]]:
    yield "chain", "ok", "", "true" if chain.ok else "false"
    for name in ("records", "files", "first_seq", "last_seq", "last_hash"):
        value = getattr(chain, name)
        yield "chain", name, "", "" if value is None else value
    if chain.problem is not None:
        yield "chain", "problem", "", str(chain.problem)
        yield "chain", "problem_file", "", chain.problem.file
        yield "chain", "problem_line", "", chain.problem.line
        yield "chain", "problem_seq", "", "" if chain.problem.seq is None else chain.problem.seq
    for number, note in enumerate(chain.notes, 1):
        yield "chain", "note", str(number), note


def _csv_rows(report: ComplianceReport) -> Iterable[tuple[str, str, str, str | int | float]]:
    yield "period", "start", "", _when(report.start)
    yield "period", "end", "", _when(report.end)
    yield "period", "directory", "", report.directory
    yield "period", "records", "", report.records
    yield "period", "damaged_lines", "", report.damaged_lines
    yield from _chain_rows(report.chain)
    for event_type, count in report.events.items():
        yield "events", event_type, "", count
    yield from _items(
        "emergency_stop",
        report.emergency_stops,
        ("ts", "actor", "reason", "severity", "positions_closed", "orders_canceled"),
    )
    yield from _items(
        "emergency_recovery", report.recoveries, ("ts", "actor", "reason", "new_state")
    )
    for reason, count in report.risk_blocks_by_reason.items():
        yield "risk_blocks_by_reason", reason, "", count
    for symbol, count in report.risk_blocks_by_symbol.items():
        yield "risk_blocks_by_symbol", symbol, "", count
    for (reason, symbol), count in report.risk_blocks_by_reason_symbol.items():
        yield "risk_blocks", reason, symbol, count
    for actor, count in report.policy_changes_by_actor.items():
        yield "policy_changes_by_actor", actor, "", count
    yield from _items("policy_change", report.policy_changes, ("ts", "actor", "reason", "outcome"))
    yield from _items(
        "model_change", report.model_changes, ("ts", "event", "actor", "target", "reason", "gate")
    )
    for name in _field_names(TradeCounts):
        yield "trades", name, "", getattr(report.trades, name)
    for name in _field_names(PnlLine):
        yield "pnl_total", name, "", getattr(report.pnl_total, name)
    for symbol, line in report.pnl_by_symbol.items():
        for name in _field_names(PnlLine):
            yield "pnl_by_symbol", symbol, name, getattr(line, name)
    yield from _items("liquidation", report.liquidations, ("ts", "symbol", "trade_id", "net_pnl"))
    yield from _items(
        "config_update", report.config_updates, ("ts", "actor", "section", "reason", "keys")
    )


def render_csv(report: ComplianceReport) -> str:
    """Render the report as one flat CSV table ``section,key,subkey,value`` (module docstring)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for section, key, subkey, value in _csv_rows(report):
        writer.writerow((section, _cell(key), _cell(subkey), _cell(value)))
    return out.getvalue()
