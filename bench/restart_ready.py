"""Restart-to-ready of a paper worker with 10,000 open trades in the shared trade store.

    .venv/bin/python bench/restart_ready.py [--open-trades 10000] [--bars 10000] [--repeat 3]

Starts a private ``redis-server`` (append-only), fills the trade store with N open trades of
other workers on the same symbols (every one of them is read and skipped at recovery), replays
``--bars`` bars of the synthetic market through worker w0 (BTCUSDT, ETHUSDT) so its venue
journal holds a real history, then restarts it and measures:

- in process: ``open_worker`` (load the market, rebuild the venue from its journal, connect) and
  ``recover`` (reconcile the stored trades with the venue, republish missing fills, read the
  latch and the policy, re-run the last decision), split;
- as a process: ``qtrader worker`` started until it reports its first bar (interpreter start and
  imports included).

Target of issue 5: restart-to-ready <= 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from quantum_trader.domain.orders import OrderSide
from quantum_trader.engine.paper import open_worker
from quantum_trader.engine.settings import load_config
from quantum_trader.stores.redis import RedisTradeStateStore, connect
from quantum_trader.stores.trades import TradeRecord
from quantum_trader.testing.paper import WorkerProcess, write_run_config
from quantum_trader.testing.redis_server import RedisServer

T0 = 1_735_689_600_000_000_000


def seed_open_trades(url: str, prefix: str, count: int) -> None:
    client = connect(url, timeout_secs=10)
    store = RedisTradeStateStore(client, prefix=prefix)
    for n in range(count):
        store.save(
            TradeRecord(
                trade_id=f"w9-T{n:06d}",
                symbol="BTCUSDT" if n % 2 else "ETHUSDT",
                side=OrderSide.BUY,
                quantity=0.01,
                entry_price=60_000.0,
                entry_ts_ns=T0 + n,
                client_order_ids=(f"w9-x-{n}",),
                strategy="other",
                updated_ts_ns=T0 + n,
            )
        )
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-trades", type=int, default=10_000)
    parser.add_argument("--bars", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(appendonly=True) as server:
        folder = Path(tmp)
        cfg = write_run_config(
            folder / "run.toml",
            state=server.url,
            prefix="bench",
            folder=folder / "out",
            workers=[["BTCUSDT", "ETHUSDT"]],
            bars=args.bars,
        )
        seed_open_trades(server.url, "bench", args.open_trades)
        qt = load_config(cfg)
        with open_worker(qt.run, qt.risk, 0) as parts:
            w = parts.worker
            w.on_step = lambda i: w.stop.set() if i >= args.bars - 50 else None
            w.run(wait=lambda _s: None)  # stops 50 bars short: the restart has bars to trade
            fills = len(parts.venue.exchange.fills)
            trades = len(parts.venue.account.all_trades())
        opened, recovered, process = [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            with open_worker(qt.run, qt.risk, 0) as parts:
                t1 = time.perf_counter()
                parts.worker.recover()
                t2 = time.perf_counter()
            opened.append(t1 - t0)
            recovered.append(t2 - t1)
            t0 = time.perf_counter()
            worker = WorkerProcess(cfg, 0)
            worker.wait_for_step(0)
            process.append(time.perf_counter() - t0)
            worker.terminate()
    print(
        f"restart of w0: {args.open_trades:,} open trades in the store, venue journal of "
        f"{args.bars:,} bars ({fills:,} fills, {trades:,} trades)"
    )
    rows = [
        ("open_worker (market, venue journal, connections)", statistics.median(opened)),
        ("recover (reconcile, republish, latch, policy)", statistics.median(recovered)),
        ("in process, total", statistics.median(opened) + statistics.median(recovered)),
        ("qtrader worker process start to first bar", statistics.median(process)),
    ]
    for name, secs in rows:
        print(f"  {name:<50} {secs:6.3f} s")
    print("  target: restart-to-ready <= 2 s")


if __name__ == "__main__":
    main()
