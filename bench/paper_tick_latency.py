"""Tick-to-order latency of the paper path on the raw Binance websocket replay.

    QT_REFERENCE_DATA=../shared/data .venv/bin/python bench/paper_tick_latency.py [--repeat 3]

Replays the USDT-M BTCUSDT and ETHUSDT captures (about six minutes, 155,000 quotes and prints)
through a ``TradingWorker`` on a tick-matching ``PaperVenue``, with ``sma_cross`` 5/20 on 1 s
bars, as ``qtrader paper`` runs it: state in SQLite, a local bus, the audit trail with group
commit, the venue journal fsynced on every commit. For every order it measures the wall time
from the start of its bar's step — the bar's last tick in hand — to the venue's acknowledgement
of the order: matching the bar's ticks at the venue and committing them, booking and storing
the fills, reading the latch and the policy, the strategy on its window, the rebalance rule,
the RiskGuard, the audit record and the venue's own commit. Prints p50 and p99 per
configuration (medians over the repeats), and the same with in-memory state and no audit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

from quantum_trader.bus.local import LocalBus
from quantum_trader.domain.clock import WallClock
from quantum_trader.engine.audit import open_audit_logger
from quantum_trader.engine.stores import open_state_stores
from quantum_trader.engine.tick_replay import TickReplayFeed, capture_files
from quantum_trader.engine.worker import TradingWorker, WorkerSettings
from quantum_trader.execution.paper import PaperVenue, VenueSettings
from quantum_trader.observability.audit.records import Durability
from quantum_trader.strategies.sma_cross import SmaCross


def one_run(feed: TickReplayFeed, folder: Path, embedded: bool) -> tuple[float, float, int]:
    clock = WallClock()
    venue = PaperVenue(
        folder / "venue.db",
        feed.instruments(),
        VenueSettings(matching="ticks"),
        clock,
        durable=embedded,
    )
    stores = open_state_stores(folder / "state.db" if embedded else None)
    audit = (
        open_audit_logger(folder / "audit", clock, durability=Durability.GROUP)
        if embedded
        else None
    )
    worker = TradingWorker(
        WorkerSettings("w0"),
        feed,
        SmaCross(fast=5, slow=20),
        venue,
        stores,
        LocalBus(),
        clock,
        audit=audit,
    )
    worker.run(wait=lambda _s: None)
    if audit is not None:
        audit.close()
    stores.close()
    venue.close()
    us = np.array(worker.decision_latency_ns) / 1e3
    return float(np.percentile(us, 50)), float(np.percentile(us, 99)), len(us)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(os.environ.get("QT_REFERENCE_DATA", "../shared/data"))
    folder = root / "hftbacktest_binance_ws_streams" / "usdm"
    feed = TickReplayFeed(capture_files(folder, ("BTCUSDT", "ETHUSDT")), "1s")
    ticks = sum(len(feed.ticks_at(i)) for i in range(len(feed)))
    print(f"websocket replay: {len(feed)} bars of 1 s, {ticks:,} quotes and prints")
    for embedded, name in (
        (True, "qtrader paper (SQLite state, audit, fsynced venue)"),
        (False, "in memory, no audit, venue not fsynced"),
    ):
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(one_run(feed, Path(tmp), embedded))
        p50 = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        print(
            f"  {name:<52} tick-to-order p50 {p50:7.0f} µs  p99 {p99:7.0f} µs  "
            f"({runs[0][2]} orders)"
        )


if __name__ == "__main__":
    main()
