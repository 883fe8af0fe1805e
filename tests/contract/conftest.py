"""Backends for the store contract suites: every test here runs once per backend.

Add a backend by adding an opener to ``OPENERS``; the suites need no change. Redis joins in a
later issue as ``"redis": _open_redis`` (opening the stores on a test database, and skipping
with the reason when no server is reachable, unless CI requires it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quantum_trader.engine.stores import StateStores, open_state_stores
from quantum_trader.stores.ports import EquityMarksStore, EssStateStore, PolicyStore

Opener = Callable[[Path], StateStores]

OPENERS: dict[str, Opener] = {
    "memory": lambda _tmp: open_state_stores(None),
    "sqlite": lambda tmp: open_state_stores(tmp / "state.db"),
}


@pytest.fixture(params=sorted(OPENERS))
def state_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStores]:
    """The three state stores of one backend, fresh and empty."""
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
