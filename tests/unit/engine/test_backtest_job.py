"""The whole backtest job: outputs, audit trail and metrics from one run."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from quantum_trader.engine.runs import run_backtest_job
from quantum_trader.engine.settings import BacktestSettings
from quantum_trader.observability.audit.verify import verify_audit_dir


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_job_when_run_on_synthetic_data_writes_outputs_audit_and_matching_metrics(
    tmp_path: Path,
) -> None:
    settings = BacktestSettings(
        synthetic_bars=3_000, out=tmp_path / "run", symbols=("BTCUSDT", "ETHUSDT")
    )
    run = run_backtest_job(settings)
    for name in (
        "summary.json",
        "trades.csv",
        "equity.csv",
        "fills.csv",
        "report.html",
        "metrics.prom",
    ):
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    audit = verify_audit_dir(tmp_path / "run" / "audit")
    assert audit.ok, audit.problem
    result = run.result
    # decisions + executions + closed trades + start/end records
    assert audit.records == 2 * len(result.fills) + (result.trades["status"] != "open").sum() + 2
    samples = _samples((tmp_path / "run" / "metrics.prom").read_text())
    fills_btc = (result.fills["symbol"] == "BTCUSDT").sum()
    assert (
        samples[("quantum_trader_fills_total", (("liquidity", "taker"), ("symbol", "BTCUSDT")))]
        == fills_btc
    )
    assert samples[("quantum_trader_fees_usdt_total", ())] == result.fills["fee"].sum()
    assert samples[("quantum_trader_equity_usdt", ())] == result.summary["final_equity"]
    assert samples[("quantum_trader_bars_processed_total", ())] == 6_000
    assert samples[
        ("quantum_trader_audit_records_total", (("event_type", "trade.executed"),))
    ] == len(result.fills)
    assert samples[("quantum_trader_audit_healthy", ())] == 1.0


def test_job_when_audit_disabled_writes_no_audit_folder(tmp_path: Path) -> None:
    settings = BacktestSettings(synthetic_bars=500, out=tmp_path / "run", audit=False)
    run = run_backtest_job(settings)
    assert not (tmp_path / "run" / "audit").exists()
    assert "audit" not in run.paths
