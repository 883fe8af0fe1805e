"""``/events``: a Server-Sent Events stream for the dashboard.

Events (``event:`` name, JSON ``data:``):

- ``snapshot``: the ``/status`` document plus the open positions and the newest equity point;
  sent first, then whenever anything changed, at most every ``SNAPSHOT_SECS`` (coalesced, so a
  fast replay never floods a browser);
- ``order``, ``fill``: each one as published by the workers;
- ``ess``, ``policy``: the latch or the policy changed (seen within half a second);
- ``audit``: each new audit record;
- ``ack``: a worker heard an ESS latch.

- ``ping``: every ``KEEPALIVE_SECS`` of silence, so proxies keep an idle stream open and the
  page can tell a dead connection from a quiet market.

 A client
that falls more than ``QUEUE_SIZE`` events behind is disconnected; its ``EventSource``
reconnects (``retry: 2000``) and starts again from a snapshot. ``max_events`` ends the stream
after that many events (scripts and tests).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from quantum_trader.api.convert import position_model, status_model
from quantum_trader.api.deps import Service
from quantum_trader.api.service import OperationsService, from_ns

router = APIRouter(tags=["events"])

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SNAPSHOT_SECS = 0.25
KEEPALIVE_SECS = 15.0
QUEUE_SIZE = 2000
RETRY_MS = 2000


def _frame(kind: str, data: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def snapshot_data(service: OperationsService) -> dict[str, Any]:
    """The ``snapshot`` event's data."""
    snap = service.snapshot()
    point = snap.last_point
    return {
        "status": status_model(snap).model_dump(mode="json"),
        "positions": [position_model(p).model_dump(mode="json") for p in service.positions()],
        "equity_point": None
        if point is None
        else {
            "time": (from_ns(point.market_ts_ns) or _EPOCH).isoformat(),
            "time_ns": point.market_ts_ns,
            "equity": point.equity,
            "drawdown": point.drawdown,
        },
    }


class _Subscription:
    """One stream's queue of discrete events, fed from any thread by the read model."""

    def __init__(self, service: OperationsService, stopping: threading.Event) -> None:
        self.service = service
        self.stopping = stopping
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, Mapping[str, Any]]] = asyncio.Queue(QUEUE_SIZE)
        self.overflow = threading.Event()
        service.read.add_listener(self.listener)

    def _put(self, kind: str, data: Mapping[str, Any]) -> None:
        if self.queue.full():
            self.overflow.set()
        else:
            self.queue.put_nowait((kind, data))

    def listener(self, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "status" or self.overflow.is_set():
            return  # statuses are coalesced into snapshots
        try:
            self.loop.call_soon_threadsafe(self._put, kind, data)
        except RuntimeError:
            self.overflow.set()  # the loop is closed: the stream is over

    @property
    def over(self) -> bool:
        return (
            self.service.closing.is_set() or self.stopping.is_set() or self.overflow.is_set()
        )

    async def next(self) -> tuple[str, Mapping[str, Any]] | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout=SNAPSHOT_SECS)
        except TimeoutError:
            return None

    def close(self) -> None:
        self.service.read.remove_listener(self.listener)


async def _events(
    request: Request, service: OperationsService, max_events: int | None
) -> AsyncIterator[bytes]:
    sub = _Subscription(service, request.app.state.stopping)
    budget = max_events if max_events is not None else -1
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        revision = service.read.revision
        yield _frame("snapshot", snapshot_data(service))
        budget -= 1
        last_snapshot = last_write = time.monotonic()
        while budget != 0 and not sub.over:
            item = await sub.next()
            if item is not None:
                yield _frame(*item)
                budget -= 1
                last_write = time.monotonic()
                continue
            if await request.is_disconnected():
                return
            now = time.monotonic()
            if service.read.revision != revision and now - last_snapshot >= SNAPSHOT_SECS:
                revision = service.read.revision
                yield _frame("snapshot", snapshot_data(service))
                last_snapshot = last_write = now
                budget -= 1
            elif now - last_write >= KEEPALIVE_SECS:
                yield _frame("ping", {})
                last_write = now
                budget -= 1
    finally:
        sub.close()


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "The event stream."}},
)
async def events(
    request: Request,
    service: Service,
    max_events: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> StreamingResponse:
    """Server-Sent Events: snapshots, orders, fills, ESS, policy and audit news (see module)."""
    return StreamingResponse(
        _events(request, service, max_events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
