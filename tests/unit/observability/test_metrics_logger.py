"""MetricsLogger: each helper updates the right series, bad labels raise, the timer, exposition."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from quantum_trader.domain.orders import OrderSide, OrderType
from quantum_trader.domain.trading import Liquidity
from quantum_trader.observability.audit.records import AuditEventType
from quantum_trader.observability.metrics import CATALOGUE, MetricsLogger, MetricsTimer


class FakeMonotonic:
    """A monotonic clock that moves only when read: ``step`` seconds per call."""

    def __init__(self, start: float = 100.0, step: float = 0.25) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value


@pytest.fixture
def metrics() -> MetricsLogger:
    return MetricsLogger()


def value(metrics: MetricsLogger, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(f"quantum_trader_{name}", labels)


Call = Callable[[MetricsLogger], None]

HELPER_CASES: list[tuple[str, Call, str, dict[str, str], float]] = [
    (
        "trade",
        lambda m: m.record_trade("BTCUSDT", OrderSide.BUY),
        "trades_total",
        {"symbol": "BTCUSDT", "side": "buy"},
        1.0,
    ),
    (
        "order",
        lambda m: m.record_order("ETHUSDT", "sell", OrderType.LIMIT, "canceled"),
        "orders_total",
        {"symbol": "ETHUSDT", "side": "sell", "order_type": "limit", "outcome": "canceled"},
        1.0,
    ),
    (
        "rejection",
        lambda m: m.record_order_rejection("insufficient_margin"),
        "order_rejections_total",
        {"reason": "insufficient_margin"},
        1.0,
    ),
    (
        "fill",
        lambda m: m.record_fill("BTCUSDT", Liquidity.MAKER, fee_usdt=0.42),
        "fills_total",
        {"symbol": "BTCUSDT", "liquidity": "maker"},
        1.0,
    ),
    ("fill fee", lambda m: m.record_fill("BTCUSDT", "taker", 0.42), "fees_usdt_total", {}, 0.42),
    ("fee", lambda m: m.record_fee(1.5), "fees_usdt_total", {}, 1.5),
    ("funding in", lambda m: m.record_funding(2.5), "funding_received_usdt_total", {}, 2.5),
    ("funding out", lambda m: m.record_funding(-1.25), "funding_paid_usdt_total", {}, 1.25),
    ("equity", lambda m: m.set_equity(10_250.5), "equity_usdt", {}, 10_250.5),
    ("drawdown", lambda m: m.set_drawdown(0.125), "drawdown_ratio", {}, 0.125),
    ("realized", lambda m: m.set_realized_pnl(-12.5), "realized_pnl_usdt", {}, -12.5),
    ("unrealized", lambda m: m.set_unrealized_pnl(3.0), "unrealized_pnl_usdt", {}, 3.0),
    (
        "position",
        lambda m: m.set_position("SOLUSDT", -4.0),
        "position_quantity",
        {"symbol": "SOLUSDT"},
        -4.0,
    ),
    (
        "latency",
        lambda m: m.record_latency("risk_check", 3e-6),
        "latency_seconds_bucket",
        {"operation": "risk_check", "le": "5e-06"},
        1.0,
    ),
    (
        "latency sum",
        lambda m: m.record_latency("order_submit", 0.2),
        "latency_seconds_sum",
        {"operation": "order_submit"},
        0.2,
    ),
    (
        "prediction",
        lambda m: m.record_model_prediction("ensemble", "up", 0.72),
        "model_predictions_total",
        {"model": "ensemble", "direction": "up"},
        1.0,
    ),
    (
        "confidence",
        lambda m: m.record_model_prediction("ensemble", "down", 0.72),
        "model_confidence_bucket",
        {"le": "0.75"},
        1.0,
    ),
    (
        "sizing fallback",
        lambda m: m.record_sizing_fallback("agent_timeout"),
        "sizing_fallbacks_total",
        {"reason": "agent_timeout"},
        1.0,
    ),
    (
        "risk denial",
        lambda m: m.record_risk_denial("max_leverage"),
        "risk_denials_total",
        {"reason": "max_leverage"},
        1.0,
    ),
    (
        "emergency stop",
        lambda m: m.record_emergency_stop("daily_loss"),
        "emergency_stops_total",
        {"reason": "daily_loss"},
        1.0,
    ),
    ("stop latched", lambda m: m.record_emergency_stop("manual"), "emergency_stop_active", {}, 1.0),
    (
        "stop reset",
        lambda m: m.set_emergency_stop_active(False),
        "emergency_stop_active",
        {},
        0.0,
    ),
    ("risk mode", lambda m: m.set_risk_mode("safe"), "risk_mode", {"mode": "safe"}, 1.0),
    (
        "transition",
        lambda m: m.record_risk_mode_transition("normal", "critical"),
        "risk_mode_transitions_total",
        {"from_mode": "normal", "to_mode": "critical"},
        1.0,
    ),
    (
        "trading state",
        lambda m: m.set_trading_state("reducing"),
        "trading_state",
        {"state": "reducing"},
        1.0,
    ),
    (
        "critical",
        lambda m: m.set_subsystem_health(critical=2, degraded=1),
        "subsystems_critical",
        {},
        2.0,
    ),
    (
        "degraded",
        lambda m: m.set_subsystem_health(critical=2, degraded=1),
        "subsystems_degraded",
        {},
        1.0,
    ),
    (
        "policy change",
        lambda m: m.record_policy_change("ai_hfos"),
        "policy_changes_total",
        {"actor_kind": "ai_hfos"},
        1.0,
    ),
    (
        "audit record",
        lambda m: m.record_audit_record(AuditEventType.RISK_BLOCKED),
        "audit_records_total",
        {"event_type": "risk.blocked"},
        1.0,
    ),
    (
        "audit failure",
        lambda m: m.record_audit_write_failure(),
        "audit_write_failures_total",
        {},
        1.0,
    ),
    ("audit healthy", lambda m: m.set_audit_healthy(True), "audit_healthy", {}, 1.0),
    ("bars", lambda m: m.record_bars(500), "bars_processed_total", {}, 500.0),
    ("speed", lambda m: m.set_backtest_speed(1.5e6), "backtest_bars_per_second", {}, 1.5e6),
]


@pytest.mark.parametrize(
    ("call", "name", "labels", "expected"),
    [case[1:] for case in HELPER_CASES],
    ids=[case[0] for case in HELPER_CASES],
)
def test_helper_when_called_updates_its_series(
    metrics: MetricsLogger, call: Call, name: str, labels: dict[str, str], expected: float
) -> None:
    call(metrics)
    assert value(metrics, name, **labels) == pytest.approx(expected)


def test_helpers_when_every_catalogue_metric_recorded_each_has_a_helper(
    metrics: MetricsLogger,
) -> None:
    for _, call, *_rest in HELPER_CASES:
        call(metrics)
    touched = {family.name for family in metrics.registry.collect() if family.samples}
    for spec in CATALOGUE:
        family = spec.full_name.removesuffix("_total")
        assert family in touched, spec.name


def test_record_trade_when_called_twice_counts_two(metrics: MetricsLogger) -> None:
    metrics.record_trade("BTCUSDT", "buy")
    metrics.record_trade("BTCUSDT", OrderSide.BUY)  # the enum hits the same cached child
    assert value(metrics, "trades_total", symbol="BTCUSDT", side="buy") == 2.0


def test_set_risk_mode_when_switched_marks_only_the_active_mode(metrics: MetricsLogger) -> None:
    metrics.set_risk_mode("aggressive")
    metrics.record_risk_mode_transition("aggressive", "normal")
    modes = {mode: value(metrics, "risk_mode", mode=mode) for mode in ("safe", "normal")}
    assert modes == {"safe": 0.0, "normal": 1.0}
    assert value(metrics, "risk_mode", mode="aggressive") == 0.0
    assert value(metrics, "risk_mode", mode="critical") == 0.0


def test_record_audit_write_failure_when_called_marks_audit_unhealthy(
    metrics: MetricsLogger,
) -> None:
    metrics.set_audit_healthy(True)
    metrics.record_audit_write_failure()
    assert value(metrics, "audit_healthy") == 0.0


def test_record_funding_when_zero_changes_nothing(metrics: MetricsLogger) -> None:
    metrics.record_funding(0.0)
    assert value(metrics, "funding_paid_usdt_total") == 0.0
    assert value(metrics, "funding_received_usdt_total") == 0.0


BAD_LABEL_CALLS: list[Call] = [
    lambda m: m.record_trade("btc/usdt", "buy"),
    lambda m: m.record_trade("BTCUSDT", "long"),
    lambda m: m.record_order("BTCUSDT", "buy", "iceberg", "filled"),
    lambda m: m.record_order("BTCUSDT", "buy", "market", "partially_filled"),
    lambda m: m.record_order_rejection("Margin is insufficient (need 12.3 USDT)"),
    lambda m: m.record_fill("BTCUSDT", "both"),
    lambda m: m.set_position("eth", 1.0),
    lambda m: m.record_latency("Risk Check", 0.1),
    lambda m: m.record_model_prediction("ensemble", "sideways", 0.5),
    lambda m: m.record_risk_denial("leverage 25x > 20x"),
    lambda m: m.record_emergency_stop("drawdown of 12%"),
    lambda m: m.set_risk_mode("yolo"),
    lambda m: m.record_risk_mode_transition("normal", "panic"),
    lambda m: m.set_trading_state("paused"),
    lambda m: m.record_policy_change("bob"),
    lambda m: m.record_audit_record("trade.exploded"),
    lambda m: m.record_sizing_fallback("x" * 65),
]


@pytest.mark.parametrize("call", BAD_LABEL_CALLS)
def test_helper_when_label_value_unbounded_raises(metrics: MetricsLogger, call: Call) -> None:
    with pytest.raises(ValueError):
        call(metrics)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.record_fee(-0.1),
        lambda m: m.record_fill("BTCUSDT", "maker", fee_usdt=-0.1),
        lambda m: m.record_model_prediction("ensemble", "up", 1.5),
        lambda m: m.record_model_prediction("ensemble", "up", float("nan")),
        lambda m: m.set_subsystem_health(critical=-1, degraded=0),
        lambda m: m.record_bars(-1),
    ],
)
def test_helper_when_value_out_of_range_raises(metrics: MetricsLogger, call: Call) -> None:
    with pytest.raises(ValueError):
        call(metrics)


def test_bad_label_when_rejected_leaves_no_series(metrics: MetricsLogger) -> None:
    with pytest.raises(ValueError):
        metrics.record_risk_denial("Free text reason")
    assert value(metrics, "risk_denials_total", reason="Free text reason") is None
    assert b"Free text" not in metrics.exposition()


def test_primitives_when_metric_used_as_another_kind_raise(metrics: MetricsLogger) -> None:
    with pytest.raises(ValueError, match="is a gauge"):
        metrics.increment("equity_usdt")
    with pytest.raises(ValueError, match="is a counter"):
        metrics.set_value("trades_total", 1.0, ("BTCUSDT", "buy"))
    with pytest.raises(ValueError, match="is a counter"):
        metrics.observe("fees_usdt_total", 1.0)
    with pytest.raises(KeyError, match="no metric"):
        metrics.increment("nonexistent_total")


def test_merge_histogram_when_bucket_count_wrong_raises(metrics: MetricsLogger) -> None:
    with pytest.raises(ValueError, match="buckets"):
        metrics.merge_histogram("model_confidence", (), [1, 2], 1.0)


def test_metrics_timer_when_fake_clock_advances_records_elapsed() -> None:
    clock = FakeMonotonic(start=50.0, step=0.25)
    timed = MetricsLogger(monotonic=clock)
    with timed.time("order_submit") as timer:
        pass
    assert timer.elapsed_seconds == 0.25
    assert value(timed, "latency_seconds_sum", operation="order_submit") == 0.25
    assert value(timed, "latency_seconds_count", operation="order_submit") == 1.0
    assert value(timed, "latency_seconds_bucket", operation="order_submit", le="0.1") == 0.0
    assert value(timed, "latency_seconds_bucket", operation="order_submit", le="0.25") == 1.0


def test_metrics_timer_when_block_raises_still_records() -> None:
    timed = MetricsLogger(monotonic=FakeMonotonic(step=2.0))
    with pytest.raises(RuntimeError), timed.time("exchange_call"):
        raise RuntimeError("boom")
    assert value(timed, "latency_seconds_sum", operation="exchange_call") == 2.0


def test_metrics_timer_when_operation_is_free_text_raises_at_creation(
    metrics: MetricsLogger,
) -> None:
    with pytest.raises(ValueError, match="free text"):
        metrics.time("GET /fapi/v1/order")


def test_metrics_timer_when_used_alone_calls_record_with_elapsed() -> None:
    seen: list[float] = []
    with MetricsTimer(seen.append, FakeMonotonic(start=0.0, step=1e-6)):
        pass
    assert seen == [1e-6]


def test_loggers_when_created_side_by_side_own_separate_registries() -> None:
    first, second = MetricsLogger(), MetricsLogger()
    first.record_bars(3)
    assert value(first, "bars_processed_total") == 3.0
    assert value(second, "bars_processed_total") == 0.0


def test_logger_when_given_a_registry_registers_on_it() -> None:
    registry = CollectorRegistry()
    metrics = MetricsLogger(registry)
    metrics.set_equity(1.0)
    assert registry.get_sample_value("quantum_trader_equity_usdt") == 1.0
    with pytest.raises(ValueError, match="Duplicated"):
        MetricsLogger(registry)


def test_exposition_when_parsed_has_every_catalogue_family_with_help(
    metrics: MetricsLogger,
) -> None:
    metrics.record_trade("BTCUSDT", "sell")
    families = {
        family.name: family
        for family in text_string_to_metric_families(metrics.exposition().decode())
    }
    for spec in CATALOGUE:
        family = families[spec.full_name.removesuffix("_total")]
        assert family.type == spec.kind
        assert family.documentation == spec.meaning
    trades = families["quantum_trader_trades"].samples
    assert [(s.name, s.labels, s.value) for s in trades] == [
        ("quantum_trader_trades_total", {"symbol": "BTCUSDT", "side": "sell"}, 1.0)
    ]
