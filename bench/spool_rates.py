"""Disk EventBuffer rates: append with an fsync per batch (batches of 1, 100, 1000), and replay.

    .venv/bin/python bench/spool_rates.py [--events 20000] [--single-events 1000] [--repeat 3]

Each repeat opens a fresh spool in a temporary folder (on the disk that holds the system's temp
directory; set TMPDIR to measure another disk) with the real ``os.fsync`` and appends ~200-byte
fill-like events with ``append_batch``, so every batch is durable when the call returns (one
fsync per segment touched, plus the folder's when a segment is created). Batches of 1 write
``--single-events`` events, the others ``--events``. Replay reopens the spool written in
batches of 1000 and times ``replay`` (read, checksum, decode, deliver to a no-op callback,
cursor update per delivered batch, segment deletion) with its default batch size. Figures are
events per second, medians over the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from quantum_trader.bus.events import Event, EventFactory
from quantum_trader.bus.spool.buffer import EventBuffer
from quantum_trader.domain.clock import ManualClock

T0 = 1_750_000_000_000_000_000


def _events(count: int, seed: int) -> list[Event]:
    clock = ManualClock(T0)
    factory = EventFactory(clock, "bench", seed=seed)
    events = []
    for n in range(count):
        clock.advance(1_000_000)
        events.append(
            factory.create(
                "fills",
                {
                    "symbol": "BTCUSDT",
                    "side": "buy",
                    "qty": 0.05,
                    "price": 107348.7 + n % 100,
                    "fee": 2.147,
                    "client_order_id": f"bt-{n:07d}",
                },
            )
        )
    return events


def _append(folder: Path, events: list[Event], batch: int) -> tuple[float, int, int]:
    """Append ``events`` in batches; return (seconds, fsync calls, bytes appended)."""
    with EventBuffer(folder) as spool:
        started = time.perf_counter()
        for start in range(0, len(events), batch):
            spool.append_batch(events[start : start + batch])
        elapsed = time.perf_counter() - started
        return elapsed, spool.fsync_calls, spool.appended_bytes


def _replay(folder: Path, expected: int) -> float:
    delivered = 0

    def deliver(batch: Sequence[Event]) -> None:
        nonlocal delivered
        delivered += len(batch)

    with EventBuffer(folder) as spool:
        started = time.perf_counter()
        spool.replay(deliver)
        elapsed = time.perf_counter() - started
        if delivered != expected or spool.corrupt_records or not spool.empty:
            raise RuntimeError(f"replayed {delivered} of {expected} events")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per batched run")
    parser.add_argument(
        "--single-events", type=int, default=1_000, help="events per run in batches of 1"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    batches = (1, 100, 1000)
    rates: dict[str, list[float]] = {}
    fsyncs: dict[str, int] = {}
    size = 0
    with tempfile.TemporaryDirectory(prefix="qt-spool-bench-") as tmp:
        root = Path(tmp)
        for run in range(args.repeat):
            events = _events(args.events, seed=run)
            for batch in batches:
                name = f"append, batch of {batch}"
                chunk = events[: args.single_events] if batch == 1 else events
                folder = root / f"run{run}-batch{batch}"
                elapsed, fsyncs[name], size = _append(folder, chunk, batch)
                rates.setdefault(name, []).append(len(chunk) / elapsed)
            elapsed = _replay(root / f"run{run}-batch1000", len(events))
            rates.setdefault("replay", []).append(len(events) / elapsed)
    print(
        f"{args.events:,} events per run ({size / args.events:,.0f} bytes each on disk), "
        f"{args.single_events:,} in batches of 1, medians of {args.repeat} runs"
    )
    for name, values in rates.items():
        extra = f"   {fsyncs[name]:,} fsyncs" if name in fsyncs else ""
        print(
            f"  {name:<22} {statistics.median(values):>12,.0f} events/s   "
            f"(min {min(values):,.0f}, max {max(values):,.0f}){extra}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
