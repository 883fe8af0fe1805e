"""Reads: status, positions, orders, equity (from bus events), trades (store, filters), audit
(query), metrics, health and readiness, and the event stream."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from quantum_trader.domain.clock import NANOS_PER_SECOND
from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.trading import TradeStatus
from quantum_trader.stores.trades import TradeRecord
from quantum_trader.testing.api import AUTH, START_NS, Api, make_api

BTC = {"BTCUSDT": 0.5}


def two_workers(api: Api) -> None:
    api.status("w0", 0, 10_000.0)
    api.status("w1", 0, 10_000.0)
    api.status(
        "w0",
        60,
        10_300.0,
        positions=BTC,
        entry_prices={"BTCUSDT": 60_000.0},
        marks={"BTCUSDT": 60_600.0},
        unrealized={"BTCUSDT": 300.0},
        open_orders=1,
    )
    api.status(
        "w1",
        60,
        9_900.0,
        positions={"ETHUSDT": -2.0},
        entry_prices={"ETHUSDT": 3_000.0},
        marks={"ETHUSDT": 3_050.0},
        unrealized={"ETHUSDT": -100.0},
    )
    api.status(
        "w0",
        120,
        9_800.0,
        positions=BTC,
        entry_prices={"BTCUSDT": 60_000.0},
        marks={"BTCUSDT": 59_600.0},
        unrealized={"BTCUSDT": -200.0},
    )
    api.status(
        "w1",
        120,
        9_900.0,
        positions={"ETHUSDT": -2.0},
        entry_prices={"ETHUSDT": 3_000.0},
        marks={"ETHUSDT": 3_050.0},
        unrealized={"ETHUSDT": -100.0},
    )


def test_health_when_alive_is_ok(api: Api) -> None:
    assert api.client.get("/health").json()["status"] == "ok"


def test_equity_when_workers_report_sums_them_per_market_time_with_drawdown(api: Api) -> None:
    api.status("w0", 0, 10_000.0)
    assert api.client.get("/equity").json()["points"] == []  # w1 not heard yet: no partial sum
    two_workers(api)
    body = api.client.get("/equity").json()
    assert [p["equity"] for p in body["points"]] == [20_000.0, 20_200.0, 19_700.0]
    assert body["points"][0]["time"].startswith("2025-06-15T15:06:40")
    assert body["peak_equity"] == 20_200.0
    assert body["current_drawdown"] == pytest.approx(500 / 20_200)
    assert body["max_drawdown"] == pytest.approx(500 / 20_200)
    thin = api.client.get("/equity?max_points=2").json()["points"]
    assert [p["equity"] for p in thin] == [20_000.0, 19_700.0]


def test_status_when_workers_report_shows_them_and_the_totals(api: Api) -> None:
    two_workers(api)
    api.clock.advance(3 * NANOS_PER_SECOND)
    body = api.client.get("/status").json()
    assert body["risk_mode"] == "normal"
    assert body["ess"]["state"] == "INACTIVE"
    assert body["total_equity"] == 19_700.0
    assert body["unrealized_pnl"] == -300.0
    assert body["open_positions"] == 2
    assert [w["worker"] for w in body["workers"]] == ["w0", "w1"]
    assert body["workers"][0]["heartbeat_age_secs"] == pytest.approx(3.0)
    assert body["workers"][0]["stale"] is False
    api.clock.advance(20 * NANOS_PER_SECOND)
    assert api.client.get("/status").json()["workers"][0]["stale"] is True


def test_positions_when_workers_hold_lists_each_with_unrealized_pnl(api: Api) -> None:
    two_workers(api)
    body = api.client.get("/positions").json()
    rows = [
        (p["symbol"], p["worker"], p["side"], p["quantity"], p["unrealized_pnl"])
        for p in body["positions"]
    ]
    assert rows == [
        ("BTCUSDT", "w0", "long", 0.5, -200.0),
        ("ETHUSDT", "w1", "short", -2.0, -100.0),
    ]
    assert body["positions"][0]["notional"] == pytest.approx(0.5 * 59_600)
    assert body["total_unrealized_pnl"] == -300.0
    only = api.client.get("/positions?symbol=ETHUSDT").json()["positions"]
    assert [p["symbol"] for p in only] == ["ETHUSDT"]
    api.status("w0", 180, 9_900.0)  # flat now
    assert [p["symbol"] for p in api.client.get("/positions").json()["positions"]] == ["ETHUSDT"]


def test_status_when_an_older_status_arrives_late_keeps_the_newer(api: Api) -> None:
    two_workers(api)
    api.status("w0", 60, 1.0)
    assert api.client.get("/status").json()["workers"][0]["equity"] == 9_800.0


def test_orders_when_published_are_listed_newest_first_with_filters(api: Api) -> None:
    for i, symbol in enumerate(["BTCUSDT", "ETHUSDT", "BTCUSDT"]):
        api.publish(
            "orders",
            {
                "worker": f"w{i % 2}",
                "client_order_id": f"c{i}",
                "symbol": symbol,
                "side": "buy",
                "quantity": 0.1,
                "reduce_only": False,
                "status": "filled",
                "reason": "",
                "market_ts": START_NS + i * NANOS_PER_SECOND,
            },
        )
    ids = [o["client_order_id"] for o in api.client.get("/orders").json()["orders"]]
    assert ids == ["c2", "c1", "c0"]
    btc = api.client.get("/orders?symbol=BTCUSDT&limit=1").json()["orders"]
    assert [o["client_order_id"] for o in btc] == ["c2"]
    w1 = api.client.get("/orders?worker=w1").json()["orders"]
    assert [o["client_order_id"] for o in w1] == ["c1"]
    assert api.client.get("/status").json()["orders_seen"] == 3


def trade(i: int, symbol: str, worker: str, *, closed: bool) -> TradeRecord:
    entry = START_NS + i * 3600 * NANOS_PER_SECOND
    return TradeRecord(
        trade_id=f"{worker}-t{i}",
        symbol=symbol,
        side=OrderSide.BUY,
        quantity=1.0,
        entry_price=100.0,
        entry_ts_ns=entry,
        exit_price=110.0 if closed else None,
        exit_ts_ns=entry + 60 * NANOS_PER_SECOND if closed else None,
        status=TradeStatus.CLOSED if closed else TradeStatus.OPEN,
        realized_pnl=10.0 if closed else 0.0,
        fees=0.5,
        funding=-0.1,
        metadata={"worker": worker},
        updated_ts_ns=entry,
    )


def test_trades_when_filtered_returns_matching_records_newest_first(api: Api) -> None:
    for i, (symbol, worker, closed) in enumerate(
        [
            ("BTCUSDT", "w0", True),
            ("ETHUSDT", "w1", True),
            ("BTCUSDT", "w0", True),
            ("BTCUSDT", "w0", False),
        ]
    ):
        api.stores.trades.save(trade(i, symbol, worker, closed=closed))
    every = api.client.get("/trades").json()["trades"]
    assert [t["trade_id"] for t in every] == ["w0-t3", "w0-t2", "w1-t1", "w0-t0"]
    assert every[1]["net_pnl"] == pytest.approx(10.0 - 0.5 - 0.1)
    closed_btc = api.client.get("/trades?symbol=BTCUSDT&status=closed").json()["trades"]
    assert [t["trade_id"] for t in closed_btc] == ["w0-t2", "w0-t0"]
    since = dt.datetime.fromtimestamp(START_NS / 1e9 + 3600, dt.UTC).isoformat()
    until = dt.datetime.fromtimestamp(START_NS / 1e9 + 3 * 3600, dt.UTC).isoformat()
    window = api.client.get("/trades", params={"since": since, "until": until}).json()["trades"]
    assert [t["trade_id"] for t in window] == ["w0-t2", "w1-t1"]
    assert [t["trade_id"] for t in api.client.get("/trades?worker=w1").json()["trades"]] == [
        "w1-t1"
    ]
    assert len(api.client.get("/trades?limit=1").json()["trades"]) == 1
    assert api.client.get("/trades?status=bogus").status_code == 422
    assert api.client.get("/trades?limit=0").status_code == 422


def test_audit_when_queried_filters_by_type_and_returns_newest_first(api: Api) -> None:
    api.client.post(
        "/risk-mode", json={"mode": "safe", "actor": "a", "reason": "one"}, headers=AUTH
    )
    api.client.post("/ess/trigger", json={"actor": "b", "reason": "two"}, headers=AUTH)
    every = api.client.get("/audit").json()["records"]
    assert [r["event_type"] for r in every][:2] == ["emergency.triggered", "policy.changed"]
    assert [r["seq"] for r in every] == sorted((r["seq"] for r in every), reverse=True)
    only = api.client.get("/audit?type=emergency.triggered").json()["records"]
    assert [r["actor"] for r in only] == ["b"]
    assert api.client.get("/audit?type=nonsense").status_code == 422
    assert api.client.get("/audit?actor=a&limit=1").json()["records"][0]["reason"] == "one"
    future = api.client.get("/audit", params={"since": "2100-01-01T00:00:00Z"}).json()
    assert future["records"] == []


def test_metrics_when_scraped_is_prometheus_text(api: Api) -> None:
    reply = api.client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")


def test_ready_when_workers_report_recently_is_200_else_503(tmp_path: Path) -> None:
    api = make_api(tmp_path)
    reply = api.client.get("/ready")
    assert reply.status_code == 503
    checks = {c["name"]: c for c in reply.json()["checks"]}
    assert checks["stores"]["ok"] is True
    assert checks["worker w0"]["detail"] == "no status heard yet"
    two_workers(api)
    assert api.client.get("/ready").status_code == 200
    api.clock.advance(11 * NANOS_PER_SECOND)
    stale = api.client.get("/ready")
    assert stale.status_code == 503
    assert "s ago" in {c["name"]: c for c in stale.json()["checks"]}["worker w1"]["detail"]
    api.audit.close()


def test_events_when_opened_start_with_a_snapshot_then_discrete_events(api: Api) -> None:
    two_workers(api)
    reply = api.client.get("/events?max_events=1")
    assert reply.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in reply.text.split("\n\n") if f.startswith("event:")]
    assert len(frames) == 1
    kind, data = frames[0].split("\n", 1)
    assert kind == "event: snapshot"
    snapshot = orjson.loads(data.removeprefix("data: "))
    assert snapshot["status"]["total_equity"] == 19_700.0
    assert [p["symbol"] for p in snapshot["positions"]] == ["BTCUSDT", "ETHUSDT"]
    assert snapshot["equity_point"]["equity"] == 19_700.0


def test_dashboard_when_loaded_is_html_with_a_strict_content_policy(api: Api) -> None:
    page = api.client.get("/")
    assert page.status_code == 200
    assert "Quantum Trader" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no CDN
    assert api.client.get("/static/app.js").status_code == 200
    assert api.client.get("/openapi.json").json()["info"]["title"] == "Quantum Trader API"
