"""Store ports: what the safety core needs to keep across restarts and processes.

Core code (``risk``, ``engine`` services) depends on these protocols only; backends implement
them (``stores/memory``, ``stores/sqlite``; Redis joins in a later issue) and one contract test
suite per port runs against every backend. The ports are synchronous: the backtest calls them on
its hot path, and a network backend can implement them with a synchronous client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from quantum_trader.domain.policy import Policy


class PolicyStore(Protocol):
    """The versioned policy document."""

    def get(self) -> Policy:
        """The current policy (the default policy, stored as version 1, if none exists yet)."""
        ...

    def compare_and_set(self, expected_version: int, new: Policy) -> Policy:
        """Store ``new`` if the stored version is still ``expected_version``.

        ``new.version`` must be ``expected_version + 1``. Raises ConflictError, and writes
        nothing, when another writer got there first.
        """
        ...

    def history(self, limit: int = 50) -> Sequence[Policy]:
        """Stored versions, newest first."""
        ...


@dataclass(frozen=True, slots=True)
class EssState:
    """The Emergency Stop System's latch, as stored.

    ``active`` stays True until a person resets it; ``activations`` counts every activation
    ever made (a repeat trigger while active is counted in ``ignored_triggers``).
    """

    active: bool = False
    reason: str = ""
    severity: str = ""
    activated_at_ns: int = 0
    activated_by: str = ""
    reset_at_ns: int = 0
    reset_by: str = ""
    reset_reason: str = ""
    activations: int = 0
    ignored_triggers: int = 0


class EssStateStore(Protocol):
    """Where the ESS latch lives, so it survives restarts and is shared by processes."""

    def load(self) -> EssState:
        """The stored state (inactive if none was stored)."""
        ...

    def save(self, state: EssState) -> None:
        """Store ``state`` atomically."""
        ...


@dataclass(frozen=True, slots=True)
class EquityMarks:
    """What the drawdown monitor keeps: the equity peak and the UTC start-of-day equity."""

    peak_equity: float = 0.0
    peak_ts_ns: int = 0
    day_start_equity: float = 0.0
    day: str = ""


class EquityMarksStore(Protocol):
    """Durable equity peak and start-of-day equity."""

    def load(self) -> EquityMarks:
        """The stored marks (zeros if none)."""
        ...

    def save(self, marks: EquityMarks) -> None:
        """Store ``marks`` atomically."""
        ...
