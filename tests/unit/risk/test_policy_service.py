"""PolicyService: cached reads, validated compare-and-set writes, audit and metrics per change."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from quantum_trader.domain.clock import NANOS_PER_SECOND, ManualClock
from quantum_trader.domain.errors import AuditUnavailableError, ConfigError, ConflictError
from quantum_trader.domain.policy import DEFAULT_LIMITS, Policy, RiskMode, TradingState
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.audit.records import AuditEventType, Durability
from quantum_trader.observability.metrics.logger import MetricsLogger
from quantum_trader.risk.policy_service import PolicyService, actor_kind
from quantum_trader.stores.memory import InMemoryPolicyStore

START_NS = 1_700_000_000 * NANOS_PER_SECOND
# A valid SAFE size_scale whatever the defaults are: between NORMAL's and CRITICAL's.
SAFE_SCALE = (
    DEFAULT_LIMITS[RiskMode.NORMAL].size_scale + DEFAULT_LIMITS[RiskMode.CRITICAL].size_scale
) / 2
# Looser than NORMAL allows: breaks the monotonic rule from NORMAL to SAFE.
TOO_LOOSE_LEVERAGE = DEFAULT_LIMITS[RiskMode.NORMAL].max_leverage + 1


class CountingStore:
    """An in-memory PolicyStore that counts reads and can let a rival write first."""

    def __init__(self) -> None:
        self.inner = InMemoryPolicyStore()
        self.gets = 0
        self.rival_writes_before_next_write = False

    def get(self) -> Policy:
        self.gets += 1
        return self.inner.get()

    def compare_and_set(self, expected_version: int, new: Policy) -> Policy:
        if self.rival_writes_before_next_write:
            self.rival_writes_before_next_write = False
            current = self.inner.get()
            rival = current.changed(actor="rival", reason="first", ts_ns=1, state="halted")
            self.inner.compare_and_set(current.version, rival)
        return self.inner.compare_and_set(expected_version, new)

    def history(self, limit: int = 50) -> Sequence[Policy]:
        return self.inner.history(limit)


class BrokenAudit(AuditRecorder):
    """An audit recorder whose disk is gone."""

    def append(self, event_type: Any, **fields: Any) -> None:
        raise AuditUnavailableError("audit log unavailable: disk full")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def healthy(self) -> bool:
        return False


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_NS)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def audit(tmp_path: Path, clock: ManualClock) -> Iterator[AuditLogger]:
    logger = AuditLogger(
        tmp_path / "audit", clock, durability=Durability.FSYNC, retention_days=None
    )
    yield logger
    logger.close()


@pytest.fixture
def metrics() -> MetricsLogger:
    return MetricsLogger()


@pytest.fixture
def service(
    store: CountingStore, clock: ManualClock, audit: AuditLogger, metrics: MetricsLogger
) -> PolicyService:
    return PolicyService(store, clock, audit, metrics)


def _records(audit: AuditLogger) -> list[dict[str, Any]]:
    audit.flush()
    lines = [
        line
        for path in sorted(audit.directory.glob("audit-*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    return [json.loads(line) for line in lines]


def _sample(metrics: MetricsLogger, name: str, labels: Mapping[str, str]) -> float | None:
    return metrics.registry.get_sample_value(f"quantum_trader_{name}", dict(labels))


# ---------------------------------------------------------------- reads


def test_current_when_called_repeatedly_reads_store_once(
    service: PolicyService, store: CountingStore
) -> None:
    first = service.current()
    for _ in range(100):
        assert service.current() is first
    assert store.gets == 1
    assert first == Policy()


def test_current_when_other_writer_changed_store_serves_cache_until_refresh(
    service: PolicyService, store: CountingStore
) -> None:
    service.current()
    other = PolicyService(store, ManualClock(START_NS))
    other.set_mode(RiskMode.SAFE, actor="alice", reason="elsewhere")
    assert service.current().mode is RiskMode.NORMAL
    assert service.refresh().mode is RiskMode.SAFE
    assert service.current().mode is RiskMode.SAFE


def test_current_when_max_age_passed_rereads_store(
    store: CountingStore, clock: ManualClock
) -> None:
    service = PolicyService(store, clock, max_age_secs=2.0)
    service.current()
    clock.advance(2 * NANOS_PER_SECOND - 1)
    service.current()
    assert store.gets == 1
    clock.advance(1)
    service.current()
    assert store.gets == 2


def test_init_when_max_age_not_positive_raises_config_error(
    store: CountingStore, clock: ManualClock
) -> None:
    with pytest.raises(ConfigError, match="max_age_secs"):
        PolicyService(store, clock, max_age_secs=0.0)


# ---------------------------------------------------------------- writes


def test_update_when_valid_writes_next_version_and_audits_policy_changed(
    service: PolicyService, audit: AuditLogger, clock: ManualClock
) -> None:
    old = service.current()
    clock.advance(5 * NANOS_PER_SECOND)
    new = service.update(
        actor="alice",
        reason="CPI release",
        mode=RiskMode.SAFE,
        allowed_symbols=frozenset({"BTCUSDT"}),
        limit_changes={"safe": {"size_scale": SAFE_SCALE}},
    )
    assert new.version == 2
    assert new.updated_by == "alice"
    assert new.updated_at_ns == START_NS + 5 * NANOS_PER_SECOND
    assert new.limits[RiskMode.SAFE].size_scale == SAFE_SCALE
    assert new.limits[RiskMode.NORMAL] == DEFAULT_LIMITS[RiskMode.NORMAL]
    assert service.current() == new
    [record] = _records(audit)
    assert record["event_type"] == AuditEventType.POLICY_CHANGED.value
    assert record["actor"] == "alice"
    assert record["reason"] == "CPI release"
    assert record["outcome"] == "version_2"
    assert record["metadata"]["old"] == old.to_dict()
    assert record["metadata"]["new"] == new.to_dict()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "reckless"}, "policy mode 'reckless' is not one of"),
        ({"max_price_deviation": 2.0}, "max_price_deviation must be in"),
        ({"allowed_symbols": frozenset({"btc/usdt"})}, "not an exchange symbol"),
        ({"colour": "red"}, "not a policy setting: colour"),
        ({"version": 9}, "not a policy setting: version"),
        (
            {"limit_changes": {"safe": {"max_leverage": TOO_LOOSE_LEVERAGE}}},
            "limits must tighten from normal to safe: max_leverage",
        ),
        (
            {"limit_changes": {"critical": {"max_leverage": 500.0}}},
            r"limits.critical: policy limit max_leverage=500.0 is outside",
        ),
        ({"limit_changes": {"safe": {"leverage": 2.0}}}, "limits.safe.leverage: not a limit"),
        ({"limit_changes": {"yolo": {"max_leverage": 2.0}}}, "limits.yolo: not a risk mode"),
    ],
    ids=[
        "bad-mode",
        "out-of-range",
        "bad-symbol",
        "unknown-key",
        "version-key",
        "monotonic",
        "limit-range",
        "unknown-limit",
        "unknown-mode",
    ],
)
def test_update_when_change_invalid_raises_config_error_and_writes_and_audits_nothing(
    service: PolicyService,
    store: CountingStore,
    audit: AuditLogger,
    metrics: MetricsLogger,
    changes: dict[str, Any],
    message: str,
) -> None:
    service.current()
    with pytest.raises(ConfigError, match=message):
        service.update(actor="alice", reason="try", **changes)
    assert [p.version for p in store.history()] == [1]
    assert service.current() == Policy()
    assert _records(audit) == []
    assert _sample(metrics, "policy_changes_total", {"actor_kind": "human"}) is None


def test_update_when_actor_or_reason_missing_raises_config_error(service: PolicyService) -> None:
    with pytest.raises(ConfigError, match="needs an actor and a reason"):
        service.update(actor="", reason="why", mode="safe")
    with pytest.raises(ConfigError, match="needs an actor and a reason"):
        service.set_mode("safe", actor="alice", reason="")


def test_update_when_nothing_to_change_raises_config_error(service: PolicyService) -> None:
    with pytest.raises(ConfigError, match="at least one setting"):
        service.update(actor="alice", reason="nothing")


def test_update_when_expected_version_stale_raises_conflict_and_audits_nothing(
    service: PolicyService, store: CountingStore, audit: AuditLogger
) -> None:
    service.set_mode("safe", actor="alice", reason="first")
    with pytest.raises(
        ConflictError, match="policy changed since you read it: expected version 1, store has 2"
    ):
        service.update(actor="bob", reason="stale", expected_version=1, mode="aggressive")
    assert store.inner.get().mode is RiskMode.SAFE
    assert [r["actor"] for r in _records(audit)] == ["alice"]


def test_update_when_rival_writes_first_raises_conflict_and_serves_rival_version(
    service: PolicyService, store: CountingStore, audit: AuditLogger, metrics: MetricsLogger
) -> None:
    service.current()
    store.rival_writes_before_next_write = True
    with pytest.raises(ConflictError, match="expected version 1, store has 2"):
        service.set_mode("aggressive", actor="alice", reason="lost the race")
    assert [p.updated_by for p in store.history()] == ["rival", "default"]
    assert service.current().updated_by == "rival"
    assert _records(audit) == []
    assert _sample(metrics, "policy_changes_total", {"actor_kind": "human"}) is None


def test_update_when_values_already_set_writes_and_audits_nothing(
    service: PolicyService, store: CountingStore, audit: AuditLogger
) -> None:
    same = service.update(actor="alice", reason="no-op", mode="normal", max_orders_per_window=60)
    assert same == Policy()
    assert [p.version for p in store.history()] == [1]
    assert _records(audit) == []


def test_update_when_audit_unavailable_keeps_change_and_raises(
    store: CountingStore, clock: ManualClock
) -> None:
    service = PolicyService(store, clock, BrokenAudit())
    with pytest.raises(AuditUnavailableError, match="disk full"):
        service.set_mode("safe", actor="alice", reason="audit is down")
    assert store.inner.get().mode is RiskMode.SAFE
    assert service.current().mode is RiskMode.SAFE


# ---------------------------------------------------------------- metrics


def test_update_when_metrics_given_counts_change_by_actor_kind_and_sets_gauges(
    service: PolicyService, metrics: MetricsLogger
) -> None:
    service.current()
    assert _sample(metrics, "risk_mode", {"mode": "normal"}) == 1.0
    service.set_mode(RiskMode.CRITICAL, actor="ai-hfos", reason="drawdown")
    service.set_state(TradingState.HALTED, actor="ess", reason="emergency")
    service.update(actor="alice", reason="tighten", max_orders_per_window=10)
    for kind in ("ai_hfos", "system", "human"):
        assert _sample(metrics, "policy_changes_total", {"actor_kind": kind}) == 1.0
    transition = {"from_mode": "normal", "to_mode": "critical"}
    assert _sample(metrics, "risk_mode_transitions_total", transition) == 1.0
    assert _sample(metrics, "risk_mode", {"mode": "critical"}) == 1.0
    assert _sample(metrics, "risk_mode", {"mode": "normal"}) == 0.0
    assert _sample(metrics, "trading_state", {"state": "halted"}) == 1.0
    assert _sample(metrics, "trading_state", {"state": "active"}) == 0.0


def test_set_mode_when_critical_sets_trading_state_gauge_to_reducing(
    service: PolicyService, metrics: MetricsLogger
) -> None:
    service.set_mode("critical", actor="ai-hfos", reason="health critical")
    assert _sample(metrics, "trading_state", {"state": "reducing"}) == 1.0
    assert _sample(metrics, "trading_state", {"state": "active"}) == 0.0


@pytest.mark.parametrize(
    ("actor", "kind"),
    [
        ("ai-hfos", "ai_hfos"),
        ("AI-HFOS", "ai_hfos"),
        ("ess", "system"),
        ("system", "system"),
        ("alice", "human"),
        ("ai-hfos-shadow", "human"),
    ],
)
def test_actor_kind_when_actor_named_returns_metric_label(actor: str, kind: str) -> None:
    assert actor_kind(actor) == kind


# ---------------------------------------------------------------- mode, state, history


def test_set_mode_when_already_in_mode_writes_nothing(
    service: PolicyService, store: CountingStore
) -> None:
    service.set_mode("normal", actor="ai-hfos", reason="steady")
    assert [p.version for p in store.history()] == [1]


def test_set_state_when_reducing_stores_state(service: PolicyService) -> None:
    policy = service.set_state("reducing", actor="alice", reason="wind down")
    assert policy.state is TradingState.REDUCING
    assert service.current().state is TradingState.REDUCING


def test_history_when_changed_twice_returns_newest_first(service: PolicyService) -> None:
    service.set_mode("safe", actor="alice", reason="one")
    service.set_mode("critical", actor="ai-hfos", reason="two")
    history = service.history(limit=10)
    assert [(p.version, p.reason) for p in history] == [
        (3, "two"),
        (2, "one"),
        (1, "initial policy"),
    ]
    assert [p.version for p in service.history(limit=1)] == [3]
