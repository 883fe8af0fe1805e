"""Fault tests of issue 5 against real processes and a real ``redis-server`` of our own.

1. Redis stopped for 10 s in the middle of a run: every event arrives exactly once, in order.
2. ``kill -9`` of a worker at a random moment, 20 seeded trials: after the restart no fill is
   lost, no order is sent twice, and the stored trades and positions equal the venue's.
3. The ESS triggered from another process: every worker stops sending new orders within
   100 ms (p99 over 50 triggers; ``bench/ess_latency.py`` prints the figures).
(4 and 5 live with the stores and the spool: ``tests/contract/test_redis_state_stores.py`` and
``tests/unit/bus/test_event_buffer.py``.)

Plus ``qtrader run`` itself: the launcher starts the supervisor and the workers, serves one
``/metrics`` for all of them, and ``qtrader ess trigger`` from a shell flattens every worker.
Nothing sleeps to wait: progress is read from the workers' step lines or awaited on Redis with
XREAD BLOCK. The one timed pause is the outage itself, which the issue sets at 10 s.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from quantum_trader.domain.clock import ManualClock
from quantum_trader.domain.instruments import resolve_instrument
from quantum_trader.engine.paper import open_worker
from quantum_trader.engine.settings import load_config
from quantum_trader.engine.stores import open_state_stores
from quantum_trader.engine.worker import FILLS_TOPIC, ORDERS_TOPIC, STATUS_TOPIC
from quantum_trader.execution.paper import PaperVenue, VenueSettings
from quantum_trader.stores.trades import record_of
from quantum_trader.testing.paper import (
    ACK_TOPIC,
    WorkerProcess,
    measure_ess_latency,
    qtrader_command,
    stream_events,
    wait_for_event,
    write_run_config,
)
from quantum_trader.testing.redis_server import RedisServer, RedisServerNotFoundError, free_port

BARS = 300
BOTH = ("BTCUSDT", "ETHUSDT")


def new_server() -> RedisServer:
    """A private ``redis-server`` that keeps its data across a restart (append-only file)."""
    try:
        server = RedisServer(appendonly=True)
    except RedisServerNotFoundError as exc:
        if os.environ.get("QT_REQUIRE_REDIS") == "1":
            pytest.fail(f"{exc} (QT_REQUIRE_REDIS=1 makes this a failure)")
        pytest.skip(str(exc))
    server.start()
    return server


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    s = new_server()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def client(server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(server.url)
    yield c
    c.close()


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def venue_of(folder: Path, wid: str, symbols: tuple[str, ...]) -> PaperVenue:
    """The worker's venue, reopened from its journal (what the exchange says is true)."""
    instruments = {s: resolve_instrument(s, 1.0) for s in symbols}
    return PaperVenue(
        folder / wid / "venue.db", instruments, VenueSettings(), ManualClock(0), durable=False
    )


def fills_of(venue: PaperVenue) -> list[tuple[object, ...]]:
    return [
        (f.client_order_id, f.symbol, f.side.value, f.quantity, f.price, f.fee, f.ts_event)
        for f in venue.exchange.fills
    ]


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[tuple[object, ...]], set[str]]:
    """The uninterrupted run, in this process: its fills and the ids of its orders."""
    tmp = tmp_path_factory.mktemp("reference")
    cfg = write_run_config(
        tmp / "run.toml",
        state=str(tmp / "state.db"),
        prefix="ref",
        folder=tmp / "out",
        workers=[["BTCUSDT", "ETHUSDT"]],
        bars=BARS,
    )
    qt = load_config(cfg)
    with open_worker(qt.run, qt.risk, 0) as parts:
        assert parts.worker.run(wait=lambda _s: None) == BARS
        return fills_of(parts.venue), set(parts.venue.exchange.orders)


