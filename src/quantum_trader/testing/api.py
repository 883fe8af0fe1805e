"""In-process API harness for tests: an ``OperationsService`` over in-memory stores, a real
audit folder, a ``LocalBus`` feeding the read model, and ``AsgiClient``, which calls the app
through httpx's ASGI transport (no socket; Starlette's TestClient warns about httpx)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from quantum_trader.api.app import create_app
from quantum_trader.api.auth import ApiToken
from quantum_trader.api.readmodel import TOPICS, ReadModel
from quantum_trader.api.service import OperationsService
from quantum_trader.bus.events import EventFactory
from quantum_trader.bus.local import LocalBus
from quantum_trader.domain.clock import NANOS_PER_SECOND, ManualClock
from quantum_trader.engine.audit import open_audit_logger
from quantum_trader.engine.stores import StateStores, open_state_stores
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.records import Durability

TOKEN = "test-token-0123456789abcdef"  # noqa: S105 - the test harness's own token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START_NS = 1_750_000_000 * NANOS_PER_SECOND  # 2025-06-15


class AsgiClient:
    """A synchronous client of an ASGI app, in process (one event loop per request)."""

    def __init__(self, app: FastAPI) -> None:
        """Call ``app``."""
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request (httpx keyword arguments) and return the whole response."""

        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                reply = await client.request(method, url, **kwargs)
                await reply.aread()
                return reply

        return asyncio.run(call())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a GET request."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a POST request."""
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a PATCH request."""
        return self.request("PATCH", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a PUT request."""
        return self.request("PUT", url, **kwargs)


@dataclass
class Api:
    """Everything a test touches."""

    client: AsgiClient
    service: OperationsService
    stores: StateStores
    bus: LocalBus
    clock: ManualClock
    audit: AuditLogger
    audit_dir: Path
    events: EventFactory

    def status(self, worker: str, market_s: int, equity: float, **payload: Any) -> None:
        """Publish a worker.status event (market time in seconds after START)."""
        body: dict[str, Any] = {
            "worker": worker,
            "market_ts": START_NS + market_s * NANOS_PER_SECOND,
            "equity": equity,
            "wallet": equity,
            "positions": {},
            "entry_prices": {},
            "marks": {},
            "unrealized": {},
            "realized": 0.0,
            "fees": 0.0,
            "funding": 0.0,
            "open_orders": 0,
            "halted": False,
            "pending_trade_writes": 0,
            **payload,
        }
        self.bus.publish(self.events.create("worker.status", body))

    def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Publish any event."""
        self.bus.publish(self.events.create(topic, dict(payload)))


def make_api(tmp_path: Path, *, workers: tuple[str, ...] = ("w0", "w1"), token: bool = True) -> Api:
    """Build the API over fresh in-memory stores."""
    clock = ManualClock(START_NS)
    stores = open_state_stores(None)
    audit_dir = tmp_path / "audit"
    audit = open_audit_logger(audit_dir, clock, durability=Durability.FSYNC)
    read = ReadModel(workers)
    service = OperationsService(
        stores, clock, read_model=read, audit=audit, audit_dir=audit_dir, worker_stale_secs=10
    )
    service.refresh()
    bus = LocalBus()
    for topic in TOPICS:
        bus.subscribe(topic, read.handle)
    app = create_app(service, token=ApiToken(TOKEN) if token else None)
    return Api(
        AsgiClient(app),
        service,
        stores,
        bus,
        clock,
        audit,
        audit_dir,
        EventFactory(clock, "w", seed=1),
    )
