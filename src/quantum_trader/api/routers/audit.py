"""``/audit`` (query the trail) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

import datetime as dt
import os
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from quantum_trader.api.deps import Service
from quantum_trader.api.schemas import AuditRecordModel, AuditResponse
from quantum_trader.observability.audit.query import AuditQuery
from quantum_trader.observability.audit.records import AuditEventType

router = APIRouter(tags=["audit and metrics"])
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


@router.get("/audit", response_model=AuditResponse)
def get_audit(
    service: Service,
    event_type: Annotated[
        list[AuditEventType] | None, Query(alias="type", description="Event types (repeat).")
    ] = None,
    since: Annotated[dt.datetime | None, Query(description="From this time (UTC).")] = None,
    until: Annotated[dt.datetime | None, Query(description="Before this time (UTC).")] = None,
    symbol: Annotated[str | None, Query(pattern=r"^[A-Z0-9]{2,20}$")] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditResponse:
    """The newest audit records that match, newest first (the chain is not verified here)."""
    query = AuditQuery(
        event_types=frozenset(t.value for t in event_type or ()),
        since=_aware(since),
        until=_aware(until),
        symbol=symbol,
        actor=actor,
    )
    records, damaged = service.audit(query, limit)
    return AuditResponse(
        records=[AuditRecordModel.model_validate(r) for r in records], damaged_lines=damaged
    )


def metrics_registry(request: Request) -> CollectorRegistry:
    """The registry ``/metrics`` serves: every process of the run, or this process's own."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    own: CollectorRegistry = request.app.state.registry
    return own


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def get_metrics(request: Request) -> Response:
    """Prometheus metrics: the run's sum when ``PROMETHEUS_MULTIPROC_DIR`` is set, else ours."""
    body = generate_latest(metrics_registry(request))
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
