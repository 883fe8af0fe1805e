"""SqlitePolicyStore: the versioned policy document in table ``policy_versions``.

One row per version (``version`` is the primary key), the document as JSON of
``Policy.to_dict``. ``compare_and_set`` reads the newest version and inserts the next one inside
one ``BEGIN IMMEDIATE`` transaction, so of two writers (threads or processes) holding the same
expected version exactly one wins and the other gets ConflictError. A row that cannot be read
back into a valid Policy raises IntegrityError naming the table and version.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantum_trader.domain.errors import ConfigError, ConflictError, IntegrityError
from quantum_trader.domain.policy import Policy
from quantum_trader.stores.sqlite.connection import (
    DEFAULT_BUSY_TIMEOUT_MS,
    connect,
    transaction,
    translating,
)

TABLE = "policy_versions"
_SELECT = f"SELECT version, document FROM {TABLE}"  # noqa: S608 - constant table name
_INSERT = (
    f"INSERT INTO {TABLE} (version, document, updated_at_ns, updated_by, reason)"  # noqa: S608
    " VALUES (?, ?, ?, ?, ?)"
)


class SqlitePolicyStore:
    """The PolicyStore on a SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        """Open (creating and migrating if needed) the state database at ``path``."""
        self.path = Path(path)
        self._what = f"{TABLE} in {self.path}"
        self._conn = connect(self.path, busy_timeout_ms=busy_timeout_ms)
        self._lock = threading.Lock()

    def get(self) -> Policy:
        """Return the newest policy (storing the default as version 1 if there is none)."""
        with self._lock, translating(self._what):
            row = self._conn.execute(f"{_SELECT} ORDER BY version DESC LIMIT 1").fetchone()
            if row is None:
                with transaction(self._conn):
                    return self._newest_or_seed()
        return _decode(row)

    def compare_and_set(self, expected_version: int, new: Policy) -> Policy:
        """Store ``new`` if the newest version is still ``expected_version``; else ConflictError."""
        _check_next(expected_version, new)
        with self._lock, translating(self._what), transaction(self._conn):
            current = self._newest_or_seed().version
            if current != expected_version:
                raise ConflictError(
                    f"policy changed since you read it: expected version {expected_version}, "
                    f"store has {current}"
                )
            self._insert(new)
        return new

    def history(self, limit: int = 50) -> Sequence[Policy]:
        """Return up to ``limit`` stored versions, newest first."""
        if limit < 1:
            raise ConfigError(f"policy history limit must be >= 1, got {limit}")
        with self._lock, translating(self._what):
            rows = self._conn.execute(
                f"{_SELECT} ORDER BY version DESC LIMIT ?", (limit,)
            ).fetchall()
            if not rows:
                with transaction(self._conn):
                    return [self._newest_or_seed()]
        return [_decode(row) for row in rows]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def _newest_or_seed(self) -> Policy:
        # Inside a write transaction: the newest stored version, or the default stored as v1.
        row = self._conn.execute(f"{_SELECT} ORDER BY version DESC LIMIT 1").fetchone()
        if row is not None:
            return _decode(row)
        default = Policy()
        self._insert(default)
        return default

    def _insert(self, policy: Policy) -> None:
        document = json.dumps(policy.to_dict(), sort_keys=True, allow_nan=False)
        self._conn.execute(
            _INSERT,
            (policy.version, document, policy.updated_at_ns, policy.updated_by, policy.reason),
        )


def _check_next(expected_version: int, new: Policy) -> None:
    if not isinstance(new, Policy):
        raise ConfigError(f"compare_and_set needs a Policy, got {type(new).__name__}")
    if new.version != expected_version + 1:
        raise ConfigError(
            f"a policy written over version {expected_version} must be version "
            f"{expected_version + 1}, got {new.version}"
        )


def _decode(row: tuple[Any, ...]) -> Policy:
    version, document = row
    try:
        data = json.loads(document)
        if not isinstance(data, dict):
            raise TypeError(f"the document is a JSON {type(data).__name__}, not an object")
        policy = Policy.from_dict(data)
    except (ValueError, TypeError, KeyError, AttributeError, ConfigError) as exc:
        raise IntegrityError(f"{TABLE} version {version} is corrupt: {exc}") from exc
    if policy.version != version:
        raise IntegrityError(
            f"{TABLE} version {version} is corrupt: its document says version {policy.version}"
        )
    return policy
