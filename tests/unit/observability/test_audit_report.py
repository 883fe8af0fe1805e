"""Compliance report over a realistic four-day trail written by AuditLogger; figures by hand."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from pathlib import Path

import pytest

from quantum_trader.domain.clock import ManualClock
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.query import InvalidAuditQueryError
from quantum_trader.observability.audit.records import Durability, day_file
from quantum_trader.observability.audit.report import (
    CSV_COLUMNS,
    ComplianceReport,
    build_compliance_report,
    render_csv,
    render_html,
    render_markdown,
)

UTC = dt.UTC
START = dt.datetime(2025, 3, 3, tzinfo=UTC)
END = dt.datetime(2025, 3, 6, tzinfo=UTC)


def ns(text: str) -> int:
    """Nanoseconds since the epoch of a naive ISO time read as UTC."""
    moment = dt.datetime.fromisoformat(text).replace(tzinfo=UTC)
    return (moment - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1) * 1000


def write_trail(directory: Path) -> None:
    """Write the scenario: one day before the period, three days in it, one day after."""
    clock = ManualClock(ns("2025-03-02T00:00:00"))
    with AuditLogger(
        directory, clock, durability=Durability.BUFFERED, retention_days=None
    ) as audit:

        def at(text: str) -> AuditLogger:
            clock.set(ns(text))
            return audit

        # 2025-03-02: before the period.
        at("2025-03-02T10:00:00").risk_blocked(
            actor="risk_guard", symbol="ETHUSDT", reason_code="max_leverage"
        )
        at("2025-03-02T23:59:59.999999").policy_changed(
            actor="alice", reason="early", old={}, new={}, version=1
        )
        # 2025-03-03
        at("2025-03-03T00:00:00").policy_changed(
            actor="alice",
            reason="raise leverage cap",
            old={"max_leverage": 3},
            new={"max_leverage": 5},
            version=2,
        )
        at("2025-03-03T09:30:00").trade_decision(
            actor="ema_cross", symbol="BTCUSDT", side="buy", quantity=0.5, price=60000.0
        )
        at("2025-03-03T09:30:01").trade_executed(
            actor="sim",
            symbol="BTCUSDT",
            side="buy",
            quantity=0.5,
            price=60010.0,
            fee=12.0,
            client_order_id="o-1",
        )
        at("2025-03-03T10:00:00").risk_blocked(
            actor="risk_guard", symbol="BTCUSDT", reason_code="max_leverage", detail="6x > 5x"
        )
        at("2025-03-03T10:05:00").risk_blocked(
            actor="risk_guard", symbol="ETHUSDT", reason_code="max_leverage"
        )
        at("2025-03-03T10:10:00").risk_blocked(
            actor="risk_guard", symbol="ETHUSDT", reason_code="daily_loss"
        )
        at("2025-03-03T12:00:00").trade_closed(
            actor="sim",
            symbol="BTCUSDT",
            trade_id="T1",
            side="buy",
            quantity=0.5,
            entry_price=60010.0,
            exit_price=60310.0,
            realized_pnl=150.0,
            fees=24.0,
            funding=-1.5,
        )
        at("2025-03-03T13:00:00").trade_decision(
            actor="ema_cross", symbol="ETHUSDT", side="sell", quantity=2.0, price=3000.0
        )
        at("2025-03-03T13:00:01").trade_executed(
            actor="sim",
            symbol="ETHUSDT",
            side="sell",
            quantity=2.0,
            price=3000.0,
            fee=0.0,
            client_order_id="o-2",
            outcome="rejected",
            reason="insufficient_margin",
        )
        # 2025-03-04
        at("2025-03-04T08:00:00").trade_decision(
            actor="ema_cross", symbol="SOLUSDT", side="buy", quantity=10.0, price=150.0
        )
        at("2025-03-04T08:00:01").trade_executed(
            actor="sim",
            symbol="SOLUSDT",
            side="buy",
            quantity=10.0,
            price=150.0,
            fee=0.75,
            client_order_id="o-3",
        )
        at("2025-03-04T08:30:00").risk_blocked(
            actor="risk_guard", symbol="BTCUSDT", reason_code="max_leverage"
        )
        at("2025-03-04T09:00:00").emergency_triggered(
            actor="ess",
            reason="drawdown 12% > 10%",
            severity="critical",
            positions_closed=["SOLUSDT", "BTCUSDT"],
            orders_canceled=3,
        )
        at("2025-03-04T09:00:30").trade_closed(
            actor="sim",
            symbol="SOLUSDT",
            trade_id="T2",
            side="buy",
            quantity=10.0,
            entry_price=150.0,
            exit_price=120.0,
            realized_pnl=-300.0,
            fees=1.5,
            funding=0.0,
            outcome="liquidated",
        )
        at("2025-03-04T10:00:00").emergency_recovered(
            actor="alice", reason="incident reviewed", new_state="reducing"
        )
        at("2025-03-04T11:00:00").policy_changed(
            actor="ai-hfos", reason="health DEGRADED", old={}, new={}, version=3
        )
        at("2025-03-04T11:30:00").policy_changed(
            actor="ai-hfos", reason="health HEALTHY", old={}, new={}, version=4
        )
        # 2025-03-05
        at("2025-03-05T07:00:00").model_promoted(
            actor="bob", model="lgbm", version="v7", reason="walk-forward sharpe +0.3"
        )
        at("2025-03-05T07:30:00").model_promoted(
            actor="alice", model="lgbm", version="v8", reason="hotfix", forced=True
        )
        at("2025-03-05T08:00:00").model_demoted(
            actor="ai-hfos", model="lgbm", version="v8", reason="rollback"
        )
        at("2025-03-05T09:00:00").config_updated(
            actor="alice", section="risk", changes={"max_leverage": [5, 3]}, reason="tighten"
        )
        at("2025-03-05T10:00:00").trade_decision(
            actor="ema_cross", symbol="BTCUSDT", side="buy", quantity=0.1, price=61000.0
        )
        at("2025-03-05T10:00:01").trade_executed(
            actor="sim",
            symbol="BTCUSDT",
            side="buy",
            quantity=0.1,
            price=61000.0,
            fee=4.0,
            client_order_id="o-4",
        )
        at("2025-03-05T12:00:00").trade_closed(
            actor="sim",
            symbol="BTCUSDT",
            trade_id="T3",
            side="buy",
            quantity=0.1,
            entry_price=61000.0,
            exit_price=61400.0,
            realized_pnl=40.0,
            fees=4.0,
            funding=0.5,
        )
        at("2025-03-05T23:59:59.999999").risk_blocked(
            actor="risk_guard", symbol="SOLUSDT", reason_code="daily_loss"
        )
        # 2025-03-06: after the period (end excluded).
        at("2025-03-06T00:00:00").risk_blocked(
            actor="risk_guard", symbol="BTCUSDT", reason_code="max_leverage"
        )
        at("2025-03-06T09:00:00").trade_closed(
            actor="sim",
            symbol="BTCUSDT",
            trade_id="T4",
            side="buy",
            quantity=1.0,
            entry_price=1.0,
            exit_price=2.0,
            realized_pnl=1000.0,
            fees=0.0,
            funding=0.0,
        )


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("audit")
    write_trail(directory)
    return directory


@pytest.fixture(scope="module")
def report(trail: Path) -> ComplianceReport:
    return build_compliance_report(trail, START, END)


@pytest.fixture
def tampered(trail: Path, tmp_path: Path) -> Path:
    work = tmp_path / "audit"
    shutil.copytree(trail, work)
    path = day_file(work, "2025-03-04")
    data = path.read_bytes()
    assert data.count(b'"price":150.0') == 2
    path.write_bytes(data.replace(b'"price":150.0', b'"price":151.0', 1))
    return work


def _csv(report: ComplianceReport) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(render_csv(report))))


# ---------------------------------------------------------------------------- figures


def test_report_when_period_has_three_days_counts_only_records_inside(
    report: ComplianceReport,
) -> None:
    assert report.records == 25
    assert report.damaged_lines == 0
    assert sum(report.events.values()) == 25
    assert report.events["risk.blocked"] == 5
    assert report.events["trade.decision"] == 4
    assert report.events["trade.executed"] == 4
    assert report.events["trade.closed"] == 3
    assert report.events["policy.changed"] == 3


def test_report_when_chain_intact_says_verified_with_counts(report: ComplianceReport) -> None:
    assert report.chain.ok
    assert report.chain.problem is None
    assert report.chain.records == 29
    assert report.chain.files == 5
    assert (report.chain.first_seq, report.chain.last_seq) == (1, 29)


def test_report_when_risk_blocks_logged_counts_by_reason_symbol_and_both(
    report: ComplianceReport,
) -> None:
    assert report.risk_blocks == 5
    assert dict(report.risk_blocks_by_reason) == {"max_leverage": 3, "daily_loss": 2}
    assert list(report.risk_blocks_by_reason) == ["max_leverage", "daily_loss"]
    assert dict(report.risk_blocks_by_symbol) == {"BTCUSDT": 2, "ETHUSDT": 2, "SOLUSDT": 1}
    assert dict(report.risk_blocks_by_reason_symbol) == {
        ("max_leverage", "BTCUSDT"): 2,
        ("max_leverage", "ETHUSDT"): 1,
        ("daily_loss", "ETHUSDT"): 1,
        ("daily_loss", "SOLUSDT"): 1,
    }


def test_report_when_trades_logged_counts_and_sums_pnl(report: ComplianceReport) -> None:
    t = report.trades
    assert (t.decisions, t.executions_filled, t.executions_rejected, t.executions_other) == (
        4,
        3,
        1,
        0,
    )
    assert (t.closed, t.liquidated) == (3, 1)
    total = report.pnl_total
    assert total.trades == 3
    assert total.realized_pnl == pytest.approx(-110.0)
    assert total.fees == pytest.approx(29.5)
    assert total.funding == pytest.approx(-1.0)
    assert total.net_pnl == pytest.approx(-140.5)
    btc, sol = report.pnl_by_symbol["BTCUSDT"], report.pnl_by_symbol["SOLUSDT"]
    assert (btc.trades, btc.realized_pnl, btc.fees, btc.funding) == (2, 190.0, 28.0, -1.0)
    assert btc.net_pnl == pytest.approx(161.0)
    assert sol.trades == 1
    assert sol.net_pnl == pytest.approx(-301.5)
    assert set(report.pnl_by_symbol) == {"BTCUSDT", "SOLUSDT"}
    (liquidation,) = report.liquidations
    assert (liquidation.symbol, liquidation.trade_id) == ("SOLUSDT", "T2")
    assert liquidation.net_pnl == pytest.approx(-301.5)


def test_report_when_emergency_stop_and_reset_lists_both(report: ComplianceReport) -> None:
    (stop,) = report.emergency_stops
    assert stop.ts == "2025-03-04T09:00:00.000000Z"
    assert (stop.actor, stop.reason, stop.severity) == ("ess", "drawdown 12% > 10%", "critical")
    assert stop.positions_closed == ("SOLUSDT", "BTCUSDT")
    assert stop.orders_canceled == 3
    (recovery,) = report.recoveries
    assert (recovery.ts, recovery.actor, recovery.reason, recovery.new_state) == (
        "2025-03-04T10:00:00.000000Z",
        "alice",
        "incident reviewed",
        "reducing",
    )


def test_report_when_policy_changed_by_two_actors_counts_per_actor(
    report: ComplianceReport,
) -> None:
    assert dict(report.policy_changes_by_actor) == {"ai-hfos": 2, "alice": 1}
    assert [(c.ts[:19], c.actor, c.reason, c.outcome) for c in report.policy_changes] == [
        ("2025-03-03T00:00:00", "alice", "raise leverage cap", "version_2"),
        ("2025-03-04T11:00:00", "ai-hfos", "health DEGRADED", "version_3"),
        ("2025-03-04T11:30:00", "ai-hfos", "health HEALTHY", "version_4"),
    ]


def test_report_when_models_promoted_and_demoted_tells_forced_from_gated(
    report: ComplianceReport,
) -> None:
    assert [(m.event, m.actor, m.target, m.reason, m.gate) for m in report.model_changes] == [
        ("promoted", "bob", "lgbm:v7", "walk-forward sharpe +0.3", "gated"),
        ("promoted", "alice", "lgbm:v8", "hotfix", "forced"),
        ("demoted", "ai-hfos", "lgbm:v8", "rollback", "demoted"),
    ]


def test_report_when_config_updated_lists_section_and_keys(report: ComplianceReport) -> None:
    (update,) = report.config_updates
    assert (update.actor, update.section, update.reason, update.keys) == (
        "alice",
        "risk",
        "tighten",
        ("max_leverage",),
    )


def test_report_when_period_is_empty_or_naive_raises(trail: Path) -> None:
    with pytest.raises(InvalidAuditQueryError, match="empty"):
        build_compliance_report(trail, END, START)
    with pytest.raises(InvalidAuditQueryError, match="offset"):
        build_compliance_report(trail, START.replace(tzinfo=None), END)


def test_report_when_net_pnl_missing_recomputes_it(tmp_path: Path) -> None:
    clock = ManualClock(ns("2025-03-03T01:00:00"))
    with AuditLogger(tmp_path, clock, retention_days=None) as audit:
        audit.append(
            "trade.closed",
            actor="sim",
            action="close_trade",
            target="BTCUSDT",
            outcome="closed",
            metadata={"realized_pnl": 10, "fees": "1.5", "funding": 0.25},
        )
    result = build_compliance_report(tmp_path, START, END)
    assert result.pnl_total.net_pnl == pytest.approx(8.75)


# ---------------------------------------------------------------------------- renderers


def test_markdown_when_rendered_has_a_row_per_reason_and_pnl(report: ComplianceReport) -> None:
    text = render_markdown(report)
    assert "| max_leverage | 3 |" in text
    assert "| daily_loss | 2 |" in text
    assert "| Reason | BTCUSDT | ETHUSDT | SOLUSDT | Total |" in text
    assert "| max_leverage | 2 | 1 | 0 | 3 |" in text
    assert "| ai-hfos | 2 |" in text
    assert "| Total | 3 | -110 | 29.5 | -1 | -140.5 |" in text
    assert "| 2025-03-04T09:00:00.000000Z | ess | drawdown 12% > 10% | critical | 2 (" in text
    assert "VERIFICATION FAILED" not in text
    assert "verified: 29 records in 5 files" in text


def test_markdown_when_value_has_pipe_or_tag_escapes_it(tmp_path: Path) -> None:
    clock = ManualClock(ns("2025-03-03T01:00:00"))
    with AuditLogger(tmp_path, clock, retention_days=None) as audit:
        audit.risk_blocked(actor="g", symbol="BTCUSDT", reason_code="a|b<i>")
    text = render_markdown(build_compliance_report(tmp_path, START, END))
    assert "| a\\|b\\<i> | 1 |" in text


def test_html_when_actor_or_reason_holds_script_escapes_it(tmp_path: Path) -> None:
    clock = ManualClock(ns("2025-03-03T01:00:00"))
    with AuditLogger(tmp_path, clock, retention_days=None) as audit:
        audit.policy_changed(
            actor="<script>alert(1)</script>", reason="<b>x</b>", old={}, new={}, version=2
        )
        audit.risk_blocked(actor="g", symbol="BTCUSDT", reason_code="<script>x</script>")
    page = render_html(build_compliance_report(tmp_path, START, END))
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page
    assert "banner fail" not in page


def test_html_when_rendered_has_every_section(report: ComplianceReport) -> None:
    page = render_html(report)
    for title in (
        "Emergency stops",
        "Risk blocks (5)",
        "Policy changes (3)",
        "Model promotions and demotions",
        "Trades",
        "Configuration updates",
    ):
        assert f"<h2>{title}</h2>" in page
    assert "<td>max_leverage</td>" in page
    assert 'class="banner ok"' in page


def test_csv_when_rendered_parses_with_documented_columns(report: ComplianceReport) -> None:
    text = render_csv(report)
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = _csv(report)
    index = {(r["section"], r["key"], r["subkey"]): r["value"] for r in rows}
    assert index[("chain", "ok", "")] == "true"
    assert index[("period", "records", "")] == "25"
    assert index[("risk_blocks_by_reason", "max_leverage", "")] == "3"
    assert index[("risk_blocks_by_symbol", "ETHUSDT", "")] == "2"
    assert index[("risk_blocks", "daily_loss", "SOLUSDT")] == "1"
    assert index[("policy_changes_by_actor", "ai-hfos", "")] == "2"
    assert index[("trades", "executions_rejected", "")] == "1"
    assert index[("pnl_total", "net_pnl", "")] == "-140.5"
    assert index[("pnl_by_symbol", "BTCUSDT", "net_pnl")] == "161"
    assert index[("emergency_stop", "1", "positions_closed")] == "SOLUSDT;BTCUSDT"
    assert index[("model_change", "2", "gate")] == "forced"
    assert index[("liquidation", "1", "trade_id")] == "T2"
    assert index[("config_update", "1", "keys")] == "max_leverage"
    assert all(set(r) == set(CSV_COLUMNS) for r in rows)


def test_csv_when_text_starts_like_a_formula_prefixes_a_quote(tmp_path: Path) -> None:
    clock = ManualClock(ns("2025-03-03T01:00:00"))
    with AuditLogger(tmp_path, clock, retention_days=None) as audit:
        audit.policy_changed(actor="=HYPERLINK(1)", reason="-x", old={}, new={}, version=2)
    rows = _csv(build_compliance_report(tmp_path, START, END))
    index = {(r["section"], r["key"], r["subkey"]): r["value"] for r in rows}
    assert index[("policy_changes_by_actor", "'=HYPERLINK(1)", "")] == "1"
    assert index[("policy_change", "1", "reason")] == "'-x"


# ---------------------------------------------------------------------------- broken chain


def test_report_when_chain_tampered_shows_failure_in_every_format(tampered: Path) -> None:
    broken = build_compliance_report(tampered, START, END)
    assert not broken.chain.ok
    assert broken.chain.problem is not None
    assert broken.chain.problem.file == "audit-2025-03-04.jsonl"
    assert broken.chain.problem.line == 1
    assert "hash mismatch" in broken.chain.problem.message
    markdown = render_markdown(broken)
    banner = markdown.splitlines()[2]
    assert banner.startswith("> **⚠ AUDIT CHAIN VERIFICATION FAILED")
    assert "audit-2025-03-04.jsonl:1" in banner
    page = render_html(broken)
    assert 'class="banner fail"' in page
    assert page.index("banner fail") < page.index("<h2>")
    rows = {(r["section"], r["key"]): r["value"] for r in _csv(broken)}
    assert rows[("chain", "ok")] == "false"
    assert rows[("chain", "problem_file")] == "audit-2025-03-04.jsonl"
    assert rows[("chain", "problem_line")] == "1"
