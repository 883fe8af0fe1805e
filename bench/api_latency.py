"""Requests per second and latency of GET /status on loopback, under a bounded load.

    .venv/bin/python bench/api_latency.py [--seconds 10] [--clients 8] [--path /status]

The API (uvicorn, one worker process, as ``qtrader serve`` runs it) is started in a child
process over in-memory stores and a read model holding four workers with positions and an
equity curve of 5,000 points, so ``/status`` answers with a realistic document. The load comes
from ``--clients`` threads in this process, each with its own keep-alive httpx connection,
sending requests back to back for ``--seconds`` (after a warm-up); every request's latency is
the time from sending to having read the whole body. Client and server share this machine's
cores, so the figures are a floor for what the API does alone.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]


def serve(ready: mp.Queue, folder: str) -> None:  # type: ignore[type-arg]
    """The server process: build the API, bind a free port, report it, serve until killed."""
    import uvicorn

    from quantum_trader.api.server import bind, uvicorn_config
    from quantum_trader.testing.api import make_api

    api = make_api(Path(folder), workers=tuple(f"w{i}" for i in range(len(SYMBOLS))))
    for step in range(5_000):
        for i, symbol in enumerate(SYMBOLS):
            price = 100.0 + i + step * 0.01
            api.status(
                f"w{i}",
                60 * step,
                10_000.0 + step * 0.5 - i,
                positions={symbol: 0.5},
                entry_prices={symbol: 100.0},
                marks={symbol: price},
                unrealized={symbol: 0.5 * (price - 100.0)},
            )
    sock = bind("127.0.0.1", 0)
    ready.put(sock.getsockname()[1])
    uvicorn.Server(uvicorn_config(api.client.app)).run(sockets=[sock])


def load(url: str, path: str, until: float, latencies: list[float], errors: list[int]) -> None:
    """One client: requests back to back until ``until`` (monotonic), latencies in seconds."""
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.monotonic() < until:
            start = time.perf_counter()
            reply = client.get(path)
            latencies.append(time.perf_counter() - start)
            if reply.status_code != 200:
                errors.append(reply.status_code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--path", default="/status")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as folder:
        server = ctx.Process(target=serve, args=(ready, folder), daemon=True)
        server.start()
        try:
            port = ready.get(timeout=120)
            url = f"http://127.0.0.1:{port}"
            body = httpx.get(url + args.path, timeout=10)
            body.raise_for_status()
            warm: list[float] = []
            load(url, args.path, time.monotonic() + 1.0, warm, [])
            per_client: list[list[float]] = [[] for _ in range(args.clients)]
            errors: list[int] = []
            until = time.monotonic() + args.seconds
            started = time.perf_counter()
            threads = [
                threading.Thread(target=load, args=(url, args.path, until, lat, errors))
                for lat in per_client
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
        finally:
            server.terminate()
            server.join(timeout=10)
    lat_ms = np.array([x for lat in per_client for x in lat]) * 1000
    print(f"GET {args.path}: {len(body.content):,} bytes per answer")
    print(
        f"{args.clients} clients x {args.seconds:g} s on loopback: {len(lat_ms):,} requests, "
        f"{len(lat_ms) / elapsed:,.0f} requests/s, {len(errors)} errors"
    )
    p50, p90, p99 = np.percentile(lat_ms, [50, 90, 99])
    worst = lat_ms.max()
    print(f"latency: p50 {p50:.2f} ms, p90 {p90:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms")


if __name__ == "__main__":
    main()
