"""MetricsAggregator: the catalogue's metrics as plain Python totals, for backtests.

A backtest records millions of events; the aggregator keeps them in dicts (counter totals, last
gauge values, histogram bucket counts and sums) and makes no Prometheus call per event. At the
end, ``publish`` pushes the totals into a MetricsLogger, which then holds exactly what recording
the same events on it directly would have produced. Label values are checked the first time a
tuple is seen, as on the logger, so a bad label fails where it is recorded.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable

from quantum_trader.observability.metrics.catalogue import (
    CATALOGUE,
    MetricKind,
    MetricSpec,
    kind_error,
)
from quantum_trader.observability.metrics.logger import MetricsLogger
from quantum_trader.observability.metrics.recorder import LabelValues, MetricsRecorder


class _HistogramTotals:
    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total = 0.0


class MetricsAggregator(MetricsRecorder):
    """Aggregate metrics in memory and publish them into a MetricsLogger when asked."""

    def __init__(self, *, monotonic: Callable[[], float] = time.perf_counter) -> None:
        """Start with no series; ``monotonic`` drives ``time``."""
        super().__init__(monotonic=monotonic)
        self._specs: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOGUE}
        self._counters: dict[str, dict[LabelValues, float]] = {}
        self._gauges: dict[str, dict[LabelValues, float]] = {}
        self._histograms: dict[str, dict[LabelValues, _HistogramTotals]] = {}
        self._bounds: dict[str, tuple[float, ...]] = {}
        for spec in CATALOGUE:
            if spec.kind is MetricKind.COUNTER:
                self._counters[spec.name] = {}
            elif spec.kind is MetricKind.GAUGE:
                self._gauges[spec.name] = {}
            else:
                self._histograms[spec.name] = {}
                self._bounds[spec.name] = (*spec.buckets, math.inf)

    def increment(self, name: str, amount: float = 1.0, labels: LabelValues = ()) -> None:
        """Add ``amount`` (>= 0) to counter ``name``; ValueError if negative or a label is bad."""
        series = self._counters.get(name)
        if series is None:
            raise kind_error(name, MetricKind.COUNTER)
        if amount < 0.0:
            raise ValueError(f"counter {name} can only grow, got {amount}")
        total = series.get(labels)
        if total is None:
            self._specs[name].check_labels(labels)
            total = 0.0
        series[labels] = total + amount

    def set_value(self, name: str, value: float, labels: LabelValues = ()) -> None:
        """Set gauge ``name`` to ``value``; ValueError for a bad label."""
        series = self._gauges.get(name)
        if series is None:
            raise kind_error(name, MetricKind.GAUGE)
        if labels not in series:
            self._specs[name].check_labels(labels)
        series[labels] = value

    def observe(self, name: str, value: float, labels: LabelValues = ()) -> None:
        """Add one observation to histogram ``name``; ValueError for a bad label."""
        series = self._histograms.get(name)
        if series is None:
            raise kind_error(name, MetricKind.HISTOGRAM)
        totals = series.get(labels)
        bounds = self._bounds[name]
        if totals is None:
            self._specs[name].check_labels(labels)
            totals = series[labels] = _HistogramTotals(len(bounds))
        totals.total += value
        if value == value:  # like prometheus_client, a NaN joins the sum but no bucket
            totals.counts[bisect_left(bounds, value)] += 1

    def publish(self, metrics: MetricsLogger) -> None:
        """Add everything aggregated so far to ``metrics``, then start again from empty.

        Counters and histograms are added, gauges set to their last value; clearing afterwards
        means publishing periodically (or twice) never counts an event twice.
        """
        for name, counter_series in self._counters.items():
            for labels, total in counter_series.items():
                metrics.increment(name, total, labels)
            counter_series.clear()
        for name, gauge_series in self._gauges.items():
            for labels, value in gauge_series.items():
                metrics.set_value(name, value, labels)
            gauge_series.clear()
        for name, histogram_series in self._histograms.items():
            for labels, totals in histogram_series.items():
                metrics.merge_histogram(name, labels, totals.counts, totals.total)
            histogram_series.clear()
