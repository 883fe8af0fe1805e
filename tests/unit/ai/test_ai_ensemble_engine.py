"""``ai_ensemble`` through the real backtest engine with the safety core: the model's
confidence reaches the RiskGuard, and every decision's audit record names the model."""

from __future__ import annotations

from quantum_trader.data.synthetic import generate_market
from quantum_trader.engine.backtest import BacktestEngine
from quantum_trader.engine.settings import BacktestSettings, RiskSettings
from quantum_trader.engine.training import TrainRun
from quantum_trader.observability.audit.records import AuditEventType
from quantum_trader.strategies.ai_ensemble import AiEnsemble
from quantum_trader.testing.fakes import RecordingAuditRecorder

from .conftest import SYMBOLS


def _settings(strategy: str, model: str) -> BacktestSettings:
    return BacktestSettings(
        symbols=SYMBOLS,
        strategy=strategy,
        params={"model": model},
        audit=False,
        synthetic_bars=4 * 1440,
    )


def test_engine_when_policy_minimum_above_model_confidence_denies_entries_and_audits_model(
    trained: TrainRun,
) -> None:
    market = generate_market(SYMBOLS, bars=2 * 1440, seed=99, start="2025-02-01")
    artifact_dir = str(trained.settings.out)
    # Trade every direction the model leans to (strategy minimum 0.5) while the policy's
    # minimum is 0.51 in NORMAL: the RiskGuard must deny the entries the model is unsure of.
    strategy = AiEnsemble(artifact_dir, min_confidence=0.5, exit_when_unsure=True)
    risk = RiskSettings(limits={"normal": {"min_confidence": 0.51}})  # type: ignore[dict-item]
    audit = RecordingAuditRecorder()
    result = BacktestEngine(
        _settings("ai_ensemble", artifact_dir), strategy, market, audit=audit, risk=risk
    ).run()
    decisions = audit.of(AuditEventType.TRADE_DECISION)
    assert decisions, "the model never traded"
    for record in decisions:
        meta = record["metadata"]
        assert meta["model_version"] == strategy.artifact.version
        assert 0.5 <= meta["confidence"] <= 1.0
    blocked = result.risk_events[result.risk_events["kind"] == "risk_blocked"]
    low = blocked[blocked["reason"] == "low_confidence"]
    assert len(low) > 0
    # Orders that add exposure (side along the target) got through only as confident as the
    # policy asks; orders that reduce a position skip the check by design.
    entries = [
        r["metadata"]
        for r in decisions
        if r["metadata"]["target"] * (1 if r["metadata"]["side"] == "buy" else -1) > 0
    ]
    assert entries
    assert all(meta["confidence"] >= 0.51 for meta in entries)
