"""Connecting to Redis, naming the keys, and translating redis-py errors at this edge.

Every Redis store connects through ``connect``, so they agree on the settings: socket connect and
read timeouts (``timeout_secs``, 1 s by default, so an unreachable or frozen server costs the
caller at most that long per call, never a hang) and **no automatic retries**. redis-py 6+
retries a failed command up to ten times with backoff by default; a retried compare-and-set whose
reply was lost would report a conflict on its own write, so retrying is left to the caller (a
TransientError from a write means its outcome is unknown: read again before retrying). A pooled
connection that the server closed (a restart) is replaced on its next use without a retry.

``RedisKeys`` names every key of one deployment. The prefix sits in a hash tag (``{qt}``), so
all keys hash to one Redis Cluster slot and a Lua script or transaction may touch several.

redis-py errors never leave this package raw: ``translating`` maps them onto the package's
error tree, with ``raise ... from`` so the original stays attached:

=====================================================  =======================================
redis-py error                                          raised as
=====================================================  =======================================
ConnectionError, TimeoutError (and socket OSError)     TransientError (server down, slow, busy
BusyLoadingError, ReadOnlyError, OutOfMemoryError      loading, failing over: retry later)
TryAgainError, ClusterDownError
AuthenticationError, AuthorizationError,               ConfigError (wrong credentials or ACL:
NoPermissionError, DataError                           retrying will not help)
ResponseError ``WRONGTYPE`` and any other ResponseError  IntegrityError naming the keys
any other RedisError                                   TransientError
=====================================================  =======================================
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    AuthorizationError,
    BusyLoadingError,
    ClusterDownError,
    DataError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from quantum_trader.domain.errors import (
    ConfigError,
    IntegrityError,
    QuantumTraderError,
    TransientError,
)

DEFAULT_PREFIX: Final = "qt"
"""The key prefix of a deployment that names none."""

DEFAULT_TIMEOUT_SECS: Final = 1.0
"""Socket connect and read timeout of every Redis call, in seconds."""

_PREFIX_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """The keys of one deployment, all in the hash tag ``{prefix}`` (one Redis Cluster slot).

    Attributes:
        prefix: 1 to 64 characters from ``A-Z a-z 0-9 _ . : -`` (no braces: they would break
            the hash tag); ConfigError otherwise.
    """

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        """Refuse a prefix that is empty, too long or holds characters outside the set."""
        if not isinstance(self.prefix, str) or not _PREFIX_PATTERN.fullmatch(self.prefix):
            raise ConfigError(
                f"redis key prefix must be 1 to 64 characters from A-Z a-z 0-9 _ . : -, "
                f"got {self.prefix!r}"
            )

    @property
    def hash_tag(self) -> str:
        """The ``{prefix}`` part every key starts with; Redis Cluster hashes only this."""
        return "{" + self.prefix + "}"

    @property
    def policy_versions(self) -> str:
        """Hash of every stored policy version: field = version number, value = JSON document."""
        return f"{self.hash_tag}:policy:versions"

    @property
    def policy_current(self) -> str:
        """String holding the newest policy version number."""
        return f"{self.hash_tag}:policy:current"

    @property
    def ess_state(self) -> str:
        """String holding the ESS latch as a JSON object."""
        return f"{self.hash_tag}:ess:state"

    @property
    def ess_channel(self) -> str:
        """Pub/sub channel on which every write of the ESS latch is broadcast."""
        return f"{self.hash_tag}:ess:changed"

    @property
    def equity_marks(self) -> str:
        """String holding the equity marks as a JSON object."""
        return f"{self.hash_tag}:equity:marks"

    def all(self) -> tuple[str, ...]:
        """Return every key the stores may write, in a fixed order."""
        return (self.policy_versions, self.policy_current, self.ess_state, self.equity_marks)


def connect(url: str, *, timeout_secs: float = DEFAULT_TIMEOUT_SECS) -> redis.Redis:
    """Return a client for ``url`` (``redis://host:port/db``, ``rediss://``, ``unix://``).

    No connection is made until the first command. ``timeout_secs`` bounds connecting and every
    reply; failed commands are not retried (see the module docstring). ConfigError when the URL
    or the timeout is invalid. The caller closes the client.
    """
    if isinstance(timeout_secs, bool) or not isinstance(timeout_secs, int | float):
        raise ConfigError(f"redis timeout_secs must be a number, got {timeout_secs!r}")
    if not 0 < timeout_secs <= 60:
        raise ConfigError(f"redis timeout_secs must be in (0, 60], got {timeout_secs!r}")
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout_secs,
            socket_connect_timeout=timeout_secs,
            retry=Retry(NoBackoff(), 0),
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid redis URL {_redacted(url)!r}: {exc}") from exc


def translated(exc: RedisError | OSError, what: str) -> QuantumTraderError:
    """Return the package error for ``exc``, met while working on ``what`` (raise it ``from``)."""
    if isinstance(
        exc,
        AuthenticationError
        | AuthorizationError
        | NoPermissionError
        | AuthenticationWrongNumberOfArgsError,
    ):
        return ConfigError(f"{what}: Redis refused the credentials or permissions: {exc}")
    if isinstance(exc, DataError):
        return ConfigError(f"{what}: redis-py refused the arguments: {exc}")
    if isinstance(
        exc,
        RedisConnectionError
        | RedisTimeoutError
        | OSError
        | BusyLoadingError
        | ReadOnlyError
        | OutOfMemoryError
        | TryAgainError
        | ClusterDownError,
    ):
        return TransientError(f"{what}: Redis is unreachable or busy: {exc}")
    if isinstance(exc, ResponseError):
        if "WRONGTYPE" in str(exc):
            return IntegrityError(f"{what}: a key holds the wrong Redis type: {exc}")
        return IntegrityError(f"{what}: Redis refused the command: {exc}")
    return TransientError(f"{what}: Redis failed: {exc}")


@contextmanager
def translating(what: str) -> Iterator[None]:
    """Turn any redis-py (or socket) error raised in the block into the package's error."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise translated(exc, what) from exc


def _redacted(url: str) -> str:
    # Never echo a password: drop everything between the scheme and the last '@'.
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url
