"""``/policy`` (read; PUT, PATCH by compare-and-set) and ``/risk-mode`` (read, switch, history)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from quantum_trader.api.auth import require_token
from quantum_trader.api.convert import history_item, policy_model, risk_mode_model
from quantum_trader.api.deps import Service
from quantum_trader.api.schemas import (
    ConflictResponse,
    ErrorResponse,
    PolicyModel,
    PolicyPatch,
    PolicyReplace,
    RiskModeChange,
    RiskModeHistory,
    RiskModeResponse,
)
from quantum_trader.domain.policy import ModeLimits, RiskMode

router = APIRouter(tags=["policy"])
writes = APIRouter(tags=["policy"], dependencies=[Depends(require_token)])

READ_ERRORS: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "The state stores are unreachable."}
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not readable JSON."},
    401: {"model": ErrorResponse, "description": "No bearer token."},
    403: {"model": ErrorResponse, "description": "Wrong token."},
    503: {"model": ErrorResponse, "description": "No token configured, or stores unreachable."},
}
CAS_ERRORS: dict[int | str, dict[str, Any]] = {
    **WRITE_ERRORS,
    409: {"model": ConflictResponse, "description": "The policy moved past expected_version."},
}


@router.get("/policy", response_model=PolicyModel, responses=READ_ERRORS)
def get_policy(service: Service) -> PolicyModel:
    """The stored policy document (read now); change it with PUT or PATCH and its version."""
    return policy_model(service.policy())


@writes.patch("/policy", response_model=PolicyModel, responses=CAS_ERRORS)
def patch_policy(body: PolicyPatch, service: Service) -> PolicyModel:
    """Change some settings, if the stored version is still ``expected_version`` (else 409).

    Nothing is written when a value is invalid (422, naming it) or the version moved (409).
    """
    changes = body.model_dump(
        exclude_none=True, exclude={"expected_version", "actor", "reason", "limits"}
    )
    if "allowed_symbols" in changes:
        changes["allowed_symbols"] = frozenset(changes["allowed_symbols"])
    limit_changes: dict[RiskMode | str, Mapping[str, Any]] = {}
    for mode, lim in (body.limits or {}).items():
        fields = lim.model_dump(exclude_none=True)
        if fields:
            limit_changes[mode] = fields
    policy = service.update_policy(
        actor=body.actor,
        reason=body.reason,
        expected_version=body.expected_version,
        limit_changes=limit_changes or None,
        **changes,
    )
    return policy_model(policy)


@writes.put("/policy", response_model=PolicyModel, responses=CAS_ERRORS)
def put_policy(body: PolicyReplace, service: Service) -> PolicyModel:
    """Replace every setting, if the stored version is still ``expected_version`` (else 409)."""
    settings = body.policy
    limits = {m: ModeLimits(**lim.model_dump()) for m, lim in settings.limits.items()}
    policy = service.update_policy(
        actor=body.actor,
        reason=body.reason,
        expected_version=body.expected_version,
        mode=settings.mode,
        state=settings.state,
        limits=limits,
        allowed_symbols=frozenset(settings.allowed_symbols),
        max_orders_per_window=settings.max_orders_per_window,
        order_window_secs=settings.order_window_secs,
        max_price_age_secs=settings.max_price_age_secs,
        max_price_deviation=settings.max_price_deviation,
    )
    return policy_model(policy)


@router.get("/risk-mode", response_model=RiskModeResponse, responses=READ_ERRORS)
def get_risk_mode(service: Service) -> RiskModeResponse:
    """The active risk mode and the trading state (CRITICAL means at least REDUCING)."""
    return risk_mode_model(service.policy())


@writes.post("/risk-mode", response_model=RiskModeResponse, responses=CAS_ERRORS)
def post_risk_mode(body: RiskModeChange, service: Service) -> RiskModeResponse:
    """Switch the risk mode (compare-and-set when ``expected_version`` is given)."""
    policy = service.update_policy(
        actor=body.actor,
        reason=body.reason,
        expected_version=body.expected_version,
        mode=body.mode,
    )
    return risk_mode_model(policy)


@router.get("/risk-mode/history", response_model=RiskModeHistory, responses=READ_ERRORS)
def get_risk_mode_history(
    service: Service, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> RiskModeHistory:
    """Stored policy versions, newest first: mode, trading state, who and why."""
    versions = list(service.mode_history(limit + 1))
    items = [
        history_item(p, versions[i + 1] if i + 1 < len(versions) else None)
        for i, p in enumerate(versions[:limit])
    ]
    return RiskModeHistory(items=items)
