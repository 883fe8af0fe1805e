"""RedisStreamsBus: the event bus across processes, on Redis Streams (synchronous redis-py).

Keys: each topic is one stream ``{prefix}:bus:<topic>`` and its dead letters go to
``{prefix}:bus:dead:<topic>``; the prefix sits in a hash tag, so every bus key of a deployment
hashes to one Redis Cluster slot. Each entry holds the encoded event in the one field ``e``;
``XADD`` trims the stream to about ``maxlen`` entries (``MAXLEN ~``).

Publishing: ``publish`` is one ``XADD``; ``publish_batch`` sends every ``XADD`` in one pipeline
(one round trip), in order. A server that is down, refuses the connection or answers slower
than the socket timeout raises BusUnavailableError (a TransientError), so a SpoolingPublisher in
front of the bus spools the events; on that error some of the batch may have gone out.

Consuming: every bus belongs to one consumer ``group`` under its own ``consumer`` name; buses
sharing a group share the work (each entry goes to one of them). ``subscribe`` creates the group
(``XGROUP CREATE ... $ MKSTREAM``: the group sees events published from then on). ``poll`` reads
new entries with ``XREADGROUP`` and calls the topic's handlers in subscription order; an entry
is acknowledged (``XACK``) only once every handler returned. When a handler raises, the entry
stays pending; ``retry_pending`` claims entries idle for ``min_idle_ms`` (``XAUTOCLAIM``) and
delivers them again. The attempt that reaches ``max_deliveries`` and still fails moves the
entry to the dead-letter stream with the error text, and acknowledges it; so does an entry
claimed after more deliveries than that (its consumer died mid-handling), and an entry that
does not decode. Every handler of the topic runs again on a redelivery (at-least-once).

Duplicates (an event id handled before, within the Deduplicator's memory) are acknowledged and
dropped without calling the handlers; an id is remembered only once its handlers succeeded, so a
redelivery after a failure is not mistaken for a duplicate.

When Redis lost the group (a restart without persistence) ``poll`` recreates it from the
stream's start (``0``): everything in the new stream is new to the group.

Handler failures follow ``ErrorPolicy`` as in LocalBus: RAISE (default) raises
HandlerFailedError after the whole poll (the successful entries are acknowledged first);
REPORT calls ``on_error`` and returns normally. No redis-py exception leaves this module:
connection trouble is BusUnavailableError, refused credentials ConfigError, any other refused
command IntegrityError. Not thread-safe: use one bus from one thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    AuthorizationError,
    BusyLoadingError,
    ClusterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import DataError as RedisDataError
from redis.retry import Retry

from quantum_trader.bus.dedupe import Deduplicator
from quantum_trader.bus.errors import BusUnavailableError, HandlerFailedError, HandlerFailure
from quantum_trader.bus.events import Event
from quantum_trader.bus.local import ErrorPolicy
from quantum_trader.bus.ports import EventHandler
from quantum_trader.domain.errors import ConfigError, IntegrityError, QuantumTraderError

BROKER: Final = "redis"
"""The ``broker`` of the BusUnavailableError this bus raises."""

DEFAULT_PREFIX: Final = "qt"
"""The key prefix of a deployment that names none."""

DEFAULT_TIMEOUT_SECS: Final = 1.0
"""Socket connect and read timeout of ``from_url`` clients, in seconds."""

DEFAULT_MAXLEN: Final = 100_000
"""About how many entries each stream keeps (``XADD ... MAXLEN ~``)."""

DEFAULT_MAX_DELIVERIES: Final = 5
"""Handler attempts per entry before it goes to the dead-letter stream."""

FIELD: Final = "e"
"""The stream entry field holding the encoded event."""

_PREFIX_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_NAME_PATTERN: Final = re.compile(r"[^\s{}]{1,200}")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of a dead-letter stream.

    Attributes:
        entry_id: Its id in the dead-letter stream.
        source_id: The id it had in the topic stream.
        data: The entry's raw field (an encoded event, unless it was malformed).
        error: Why it was given up: the handler's last error, or the decoding error.
        deliveries: How many times it had been delivered.
        group: The consumer group that gave it up.
    """

    entry_id: str
    source_id: str
    data: bytes
    error: str
    deliveries: int
    group: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else value


