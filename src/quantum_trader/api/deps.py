"""Route dependencies: the service of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from quantum_trader.api.service import OperationsService


def get_service(request: Request) -> OperationsService:
    """The app's OperationsService."""
    service: OperationsService = request.app.state.service
    return service


Service = Annotated[OperationsService, Depends(get_service)]
"""A route parameter that receives the service."""
