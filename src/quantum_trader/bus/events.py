"""The bus event: one immutable message with a unique id, and its JSON encoding.

An event id is 32 lowercase hex digits (128 bits), laid out like a ULID but in nanoseconds::

    ts_ns (64 bits, from the Clock) | process bits (32, random per generator) | counter (32)

Ids from one generator sort in creation order (the counter breaks ties when the clock stands
still, as a ManualClock does); ids from different processes differ by their process bits. Seed
the generator and the ids are deterministic, which tests and backtests need.

The encoding is orjson (UTF-8 JSON, so it never contains the byte 0xFF, which the spool's
record marker relies on). ``decode`` accepts only what ``encode`` writes and raises
IntegrityError for anything else. Payload values must be JSON-able: str, int (64-bit), float,
bool, None, lists and str-keyed dicts; tuples come back as lists and non-finite floats as None.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from quantum_trader.domain.clock import Clock
from quantum_trader.domain.errors import IntegrityError

JsonValue: TypeAlias = (
    "None | bool | int | float | str | Sequence[JsonValue] | Mapping[str, JsonValue]"
)
"""A value orjson encodes and decodes (decoded containers are lists and dicts)."""

_MAX_TS_NS = (1 << 63) - 1
_FIELDS = frozenset(("event_id", "topic", "ts_ns", "source", "payload"))
_MASK_32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Event:
    """One message on the bus; it never changes after it is made.

    Attributes:
        event_id: Unique id; consumers drop a second event with the same id.
        topic: Routing key, a short code such as ``orders``, ``fills``, ``risk``, ``ess``.
        ts_ns: When the event was made, in nanoseconds since the epoch (from the Clock).
        payload: The event's data, JSON-able values only.
        source: Name of the process that made the event.
    """

    event_id: str
    topic: str
    ts_ns: int
    payload: Mapping[str, JsonValue]
    source: str

    def encode(self) -> bytes:
        """Return the event as UTF-8 JSON; TypeError if the payload is not JSON-able."""
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "topic": self.topic,
                "ts_ns": self.ts_ns,
                "source": self.source,
                "payload": self.payload,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Event:
        """Return the event ``data`` encodes; IntegrityError if ``data`` is not one."""
        try:
            raw = orjson.loads(data)
        except (orjson.JSONDecodeError, ValueError, TypeError, RecursionError) as exc:
            raise IntegrityError(f"event is not valid JSON: {exc}") from exc
        return cls._from_mapping(raw)

    @classmethod
    def _from_mapping(cls, raw: Any) -> Event:
        if not isinstance(raw, dict) or raw.keys() != _FIELDS:
            raise IntegrityError("event must be a JSON object with exactly the event fields")
        event_id, topic, ts_ns = raw["event_id"], raw["topic"], raw["ts_ns"]
        source, payload = raw["source"], raw["payload"]
        if not (isinstance(event_id, str) and event_id):
            raise IntegrityError("event_id must be a non-empty string")
        if not (isinstance(topic, str) and topic):
            raise IntegrityError("topic must be a non-empty string")
        if type(ts_ns) is not int or not 0 <= ts_ns <= _MAX_TS_NS:
            raise IntegrityError("ts_ns must be an integer in 0..2**63-1")
        if not isinstance(source, str):
            raise IntegrityError("source must be a string")
        if not isinstance(payload, dict):
            raise IntegrityError("payload must be a JSON object")
        return cls(event_id, topic, ts_ns, payload, source)


class EventIdGenerator:
    """Make unique, time-ordered event ids from a Clock; deterministic when seeded."""

    __slots__ = ("_clock", "_counter", "_process_hex")

    def __init__(self, clock: Clock, *, seed: int | None = None) -> None:
        """Read time from ``clock``; ``seed`` fixes the process bits (tests, backtests)."""
        self._clock = clock
        if seed is None:
            process_bits = secrets.randbits(32)
        else:
            digest = hashlib.blake2b(str(seed).encode(), digest_size=4).digest()
            process_bits = int.from_bytes(digest, "big")
        self._process_hex = f"{process_bits:08x}"
        self._counter = 0

    def next_id(self, ts_ns: int | None = None) -> str:
        """Return a new id: 16 hex digits of time, 8 of process bits, 8 of counter.

        Args:
            ts_ns: The time to put in the id; the clock's time when None.
        """
        if ts_ns is None:
            ts_ns = self._clock.now_ns()
        self._counter = counter = (self._counter + 1) & _MASK_32
        return f"{ts_ns & _MAX_TS_NS:016x}{self._process_hex}{counter:08x}"


class EventFactory:
    """Make events stamped by one Clock and one source process name."""

    __slots__ = ("_clock", "_ids", "source")

    def __init__(self, clock: Clock, source: str, *, seed: int | None = None) -> None:
        """Stamp events with ``clock`` and ``source``; ``seed`` makes the ids deterministic."""
        self._clock = clock
        self._ids = EventIdGenerator(clock, seed=seed)
        self.source = source

    def create(self, topic: str, payload: Mapping[str, JsonValue] | None = None) -> Event:
        """Return a new event on ``topic`` with a fresh id and the clock's time."""
        ts_ns = self._clock.now_ns()
        return Event(
            self._ids.next_id(ts_ns),
            topic,
            ts_ns,
            {} if payload is None else payload,
            self.source,
        )
