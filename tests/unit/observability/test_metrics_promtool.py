"""``promtool`` lints the exposition and the scrape config, when it is installed.

promtool ships in the Debian/Ubuntu package ``prometheus``. Without it these tests skip, unless
``QT_REQUIRE_PROMTOOL=1`` (CI images that have it), where a missing promtool fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from quantum_trader.observability.metrics import MetricsLogger
from quantum_trader.observability.metrics.catalogue import ACTOR_KINDS, RISK_MODES

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("QT_REQUIRE_PROMTOOL") == "1":
            pytest.fail("QT_REQUIRE_PROMTOOL=1 but promtool is not on PATH")
        pytest.skip(
            "promtool not on PATH (apt-get install prometheus); QT_REQUIRE_PROMTOOL=1 fails instead"
        )
    return path


def busy_logger() -> MetricsLogger:
    """A logger with a series in every metric, so promtool sees every family with samples."""
    metrics = MetricsLogger()
    metrics.record_trade("BTCUSDT", "buy")
    metrics.record_order("BTCUSDT", "buy", "market", "filled")
    metrics.record_order_rejection("insufficient_margin")
    metrics.record_fill("BTCUSDT", "taker", fee_usdt=0.3)
    metrics.record_funding(-0.2)
    metrics.record_funding(0.1)
    metrics.set_equity(10_000.0)
    metrics.set_drawdown(0.02)
    metrics.set_realized_pnl(12.0)
    metrics.set_unrealized_pnl(-1.0)
    metrics.set_position("BTCUSDT", 0.5)
    metrics.record_latency("risk_check", 4e-6)
    metrics.record_model_prediction("ensemble", "up", 0.66)
    metrics.record_sizing_fallback("agent_missing")
    metrics.record_risk_denial("max_leverage")
    metrics.record_emergency_stop("daily_loss")
    metrics.record_risk_mode_transition(RISK_MODES[1], RISK_MODES[0])
    metrics.set_trading_state("halted")
    metrics.set_subsystem_health(critical=1, degraded=0)
    for actor_kind in ACTOR_KINDS:
        metrics.record_policy_change(actor_kind)
    metrics.record_audit_record("emergency.triggered")
    metrics.record_audit_write_failure()
    metrics.record_bars(1000)
    metrics.set_backtest_speed(2.0e5)
    return metrics


def test_promtool_when_checking_exposition_reports_no_problem(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=busy_logger().exposition(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output
    assert output.strip() == "", output


def test_promtool_when_checking_scrape_config_accepts_it(promtool: str) -> None:
    config = REPO / "deploy" / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(config)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
