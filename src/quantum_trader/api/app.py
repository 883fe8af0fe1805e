"""``create_app``: the FastAPI application over an ``OperationsService``.

Errors map to status codes in one place: a domain ``ConfigError`` (an invalid value the schema
cannot express, such as limits that do not tighten from AGGRESSIVE to CRITICAL) is a 422 in
FastAPI's validation-error shape; ``ConflictError`` a 409 naming both versions;
``TransientError`` (stores unreachable) and ``AuditUnavailableError`` a 503. Nothing else is
caught: a bug is a 500, and the fuzz test's job is to find it.

Reads are open; every POST, PUT, PATCH and DELETE needs the bearer token (``auth``). The page
and its files get a strict Content-Security-Policy (same origin only) and every response
``Cache-Control: no-store`` unless it sets its own.
"""

from __future__ import annotations

import re
import threading

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quantum_trader import __version__
from quantum_trader.api.auth import ApiToken
from quantum_trader.api.routers import audit, dashboard, ess, health, policy, stream, trading
from quantum_trader.api.service import OperationsService
from quantum_trader.domain.errors import (
    AuditUnavailableError,
    ConfigError,
    ConflictError,
    TransientError,
)

_VERSIONS = re.compile(r"expected version (\d+), store has (\d+)")
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def _config_error(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        status_code=422,
        content={"detail": [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]},
    )


def _conflict(request: Request, exc: Exception) -> Response:
    found = _VERSIONS.search(str(exc))
    expected, current = (int(found[1]), int(found[2])) if found else (0, 0)
    return JSONResponse(
        status_code=409,
        content={"detail": str(exc), "expected_version": expected, "current_version": current},
    )


def _unavailable(request: Request, exc: Exception) -> Response:
    return JSONResponse(status_code=503, content={"detail": f"unavailable: {exc}"})


class SecurityHeaders:
    """Pure ASGI middleware (no buffering, so event streams flow): ``no-store`` unless set,
    ``nosniff`` everywhere, and the Content-Security-Policy on the page and its files."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to every HTTP response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        page = path == "/" or path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Cache-Control", "no-store")
                headers["X-Content-Type-Options"] = "nosniff"
                if page:
                    headers["Content-Security-Policy"] = _CSP
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    service: OperationsService,
    *,
    token: ApiToken | None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """Build the API over ``service``; ``token`` guards writes (None: writes answer 503).

    ``registry`` is what ``/metrics`` serves when ``PROMETHEUS_MULTIPROC_DIR`` is not set.
    """
    app = FastAPI(
        title="Quantum Trader API",
        version=__version__,
        description=(
            "Operate and watch a Quantum Trader run. Reads are open; every state-changing "
            "route needs `Authorization: Bearer <QT_API_TOKEN>`."
        ),
    )
    app.state.service = service
    app.state.token = token
    app.state.stopping = threading.Event()  # set by the server on shutdown: streams end
    app.state.registry = registry if registry is not None else CollectorRegistry()
    app.add_exception_handler(ConfigError, _config_error)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(TransientError, _unavailable)
    app.add_exception_handler(AuditUnavailableError, _unavailable)
    app.add_middleware(SecurityHeaders)
    for module in (health, trading, policy, ess, audit, stream):
        app.include_router(module.router)
    app.include_router(policy.writes)
    app.include_router(ess.writes)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    return app