# ---------------------------------------------------------------------------------- fault 2
def test_fault2_kill_9_at_random_moments_loses_and_repeats_nothing(
    server: RedisServer,
    client: redis.Redis,
    reference: tuple[list[tuple[object, ...]], set[str]],
    tmp_path: Path,
) -> None:
    ref_fills, ref_orders = reference
    assert len(ref_fills) > 20
    rng = np.random.default_rng(20261205)
    for trial in range(20):
        p = prefix()
        folder = tmp_path / f"trial{trial}"
        cfg = write_run_config(
            tmp_path / f"trial{trial}.toml",
            state=server.url,
            prefix=p,
            folder=folder,
            workers=[["BTCUSDT", "ETHUSDT"]],
            bars=BARS,
        )
        victim = WorkerProcess(cfg, 0)
        victim.wait_for_step(int(rng.integers(0, BARS - 2)))
        victim.kill()  # mid-step, wherever it happens to be
        survivor = WorkerProcess(cfg, 0)
        assert survivor.finish() == 0, survivor.stderr()
        with venue_of(folder, "w0", BOTH) as venue:
            assert fills_of(venue) == ref_fills, f"trial {trial}"
            assert set(venue.exchange.orders) == ref_orders, f"trial {trial}"
            want = {
                f"w0-{t.trade_id}": record_of(
                    t, trade_id=f"w0-{t.trade_id}", metadata={"worker": "w0"}
                ).to_dict()
                for t in venue.account.all_trades()
            }
            held = venue.positions()
        with open_state_stores(server.url, redis_prefix=p) as stores:
            got = {r.trade_id: r.to_dict() for r in stores.trades.list()}
            open_trades = {r.symbol: r.side.sign * r.quantity for r in stores.trades.list_open()}
        for d in (*want.values(), *got.values()):
            d.pop("updated_ts_ns")
        assert got == want, f"trial {trial}"
        assert open_trades == held, f"trial {trial}"
        fill_ids = {e.event_id for e in stream_events(client, p, FILLS_TOPIC)}
        assert len(fill_ids) == len(ref_fills), f"trial {trial}: a fill is missing from the bus"


# ---------------------------------------------------------------------------------- fault 1
def test_fault1_redis_down_for_10s_every_event_arrives_once_in_order(tmp_path: Path) -> None:
    server = new_server()
    try:
        p = prefix()
        cfg = write_run_config(
            tmp_path / "run.toml",
            state=server.url,
            prefix=p,
            folder=tmp_path / "out",
            workers=[["BTCUSDT", "ETHUSDT"]],
            bars=BARS,
            speed=60 * 12,  # 12 bars a second: the run lasts about 25 s
        )
        worker = WorkerProcess(cfg, 0)
        worker.wait_for_step(60)
        server.stop()
        stopped = time.monotonic()
        during = worker.wait_for_step(61)
        while time.monotonic() - stopped < 10.0:  # the outage: the worker keeps stepping
            during = worker.wait_for_step(during + 1)
        server.start()
        assert worker.finish() == 0, worker.stderr()
        c = redis.Redis.from_url(server.url)
        try:
            status = stream_events(c, p, STATUS_TOPIC)
            fills = stream_events(c, p, FILLS_TOPIC)
            orders = stream_events(c, p, ORDERS_TOPIC)
        finally:
            c.close()
        assert during > 61 + 10 * 12 // 2  # it went on trading through most of the outage
        unique = list(dict.fromkeys(e.event_id for e in status))
        steps = [e.payload["market_ts"] for e in {e.event_id: e for e in status}.values()]
        assert len(unique) == BARS  # one status per bar: none lost during the outage
        assert steps == sorted(steps)  # and in order
        assert len(set(steps)) == BARS
        with venue_of(tmp_path / "out", "w0", BOTH) as venue:
            assert len({e.event_id for e in fills}) == len(venue.exchange.fills)
            assert len({e.event_id for e in orders}) == len(venue.exchange.orders)
    finally:
        server.close()


