"""RedisPolicyStore: the versioned policy document in two keys of one hash tag.

``{prefix}:policy:versions`` is a hash from version number to the JSON of ``Policy.to_dict``;
``{prefix}:policy:current`` holds the newest version number. Every operation is one Lua script
(EVALSHA, loaded again by redis-py after a server restart), so it is atomic across processes:
``compare_and_set`` reads the current version, compares it and writes the next version in one
step, and of two writers holding the same expected version exactly one wins, the other gets
ConflictError. Reads store the default policy as version 1 when the store is empty, atomically,
so two processes starting at once agree on version 1. A value that cannot be read back into a
valid Policy raises IntegrityError naming the key and version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, Self

import redis

from quantum_trader.domain.errors import ConfigError, ConflictError, IntegrityError
from quantum_trader.domain.policy import Policy
from quantum_trader.stores.redis.connection import (
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT_SECS,
    RedisKeys,
    connect,
    translating,
)

# KEYS[1] versions hash, KEYS[2] current version. ARGV[1] the default policy's JSON.
_SEED: Final = """
local current = redis.call('GET', KEYS[2])
if not current then
  redis.call('HSET', KEYS[1], '1', ARGV[1])
  redis.call('SET', KEYS[2], '1')
  current = '1'
end
"""

# Returns {current, document of current (or false)}.
_GET_LUA: Final = (
    _SEED
    + """
return {current, redis.call('HGET', KEYS[1], current)}
"""
)

# ARGV[2] limit. Returns {current, {documents of current, current - 1, ...}} (false if missing);
# an unparsable current comes back with no documents, for the caller to report.
_HISTORY_LUA: Final = (
    _SEED
    + """
local newest = tonumber(current)
local documents = {}
if newest == nil or newest < 1 or newest ~= math.floor(newest) then
  return {current, documents}
end
local oldest = math.max(1, newest - tonumber(ARGV[2]) + 1)
for version = newest, oldest, -1 do
  documents[#documents + 1] = redis.call('HGET', KEYS[1], string.format('%d', version))
end
return {current, documents}
"""
)

# ARGV[2] expected version, ARGV[3] new version, ARGV[4] new document.
# Returns {1, new version} when written, {0, current} when the version moved on.
_COMPARE_AND_SET_LUA: Final = (
    _SEED
    + """
if current ~= ARGV[2] then
  return {0, current}
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('SET', KEYS[2], ARGV[3])
return {1, ARGV[3]}
"""
)


class RedisPolicyStore:
    """The PolicyStore on Redis; safe to share between threads, processes and machines."""

    def __init__(self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        """Use ``client`` (not closed by ``close``) and the keys under ``prefix``.

        Raises ConfigError when ``prefix`` is not a valid key prefix (see ``RedisKeys``).
        """
        self.keys = RedisKeys(prefix)
        self._client = client
        self._owns_client = False
        self._what = f"policy keys {self.keys.policy_current}, {self.keys.policy_versions}"
        self._script_keys = [self.keys.policy_versions, self.keys.policy_current]
        self._default_document = _encode(Policy())
        self._get = client.register_script(_GET_LUA)
        self._history = client.register_script(_HISTORY_LUA)
        self._compare_and_set = client.register_script(_COMPARE_AND_SET_LUA)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, timeout_secs: float = DEFAULT_TIMEOUT_SECS
    ) -> Self:
        """Open a store on its own client for ``url``; ``close`` closes that client."""
        client = connect(url, timeout_secs=timeout_secs)
        try:
            store = cls(client, prefix=prefix)
        except BaseException:
            client.close()
            raise
        store._owns_client = True
        return store

    def get(self) -> Policy:
        """Return the newest policy (storing the default as version 1 if there is none)."""
        with translating(self._what):
            reply = self._get(keys=self._script_keys, args=[self._default_document])
        current, document = _pair(self.keys.policy_current, reply)
        version = _parse_version(self.keys.policy_current, current)
        return _decode(self.keys.policy_versions, version, document)

    def compare_and_set(self, expected_version: int, new: Policy) -> Policy:
        """Store ``new`` if the newest version is still ``expected_version``; else ConflictError."""
        _check_next(expected_version, new)
        document = _encode(new)
        with translating(self._what):
            reply = self._compare_and_set(
                keys=self._script_keys,
                args=[self._default_document, str(expected_version), str(new.version), document],
            )
        written, current = _pair(self.keys.policy_current, reply)
        if written != 1:
            stored = _parse_version(self.keys.policy_current, current)
            raise ConflictError(
                f"policy changed since you read it: expected version {expected_version}, "
                f"store has {stored}"
            )
        return new

    def history(self, limit: int = 50) -> Sequence[Policy]:
        """Return up to ``limit`` stored versions, newest first."""
        if limit < 1:
            raise ConfigError(f"policy history limit must be >= 1, got {limit}")
        with translating(self._what):
            reply = self._history(
                keys=self._script_keys, args=[self._default_document, str(int(limit))]
            )
        current, documents = _pair(self.keys.policy_current, reply)
        newest = _parse_version(self.keys.policy_current, current)
        if not isinstance(documents, list):
            raise IntegrityError(f"{self._what}: unexpected reply {reply!r}")
        return [
            _decode(self.keys.policy_versions, newest - offset, document)
            for offset, document in enumerate(documents)
        ]

    def close(self) -> None:
        """Close the client if ``from_url`` opened it; a client passed in stays open."""
        if self._owns_client:
            self._client.close()


def _check_next(expected_version: int, new: Policy) -> None:
    if not isinstance(new, Policy):
        raise ConfigError(f"compare_and_set needs a Policy, got {type(new).__name__}")
    if isinstance(expected_version, bool) or not isinstance(expected_version, int):
        raise ConfigError(f"expected_version must be an integer, got {expected_version!r}")
    if new.version != expected_version + 1:
        raise ConfigError(
            f"a policy written over version {expected_version} must be version "
            f"{expected_version + 1}, got {new.version}"
        )


def _encode(policy: Policy) -> str:
    return json.dumps(policy.to_dict(), sort_keys=True, allow_nan=False)


def _pair(key: str, reply: Any) -> tuple[Any, Any]:
    if not isinstance(reply, list) or len(reply) != 2:
        raise IntegrityError(f"redis key {key}: unexpected script reply {reply!r}")
    return reply[0], reply[1]


def _parse_version(key: str, raw: Any) -> int:
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
    if not (text.isascii() and text.isdigit() and text[0] != "0"):
        raise IntegrityError(
            f"redis key {key} is corrupt: holds {text!r}, not a policy version number"
        )
    return int(text)


def _decode(key: str, version: int, document: Any) -> Policy:
    if document is None:
        raise IntegrityError(f"redis key {key} is corrupt: it has no version {version}")
    try:
        data = json.loads(document)
        if not isinstance(data, dict):
            raise TypeError(f"the document is a JSON {type(data).__name__}, not an object")
        policy = Policy.from_dict(data)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, ConfigError) as exc:
        raise IntegrityError(f"redis key {key} version {version} is corrupt: {exc}") from exc
    if policy.version != version:
        raise IntegrityError(
            f"redis key {key} version {version} is corrupt: its document says version "
            f"{policy.version}"
        )
    return policy
