"""``/policy`` and ``/risk-mode``: compare-and-set (a stale version is a 409 that names both
versions), validation (a 422 naming the field, nothing written), audit of every change."""

from __future__ import annotations

from typing import Any

import orjson

from quantum_trader.testing.api import AUTH, Api


def audit_types(api: Api) -> list[str]:
    return [
        orjson.loads(line)["event_type"]
        for path in sorted(api.audit_dir.glob("audit-*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


def patch(api: Api, **body: Any) -> Any:
    payload = {
        "expected_version": api.stores.policy.get().version,
        "actor": "alice",
        "reason": "test",
        **body,
    }
    return api.client.patch("/policy", json=payload, headers=AUTH)


def test_get_policy_when_fresh_returns_the_stored_document(api: Api) -> None:
    reply = api.client.get("/policy")
    assert reply.status_code == 200
    body = reply.json()
    assert body["version"] == 1
    assert body["mode"] == "normal"
    assert set(body["limits"]) == {"aggressive", "normal", "safe", "critical"}


def test_patch_policy_when_version_current_writes_and_audits(api: Api) -> None:
    reply = patch(api, mode="safe", limits={"safe": {"size_scale": 0.4}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["version"] == 2
    assert body["mode"] == "safe"
    assert body["limits"]["safe"]["size_scale"] == 0.4
    assert body["updated_by"] == "alice"
    stored = api.stores.policy.get()
    assert stored.version == 2
    assert stored.limits[stored.mode].size_scale == 0.4
    assert audit_types(api) == ["policy.changed"]


def test_patch_policy_when_version_stale_is_409_naming_both_versions(api: Api) -> None:
    assert patch(api, mode="safe").status_code == 200
    reply = api.client.patch(
        "/policy",
        json={"expected_version": 1, "actor": "bob", "reason": "late", "mode": "aggressive"},
        headers=AUTH,
    )
    assert reply.status_code == 409
    assert reply.json() == {
        "detail": "policy changed since you read it: expected version 1, store has 2",
        "expected_version": 1,
        "current_version": 2,
    }
    assert api.stores.policy.get().mode.value == "safe"
    assert audit_types(api) == ["policy.changed"]


def test_patch_policy_when_value_out_of_range_is_422_naming_it_and_writes_nothing(
    api: Api,
) -> None:
    reply = patch(api, limits={"safe": {"max_drawdown": 1.5}})
    assert reply.status_code == 422
    (error,) = reply.json()["detail"]
    assert error["loc"] == ["body", "limits", "safe", "max_drawdown"]
    assert api.stores.policy.get().version == 1
    assert audit_types(api) == []


def test_patch_policy_when_field_unknown_is_422_naming_it(api: Api) -> None:
    reply = patch(api, leverage=50)
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "leverage"]
    assert api.stores.policy.get().version == 1


def test_patch_policy_when_limits_no_longer_tighten_is_422_with_the_rule(api: Api) -> None:
    reply = patch(api, limits={"critical": {"max_leverage": 50}})
    assert reply.status_code == 422
    message = reply.json()["detail"][0]["msg"]
    assert "limits must tighten" in message
    assert "max_leverage" in message
    assert api.stores.policy.get().version == 1


def test_patch_policy_when_actor_blank_or_missing_is_422(api: Api) -> None:
    assert patch(api, actor="   ", mode="safe").status_code == 422
    reply = api.client.patch("/policy", json={"expected_version": 1, "mode": "safe"}, headers=AUTH)
    assert reply.status_code == 422
    missing = {tuple(e["loc"]) for e in reply.json()["detail"]}
    assert missing == {("body", "actor"), ("body", "reason")}
    assert api.stores.policy.get().version == 1


def test_patch_policy_when_nothing_to_change_is_422(api: Api) -> None:
    reply = patch(api)
    assert reply.status_code == 422
    assert "at least one setting" in reply.json()["detail"][0]["msg"]


def test_put_policy_when_whole_document_given_replaces_it(api: Api) -> None:
    current = api.client.get("/policy").json()
    settings = {
        k: current[k]
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
    settings.update(mode="critical", allowed_symbols=["BTCUSDT"], max_orders_per_window=30)
    reply = api.client.put(
        "/policy",
        json={"expected_version": 1, "actor": "carol", "reason": "weekend", "policy": settings},
        headers=AUTH,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["version"], body["mode"], body["effective_state"]) == (2, "critical", "reducing")
    assert body["allowed_symbols"] == ["BTCUSDT"]
    stale = api.client.put(
        "/policy",
        json={"expected_version": 1, "actor": "carol", "reason": "again", "policy": settings},
        headers=AUTH,
    )
    assert stale.status_code == 409


def test_put_policy_when_a_mode_is_missing_is_422(api: Api) -> None:
    current = api.client.get("/policy").json()
    limits = dict(current["limits"])
    del limits["safe"]
    settings = {
        k: current[k]
        for k in (
            "mode",
            "state",
            "allowed_symbols",
            "max_orders_per_window",
            "order_window_secs",
            "max_price_age_secs",
            "max_price_deviation",
        )
    }
    reply = api.client.put(
        "/policy",
        json={
            "expected_version": 1,
            "actor": "c",
            "reason": "r",
            "policy": {**settings, "limits": limits},
        },
        headers=AUTH,
    )
    assert reply.status_code == 422
    assert "safe" in reply.json()["detail"][0]["msg"]
    assert api.stores.policy.get().version == 1


def test_risk_mode_when_switched_shows_in_mode_and_history(api: Api) -> None:
    reply = api.client.post(
        "/risk-mode", json={"mode": "safe", "actor": "dave", "reason": "CPI"}, headers=AUTH
    )
    assert reply.status_code == 200
    assert reply.json()["mode"] == "safe"
    assert api.client.get("/risk-mode").json()["mode"] == "safe"
    api.client.post(
        "/risk-mode",
        json={"mode": "critical", "actor": "dave", "reason": "drawdown"},
        headers=AUTH,
    )
    items = api.client.get("/risk-mode/history?limit=10").json()["items"]
    assert [(i["version"], i["mode"], i["mode_changed"]) for i in items] == [
        (3, "critical", True),
        (2, "safe", True),
        (1, "normal", True),
    ]
    assert items[0]["effective_trading_state"] == "reducing"
    assert items[0]["reason"] == "drawdown"
    stale = api.client.post(
        "/risk-mode",
        json={"mode": "normal", "actor": "x", "reason": "y", "expected_version": 2},
        headers=AUTH,
    )
    assert stale.status_code == 409


def test_risk_mode_when_unknown_mode_is_422_listing_the_valid_ones(api: Api) -> None:
    reply = api.client.post(
        "/risk-mode", json={"mode": "yolo", "actor": "x", "reason": "y"}, headers=AUTH
    )
    assert reply.status_code == 422
    (error,) = reply.json()["detail"]
    assert error["loc"] == ["body", "mode"]
    assert "aggressive" in error["msg"]