def _translated(exc: RedisError | OSError, what: str) -> QuantumTraderError:
    # Copied from the stores' Redis edge (a backend this layer must not import), with every
    # "down, slow or busy" case turned into BusUnavailableError.
    if isinstance(
        exc,
        AuthenticationError
        | AuthorizationError
        | NoPermissionError
        | AuthenticationWrongNumberOfArgsError,
    ):
        return ConfigError(f"{what}: Redis refused the credentials or permissions: {exc}")
    if isinstance(exc, RedisDataError):
        return ConfigError(f"{what}: redis-py refused the arguments: {exc}")
    if isinstance(
        exc, BusyLoadingError | ReadOnlyError | OutOfMemoryError | TryAgainError | ClusterDownError
    ):
        return BusUnavailableError(f"{what}: Redis is busy: {exc}", broker=BROKER)
    if isinstance(exc, ResponseError):
        return IntegrityError(f"{what}: Redis refused the command: {exc}")
    return BusUnavailableError(f"{what}: Redis is unreachable or busy: {exc}", broker=BROKER)


@contextmanager
def _translating(what: str) -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise _translated(exc, what) from exc


def _no_group(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, ResponseError) and str(cause).startswith("NOGROUP")


class RedisStreamsBus:
    """An EventBus on Redis Streams: publish to streams, consume them in a consumer group.

    Attributes:
        published: Events written by ``publish``/``publish_batch``.
        delivered: Handler calls that returned normally.
        duplicates_dropped: Entries acknowledged without handling: their id was handled before.
        handler_errors: Handler calls that raised.
        redelivered: Entries ``retry_pending`` claimed and delivered again.
        dead_lettered: Entries moved to a dead-letter stream.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        group: str = "qt",
        consumer: str = "consumer-1",
        prefix: str = DEFAULT_PREFIX,
        maxlen: int = DEFAULT_MAXLEN,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        error_policy: ErrorPolicy = ErrorPolicy.RAISE,
        on_error: Callable[[HandlerFailure], None] | None = None,
        deduplicator: Deduplicator | None = None,
        dedupe: bool = True,
    ) -> None:
        """Make a bus on ``client`` (the caller closes it, or calls ``close``).

        Args:
            client: A redis-py client; give it socket timeouts and no retries (``from_url``).
            group: The consumer group; buses in one group share the entries.
            consumer: This bus's name within the group, unique among the group's consumers.
            prefix: The deployment's key prefix (1 to 64 of ``A-Z a-z 0-9 _ . : -``).
            maxlen: About how many entries each stream keeps (at least 1).
            max_deliveries: Handler attempts per entry before it is dead-lettered (at least 1).
            error_policy: Raise HandlerFailedError after a poll, or report each failure.
            on_error: Called with each handler failure; it must not raise.
            deduplicator: The id memory; a fresh one of 100,000 ids when None.
            dedupe: False to hand duplicates to the handlers too.

        Raises:
            ConfigError: An argument is out of range.
        """
        if not isinstance(prefix, str) or not _PREFIX_PATTERN.fullmatch(prefix):
            raise ConfigError(
                f"bus key prefix must be 1 to 64 characters from A-Z a-z 0-9 _ . : -, "
                f"got {prefix!r}"
            )
        for label, name in (("group", group), ("consumer", consumer)):
            if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
                raise ConfigError(f"bus {label} must be 1 to 200 non-space characters, no braces")
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
            raise ConfigError(f"maxlen must be an integer >= 1, got {maxlen!r}")
        if (
            isinstance(max_deliveries, bool)
            or not isinstance(max_deliveries, int)
            or max_deliveries < 1
        ):
            raise ConfigError(f"max_deliveries must be an integer >= 1, got {max_deliveries!r}")
        self._client = client
        self._tag = "{" + prefix + "}"
        self.group = group
        self.consumer = consumer
        self._maxlen = maxlen
        self._max_deliveries = max_deliveries
        self._policy = ErrorPolicy(error_policy)
        self._on_error = on_error
        self._dedupe = (deduplicator or Deduplicator()) if dedupe else None
        self._handlers: dict[str, tuple[EventHandler, ...]] = {}
        self._topic_of_key: dict[str, str] = {}
        self._failures: list[HandlerFailure] = []
        self.published = 0
        self.delivered = 0
        self.duplicates_dropped = 0
        self.handler_errors = 0
        self.redelivered = 0
        self.dead_lettered = 0

    @classmethod
    def from_url(
        cls, url: str, *, timeout_secs: float = DEFAULT_TIMEOUT_SECS, **options: Any
    ) -> RedisStreamsBus:
        """Return a bus on a new client for ``url``, with ``timeout_secs`` socket timeouts.

        The client never retries a failed command (a retried XADD could publish twice); the
        other keyword arguments go to ``RedisStreamsBus``. ConfigError for a bad URL or timeout.
        """
        if isinstance(timeout_secs, bool) or not isinstance(timeout_secs, int | float):
            raise ConfigError(f"redis timeout_secs must be a number, got {timeout_secs!r}")
        if not 0 < timeout_secs <= 60:
            raise ConfigError(f"redis timeout_secs must be in (0, 60], got {timeout_secs!r}")
        try:
            client = redis.Redis.from_url(
                url,
                socket_timeout=timeout_secs,
                socket_connect_timeout=timeout_secs,
                retry=Retry(NoBackoff(), 0),
            )
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"invalid redis URL: {exc}") from exc
        return cls(client, **options)

    def close(self) -> None:
        """Close the client's connections."""
        with _translating("closing the bus client"):
            self._client.close()

    # Keys ---------------------------------------------------------------------------------

    def stream_key(self, topic: str) -> str:
        """Return the stream of ``topic``: ``{prefix}:bus:<topic>``."""
        if not isinstance(topic, str) or not topic:
            raise ConfigError(f"topic must be a non-empty string, got {topic!r}")
        return f"{self._tag}:bus:{topic}"

    def dead_key(self, topic: str) -> str:
        """Return the dead-letter stream of ``topic``: ``{prefix}:bus:dead:<topic>``."""
        if not isinstance(topic, str) or not topic:
            raise ConfigError(f"topic must be a non-empty string, got {topic!r}")
        return f"{self._tag}:bus:dead:{topic}"

    # Publishing ---------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Append one event to its topic's stream; BusUnavailableError if Redis is down."""
        data = event.encode()
        with _translating(f"publishing event {event.event_id}"):
            self._client.xadd(
                self.stream_key(event.topic),
                {FIELD: data},
                maxlen=self._maxlen,
                approximate=True,
            )
        self.published += 1

    def publish_batch(self, events: Sequence[Event]) -> None:
        """Append events in order, in one pipeline (one round trip).

        Raises:
            BusUnavailableError: Redis is down or slow; some of the events may have gone out.
            TypeError: A payload is not JSON-able (nothing was sent).
        """
        if not events:
            return
        encoded = [(self.stream_key(event.topic), event.encode()) for event in events]
        with _translating(f"publishing {len(events)} events"):
            pipe = self._client.pipeline(transaction=False)
            for key, data in encoded:
                pipe.xadd(key, {FIELD: data}, maxlen=self._maxlen, approximate=True)
            pipe.execute()
        self.published += len(events)

    # Subscribing --------------------------------------------------------------------------

    def subscribe(self, topic: str, handler: EventHandler) -> None:
        """Call ``handler`` with later events on ``topic``, after earlier subscribers.

        The first subscription to a topic creates the consumer group on its stream, so it
        needs Redis: BusUnavailableError if it is down.
        """
        key = self.stream_key(topic)
        if topic not in self._handlers:
            self._create_group(key, "$")
        self._handlers[topic] = (*self._handlers.get(topic, ()), handler)
        self._topic_of_key[key] = topic

    def unsubscribe(self, topic: str, handler: EventHandler) -> None:
        """Stop calling ``handler`` for ``topic`` (its first subscription is removed)."""
        handlers = list(self._handlers.get(topic, ()))
        if handler in handlers:
            handlers.remove(handler)
            if handlers:
                self._handlers[topic] = tuple(handlers)
            else:
                del self._handlers[topic]
                self._topic_of_key.pop(self.stream_key(topic), None)

    def handlers(self, topic: str) -> tuple[EventHandler, ...]:
        """Return the handlers of ``topic`` in call order."""
        return self._handlers.get(topic, ())

    def _create_group(self, key: str, start_id: str) -> None:
        try:
            with _translating(f"creating consumer group {self.group!r} on {key}"):
                self._client.xgroup_create(key, self.group, id=start_id, mkstream=True)
        except IntegrityError as exc:
            if not str(exc.__cause__).startswith("BUSYGROUP"):
                raise

    # Consuming ----------------------------------------------------------------------------

    def poll(self, block_ms: int = 0, count: int = 100) -> int:
        """Read new entries of every subscribed topic and handle them; return how many were read.

        Args:
            block_ms: Wait up to this long for an entry when none is there; 0 never waits.
                Keep it below the client's socket timeout.
            count: The most entries read per topic.

        Raises:
            BusUnavailableError: Redis is down or slow (unacknowledged entries stay pending).
            HandlerFailedError: Under ErrorPolicy.RAISE, after the poll, if a handler raised.
        """
        if not self._handlers:
            return 0
        streams = {self.stream_key(topic): ">" for topic in self._handlers}
        try:
            reply = self._read(streams, block_ms, count)
        except IntegrityError as exc:
            if not _no_group(exc):
                raise
            for key in streams:  # Redis lost the group (restart): everything there is new
                self._create_group(key, "0")
            reply = self._read(streams, block_ms, count)
        read = 0
        acks: dict[str, list[str]] = {}
        try:
            for key, entries in self._stream_items(reply):
                topic = self._topic_of_key.get(key)
                if topic is None:
                    continue
                for entry_id, fields in entries:
                    read += 1
                    self._handle(topic, key, entry_id, fields, 1, acks)
        finally:
            self._ack(acks)
        self._raise_failures()
        return read

    def retry_pending(self, min_idle_ms: int, count: int = 100) -> int:
        """Claim entries pending for at least ``min_idle_ms`` and deliver them again.

        An entry claimed after more than ``max_deliveries`` deliveries, or whose attempt here
        is the last allowed and fails, goes to the dead-letter stream and is acknowledged.
        Returns how many entries were claimed (at most ``count`` per topic).

        Raises:
            BusUnavailableError: Redis is down or slow.
            HandlerFailedError: Under ErrorPolicy.RAISE, after the retry, if a handler raised.
        """
        claimed = 0
        acks: dict[str, list[str]] = {}
        try:
            for topic in tuple(self._handlers):
                key = self.stream_key(topic)
                entries = self._claim(key, min_idle_ms, count)
                if not entries:
                    continue
                deliveries = self._delivery_counts(key, entries)
                for entry_id, fields in entries:
                    claimed += 1
                    self.redelivered += 1
                    self._handle(topic, key, entry_id, fields, deliveries.get(entry_id, 1), acks)
        finally:
            self._ack(acks)
        self._raise_failures()
        return claimed

    def pending_count(self, topic: str) -> int:
        """Return how many entries of ``topic`` the group has delivered but not acknowledged."""
        key = self.stream_key(topic)
        with _translating(f"reading the pending entries of {key}"):
            summary = self._client.xpending(key, self.group)
        return int(summary["pending"])

    def dead_letters(self, topic: str, count: int = 1000) -> list[DeadLetter]:
        """Return up to ``count`` entries of ``topic``'s dead-letter stream, oldest first."""
        key = self.dead_key(topic)
        with _translating(f"reading {key}"):
            entries: Any = self._client.xrange(key, count=count)
        letters = []
        for entry_id, raw in entries:
            fields = {_text(name): value for name, value in raw.items()}
            letters.append(
                DeadLetter(
                    entry_id=_text(entry_id),
                    source_id=_text(fields.get("id", b"")),
                    data=_bytes(fields.get(FIELD)),
                    error=_text(fields.get("error", b"")),
                    deliveries=int(fields.get("deliveries", 0)),
                    group=_text(fields.get("group", b"")),
                )
            )
        return letters

    def _read(self, streams: dict[str, str], block_ms: int, count: int) -> Any:
        with _translating(f"reading streams for group {self.group!r}"):
            return self._client.xreadgroup(
                self.group,
                self.consumer,
                streams,  # type: ignore[arg-type]
                count=count,
                block=block_ms if block_ms > 0 else None,
            )

    @staticmethod
    def _stream_items(reply: Any) -> list[tuple[str, list[tuple[str, dict[str, Any]]]]]:
        # RESP2 gives [[key, entries], ...]; RESP3 gives {key: [entries]} (or [[entries]]).
        if not reply:
            return []
        pairs = reply.items() if isinstance(reply, dict) else reply
        items = []
        for key, entries in pairs:
            if entries and isinstance(entries[0], list) and len(entries) == 1:
                entries = entries[0]
            items.append(
                (
                    _text(key),
                    [
                        (_text(entry_id), {_text(k): v for k, v in (fields or {}).items()})
                        for entry_id, fields in entries
                    ],
                )
            )
        return items

    def _claim(self, key: str, min_idle_ms: int, count: int) -> list[tuple[str, dict[str, Any]]]:
        claimed: list[tuple[str, dict[str, Any]]] = []
        start = "0-0"
        with _translating(f"claiming pending entries of {key}"):
            while len(claimed) < count:
                reply = self._client.xautoclaim(
                    key,
                    self.group,
                    self.consumer,
                    min_idle_time=min_idle_ms,
                    start_id=start,
                    count=count - len(claimed),
                )
                start = _text(reply[0])
                for entry_id, fields in reply[1]:
                    if fields is not None:  # None: trimmed away while pending (Redis < 7)
                        claimed.append((_text(entry_id), {_text(k): v for k, v in fields.items()}))
                if start == "0-0":
                    break
        return claimed

    def _delivery_counts(
        self, key: str, entries: list[tuple[str, dict[str, Any]]]
    ) -> dict[str, int]:
        with _translating(f"reading delivery counts of {key}"):
            rows: Any = self._client.xpending_range(
                key,
                self.group,
                min=entries[0][0],
                max=entries[-1][0],
                count=len(entries) * 2 + 10,
                consumername=self.consumer,
            )
        return {_text(row["message_id"]): int(row["times_delivered"]) for row in rows}

    def _handle(
        self,
        topic: str,
        key: str,
        entry_id: str,
        fields: dict[str, Any],
        deliveries: int,
        acks: dict[str, list[str]],
    ) -> None:
        data = _bytes(fields.get(FIELD))
        if deliveries > self._max_deliveries:
            self._dead_letter(
                topic, entry_id, data, f"gave up after {deliveries - 1} deliveries", deliveries
            )
            return
        try:
            event = Event.decode(data)
        except IntegrityError as exc:
            self._dead_letter(topic, entry_id, data, str(exc), deliveries)
            return
        dedupe = self._dedupe
        if dedupe is not None and event.event_id in dedupe:
            dedupe.is_duplicate(event.event_id)  # counts it and refreshes it
            self.duplicates_dropped += 1
            acks.setdefault(key, []).append(entry_id)
            return
        error: Exception | None = None
        for handler in self._handlers.get(topic, ()):
            try:
                handler(event)
            except Exception as exc:  # isolate: the other handlers still run
                error = exc
                self.handler_errors += 1
                failure = HandlerFailure(event, handler, exc)
                self._failures.append(failure)
                if self._on_error is not None:
                    self._on_error(failure)
            else:
                self.delivered += 1
        if error is None:
            if dedupe is not None:
                dedupe.is_duplicate(event.event_id)  # remember it only once it succeeded
            acks.setdefault(key, []).append(entry_id)
        elif deliveries >= self._max_deliveries:
            self._dead_letter(topic, entry_id, data, repr(error), deliveries)

    def _dead_letter(
        self, topic: str, entry_id: str, data: bytes, error: str, deliveries: int
    ) -> None:
        key, dead = self.stream_key(topic), self.dead_key(topic)
        fields: dict[Any, Any] = {
            FIELD: data,
            "error": error,
            "id": entry_id,
            "deliveries": deliveries,
            "group": self.group,
        }
        with _translating(f"dead-lettering {entry_id} of {key}"):
            pipe = self._client.pipeline(transaction=True)  # same hash slot: one MULTI
            pipe.xadd(dead, fields, maxlen=self._maxlen, approximate=True)
            pipe.xack(key, self.group, entry_id)
            pipe.execute()
        self.dead_lettered += 1

    def _ack(self, acks: dict[str, list[str]]) -> None:
        if not acks:
            return
        with _translating(f"acknowledging entries for group {self.group!r}"):
            pipe = self._client.pipeline(transaction=False)
            for key, ids in acks.items():
                pipe.xack(key, self.group, *ids)
            pipe.execute()

    def _raise_failures(self) -> None:
        if self._failures:
            failures, self._failures = tuple(self._failures), []
            if self._policy is ErrorPolicy.RAISE:
                raise HandlerFailedError(failures) from failures[0].error
