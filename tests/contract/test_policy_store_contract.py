"""The PolicyStore contract, run against every backend (see ``conftest.OPENERS``)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from quantum_trader.domain.errors import ConfigError, ConflictError
from quantum_trader.domain.policy import (
    DEFAULT_LIMITS,
    ModeLimits,
    Policy,
    RiskMode,
    TradingState,
)
from quantum_trader.stores.ports import PolicyStore

TS = 1_700_000_000_123_456_789


def _next(policy: Policy, **changes: object) -> Policy:
    return policy.changed(actor="tester", reason="contract", ts_ns=TS, **changes)


def _every_field_set(symbols: frozenset[str]) -> Policy:
    # Distinct, awkward values in every field of every mode: zeros, tiny and huge numbers,
    # floats that are not exact in binary, and ints where the field is an int.
    limits = {
        RiskMode.AGGRESSIVE: ModeLimits(
            125.0, 1.0, 1e12, 10_000, 100.0, 1000.0, 1.0, 1.0, 0.0, 10.0
        ),
        RiskMode.NORMAL: ModeLimits(
            12.5, 0.1 + 0.2, 123_456.789, 7, 1.25, 3.5, 0.07, 0.25, 0.51, 1.1
        ),
        RiskMode.SAFE: ModeLimits(3.0, 1e-12, 0.5, 1, 0.333, 1.0, 0.01, 0.1, 0.6, 0.4),
        RiskMode.CRITICAL: ModeLimits(1.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    }
    return Policy(
        version=2,
        mode=RiskMode.CRITICAL,
        state=TradingState.HALTED,
        limits=limits,
        allowed_symbols=symbols,
        max_orders_per_window=1,
        order_window_secs=0.25,
        max_price_age_secs=1e-3,
        max_price_deviation=1.0,
        updated_at_ns=TS,
        updated_by='Zoë "ops" O\'Brien',
        reason="line one\nline two, with unicode: ✓ and a tab\t",
    )


def test_get_when_store_empty_returns_default_policy_as_version_1(
    policy_store: PolicyStore,
) -> None:
    policy = policy_store.get()
    assert policy == Policy()
    assert policy.version == 1
    assert list(policy_store.history()) == [Policy()]


def test_compare_and_set_when_version_current_stores_next_version(
    policy_store: PolicyStore,
) -> None:
    current = policy_store.get()
    new = _next(current, mode=RiskMode.SAFE)
    assert policy_store.compare_and_set(1, new) == new
    stored = policy_store.get()
    assert stored == new
    assert stored.version == 2
    assert stored.mode is RiskMode.SAFE


def test_compare_and_set_when_store_empty_stores_default_first(
    policy_store: PolicyStore,
) -> None:
    new = _next(Policy(), state=TradingState.REDUCING)
    policy_store.compare_and_set(1, new)
    assert list(policy_store.history()) == [new, Policy()]


def test_compare_and_set_when_version_stale_raises_conflict_and_writes_nothing(
    policy_store: PolicyStore,
) -> None:
    read_by_both = policy_store.get()
    winner = _next(read_by_both, mode=RiskMode.SAFE)
    loser = _next(read_by_both, mode=RiskMode.AGGRESSIVE)
    policy_store.compare_and_set(read_by_both.version, winner)
    with pytest.raises(ConflictError, match="expected version 1, store has 2"):
        policy_store.compare_and_set(read_by_both.version, loser)
    assert policy_store.get() == winner
    assert [p.version for p in policy_store.history()] == [2, 1]


def test_compare_and_set_when_expected_version_ahead_raises_conflict(
    policy_store: PolicyStore,
) -> None:
    future = replace(Policy(), version=6)
    with pytest.raises(ConflictError, match="expected version 5, store has 1"):
        policy_store.compare_and_set(5, future)
    assert [p.version for p in policy_store.history()] == [1]


def test_compare_and_set_when_new_version_not_next_raises_config_error(
    policy_store: PolicyStore,
) -> None:
    skipping = replace(_next(policy_store.get(), mode=RiskMode.SAFE), version=3)
    with pytest.raises(ConfigError, match="must be version 2, got 3"):
        policy_store.compare_and_set(1, skipping)
    assert policy_store.get() == Policy()


def test_history_when_several_versions_returns_newest_first_within_limit(
    policy_store: PolicyStore,
) -> None:
    policy = policy_store.get()
    for mode in (RiskMode.SAFE, RiskMode.CRITICAL, RiskMode.NORMAL, RiskMode.AGGRESSIVE):
        policy = policy_store.compare_and_set(policy.version, _next(policy, mode=mode))
    history = policy_store.history()
    assert [p.version for p in history] == [5, 4, 3, 2, 1]
    assert [p.mode for p in history[:4]] == [
        RiskMode.AGGRESSIVE,
        RiskMode.NORMAL,
        RiskMode.CRITICAL,
        RiskMode.SAFE,
    ]
    assert [p.version for p in policy_store.history(limit=2)] == [5, 4]
    assert history[0] == policy_store.get()


def test_history_when_limit_below_1_raises_config_error(policy_store: PolicyStore) -> None:
    with pytest.raises(ConfigError, match="limit"):
        policy_store.history(0)


@pytest.mark.parametrize(
    "symbols",
    [frozenset(), frozenset({"BTCUSDT", "ETHUSDT", "1000PEPEUSDT"})],
    ids=["empty-allow-list", "three-symbols"],
)
def test_policy_when_every_field_set_round_trips_exactly(
    policy_store: PolicyStore, symbols: frozenset[str]
) -> None:
    policy_store.get()
    written = _every_field_set(symbols)
    policy_store.compare_and_set(1, written)
    for read in (policy_store.get(), policy_store.history()[0]):
        assert read == written
        assert read.to_dict() == written.to_dict()
        assert read.allowed_symbols == symbols
        assert set(read.limits) == set(RiskMode)
        for mode, limits in written.limits.items():
            for name in ModeLimits.__dataclass_fields__:
                value = getattr(read.limits[mode], name)
                assert value == getattr(limits, name)
                assert type(value) is type(getattr(limits, name)), (mode, name)
        assert read.limits[RiskMode.CRITICAL].max_risk_per_trade == 0.0
        assert type(read.order_window_secs) is float


def test_get_when_caller_mutates_returned_limits_store_is_unchanged(
    policy_store: PolicyStore,
) -> None:
    policy = policy_store.get()
    policy.limits[RiskMode.SAFE] = DEFAULT_LIMITS[RiskMode.CRITICAL]
    assert policy_store.get().limits[RiskMode.SAFE] == DEFAULT_LIMITS[RiskMode.SAFE]


def test_compare_and_set_when_threads_race_every_version_is_written_once(
    policy_store: PolicyStore,
) -> None:
    wins: list[int] = []
    conflicts: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def writer(worker: int) -> None:
        start.wait()
        for _ in range(10):
            current = policy_store.get()
            new = current.changed(
                actor=f"thread-{worker}", reason="race", ts_ns=TS, max_orders_per_window=worker + 1
            )
            try:
                policy_store.compare_and_set(current.version, new)
            except ConflictError:
                with lock:
                    conflicts.append(worker)
            else:
                with lock:
                    wins.append(new.version)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) + len(conflicts) == 60
    assert sorted(wins) == list(range(2, 2 + len(wins)))
    assert [p.version for p in policy_store.history(limit=100)] == list(range(1 + len(wins), 0, -1))
