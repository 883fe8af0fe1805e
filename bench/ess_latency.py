"""How fast every worker stops sending orders after the ESS is triggered from another process.

    .venv/bin/python bench/ess_latency.py [--workers 2] [--triggers 50] [--hold-steps 2]

Starts a private ``redis-server`` (append-only, on a free 127.0.0.1 port), N ``qtrader worker``
processes trading the synthetic market at 200 bars a second, then triggers the ESS the way
``qtrader ess trigger`` does (latch written and broadcast in one MULTI/EXEC), waits for every
worker's acknowledgement, holds the latch for a few bars, resets it and repeats. A worker's
latency is the wall-clock time from the latch write (``activated_at_ns``) to the moment its
latch watcher set the halt flag (from then on it sends no new order; the order path also reads
the latch before every order). Prints p50, p99 and the maximum over workers x triggers. Target
of issue 5: p99 within 100 ms.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from quantum_trader.testing.paper import WorkerProcess, measure_ess_latency, write_run_config
from quantum_trader.testing.redis_server import RedisServer

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--triggers", type=int, default=50)
    parser.add_argument("--hold-steps", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(appendonly=True) as server:
        folder = Path(tmp)
        groups = [[SYMBOLS[i % len(SYMBOLS)]] for i in range(args.workers)]
        cfg = write_run_config(
            folder / "run.toml",
            state=server.url,
            prefix="bench",
            folder=folder / "out",
            workers=groups,
            bars=40_000,
            speed=60 * 200,
            params={"fast": 2, "slow": 4},
        )
        workers = [WorkerProcess(cfg, i) for i in range(args.workers)]
        try:
            for w in workers:
                w.wait_for_step(5)
            windows = measure_ess_latency(
                server.url,
                "bench",
                [f"w{i}" for i in range(args.workers)],
                args.triggers,
                hold_steps=args.hold_steps,
            )
        finally:
            for w in workers:
                w.terminate()
    ms = np.array([x for w in windows for x in w.latencies_ms()])
    print(f"ESS trigger -> worker halted, {args.workers} workers x {args.triggers} triggers")
    print(f"  p50 {np.percentile(ms, 50):7.2f} ms")
    print(f"  p99 {np.percentile(ms, 99):7.2f} ms   (target <= 100 ms)")
    print(f"  max {ms.max():7.2f} ms")


if __name__ == "__main__":
    main()
