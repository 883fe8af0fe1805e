"""Backends for the store contract suites: every test here runs once per backend.

Add a backend by adding an opener to ``OPENERS``; the suites need no change. ``redis`` is the
one backend that needs a server: a session-scoped ``redis_server`` (our own ``redis-server`` on a
free port, never a shared one) serves every test, and each test gets its own key prefix, so
tests never see each other's keys. Without ``redis-server`` on PATH the Redis tests skip with
the reason, unless ``QT_REQUIRE_REDIS=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quantum_trader.engine.stores import StateStores, open_state_stores
from quantum_trader.stores.ports import EquityMarksStore, EssStateStore, PolicyStore
from quantum_trader.stores.redis import (
    RedisEquityMarksStore,
    RedisEssStateStore,
    RedisPolicyStore,
    RedisTradeStateStore,
    connect,
)
from quantum_trader.testing.redis_server import RedisServer, RedisServerNotFoundError

Opener = Callable[[Path], StateStores]

OPENERS: dict[str, Opener] = {
    "memory": lambda _tmp: open_state_stores(None),
    "sqlite": lambda tmp: open_state_stores(tmp / "state.db"),
}


REDIS = "redis"
"""The backend that needs ``redis_server``; it is opened by ``open_redis_stores``."""


def new_redis_server() -> RedisServer:
    """Start a private ``redis-server``; skip when it is not installed (fail if required)."""
    try:
        server = RedisServer()
    except RedisServerNotFoundError as exc:
        if os.environ.get("QT_REQUIRE_REDIS") == "1":
            pytest.fail(f"{exc} (QT_REQUIRE_REDIS=1 makes this a failure)")
        pytest.skip(str(exc))
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private Redis server for the whole session (tests keep apart by key prefix)."""
    server = new_redis_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_redis_server() -> Iterator[RedisServer]:
    """A Redis server for one test alone (fault tests stop and restart it)."""
    server = new_redis_server()
    try:
        yield server
    finally:
        server.close()


def fresh_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test alone."""
    return fresh_prefix()


@pytest.fixture
def private_redis_stores(
    private_redis_server: RedisServer, redis_prefix: str
) -> Iterator[StateStores]:
    """The Redis state stores on ``private_redis_server`` (1 s timeouts, one shared client)."""
    stores = open_redis_stores(private_redis_server.url, redis_prefix)
    try:
        yield stores
    finally:
        stores.close()


def open_redis_stores(url: str, prefix: str) -> StateStores:
    """The Redis state stores under ``prefix``, sharing one client that ``close`` closes."""
    client = connect(url)
    return StateStores(
        RedisPolicyStore(client, prefix=prefix),
        RedisEssStateStore(client, prefix=prefix),
        RedisEquityMarksStore(client, prefix=prefix),
        (client.close,),
        trades=RedisTradeStateStore(client, prefix=prefix),
    )


@pytest.fixture(params=sorted([*OPENERS, REDIS]))
def state_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStores]:
    """The state stores of one backend, fresh and empty."""
    if request.param == REDIS:
        server: RedisServer = request.getfixturevalue("redis_server")
        stores = open_redis_stores(server.url, fresh_prefix())
    else:
        stores = OPENERS[request.param](tmp_path)
    try:
        yield stores
    finally:
        stores.close()


@pytest.fixture
def policy_store(state_stores: StateStores) -> PolicyStore:
    """The backend's PolicyStore."""
    return state_stores.policy


@pytest.fixture
def ess_store(state_stores: StateStores) -> EssStateStore:
    """The backend's EssStateStore."""
    return state_stores.ess


@pytest.fixture
def equity_marks_store(state_stores: StateStores) -> EquityMarksStore:
    """The backend's EquityMarksStore."""
    return state_stores.equity_marks
