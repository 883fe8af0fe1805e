"""The metric catalogue: naming rules, bounded label values, the generated docs page."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import pytest

from quantum_trader.domain.orders import OrderSide
from quantum_trader.observability.audit.records import AuditEventType
from quantum_trader.observability.metrics import CATALOGUE, CATALOGUE_BY_NAME, MetricKind
from quantum_trader.observability.metrics.__main__ import main as write_docs
from quantum_trader.observability.metrics.catalogue import (
    CODE_MAX_LENGTH,
    REASON,
    SIDE,
    SYMBOL,
    MetricSpec,
    check_catalogue,
    render_catalogue_markdown,
)

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO / "docs" / "metrics.md"


class DenialReason(StrEnum):
    MAX_LEVERAGE = "max_leverage"
    ODD_VALUE = "Odd Value"  # an enum is a closed set, so even this is bounded


def test_catalogue_when_checked_follows_prometheus_naming() -> None:
    check_catalogue(CATALOGUE)
    for spec in CATALOGUE:
        assert spec.full_name.startswith("quantum_trader_")
        assert spec.meaning.endswith(".")
        if spec.kind is MetricKind.HISTOGRAM:
            assert not spec.name.endswith(("_bucket", "_sum", "_count"))


def test_catalogue_when_issue_metrics_listed_defines_each() -> None:
    required = {
        "trades_total": ("symbol", "side"),
        "orders_total": ("symbol", "side", "order_type", "outcome"),
        "order_rejections_total": ("reason",),
        "fills_total": ("symbol", "liquidity"),
        "fees_usdt_total": (),
        "funding_paid_usdt_total": (),
        "funding_received_usdt_total": (),
        "realized_pnl_usdt": (),
        "equity_usdt": (),
        "drawdown_ratio": (),
        "position_quantity": ("symbol",),
        "latency_seconds": ("operation",),
        "model_predictions_total": ("model", "direction"),
        "model_confidence": (),
        "risk_denials_total": ("reason",),
        "emergency_stops_total": ("reason",),
        "risk_mode": ("mode",),
        "risk_mode_transitions_total": ("from_mode", "to_mode"),
        "subsystems_critical": (),
        "subsystems_degraded": (),
        "audit_records_total": ("event_type",),
        "audit_write_failures_total": (),
        "audit_healthy": (),
        "bars_processed_total": (),
        "backtest_bars_per_second": (),
        "policy_changes_total": ("actor_kind",),
    }
    for name, labels in required.items():
        assert CATALOGUE_BY_NAME[name].label_names == labels, name


def test_latency_buckets_when_listed_span_one_microsecond_to_ten_seconds() -> None:
    buckets = CATALOGUE_BY_NAME["latency_seconds"].buckets
    assert buckets[0] == 1e-6
    assert buckets[-1] == 10.0
    assert CATALOGUE_BY_NAME["model_confidence"].buckets[-1] == 1.0


@pytest.mark.parametrize(
    "spec",
    [
        MetricSpec("trades", MetricKind.COUNTER, "Counter without _total."),
        MetricSpec("equity_total", MetricKind.GAUGE, "Gauge with _total."),
        MetricSpec("latency_seconds", MetricKind.HISTOGRAM, "Histogram without buckets."),
        MetricSpec("Equity", MetricKind.GAUGE, "Not snake_case."),
        MetricSpec("x_seconds", MetricKind.HISTOGRAM, "Unsorted.", buckets=(2.0, 1.0)),
        MetricSpec("x_total", MetricKind.COUNTER, "Repeated label.", (REASON, REASON)),
    ],
)
def test_check_catalogue_when_spec_breaks_a_rule_raises(spec: MetricSpec) -> None:
    with pytest.raises(ValueError):
        check_catalogue([spec])


def test_check_catalogue_when_name_repeats_raises() -> None:
    with pytest.raises(ValueError, match="twice"):
        check_catalogue([CATALOGUE[0], CATALOGUE[0]])


@pytest.mark.parametrize("symbol", ["BTCUSDT", "1000PEPEUSDT", "ETH2"])
def test_symbol_label_when_exchange_symbol_accepts(symbol: str) -> None:
    assert SYMBOL.check(symbol) == symbol


@pytest.mark.parametrize(
    "symbol", ["btcusdt", "BTC/USDT", "BTC-USDT", "B", "X" * 21, "", "BTCUSDT "]
)
def test_symbol_label_when_not_exchange_symbol_raises(symbol: str) -> None:
    with pytest.raises(ValueError, match="exchange symbol"):
        SYMBOL.check(symbol)


@pytest.mark.parametrize("reason", ["max_leverage", "stale_price", "a", "x" * CODE_MAX_LENGTH])
def test_reason_label_when_code_accepts(reason: str) -> None:
    assert REASON.check(reason) == reason


@pytest.mark.parametrize(
    "reason",
    [
        "Insufficient margin: need 120.5 USDT",
        "max leverage",
        "Max_leverage",
        "_private",
        "1st",
        "",
        "x" * (CODE_MAX_LENGTH + 1),
    ],
)
def test_reason_label_when_free_text_raises(reason: str) -> None:
    with pytest.raises(ValueError, match="free text"):
        REASON.check(reason)


def test_reason_label_when_strenum_member_accepts_its_value() -> None:
    assert REASON.check(DenialReason.MAX_LEVERAGE) == "max_leverage"
    assert REASON.check(DenialReason.ODD_VALUE) == "Odd Value"
    assert REASON.check(AuditEventType.RISK_BLOCKED) == "risk.blocked"


@pytest.mark.parametrize("value", [3, None, b"buy", 1.5])
def test_label_when_not_a_string_raises(value: object) -> None:
    with pytest.raises(ValueError, match="needs a string"):
        REASON.check(value)


def test_choice_label_when_enum_or_listed_string_accepts_else_raises() -> None:
    assert SIDE.check(OrderSide.SELL) == "sell"
    assert SIDE.check("buy") == "buy"
    with pytest.raises(ValueError, match="one of"):
        SIDE.check("long")
    with pytest.raises(ValueError, match="one of"):
        SIDE.check(DenialReason.MAX_LEVERAGE)


def test_check_labels_when_count_differs_raises() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        CATALOGUE_BY_NAME["trades_total"].check_labels(("BTCUSDT",))


def test_docs_when_committed_equal_generated_catalogue() -> None:
    expected = render_catalogue_markdown()
    actual = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    assert actual == expected, (
        "docs/metrics.md is out of date with the catalogue; regenerate it from the repository "
        "root with: python -m quantum_trader.observability.metrics docs/metrics.md"
    )


def test_docs_when_rendered_list_every_metric_with_prefix() -> None:
    text = render_catalogue_markdown()
    for spec in CATALOGUE:
        assert f"| `quantum_trader_{spec.name}` | {spec.kind} |" in text


def test_docs_entry_point_when_given_a_path_writes_the_page(tmp_path: Path) -> None:
    target = tmp_path / "docs" / "metrics.md"
    assert write_docs([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render_catalogue_markdown()


def test_docs_entry_point_when_dash_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert write_docs(["-"]) == 0
    assert capsys.readouterr().out == render_catalogue_markdown()
