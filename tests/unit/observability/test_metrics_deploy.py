"""deploy/: the Grafana dashboard and the Prometheus scrape config agree with the catalogue."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from quantum_trader.observability.metrics import CATALOGUE, CATALOGUE_BY_NAME, MetricKind

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "deploy" / "grafana" / "quantum_trader_dashboard.json"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"

# Catalogue metrics deliberately kept off the dashboard, each with the reason. Empty today:
# every metric has a panel.
NOT_ON_DASHBOARD: dict[str, str] = {}

_NAME = re.compile(r"quantum_trader_[a-z0-9_]+")
_SERIES_SUFFIXES = ("_bucket", "_sum", "_count", "_created")
_COUNTING_FUNCTIONS = re.compile(r"(rate|increase|irate)\(\s*$")


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        target["expr"]
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def _catalogue_name(series: str) -> str:
    """Map an exported series name to its catalogue name (no prefix, no histogram suffix)."""
    name = series.removeprefix("quantum_trader_")
    if name in CATALOGUE_BY_NAME:
        return name
    for suffix in _SERIES_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and base in CATALOGUE_BY_NAME:
            spec = CATALOGUE_BY_NAME[base]
            if suffix == "_created" or spec.kind is MetricKind.HISTOGRAM:
                return base
    return name


def test_dashboard_when_parsed_is_a_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] == "Quantum Trader"
    assert dashboard["uid"]
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard["panels"]):
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"


def test_dashboard_when_expressions_scanned_name_only_catalogue_metrics() -> None:
    exprs = _exprs()
    assert exprs
    for expr in exprs:
        names = _NAME.findall(expr)
        assert names, f"expression uses no quantum_trader_ metric: {expr}"
        for series in names:
            assert _catalogue_name(series) in CATALOGUE_BY_NAME, f"{series} in {expr}"


def test_dashboard_when_expressions_scanned_chart_counters_and_buckets_as_rates() -> None:
    for expr in _exprs():
        for match in _NAME.finditer(expr):
            spec = CATALOGUE_BY_NAME[_catalogue_name(match.group())]
            histogram_series = spec.kind is MetricKind.HISTOGRAM
            if spec.kind is MetricKind.COUNTER or histogram_series:
                assert _COUNTING_FUNCTIONS.search(expr[: match.start()]), expr
            if histogram_series and match.group().endswith("_bucket"):
                assert expr.startswith("histogram_quantile("), expr


def test_dashboard_when_compared_with_catalogue_shows_every_metric() -> None:
    used = {_catalogue_name(series) for expr in _exprs() for series in _NAME.findall(expr)}
    missing = {spec.name for spec in CATALOGUE} - used - NOT_ON_DASHBOARD.keys()
    assert not missing, f"add a panel or list in NOT_ON_DASHBOARD with a reason: {missing}"
    assert not used & NOT_ON_DASHBOARD.keys()
    assert set(NOT_ON_DASHBOARD) <= set(CATALOGUE_BY_NAME)


def test_dashboard_when_latency_charted_shows_p50_and_p99() -> None:
    exprs = " ".join(_exprs())
    assert "histogram_quantile(0.5, sum by (le, operation) (rate(quantum_trader_latency" in exprs
    assert "histogram_quantile(0.99, sum by (le, operation) (rate(quantum_trader_latency" in exprs


def test_prometheus_config_when_parsed_scrapes_qtrader_every_5_to_15_seconds() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "quantum_trader"]
    interval = job.get("scrape_interval", config["global"]["scrape_interval"])
    match = re.fullmatch(r"(\d+)s", interval)
    assert match is not None
    assert 5 <= int(match.group(1)) <= 15
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    assert targets == ["localhost:9108"]


@pytest.mark.parametrize("path", [DASHBOARD, PROMETHEUS])
def test_deploy_file_when_scanned_names_no_unknown_metric(path: Path) -> None:
    for series in _NAME.findall(path.read_text(encoding="utf-8")):
        assert _catalogue_name(series) in CATALOGUE_BY_NAME, f"{series} in {path.name}"
