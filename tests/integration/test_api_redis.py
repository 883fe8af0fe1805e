"""The API on a real Redis of its own: the read model is backfilled from the streams and then
follows the bus; readiness turns false while Redis is down (and ``/status`` keeps answering with
the last known state); an ESS trigger through the API reaches a worker's latch watcher; and
``qtrader serve --config`` serves a run as a process."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from quantum_trader.api.auth import ApiToken
from quantum_trader.api.server import ApiServer, ApiSettings, Operations, open_operations
from quantum_trader.bus.events import EventFactory
from quantum_trader.bus.redis_streams import RedisStreamsBus
from quantum_trader.domain.clock import NANOS_PER_SECOND, WallClock
from quantum_trader.stores.ports import EssState
from quantum_trader.stores.redis import LatchWatcher
from quantum_trader.testing.api import AUTH, TOKEN
from quantum_trader.testing.paper import qtrader_command, write_run_config
from quantum_trader.testing.redis_server import RedisServer, RedisServerNotFoundError, free_port

DEADLINE_SECS = 20.0


@pytest.fixture
def server() -> Iterator[RedisServer]:
    try:
        s = RedisServer(appendonly=True)
    except RedisServerNotFoundError as exc:
        if os.environ.get("QT_REQUIRE_REDIS") == "1":
            pytest.fail(f"{exc} (QT_REQUIRE_REDIS=1 makes this a failure)")
        pytest.skip(str(exc))
    s.start()
    try:
        yield s
    finally:
        s.close()


def until(condition: Callable[[], Any], what: str, timeout_secs: float = DEADLINE_SECS) -> Any:
    """Poll ``condition`` until it is truthy (bounded); return its value."""
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} within {timeout_secs} s")


def status_payload(worker: str, market_s: int, equity: float) -> dict[str, Any]:
    return {
        "worker": worker,
        "market_ts": 1_750_000_000 * NANOS_PER_SECOND + market_s * NANOS_PER_SECOND,
        "equity": equity,
        "positions": {"BTCUSDT": 0.1},
        "marks": {"BTCUSDT": 60_000.0},
        "entry_prices": {"BTCUSDT": 59_000.0},
        "unrealized": {"BTCUSDT": 100.0},
    }


@pytest.fixture
def prefix() -> str:
    return f"api{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ops(server: RedisServer, prefix: str, tmp_path: Path) -> Iterator[Operations]:
    client = redis.Redis.from_url(server.url)
    bus = RedisStreamsBus(client, prefix=prefix)
    events = EventFactory(WallClock(), "w0")
    bus.publish(events.create("worker.status", status_payload("w0", 0, 10_000.0)))
    bus.publish(events.create("worker.status", status_payload("w0", 60, 10_100.0)))
    settings = ApiSettings(
        state=server.url,
        redis_prefix=prefix,
        audit_dir=tmp_path / "audit",
        worker_ids=("w0",),
        worker_stale_secs=30,
    )
    with open_operations(settings) as built:
        yield built
    client.close()


def test_api_when_started_after_events_backfills_then_follows_the_bus(
    ops: Operations, server: RedisServer, prefix: str
) -> None:
    curve = [p.equity for p in ops.service.read.curve()]
    assert curve == [10_000.0, 10_100.0]  # loaded from the stream before the thread started
    client = redis.Redis.from_url(server.url)
    bus = RedisStreamsBus(client, prefix=prefix)
    bus.publish(
        EventFactory(WallClock(), "w0").create("worker.status", status_payload("w0", 120, 9_900.0))
    )
    until(lambda: len(ops.service.read.curve()) == 3, "the live status arrived")
    assert ops.service.read.peak() == (10_100.0, pytest.approx(200 / 10_100))
    client.close()


def test_api_when_redis_stops_is_not_ready_but_keeps_serving_the_last_status(
    ops: Operations, server: RedisServer
) -> None:
    api = ApiServer(ops.app(ApiToken(TOKEN)))
    try:
        with httpx.Client(base_url=api.url, timeout=10) as http:
            assert http.get("/ready").status_code == 200
            server.stop()
            reply = http.get("/ready")
            assert reply.status_code == 503
            checks = {c["name"]: c for c in reply.json()["checks"]}
            assert checks["stores"]["ok"] is False
            until(lambda: not http.get("/status").json()["stores_reachable"], "stores unreachable")
            status = http.get("/status").json()
            assert status["total_equity"] == 10_100.0  # the last known book still shows
            assert status["ess"]["state"] == "INACTIVE"
            refused = http.post("/ess/trigger", json={"actor": "a", "reason": "r"}, headers=AUTH)
            assert refused.status_code == 503
            assert http.get("/policy").status_code == 503
            server.start()
            until(lambda: http.get("/ready").status_code == 200, "ready again after the restart")
    finally:
        api.shutdown()


def test_api_trigger_when_a_worker_watches_the_latch_reaches_it(
    ops: Operations, server: RedisServer, prefix: str
) -> None:
    heard: list[EssState] = []
    latched = threading.Event()

    def on_latch(state: EssState) -> None:
        heard.append(state)
        latched.set()

    client = redis.Redis.from_url(server.url)
    watcher = LatchWatcher(client, on_latch, prefix=prefix).start()
    api = ApiServer(ops.app(ApiToken(TOKEN)))
    try:
        assert watcher.subscribed.wait(10)
        reply = httpx.post(
            f"{api.url}/ess/trigger",
            json={"actor": "alice", "reason": "drill"},
            headers=AUTH,
            timeout=10,
        )
        assert reply.status_code == 200
        assert latched.wait(10)
        assert heard[0].active
        assert heard[0].activated_by == "alice"
    finally:
        api.shutdown()
        watcher.stop()
        client.close()


def test_qtrader_serve_when_given_a_run_config_serves_it_until_terminated(
    server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    cfg = write_run_config(
        tmp_path / "run.toml",
        state=server.url,
        prefix=prefix,
        folder=tmp_path / "run",
        workers=[["BTCUSDT"]],
    )
    process = subprocess.Popen(
        qtrader_command("serve", "--config", str(cfg), "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "QT_API_TOKEN": TOKEN},
    )
    try:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + DEADLINE_SECS
        url = None
        seen = b""
        while url is None and time.monotonic() < deadline:
            if selector.select(deadline - time.monotonic()):
                line = process.stdout.readline()
                assert line, f"qtrader serve exited: {seen.decode()}"
                seen += line
                found = re.search(rb"Dashboard on (http://\S+)/", line)
                url = found[1].decode() if found else None
        assert url is not None, seen.decode()
        assert TOKEN.encode() not in seen
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
        ready = httpx.get(f"{url}/ready", timeout=10).json()
        assert {c["name"] for c in ready["checks"]} == {"stores", "bus", "worker w0"}
        reply = httpx.post(
            f"{url}/risk-mode",
            json={"mode": "safe", "actor": "a", "reason": "r"},
            headers=AUTH,
            timeout=10,
        )
        assert reply.status_code == 200
        assert list((tmp_path / "run" / "audit").glob("audit-*.jsonl"))
        selector.close()
    finally:
        process.terminate()
        process.communicate(timeout=20)  # reaps it and closes the pipe


def test_qtrader_run_when_api_port_set_serves_the_api_and_its_trigger_flattens(
    server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    cfg = write_run_config(
        tmp_path / "run.toml",
        state=server.url,
        prefix=prefix,
        folder=tmp_path / "run",
        workers=[["BTCUSDT"]],
        bars=20_000,
        speed=60 * 100,
        params={"fast": 2, "slow": 4},
        run={"api_port": port},
    )
    launcher = subprocess.Popen(  # the launcher's children inherit the token
        qtrader_command("run", "--config", str(cfg)),
        stdout=subprocess.DEVNULL,
        env={**os.environ, "QT_API_TOKEN": TOKEN},
    )
    url = f"http://127.0.0.1:{port}"

    def get(path: str) -> Any:
        try:
            return httpx.get(url + path, timeout=5).json()
        except httpx.TransportError:
            return None  # not listening yet

    try:
        until(lambda: (get("/positions") or {}).get("positions"), "the worker holds a position")
        assert get("/ready")["ready"] is True
        reply = httpx.post(
            url + "/ess/trigger", json={"actor": "ops", "reason": "drill"}, headers=AUTH, timeout=10
        )
        assert reply.status_code == 200
        until(
            lambda: get("/positions")["positions"] == [] and get("/status")["workers"][0]["halted"],
            "the worker flattened and halted",
        )
        metrics = httpx.get(url + "/metrics", timeout=5).text
        assert 'quantum_trader_emergency_stops_total{reason="manual"} 1.0' in metrics
    finally:
        launcher.send_signal(signal.SIGTERM)
        code = launcher.wait(timeout=60)
    assert code == 130
