"""``/ess``: the Emergency Stop System latch; trigger and reset need the token."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from quantum_trader.api.auth import require_token
from quantum_trader.api.convert import ess_model
from quantum_trader.api.deps import Service
from quantum_trader.api.routers.policy import READ_ERRORS, WRITE_ERRORS
from quantum_trader.api.schemas import (
    EssActionResponse,
    EssResetRequest,
    EssStateModel,
    EssTriggerRequest,
)
from quantum_trader.domain.policy import TradingState

router = APIRouter(tags=["emergency stop"])
writes = APIRouter(tags=["emergency stop"], dependencies=[Depends(require_token)])


@router.get("/ess", response_model=EssStateModel, responses=READ_ERRORS)
def get_ess(service: Service) -> EssStateModel:
    """Whether the emergency stop is latched, why, by whom and since when (read now)."""
    return ess_model(service.ess_state())


@writes.post("/ess/trigger", response_model=EssActionResponse, responses=WRITE_ERRORS)
def trigger(body: EssTriggerRequest, service: Service) -> EssActionResponse:
    """Latch the emergency stop and halt trading; every worker cancels and flattens its book.

    Audited (``emergency.triggered``). A trigger while latched changes nothing but the count
    of ignored triggers (``done`` false).
    """
    activation = service.trigger(body.actor, body.reason)
    state = service.ess_state()
    if activation.activated:
        message = f"emergency stop ACTIVE: trading halted by {body.actor}; workers flatten"
    else:
        message = "emergency stop was already active; this trigger was counted as ignored"
    return EssActionResponse(done=activation.activated, message=message, ess=ess_model(state))


@writes.post("/ess/reset", response_model=EssActionResponse, responses=WRITE_ERRORS)
def reset(body: EssResetRequest, service: Service) -> EssActionResponse:
    """Clear the latch and resume trading (reducing by default); audited.

    Actor and reason are required. ``done`` is false when the latch was not set.
    """
    done = service.reset(body.actor, body.reason, TradingState(body.resume))
    state = service.ess_state()
    message = (
        f"emergency stop reset by {body.actor}; trading state now {body.resume}"
        if done
        else "emergency stop is not active: nothing to reset"
    )
    return EssActionResponse(done=done, message=message, ess=ess_model(state))
