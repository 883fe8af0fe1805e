"""Prometheus metrics: the catalogue, the MetricsLogger and the backtest MetricsAggregator.

``catalogue`` defines every metric as data; ``MetricsLogger`` exports them with
``prometheus_client`` (one registry per logger, no globals); ``MetricsAggregator`` totals them
in plain Python and publishes into a logger at the end of a backtest. Both share the helpers of
``MetricsRecorder``. ``python -m quantum_trader.observability.metrics`` regenerates
``docs/metrics.md``.
"""

from quantum_trader.observability.metrics.aggregator import MetricsAggregator
from quantum_trader.observability.metrics.catalogue import (
    CATALOGUE,
    CATALOGUE_BY_NAME,
    NAMESPACE,
    LabelKind,
    LabelSpec,
    MetricKind,
    MetricSpec,
    render_catalogue_markdown,
)
from quantum_trader.observability.metrics.logger import MetricsLogger
from quantum_trader.observability.metrics.recorder import MetricsRecorder, MetricsTimer

__all__ = [
    "CATALOGUE",
    "CATALOGUE_BY_NAME",
    "NAMESPACE",
    "LabelKind",
    "LabelSpec",
    "MetricKind",
    "MetricSpec",
    "MetricsAggregator",
    "MetricsLogger",
    "MetricsRecorder",
    "MetricsTimer",
    "render_catalogue_markdown",
]
