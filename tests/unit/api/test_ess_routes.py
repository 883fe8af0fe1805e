"""``/ess``: trigger latches and halts (audited, workers flatten on the broadcast), a second
trigger is counted as ignored, reset needs actor and reason and is audited."""

from __future__ import annotations

import orjson

from quantum_trader.testing.api import AUTH, Api


def audit_records(api: Api) -> list[dict[str, object]]:
    return [
        orjson.loads(line)
        for path in sorted(api.audit_dir.glob("audit-*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


def test_ess_when_fresh_is_inactive(api: Api) -> None:
    body = api.client.get("/ess").json()
    assert (body["active"], body["state"], body["activations"]) == (False, "INACTIVE", 0)


def test_ess_trigger_when_inactive_latches_halts_and_audits(api: Api) -> None:
    reply = api.client.post(
        "/ess/trigger", json={"actor": "alice", "reason": "exchange incident"}, headers=AUTH
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["done"] is True
    assert body["ess"]["state"] == "ACTIVE"
    assert body["ess"]["activated_by"] == "alice"
    assert "exchange incident" in body["ess"]["reason"]
    assert api.stores.ess.load().active
    assert api.stores.policy.get().state.value == "halted"
    status = api.client.get("/status").json()
    assert status["ess"]["active"] is True
    assert status["effective_trading_state"] == "halted"
    triggered = [r for r in audit_records(api) if r["event_type"] == "emergency.triggered"]
    assert len(triggered) == 1
    assert triggered[0]["actor"] == "alice"
    assert triggered[0]["metadata"]["via"] == "api"  # type: ignore[index]
    again = api.client.post(
        "/ess/trigger", json={"actor": "bob", "reason": "again"}, headers=AUTH
    ).json()
    assert again["done"] is False
    assert again["ess"]["ignored_triggers"] == 1
    assert again["ess"]["activated_by"] == "alice"


def test_ess_reset_when_reason_missing_or_blank_is_422_and_stays_latched(api: Api) -> None:
    api.client.post("/ess/trigger", json={"actor": "a", "reason": "r"}, headers=AUTH)
    missing = api.client.post("/ess/reset", json={"actor": "alice"}, headers=AUTH)
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "reason"]
    blank = api.client.post("/ess/reset", json={"actor": "alice", "reason": "  "}, headers=AUTH)
    assert blank.status_code == 422
    bad_resume = api.client.post(
        "/ess/reset", json={"actor": "a", "reason": "r", "resume": "halted"}, headers=AUTH
    )
    assert bad_resume.status_code == 422
    assert api.stores.ess.load().active


def test_ess_reset_when_latched_clears_resumes_and_audits(api: Api) -> None:
    api.client.post("/ess/trigger", json={"actor": "a", "reason": "r"}, headers=AUTH)
    reply = api.client.post(
        "/ess/reset",
        json={"actor": "alice", "reason": "incident over", "resume": "active"},
        headers=AUTH,
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["done"] is True
    assert body["ess"]["state"] == "INACTIVE"
    assert body["ess"]["reset_by"] == "alice"
    assert api.stores.policy.get().state.value == "active"
    recovered = [r for r in audit_records(api) if r["event_type"] == "emergency.recovered"]
    assert len(recovered) == 1
    assert recovered[0]["actor"] == "alice"
    assert recovered[0]["reason"] == "incident over"
    nothing = api.client.post("/ess/reset", json={"actor": "a", "reason": "r"}, headers=AUTH)
    assert nothing.json()["done"] is False
