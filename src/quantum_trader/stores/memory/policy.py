"""InMemoryPolicyStore: the versioned policy document in a list, for tests and fakes.

Same contract as the SQLite store (the contract suite runs against both): the default policy is
stored as version 1 on first use, compare-and-set is atomic under a lock, and every policy handed
in or out is a copy, so no caller can change a stored version by mutating its ``limits`` dict.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from quantum_trader.domain.errors import ConfigError, ConflictError
from quantum_trader.domain.policy import Policy


class InMemoryPolicyStore:
    """A thread-safe PolicyStore that lives as long as the object does."""

    def __init__(self) -> None:
        """Start empty: the first read stores the default policy as version 1."""
        self._versions: list[Policy] = []
        self._lock = threading.Lock()

    def get(self) -> Policy:
        """Return the newest policy (storing the default as version 1 if there is none)."""
        with self._lock:
            return _copy(self._newest_or_seed())

    def compare_and_set(self, expected_version: int, new: Policy) -> Policy:
        """Store ``new`` if the newest version is still ``expected_version``; else ConflictError."""
        if not isinstance(new, Policy):
            raise ConfigError(f"compare_and_set needs a Policy, got {type(new).__name__}")
        if new.version != expected_version + 1:
            raise ConfigError(
                f"a policy written over version {expected_version} must be version "
                f"{expected_version + 1}, got {new.version}"
            )
        with self._lock:
            current = self._newest_or_seed().version
            if current != expected_version:
                raise ConflictError(
                    f"policy changed since you read it: expected version {expected_version}, "
                    f"store has {current}"
                )
            self._versions.append(_copy(new))
        return new

    def history(self, limit: int = 50) -> Sequence[Policy]:
        """Return up to ``limit`` stored versions, newest first."""
        if limit < 1:
            raise ConfigError(f"policy history limit must be >= 1, got {limit}")
        with self._lock:
            self._newest_or_seed()
            return [_copy(p) for p in reversed(self._versions[-limit:])]

    def _newest_or_seed(self) -> Policy:
        if not self._versions:
            self._versions.append(Policy())
        return self._versions[-1]


def _copy(policy: Policy) -> Policy:
    # ModeLimits are frozen; only the dict that holds them can be mutated, so copy that.
    return replace(policy, limits=dict(policy.limits))
