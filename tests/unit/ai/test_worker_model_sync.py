"""A running paper worker trades a newly promoted model from its next decision, without restart.

The worker runs ``ai_ensemble`` on a model registry; half-way through the replay a person
promotes another version (from another process, as ``qtrader models promote`` would); the
decisions after the promotion are audited with the new version, the ones before with the old.
Sizing through the RL sizer (with its rule-based fallback) never leaves the policy's caps.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from quantum_trader.ai.registry import ModelRegistry
from quantum_trader.ai.sizing import PositionSizer, SizingAction, SizingState
from quantum_trader.bus.local import LocalBus
from quantum_trader.data.market import SymbolData
from quantum_trader.domain.clock import ManualClock
from quantum_trader.domain.policy import RiskMode
from quantum_trader.engine.replay import ReplayFeed
from quantum_trader.engine.stores import open_state_stores
from quantum_trader.engine.supervisor import Supervisor
from quantum_trader.engine.training import TrainRun
from quantum_trader.engine.worker import STATUS_TOPIC, TradingWorker, WorkerSettings
from quantum_trader.execution.paper import PaperVenue, VenueSettings
from quantum_trader.risk.health import Subsystem, SystemHealth
from quantum_trader.strategies.ai_ensemble import AiEnsemble
from quantum_trader.testing.fakes import RecordingAuditRecorder

from .conftest import SYMBOLS, small_market, train_small


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> TrainRun:
    """Another version: the same data, another seed."""
    return train_small(tmp_path_factory.mktemp("model2") / "artifact", seed=8)


def worker_on(
    tmp: Path, strategy: AiEnsemble, audit: RecordingAuditRecorder, sizer: PositionSizer | None
) -> TradingWorker:
    feed = ReplayFeed(small_market(), SYMBOLS, "1m")
    venue = PaperVenue(
        tmp / "venue.db", feed.instruments(), VenueSettings(), ManualClock(1), durable=False
    )
    return TradingWorker(
        WorkerSettings("w0"),
        feed,
        strategy,
        venue,
        open_state_stores(None),
        LocalBus(),
        ManualClock(1),
        audit=audit,
        sizer=sizer,
    )


def test_a_promotion_reaches_the_running_worker_at_its_next_decision(
    trained: TrainRun, second: TrainRun, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "models", ManualClock(5))
    first = registry.register(trained.settings.out)
    registry.start_shadow(first.version, actor="alice")
    registry.promote(first.version, actor="alice", reason="first model", force=True)
    strategy = AiEnsemble(registry=str(tmp_path / "models"), min_confidence=0.5)
    audit = RecordingAuditRecorder()
    worker = worker_on(tmp_path, strategy, audit, None)
    worker.recover()
    # 300 bars after the features' warm-up, the promotion, 300 more (features cost ~ms a bar)
    start, half, end = 300, 600, 900
    for i in range(start, half):
        worker.step(i)
    # Another process promotes a new version while the worker runs.
    other = ModelRegistry(tmp_path / "models", ManualClock(6))
    new = other.register(second.settings.out)
    assert new.version != first.version
    other.start_shadow(new.version, actor="bob")
    other.promote(new.version, actor="bob", reason="better on the shadow week", force=True)
    for i in range(half, end):
        worker.step(i)
    decisions = [r for r in audit.records if r["event_type"] == "trade.decision"]
    versions = [r["metadata"]["model_version"] for r in decisions]
    swap = int(worker.feed.times[half - 1]) + worker.feed.tf_ns  # the last close before it
    before = [
        v for r, v in zip(decisions, versions, strict=True) if r["metadata"]["market_ts"] <= swap
    ]
    after = versions[len(before) :]
    assert before
    assert after
    assert set(before) == {first.version}
    assert set(after) == {new.version}
    assert all(0.5 <= r["metadata"]["confidence"] <= 1.0 for r in decisions)
    assert strategy.artifact.version == new.version


class Greedy:
    """An agent that always asks for far more than any policy allows."""

    trained = True

    def act(self, state: SizingState, mode: RiskMode) -> SizingAction:
        return SizingAction(multiplier=1e9, leverage=500.0)


def test_sized_orders_never_exceed_the_policy_and_fallbacks_are_audited(
    trained: TrainRun, tmp_path: Path
) -> None:
    artifact = trained.settings.out
    strategy = AiEnsemble(model=str(artifact), min_confidence=0.5)
    audit = RecordingAuditRecorder()
    sizer = PositionSizer(Greedy(), audit=audit, monotonic=lambda: 0.0)
    worker = worker_on(tmp_path, strategy, audit, sizer)
    worker.recover()
    for i in range(300, 900):
        worker.step(i)
    decisions = [r for r in audit.records if r["event_type"] == "trade.decision"]
    assert decisions
    assert {r["metadata"]["sizing"] for r in decisions if not r["metadata"]["reduce_only"]} == {
        "agent_out_of_bounds"
    }
    fallbacks = [r for r in audit.records if r["action"] == "sizing_fallback"]
    assert len(fallbacks) >= len([r for r in decisions if not r["metadata"]["reduce_only"]])
    assert worker.denials == {}  # the RiskGuard found nothing to refuse: the sizer capped it
    limits = worker.policy.current().active_limits
    for r in decisions:
        notional = r["metadata"]["quantity"] * r["metadata"]["price"]
        assert notional <= limits.max_position_notional
        assert notional <= limits.max_symbol_exposure * 10_000.0 * 1.5  # equity stays near 10k


def wilder(market: dict[str, SymbolData], factor: float) -> dict[str, SymbolData]:
    """The same market with every log move ``factor`` times as large (a volatility shock)."""
    out = {}
    for symbol, data in market.items():
        c = data.candles.copy()
        base = float(c["open"].iloc[0])
        for col in ("open", "high", "low", "close"):
            c[col] = base * np.exp(factor * np.log(c[col] / base))
        out[symbol] = replace(data, candles=c)
    return out


def health_after(
    trained: TrainRun, tmp_path: Path, market: dict[str, SymbolData]
) -> tuple[dict[str, object], Supervisor]:
    strategy = AiEnsemble(model=str(trained.settings.out), min_confidence=0.5)
    feed = ReplayFeed(market, SYMBOLS, "1m")
    venue = PaperVenue(
        tmp_path / "venue.db", feed.instruments(), VenueSettings(), ManualClock(1), durable=False
    )
    stores = open_state_stores(None)
    bus = LocalBus()
    clock = ManualClock(10**18)
    supervisor = Supervisor(("w0",), stores.policy, stores.ess, stores.equity_marks, clock)
    bus.subscribe(STATUS_TOPIC, supervisor.on_status)
    worker = TradingWorker(WorkerSettings("w0"), feed, strategy, venue, stores, bus, ManualClock(1))
    worker.recover()
    for i in range(300, 900):  # 1,200 live rows over the two symbols
        worker.step(i)
    assert supervisor.workers["w0"].model_score is not None
    return strategy.model_health().to_dict(), supervisor


def test_a_drifting_model_lowers_the_systems_health_and_risk_mode(
    trained: TrainRun, tmp_path: Path
) -> None:
    calm, calm_supervisor = health_after(trained, tmp_path / "calm", small_market())
    shocked, supervisor = health_after(trained, tmp_path / "shock", wilder(small_market(), 6.0))
    # One-bar returns six times as large are a significant shift; the same hours unshocked are
    # not (the synthetic market's regimes do move the volatility features of either).
    calm_psi: dict[str, float] = calm["psi"]  # type: ignore[assignment]
    shocked_psi: dict[str, float] = shocked["psi"]  # type: ignore[assignment]
    assert calm_psi["ret_1"] < 0.10 < 0.25 < shocked_psi["ret_1"]
    assert shocked["score"] < 0.75, shocked["detail"]
    assert "input drift" in str(shocked["detail"])
    calm_report = {r.subsystem: r for r in calm_supervisor.health()}[Subsystem.MODELS]
    assert calm_report.score == calm["score"]
    report = {r.subsystem: r for r in supervisor.health()}[Subsystem.MODELS]
    assert report.score == shocked["score"]
    before = supervisor.policy.current().mode
    result = supervisor.cycle()
    assert result is not None
    assert result.health.system in (SystemHealth.DEGRADED, SystemHealth.CRITICAL)
    assert supervisor.policy.current().mode is not before  # down at once, no waiting


def test_a_shadow_model_is_logged_beside_the_active_one_and_never_traded(
    trained: TrainRun, second: TrainRun, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "models", ManualClock(5))
    active = registry.register(trained.settings.out)
    registry.start_shadow(active.version, actor="alice")
    registry.promote(active.version, actor="alice", reason="first model", force=True)
    shadow = registry.register(second.settings.out)
    registry.start_shadow(shadow.version, actor="alice", reason="a week in shadow")
    strategy = AiEnsemble(registry=str(tmp_path / "models"), min_confidence=0.5)
    audit = RecordingAuditRecorder()
    worker = worker_on(tmp_path, strategy, audit, None)
    worker.recover()
    for i in range(300, 600):
        worker.step(i)
    strategy.close()
    summary = registry.shadow_log(shadow.version).summary()
    assert summary.predictions == 2 * 300  # every bar of both symbols
    horizon = strategy.artifact.horizon
    assert summary.resolved == 2 * (300 - horizon)  # outcomes a horizon later, never before
    assert 0.0 <= summary.accuracy <= 1.0
    decisions = [r for r in audit.records if r["event_type"] == "trade.decision"]
    assert decisions
    assert {r["metadata"]["model_version"] for r in decisions} == {active.version}
