"""Fixtures of the bus tests: a manual clock and a seeded event factory."""

from __future__ import annotations

import pytest

from quantum_trader.bus.events import EventFactory
from quantum_trader.domain.clock import ManualClock

START_NS = 1_700_000_000_000_000_000


@pytest.fixture
def clock() -> ManualClock:
    """A clock at a fixed instant, moved only by the test."""
    return ManualClock(START_NS)


@pytest.fixture
def factory(clock: ManualClock) -> EventFactory:
    """Events from process ``test`` with deterministic ids."""
    return EventFactory(clock, "test", seed=7)
