"""One frozen dataclass (the ESS latch, the equity marks) as a JSON object in one Redis string.

The JSON object has exactly one member per dataclass field. Values are checked both ways: a
record whose fields have the wrong type, a non-finite float or an integer outside 64 bits is
refused with IntegrityError before anything is written; a stored value that is not such an
object (bad JSON, a missing or unknown member, a member of the wrong type, or a key of another
Redis type) raises IntegrityError naming the key. Floats go through ``repr`` in JSON, so they
come back bit for bit; integers of any size below 2**63 stay exact.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import fields
from typing import Any, ClassVar, Final, Generic, Self, TypeVar

import redis

from quantum_trader.domain.errors import IntegrityError
from quantum_trader.stores.redis.connection import (
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT_SECS,
    RedisKeys,
    connect,
    translating,
)

_R = TypeVar("_R")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def _fits(value: object, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX
    if kind is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, kind)


def _describe(kind: type) -> str:
    return {float: "finite float", int: "64-bit int"}.get(kind, kind.__name__)


class JsonRecord(Generic[_R]):
    """Load and save one record of dataclass ``kind`` as JSON in the string at ``key``."""

    def __init__(self, client: redis.Redis, key: str, name: str, kind: type[_R]) -> None:
        """Keep records of ``kind`` (called ``name`` in messages) at ``key`` through ``client``."""
        self.key = key
        self._client = client
        self._name = name
        self._kind = kind
        hints = typing.get_type_hints(kind)
        self._types: dict[str, type] = {f.name: hints[f.name] for f in fields(kind)}  # type: ignore[arg-type]
        self._what = f"{name} at redis key {key}"

    def load(self) -> _R | None:
        """Return the stored record, or None when none was saved."""
        with translating(self._what):
            raw = self._client.get(self.key)
        return None if raw is None else self._decode(raw)

    def save(self, record: _R, *, notify: str | None = None) -> None:
        """Replace the stored record with ``record`` in one SET.

        With ``notify`` (a pub/sub channel) the same document is published there in the same
        MULTI/EXEC transaction, so a subscriber never hears of a write that did not happen.
        """
        if not isinstance(record, self._kind):
            raise IntegrityError(f"refusing to store {self._name}: got {type(record).__name__}")
        values: dict[str, Any] = {}
        for name, kind in self._types.items():
            value = getattr(record, name)
            if not _fits(value, kind):
                raise IntegrityError(
                    f"refusing to store {self._name}: {name}={value!r} is not a {_describe(kind)}"
                )
            values[name] = float(value) if kind is float else value
        document = json.dumps(values, allow_nan=False)
        with translating(self._what):
            if notify is None:
                self._client.set(self.key, document)
            else:
                pipe = self._client.pipeline(transaction=True)
                pipe.set(self.key, document)
                pipe.publish(notify, document)
                pipe.execute()

    def decode(self, raw: bytes | str) -> _R:
        """The record a stored (or published) document holds; IntegrityError if it is not one."""
        return self._decode(raw)

    def _decode(self, raw: Any) -> _R:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise IntegrityError(f"redis key {self.key} is corrupt: not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise IntegrityError(
                f"redis key {self.key} is corrupt: holds a JSON {type(data).__name__}, "
                f"not an object"
            )
        missing = sorted(set(self._types) - set(data))
        unknown = sorted(set(data) - set(self._types))
        if missing or unknown:
            raise IntegrityError(
                f"redis key {self.key} is corrupt: missing fields {missing}, unknown fields "
                f"{unknown}"
            )
        values: dict[str, Any] = {}
        for name, kind in self._types.items():
            value = data[name]
            if not _fits(value, kind):
                raise IntegrityError(
                    f"redis key {self.key} is corrupt: field {name} holds {value!r}, "
                    f"not a {_describe(kind)}"
                )
            values[name] = float(value) if kind is float else value
        return self._kind(**values)


class RecordStore(Generic[_R]):
    """What the ESS and equity-marks stores share: keys, client ownership, ``from_url``.

    A subclass names its record ``_name``, which is also the ``RedisKeys`` property of its key,
    and its dataclass ``_kind``.
    """

    _name: ClassVar[str]
    _kind: type[_R]

    def __init__(self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        """Use ``client`` (not closed by ``close``) and the keys under ``prefix``.

        Raises ConfigError when ``prefix`` is not a valid key prefix (see ``RedisKeys``).
        """
        self.keys = RedisKeys(prefix)
        self._client = client
        self._owns_client = False
        key: str = getattr(self.keys, self._name)
        self._record = JsonRecord(client, key, self._name, self._kind)

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

    @property
    def key(self) -> str:
        """The Redis key that holds the record."""
        return self._record.key

    def close(self) -> None:
        """Close the client if ``from_url`` opened it; a client passed in stays open."""
        if self._owns_client:
            self._client.close()
