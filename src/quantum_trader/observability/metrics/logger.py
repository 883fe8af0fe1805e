"""MetricsLogger: the catalogue's metrics on a ``prometheus_client`` registry of its own.

No global registry and no singleton: each logger owns the ``CollectorRegistry`` it is given (or
creates one), so any number can live side by side. Label children are cached per label-value
tuple, so a hot helper costs two dict lookups and the child's locked add; label values are
checked only the first time a tuple is seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from quantum_trader.observability.metrics.catalogue import (
    CATALOGUE,
    NAMESPACE,
    MetricKind,
    MetricSpec,
    kind_error,
)
from quantum_trader.observability.metrics.recorder import LabelValues, MetricsRecorder

_M = TypeVar("_M", bound=MetricWrapperBase)


class _Family(Generic[_M]):
    __slots__ = ("children", "metric", "spec")

    def __init__(self, spec: MetricSpec, metric: _M) -> None:
        self.spec = spec
        self.metric = metric
        self.children: dict[LabelValues, _M] = {}

    def child(self, labels: LabelValues) -> _M:
        child = self.children.get(labels)
        if child is None:
            checked = self.spec.check_labels(labels)
            child = self.metric.labels(*checked) if checked else self.metric
            self.children[labels] = child
        return child


class MetricsLogger(MetricsRecorder):
    """Record the catalogue's metrics in Prometheus form; hand one object to every component."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Register every catalogue metric on ``registry`` (a new one when omitted)."""
        super().__init__(monotonic=monotonic)
        self.registry = registry if registry is not None else CollectorRegistry()
        self._counters: dict[str, _Family[Counter]] = {}
        self._gauges: dict[str, _Family[Gauge]] = {}
        self._histograms: dict[str, _Family[Histogram]] = {}
        for spec in CATALOGUE:
            name, meaning, labels = spec.name, spec.meaning, spec.label_names
            registry = self.registry
            if spec.kind is MetricKind.COUNTER:
                counter = Counter(name, meaning, labels, namespace=NAMESPACE, registry=registry)
                self._counters[name] = _Family(spec, counter)
            elif spec.kind is MetricKind.GAUGE:
                gauge = Gauge(name, meaning, labels, namespace=NAMESPACE, registry=registry)
                self._gauges[name] = _Family(spec, gauge)
            else:
                histogram = Histogram(
                    name,
                    meaning,
                    labels,
                    namespace=NAMESPACE,
                    registry=registry,
                    buckets=spec.buckets,
                )
                self._histograms[name] = _Family(spec, histogram)

    def increment(self, name: str, amount: float = 1.0, labels: LabelValues = ()) -> None:
        """Add ``amount`` (>= 0) to counter ``name``; ValueError if negative or a label is bad."""
        family = self._counters.get(name)
        if family is None:
            raise kind_error(name, MetricKind.COUNTER)
        family.child(labels).inc(amount)

    def set_value(self, name: str, value: float, labels: LabelValues = ()) -> None:
        """Set gauge ``name`` to ``value``; ValueError for a bad label."""
        family = self._gauges.get(name)
        if family is None:
            raise kind_error(name, MetricKind.GAUGE)
        family.child(labels).set(value)

    def observe(self, name: str, value: float, labels: LabelValues = ()) -> None:
        """Add one observation to histogram ``name``; ValueError for a bad label."""
        family = self._histograms.get(name)
        if family is None:
            raise kind_error(name, MetricKind.HISTOGRAM)
        family.child(labels).observe(value)

    def merge_histogram(
        self, name: str, labels: LabelValues, bucket_counts: Sequence[int], total: float
    ) -> None:
        """Add pre-bucketed observations to histogram ``name`` at once.

        Args:
            name: A histogram of the catalogue.
            labels: Its label values, in order.
            bucket_counts: Observations per bucket (not cumulative), one per upper bound of the
                spec plus one for +Inf.
            total: The sum of those observations.
        """
        family = self._histograms.get(name)
        if family is None:
            raise kind_error(name, MetricKind.HISTOGRAM)
        if len(bucket_counts) != len(family.spec.buckets) + 1:
            raise ValueError(
                f"{name} has {len(family.spec.buckets) + 1} buckets, got {len(bucket_counts)}"
            )
        child = family.child(labels)
        # prometheus_client has no public bulk observe; its Histogram keeps one value per
        # bucket (not cumulative) in _buckets and the sum in _sum. The aggregator tests pin this,
        # and a missing attribute fails here loudly rather than publishing wrong numbers.
        buckets = getattr(child, "_buckets", None)
        sum_value = getattr(child, "_sum", None)
        if buckets is None or sum_value is None or len(buckets) != len(bucket_counts):
            raise RuntimeError("this prometheus_client's Histogram cannot be merged into")
        for bucket, count in zip(buckets, bucket_counts, strict=True):
            if count:
                bucket.inc(count)
        sum_value.inc(total)

    def exposition(self) -> bytes:
        """Return every metric in the Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)
