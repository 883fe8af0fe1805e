"""MetricsAggregator: publishing aggregated totals equals recording directly on a logger."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain.orders import OrderSide
from quantum_trader.observability.metrics import MetricsAggregator, MetricsLogger, MetricsRecorder
from quantum_trader.observability.metrics.catalogue import LATENCY_BUCKETS_SECONDS

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class FakeMonotonic:
    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def samples(metrics: MetricsLogger) -> Samples:
    """Every sample except the ``_created`` timestamps (wall clock, differ between loggers)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def backtest_events(recorder: MetricsRecorder, bars: int = 50) -> None:
    """A small backtest's worth of events, touching every helper."""
    recorder.set_audit_healthy(True)
    recorder.set_risk_mode("normal")
    recorder.set_trading_state("active")
    for bar in range(bars):
        recorder.record_bars()
        recorder.record_latency("bar", 1e-6 * (1 + bar % 7))
        recorder.record_model_prediction(
            "ensemble", ("up", "down", "flat")[bar % 3], 0.5 + bar / 200
        )
        recorder.set_equity(10_000.0 + bar)
        recorder.set_drawdown(bar / 1000)
        if bar % 10 == 0:
            recorder.record_trade("BTCUSDT", OrderSide.BUY if bar % 20 else OrderSide.SELL)
            recorder.record_order("BTCUSDT", "buy", "market", "filled")
            recorder.record_fill("BTCUSDT", "taker", fee_usdt=0.1 * bar + 0.05)
            recorder.record_audit_record("trade.executed")
            with recorder.time("order_submit"):
                pass
        if bar % 8 == 0:
            recorder.record_funding(0.3 if bar % 16 else -0.7)
            recorder.set_position("ETHUSDT", bar / 10)
        if bar % 13 == 0:
            recorder.record_risk_denial("max_leverage")
            recorder.record_order_rejection("insufficient_margin")
    recorder.set_realized_pnl(42.5)
    recorder.set_unrealized_pnl(-3.25)
    recorder.record_sizing_fallback("agent_missing")
    recorder.record_risk_mode_transition("normal", "safe")
    recorder.record_emergency_stop("daily_loss")
    recorder.set_emergency_stop_active(False)
    recorder.set_subsystem_health(critical=0, degraded=2)
    recorder.record_policy_change("system")
    recorder.record_audit_write_failure()
    recorder.set_backtest_speed(123_456.0)


def test_publish_when_same_events_equals_direct_recording() -> None:
    direct = MetricsLogger(monotonic=FakeMonotonic(0.004))
    backtest_events(direct)
    aggregator = MetricsAggregator(monotonic=FakeMonotonic(0.004))
    backtest_events(aggregator)
    published = MetricsLogger()
    aggregator.publish(published)
    assert samples(published) == samples(direct)


def test_publish_when_called_twice_counts_each_event_once() -> None:
    aggregator = MetricsAggregator()
    aggregator.record_trade("BTCUSDT", "buy")
    aggregator.record_latency("bar", 0.002)
    published = MetricsLogger()
    aggregator.publish(published)
    aggregator.publish(published)
    get = published.registry.get_sample_value
    assert get("quantum_trader_trades_total", {"symbol": "BTCUSDT", "side": "buy"}) == 1.0
    assert get("quantum_trader_latency_seconds_count", {"operation": "bar"}) == 1.0


def test_publish_when_periodic_equals_one_publish_at_the_end() -> None:
    direct = MetricsLogger(monotonic=FakeMonotonic(0.5))
    backtest_events(direct, bars=40)
    aggregator = MetricsAggregator(monotonic=FakeMonotonic(0.5))
    published = MetricsLogger()
    backtest_events(aggregator, bars=40)
    aggregator.publish(published)
    assert samples(published) == samples(direct)
    backtest_events(aggregator, bars=40)
    backtest_events(direct, bars=40)
    aggregator.publish(published)
    assert samples(published) == pytest.approx(samples(direct))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=0.0, max_value=20.0, allow_nan=False),
            st.sampled_from(LATENCY_BUCKETS_SECONDS),  # exactly on a bound: the lower bucket
        ),
        max_size=60,
    )
)
def test_publish_when_any_latencies_buckets_like_prometheus(latencies: list[float]) -> None:
    direct = MetricsLogger()
    aggregator = MetricsAggregator()
    for seconds in latencies:
        direct.record_latency("risk_check", seconds)
        aggregator.record_latency("risk_check", seconds)
    published = MetricsLogger()
    aggregator.publish(published)
    assert samples(published) == samples(direct)


def test_aggregator_when_nan_observed_matches_prometheus() -> None:
    direct, aggregator, published = MetricsLogger(), MetricsAggregator(), MetricsLogger()
    for recorder in (direct, aggregator):
        recorder.record_latency("bar", math.nan)
        recorder.record_latency("bar", 0.5)
    aggregator.publish(published)
    expected, actual = samples(direct), samples(published)
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        assert actual[key] == value or (math.isnan(value) and math.isnan(actual[key])), key


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.record_trade("BTC-USDT", "buy"),
        lambda a: a.record_risk_denial("Leverage too high"),
        lambda a: a.set_risk_mode("turbo"),
        lambda a: a.set_position("btcusdt", 1.0),
        lambda a: a.record_latency("Bar Loop", 1.0),
        lambda a: a.time("Bar Loop"),
        lambda a: a.record_fee(-1.0),
        lambda a: a.increment("bars_processed_total", -1.0),
        lambda a: a.increment("equity_usdt"),
        lambda a: a.set_value("bars_processed_total", 1.0),
        lambda a: a.observe("equity_usdt", 1.0),
    ],
)
def test_aggregator_when_input_invalid_raises_like_the_logger(
    call: Callable[[MetricsRecorder], object],
) -> None:
    with pytest.raises(ValueError):
        call(MetricsAggregator())
    with pytest.raises(ValueError):
        call(MetricsLogger())


def test_aggregator_when_metric_unknown_raises_key_error() -> None:
    with pytest.raises(KeyError):
        MetricsAggregator().increment("nonexistent_total")


def test_aggregator_when_nothing_recorded_publishes_nothing() -> None:
    published = MetricsLogger()
    before = samples(published)
    MetricsAggregator().publish(published)
    assert samples(published) == before