# ---------------------------------------------------------------------------------- fault 3
def test_fault3_ess_trigger_stops_every_worker_within_100ms(
    server: RedisServer, tmp_path: Path
) -> None:
    p = prefix()
    folder = tmp_path / "out"
    cfg = write_run_config(
        tmp_path / "run.toml",
        state=server.url,
        prefix=p,
        folder=folder,
        workers=[["BTCUSDT"], ["ETHUSDT"]],
        bars=20_000,
        speed=60 * 200,  # 200 bars a second: trading all along the measurement
        params={"fast": 2, "slow": 4},
    )
    workers = [WorkerProcess(cfg, 0), WorkerProcess(cfg, 1)]
    try:
        for w in workers:
            w.wait_for_step(5)  # started: the latch watcher is listening
        windows = measure_ess_latency(server.url, p, ["w0", "w1"], 50, hold_steps=3)
    finally:
        for w in workers:
            w.terminate()
    latencies = sorted(ms for w in windows for ms in w.latencies_ms())
    assert len(latencies) == 100
    p99 = latencies[int(np.ceil(0.99 * len(latencies))) - 1]
    assert p99 <= 100.0, f"p99 {p99:.1f} ms"
    # After a worker heard the latch, it sent nothing but reduce-only emergency closes.
    for wid in ("w0", "w1"):
        with sqlite3.connect(folder / wid / "venue.db") as db:
            sent = db.execute("SELECT client_order_id, submitted_wall_ns FROM orders").fetchall()
        assert len([cid for cid, _at in sent if "-ess-" not in cid]) > 5  # it kept trading
        for window in windows:
            late = [
                cid
                for cid, at in sent
                if window.seen_ns[wid] < at < window.reset_at_ns and "-ess-" not in cid
            ]
            assert late == [], f"{wid} sent {late} while latched (activation {window.activation})"


# ---------------------------------------------------------------------------------- qtrader run
def test_qtrader_run_serves_metrics_and_a_shell_trigger_flattens_every_worker(
    server: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    p = prefix()
    port = free_port()
    cfg = write_run_config(
        tmp_path / "run.toml",
        state=server.url,
        prefix=p,
        folder=tmp_path / "out",
        workers=[["BTCUSDT"], ["ETHUSDT"]],
        bars=20_000,
        speed=60 * 100,
        params={"fast": 2, "slow": 4},
        run={"metrics_port": port},
    )
    launcher = subprocess.Popen(qtrader_command("run", "--config", str(cfg)))
    try:
        seen: dict[str, int] = {}
        after = "0-0"
        while len(seen) < 2:  # both workers trade and report
            event, after = wait_for_event(
                client, p, STATUS_TOPIC, lambda e: bool(e.payload["positions"]), after=after
            )
            seen[str(event.payload["worker"])] = 1
        trigger = subprocess.run(
            qtrader_command(
                "ess",
                "trigger",
                "--state-db",
                server.url,
                "--actor",
                "ops",
                "--reason",
                "test",
                "--audit-dir",
                str(tmp_path / "cli-audit"),
            ),
            env={**os.environ, "QT_REDIS_PREFIX": p},
            capture_output=True,
            check=False,
        )
        assert trigger.returncode == 0, trigger.stderr.decode()
        flat: set[str] = set()
        while len(flat) < 2:  # every worker flattens its own book
            event, after = wait_for_event(
                client,
                p,
                STATUS_TOPIC,
                lambda e: e.payload["halted"] and not e.payload["positions"],
                after=after,
            )
            flat.add(str(event.payload["worker"]))
        acks = stream_events(client, p, ACK_TOPIC)
        assert {e.payload["worker"] for e in acks} == {"w0", "w1"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        assert "quantum_trader_emergency_stop_active" in text
    finally:
        launcher.send_signal(signal.SIGTERM)
        code = launcher.wait(timeout=60)
    assert code == 130  # stopped by a signal, every child with it
    for wid, symbol in (("w0", "BTCUSDT"), ("w1", "ETHUSDT")):
        with venue_of(tmp_path / "out", wid, (symbol,)) as venue:
            assert venue.positions() == {}
