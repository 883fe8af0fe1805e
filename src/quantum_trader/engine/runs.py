"""A whole backtest job: settings in, market loaded, engine run, files written."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from quantum_trader.data.loaders import load_market
from quantum_trader.data.market import MarketData
from quantum_trader.data.synthetic import generate_market
from quantum_trader.domain.clock import ManualClock
from quantum_trader.engine.audit import open_audit_logger
from quantum_trader.engine.backtest import BacktestEngine
from quantum_trader.engine.backtest_metrics import publish_backtest_metrics
from quantum_trader.engine.settings import BacktestSettings, RiskSettings
from quantum_trader.observability.audit.records import Durability
from quantum_trader.observability.metrics.logger import MetricsLogger
from quantum_trader.observability.reports.files import write_run_outputs
from quantum_trader.observability.reports.result import BacktestResult
from quantum_trader.strategies.registry import create_strategy


@dataclass(frozen=True, slots=True)
class BacktestRun:
    """A finished job: its settings, result and the files it wrote."""

    settings: BacktestSettings
    result: BacktestResult
    paths: dict[str, Path]
    metrics: MetricsLogger


def load_backtest_market(settings: BacktestSettings) -> MarketData:
    """Load the market the settings name, or generate the synthetic one when none is named."""
    if settings.data is None:
        return generate_market(
            settings.symbols,
            bars=settings.synthetic_bars,
            timeframe=settings.timeframe,
            seed=settings.synthetic_seed,
        )
    return load_market(settings.data, settings.symbols, settings.timeframe)


def run_backtest_job(
    settings: BacktestSettings,
    progress: Callable[[float], None] | None = None,
    risk: RiskSettings | None = None,
) -> BacktestRun:
    """Run the backtest the settings describe and write its outputs to ``settings.out``.

    ``risk`` puts the safety core in front of every order (None: no safety core).
    With ``settings.audit`` the run's audit trail (buffered: a backtest can be re-run) goes to
    ``<out>/audit``, replacing the trail of an earlier run in the same folder.
    """
    strategy = create_strategy(settings.strategy, settings.params)
    market = load_backtest_market(settings)
    clock = ManualClock()
    audit = None
    if settings.audit:
        audit_dir = settings.out / "audit"
        if audit_dir.exists():
            shutil.rmtree(audit_dir)
        audit = open_audit_logger(audit_dir, clock, durability=Durability.BUFFERED)
    try:
        engine = BacktestEngine(
            settings,
            strategy,
            market,
            audit=audit,
            clock=clock,
            risk=risk,
        )
        result = engine.run(progress)
    finally:
        if audit is not None:
            audit.close()
    paths = write_run_outputs(result, settings.out)
    metrics = MetricsLogger()
    publish_backtest_metrics(result, metrics, audit.counts if audit is not None else None)
    if audit is not None:
        metrics.set_audit_healthy(audit.healthy)
        paths["audit"] = settings.out / "audit"
    paths["metrics"] = settings.out / "metrics.prom"
    paths["metrics"].write_bytes(metrics.exposition())
    return BacktestRun(settings, result, paths, metrics)
