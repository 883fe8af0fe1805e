"""``/health`` (liveness) and ``/ready`` (readiness)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from quantum_trader import __version__
from quantum_trader.api.deps import Service
from quantum_trader.api.schemas import HealthResponse, ReadinessCheck, ReadinessResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
def health() -> HealthResponse:
    """Answer while the process is alive (it checks nothing else)."""
    return HealthResponse(version=__version__)


@router.get(
    "/ready",
    response_model=ReadinessResponse,
    responses={503: {"model": ReadinessResponse, "description": "Not ready."}},
)
def ready(service: Service, response: Response) -> ReadinessResponse:
    """Say whether the stores answer and every expected worker reported recently (else 503)."""
    checks = [ReadinessCheck(name=n, ok=ok, detail=d) for n, ok, d in service.readiness()]
    ok = all(c.ok for c in checks)
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return ReadinessResponse(ready=ok, checks=checks)
