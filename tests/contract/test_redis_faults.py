"""Redis faults: a stopped or frozen server gives TransientError quickly (never a redis-py error,
never a hang), and the stores work again once the server is back. Each test has its own server,
so stopping it cannot disturb the other tests."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from quantum_trader.domain.errors import ConflictError, TransientError
from quantum_trader.domain.policy import Policy, RiskMode
from quantum_trader.engine.stores import StateStores
from quantum_trader.stores.ports import EquityMarks, EssState
from quantum_trader.stores.redis import RedisPolicyStore
from quantum_trader.testing.redis_server import RedisServer

TS = 1_700_000_000_000_000_000
TIMEOUT_BOUND_SECS = 2.0


@pytest.fixture
def server(private_redis_server: RedisServer) -> RedisServer:
    """A Redis server for this test alone, so stopping it disturbs no other test."""
    return private_redis_server


@pytest.fixture
def stores(private_redis_stores: StateStores) -> StateStores:
    """The Redis state stores on ``server``, with the default 1 s timeouts."""
    return private_redis_stores


def _calls(stores: StateStores) -> list[tuple[str, Callable[[], Any]]]:
    next_policy = Policy().changed(actor="t", reason="fault", ts_ns=TS, mode=RiskMode.SAFE)
    return [
        ("policy.get", stores.policy.get),
        ("policy.history", stores.policy.history),
        ("policy.compare_and_set", lambda: stores.policy.compare_and_set(1, next_policy)),
        ("ess.load", stores.ess.load),
        ("ess.save", lambda: stores.ess.save(EssState(active=True))),
        ("equity_marks.load", stores.equity_marks.load),
        ("equity_marks.save", lambda: stores.equity_marks.save(EquityMarks(1.0, 1, 1.0, "d"))),
    ]


def _assert_transient_and_fast(name: str, call: Callable[[], Any]) -> None:
    started = time.monotonic()
    with pytest.raises(TransientError) as raised:
        call()
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT_BOUND_SECS, (name, elapsed)
    assert not isinstance(raised.value, redis.RedisError), name
    assert isinstance(raised.value.__cause__, redis.RedisError | OSError), name


def test_stores_when_server_stopped_raise_transient_error_then_recover_after_restart(
    server: RedisServer, stores: StateStores
) -> None:
    latched = EssState(active=True, reason="before the outage", activations=1)
    stores.ess.save(latched)
    assert stores.policy.get() == Policy()
    port = server.port

    server.stop()
    for name, call in _calls(stores):
        _assert_transient_and_fast(name, call)

    server.start()
    assert server.port == port
    # Nothing is persisted by the test server: the restarted one is empty, and usable.
    assert stores.ess.load() == EssState()
    stores.ess.save(latched)
    assert stores.ess.load() == latched
    policy = stores.policy.get()
    assert policy == Policy()
    stores.policy.compare_and_set(1, policy.changed(actor="t", reason="back", ts_ns=TS))
    assert stores.policy.get().version == 2
    stores.equity_marks.save(EquityMarks(2.0, 2, 2.0, "2024-01-02"))
    assert stores.equity_marks.load().peak_equity == 2.0


def test_stores_when_server_frozen_time_out_with_transient_error_then_recover(
    server: RedisServer, stores: StateStores
) -> None:
    stores.policy.get()
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        _assert_transient_and_fast("policy.get", stores.policy.get)
        _assert_transient_and_fast("ess.load", stores.ess.load)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert stores.policy.get() == Policy()
    assert stores.ess.load() == EssState()


def test_compare_and_set_when_server_down_writes_nothing_and_conflicts_stay_conflicts(
    server: RedisServer, stores: StateStores
) -> None:
    first = stores.policy.get()
    server.stop()
    with pytest.raises(TransientError):
        stores.policy.compare_and_set(1, first.changed(actor="t", reason="down", ts_ns=TS))
    server.start()
    winner = stores.policy.get().changed(actor="t", reason="up", ts_ns=TS, mode=RiskMode.SAFE)
    stores.policy.compare_and_set(1, winner)
    with pytest.raises(ConflictError, match="expected version 1, store has 2"):
        stores.policy.compare_and_set(1, winner)


def test_from_url_when_nothing_listens_raises_transient_error_on_first_call(
    server: RedisServer, redis_prefix: str
) -> None:
    server.stop()
    store = RedisPolicyStore.from_url(server.url, prefix=redis_prefix, timeout_secs=0.5)
    try:
        _assert_transient_and_fast("policy.get", store.get)
    finally:
        store.close()


def test_redis_server_when_restarted_keeps_port_and_answers(server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url, socket_timeout=1.0)
    try:
        assert client.ping() is True
        first_pid = server.pid
        server.stop()
        assert not server.running
        assert server.pid is None
        server.stop()  # stopping twice is a no-op
        server.start()
        assert server.running
        assert server.pid != first_pid
        assert client.ping() is True
    finally:
        client.close()
