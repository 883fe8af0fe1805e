"""BusFeed: the API's background thread that keeps the read model and the cached state fresh.

One daemon thread, in a loop until ``stop``:

1. poll the bus (a ``RedisStreamsBus`` in its own consumer group, ``api`` by default, blocking
   up to ``poll_ms``) and hand each event to the read model; with no bus it waits instead;
2. every ``refresh_secs``, re-read the policy and the ESS latch (``OperationsService.refresh``);
3. tail the audit trail: new lines of the newest day files go to the listeners as ``audit``.

Before the thread starts, ``start`` backfills the read model from the streams themselves
(``XREVRANGE``, the newest ``backfill`` status events and the newest orders and fills), so a
restarted API shows the run's equity curve at once; events that then arrive again through the
consumer group are dropped by id. Redis down: the loop notes it (``bus_connected`` False),
waits and tries again; nothing is lost, the group's entries wait in Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import redis

from quantum_trader.api.readmodel import (
    ACK_TOPIC,
    FILLS_TOPIC,
    ORDERS_TOPIC,
    STATUS_TOPIC,
    TOPICS,
)
from quantum_trader.api.service import OperationsService
from quantum_trader.bus.events import Event
from quantum_trader.bus.redis_streams import FIELD, RedisStreamsBus
from quantum_trader.domain.errors import QuantumTraderError
from quantum_trader.observability.audit.records import day_files

_FIELD = FIELD.encode()
_HIDDEN_AUDIT_FIELDS = ("prev_hash", "hash")


class AuditTail:
    """New lines of an audit folder since the last call (starting at its end)."""

    def __init__(self, directory: Path) -> None:
        """Watch ``directory``; what is there now counts as seen."""
        self.directory = directory
        self._name = ""
        self._offset = 0
        self._partial = b""
        files = day_files(directory) if directory.is_dir() else []
        if files:
            self._name = files[-1].name
            self._offset = files[-1].stat().st_size

    def read(self, limit: int = 500) -> list[dict[str, Any]]:
        """Records appended since the last call, oldest first (at most ``limit``)."""
        if not self.directory.is_dir():
            return []
        out: list[dict[str, Any]] = []
        for path in day_files(self.directory):
            if path.name < self._name:
                continue
            if path.name > self._name:
                self._name, self._offset, self._partial = path.name, 0, b""
            try:
                with path.open("rb") as handle:
                    handle.seek(self._offset)
                    chunk = handle.read(4 * 1024 * 1024)
            except OSError:
                return out
            self._offset += len(chunk)
            data = self._partial + chunk
            lines = data.split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    for name in _HIDDEN_AUDIT_FIELDS:
                        record.pop(name, None)
                    out.append(record)
        return out[-limit:]


class BusFeed:
    """The feed thread; see the module docstring."""

    def __init__(
        self,
        service: OperationsService,
        *,
        bus: RedisStreamsBus | None = None,
        client: redis.Redis | None = None,
        prefix: str = "qt",
        poll_ms: int = 250,
        refresh_secs: float = 0.5,
        backfill: int = 20_000,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        """Feed ``service``'s read model from ``bus`` (None: stores and audit only)."""
        self.service = service
        self.bus = bus
        self.client = client
        self.prefix = prefix
        self.poll_ms = poll_ms
        self.refresh_secs = refresh_secs
        self.backfill_count = backfill
        self.stop_event = threading.Event()
        self._wait = wait or self.stop_event.wait
        self._tail = AuditTail(service.audit_dir) if service.audit_dir is not None else None
        self._thread = threading.Thread(target=self._run, name="api-feed", daemon=True)
        self.errors = 0

    def start(self) -> BusFeed:
        """Backfill, subscribe and start the thread; returns self."""
        self.service.refresh()
        if self.bus is not None:
            try:
                self.backfill()
                for topic in TOPICS:
                    self.bus.subscribe(topic, self.service.read.handle)
                self.service.bus_connected = True
            except QuantumTraderError:
                self.service.bus_connected = False
        self._thread.start()
        return self

    def backfill(self) -> int:
        """Load the newest events of each topic from the streams; return how many."""
        if self.client is None or self.bus is None:
            return 0
        counts = {
            STATUS_TOPIC: self.backfill_count,
            ORDERS_TOPIC: 1_000,
            FILLS_TOPIC: 1_000,
            ACK_TOPIC: 200,
        }
        loaded = 0
        for topic, count in counts.items():
            try:
                rows: Any = self.client.xrevrange(self.bus.stream_key(topic), count=count)
            except (redis.RedisError, OSError) as exc:
                raise QuantumTraderError(f"backfill of {topic} failed: {exc}") from exc
            for _id, fields in reversed(rows):
                try:
                    event = Event.decode(fields[_FIELD])
                except (QuantumTraderError, KeyError):
                    continue
                self.service.read.handle(event)
                loaded += 1
        return loaded

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        next_refresh = 0.0
        clock = self.service.clock
        while not self.stop_event.is_set():
            self._poll()
            now = clock.now_ns() / 1e9
            if now >= next_refresh:
                self.service.refresh()
                next_refresh = now + self.refresh_secs
            if self._tail is not None:
                records = self._tail.read()
                if records:
                    self.service.note_audit(records)

    def _poll(self) -> None:
        bus = self.bus
        if bus is None:
            self._wait(self.poll_ms / 1000)
            return
        try:
            if not self.service.bus_connected:
                for topic in TOPICS:
                    if not bus.handlers(topic):
                        bus.subscribe(topic, self.service.read.handle)
            bus.poll(block_ms=self.poll_ms)
            self.service.bus_connected = True
        except QuantumTraderError:
            self.errors += 1
            self.service.bus_connected = False
            self._wait(1.0)
