"""The metrics HTTP server of a run's supervisor: /metrics and /health over a real socket.

No sleeping: ``start_metrics_server`` returns once the socket is listening, so a request made
right after it is queued by the kernel and answered by the server thread.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quantum_trader.observability.metrics import CATALOGUE, MetricsLogger
from quantum_trader.observability.metrics.http import (
    MetricsServer,
    serve_until_interrupted,
    start_metrics_server,
)

TIMEOUT_SECS = 10


def fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECS) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


@pytest.fixture
def metrics() -> MetricsLogger:
    return MetricsLogger()


@pytest.fixture
def running(metrics: MetricsLogger) -> Iterator[MetricsServer]:
    server = start_metrics_server(metrics, "127.0.0.1", 0)
    yield server
    server.shutdown()


def test_metrics_server_when_port_zero_binds_a_free_port(running: MetricsServer) -> None:
    assert running.port > 0
    assert running.url == f"http://127.0.0.1:{running.port}"


def test_metrics_endpoint_when_scraped_returns_recorded_values(
    metrics: MetricsLogger, running: MetricsServer
) -> None:
    metrics.record_trade("BTCUSDT", "buy")
    metrics.record_trade("BTCUSDT", "buy")
    metrics.set_equity(10_123.5)
    metrics.record_latency("risk_check", 2e-6)
    status, content_type, body = fetch(f"{running.url}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    for spec in CATALOGUE:
        assert spec.full_name.removesuffix("_total") in families, spec.name
    trades = [s for s in families["quantum_trader_trades"].samples if s.name.endswith("_total")]
    assert [(s.labels, s.value) for s in trades] == [({"symbol": "BTCUSDT", "side": "buy"}, 2.0)]
    (equity,) = families["quantum_trader_equity_usdt"].samples
    assert equity.value == 10_123.5
    latency = {
        s.labels["le"]: s.value
        for s in families["quantum_trader_latency_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert latency["1e-06"] == 0.0
    assert latency["2.5e-06"] == 1.0


def test_metrics_endpoint_when_scraped_twice_sees_new_values(
    metrics: MetricsLogger, running: MetricsServer
) -> None:
    fetch(f"{running.url}/metrics")
    metrics.record_risk_denial("max_leverage")
    _, _, body = fetch(f"{running.url}/metrics")
    assert b'quantum_trader_risk_denials_total{reason="max_leverage"} 1.0' in body


def test_health_endpoint_when_requested_returns_ok_json(running: MetricsServer) -> None:
    status, content_type, body = fetch(f"{running.url}/health")
    assert status == 200
    assert content_type == "application/json"
    assert json.loads(body) == {"status": "ok"}


def test_server_when_path_unknown_returns_404(running: MetricsServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        fetch(f"{running.url}/nope")
    assert caught.value.code == 404
    caught.value.close()


def test_serve_until_interrupted_when_ctrl_c_shuts_down_cleanly(metrics: MetricsLogger) -> None:
    server = start_metrics_server(metrics, "127.0.0.1", 0)
    seen: list[int] = []

    def wait() -> None:
        seen.append(fetch(f"{server.url}/health")[0])
        raise KeyboardInterrupt  # what Ctrl-C raises in the main thread

    serve_until_interrupted(server, wait)
    assert seen == [200]
    assert not server.thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        fetch(f"{server.url}/health")
