"""The token: every state-changing route refuses without it (401) and with a wrong one (403),
the routes are enumerated from the app itself, and the token never shows itself."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from quantum_trader.api.auth import WRITE_METHODS, ApiToken, require_token, token_from_env
from quantum_trader.domain.errors import ConfigError
from quantum_trader.testing.api import AUTH, TOKEN, Api, make_api

# A valid body for each write route: the refusal must come from the token, not the payload.
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/policy"): {"expected_version": 1, "actor": "a", "reason": "r", "mode": "safe"},
    ("POST", "/risk-mode"): {"mode": "safe", "actor": "a", "reason": "r"},
    ("POST", "/ess/trigger"): {"actor": "a", "reason": "r"},
    ("POST", "/ess/reset"): {"actor": "a", "reason": "r"},
}


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI's lazily included routers
        if included is not None:
            yield from _api_routes(included.routes)


def write_routes(api: Api) -> list[tuple[str, str]]:
    """Every state-changing operation: from the OpenAPI document and from the routing table
    (so one hidden from the schema is caught too)."""
    found: set[tuple[str, str]] = set()
    for path, operations in api.client.app.openapi()["paths"].items():
        found |= {(m.upper(), path) for m in operations if m.upper() in WRITE_METHODS}
    for route in _api_routes(api.client.app.routes):
        found |= {(m, route.path) for m in route.methods & WRITE_METHODS}
    return sorted(found)


def body_for(api: Api, method: str, path: str) -> dict[str, Any]:
    if (method, path) == ("PUT", "/policy"):
        policy = api.client.get("/policy").json()
        settings = {
            k: policy[k]
            for k in (
                "mode",
                "state",
                "limits",
                "allowed_symbols",
                "max_orders_per_window",
                "order_window_secs",
                "max_price_age_secs",
                "max_price_deviation",
            )
        }
        return {
            "expected_version": policy["version"],
            "actor": "a",
            "reason": "r",
            "policy": {**settings, "mode": "safe"},
        }
    return VALID_BODIES[(method, path)]


def state_of(api: Api) -> tuple[object, ...]:
    return (api.stores.policy.get(), api.stores.ess.load(), sorted(api.audit_dir.glob("*.jsonl")))


def test_write_routes_when_enumerated_from_the_app_all_depend_on_the_token(api: Api) -> None:
    routes = write_routes(api)
    assert set(routes) >= {
        ("PATCH", "/policy"),
        ("PUT", "/policy"),
        ("POST", "/risk-mode"),
        ("POST", "/ess/trigger"),
        ("POST", "/ess/reset"),
    }
    by_route = {(m, r.path): r for r in _api_routes(api.client.app.routes) for m in r.methods}
    spec = api.client.app.openapi()["paths"]
    for method, path in routes:
        calls = {d.call for d in by_route[(method, path)].dependant.dependencies}
        assert require_token in calls, f"{method} {path} does not require the token"
        assert spec[path][method.lower()]["security"] == [{"HTTPBearer": []}]


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", "Basic abc", "Bearer "])
def test_every_write_route_when_token_missing_or_wrong_refuses_and_changes_nothing(
    api: Api, header: str | None
) -> None:
    before = state_of(api)
    for method, path in write_routes(api):
        headers = {"Authorization": header} if header is not None else {}
        reply = api.client.request(method, path, json=body_for(api, method, path), headers=headers)
        wrong = header is not None and header.startswith("Bearer ") and header.strip() != "Bearer"
        assert reply.status_code == (403 if wrong else 401), (method, path, reply.text)
        if reply.status_code == 401:
            assert reply.headers["WWW-Authenticate"] == "Bearer"
        assert "wrong-token" not in reply.text
    assert state_of(api) == before


def test_every_write_route_when_token_right_is_accepted(api: Api) -> None:
    for method, path in write_routes(api):
        reply = api.client.request(method, path, json=body_for(api, method, path), headers=AUTH)
        assert reply.status_code == 200, (method, path, reply.text)


def test_write_routes_when_no_token_configured_answer_503(tmp_path: Path) -> None:
    api = make_api(tmp_path, token=False)
    before = state_of(api)
    for method, path in write_routes(api):
        reply = api.client.request(method, path, json=body_for(api, method, path), headers=AUTH)
        assert reply.status_code == 503
        assert "QT_API_TOKEN" in reply.json()["detail"]
    assert state_of(api) == before
    assert api.client.get("/status").status_code == 200  # reads stay open
    api.audit.close()


def test_api_token_when_printed_is_redacted() -> None:
    token = ApiToken(TOKEN)
    assert TOKEN not in repr(token)
    assert TOKEN not in str(token)
    assert TOKEN not in f"{token!r} {token}"
    assert token.matches(TOKEN)
    assert not token.matches(TOKEN + "x")
    assert not token.matches("")


@pytest.mark.parametrize("value", ["short", "has space in it 0123456789"])
def test_api_token_when_weak_is_refused(value: str) -> None:
    with pytest.raises(ConfigError):
        ApiToken(value)


def test_token_from_env_when_file_given_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert token_from_env({}, token_file=path) is not None
    assert token_from_env({"QT_API_TOKEN_FILE": str(path)}).matches(TOKEN)  # type: ignore[union-attr]
    assert token_from_env({"QT_API_TOKEN": TOKEN}).matches(TOKEN)  # type: ignore[union-attr]
    assert token_from_env({}) is None
    with pytest.raises(ConfigError, match="not both"):
        token_from_env({"QT_API_TOKEN": TOKEN}, token_file=path)
    with pytest.raises(ConfigError, match="cannot read"):
        token_from_env({}, token_file=tmp_path / "missing")


def test_error_bodies_when_token_wrong_never_echo_it(api: Api) -> None:
    secret = "Bearer not-the-token-but-secret-ish"
    reply = api.client.post(
        "/ess/trigger", json={"actor": "a", "reason": "r"}, headers={"Authorization": secret}
    )
    assert reply.status_code == 403
    assert "secret-ish" not in json.dumps(reply.json())
