"""Event bus throughput: Redis Streams on loopback (publish, batched publish, consume) vs LocalBus.

    .venv/bin/python bench/bus_throughput.py [--events 20000] [--unbatched-events 5000] [--repeat 3]

Starts a private ``redis-server`` on a free 127.0.0.1 port in a temporary folder (RedisServer,
no persistence; never the Redis on 6379) and measures, in events per second, medians over the
repeats, each repeat on fresh stream keys:

- publish, unbatched: ``publish`` one event at a time (one XADD round trip each);
- publish_batch of 100 and of 1000: one pipelined round trip per batch;
- consume: ``poll(count=1000)`` in one consumer group until the stream is drained (XREADGROUP,
  decode, handler, dedupe by id, XACK per poll) over what each batched run published;
- LocalBus: ``publish_batch`` of 1000 to one subscribed handler, in process.

Events are ~200 bytes encoded (a fill-like payload). The target of issue 5 is at least 50,000
events/s batched through Redis Streams. Client and server share this machine's cores, so the
figures move with whatever else runs on it.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

from quantum_trader.bus.events import Event, EventFactory
from quantum_trader.bus.local import LocalBus
from quantum_trader.bus.redis_streams import RedisStreamsBus
from quantum_trader.domain.clock import ManualClock
from quantum_trader.testing.redis_server import RedisServer

TOPIC = "fills"
T0 = 1_750_000_000_000_000_000


def _events(count: int, seed: int) -> list[Event]:
    clock = ManualClock(T0)
    factory = EventFactory(clock, "bench", seed=seed)
    events = []
    for n in range(count):
        clock.advance(1_000_000)
        events.append(
            factory.create(
                TOPIC,
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


def _rate(count: int, elapsed: float) -> float:
    return count / elapsed if elapsed > 0 else float("inf")


def _timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _bus(url: str, prefix: str, **options: object) -> RedisStreamsBus:
    # maxlen above the run size, so trimming never drops what the consumer is to read.
    return RedisStreamsBus.from_url(url, timeout_secs=30.0, prefix=prefix, maxlen=10**7, **options)


def _publish_one_by_one(url: str, events: list[Event]) -> float:
    bus = _bus(url, f"bench-{uuid.uuid4().hex[:12]}")
    try:

        def run() -> None:
            publish = bus.publish
            for event in events:
                publish(event)

        return _rate(len(events), _timed(run))
    finally:
        bus.close()


def _publish_and_consume(url: str, events: list[Event], batch: int) -> tuple[float, float]:
    """Publish ``events`` in batches, then drain them in one group; return both rates."""
    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    consumer = _bus(url, prefix, group="bench", consumer="c1")
    publisher = _bus(url, prefix)
    received = 0

    def handler(_event: Event) -> None:
        nonlocal received
        received += 1

    try:
        consumer.subscribe(TOPIC, handler)  # creates the group before anything is published

        def publish() -> None:
            for start in range(0, len(events), batch):
                publisher.publish_batch(events[start : start + batch])

        def consume() -> None:
            poll = consumer.poll
            while poll(count=1000):
                pass

        published = _rate(len(events), _timed(publish))
        consumed = _rate(len(events), _timed(consume))
        if received != len(events) or consumer.pending_count(TOPIC) != 0:
            raise RuntimeError(f"consumed {received} of {len(events)} events, or left some unacked")
        return published, consumed
    finally:
        consumer.close()
        publisher.close()


def _local(events: list[Event], batch: int) -> float:
    bus = LocalBus()
    received = 0

    def handler(_event: Event) -> None:
        nonlocal received
        received += 1

    bus.subscribe(TOPIC, handler)

    def run() -> None:
        for start in range(0, len(events), batch):
            bus.publish_batch(events[start : start + batch])

    rate = _rate(len(events), _timed(run))
    if received != len(events):
        raise RuntimeError(f"LocalBus delivered {received} of {len(events)} events")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per batched run")
    parser.add_argument(
        "--unbatched-events", type=int, default=5_000, help="events per unbatched run"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {}

    def note(name: str, rate: float) -> None:
        rates.setdefault(name, []).append(rate)

    with RedisServer() as server:
        for run in range(args.repeat):
            # Fresh ids each repeat: a LocalBus or a consumer would drop repeats as duplicates.
            events = _events(args.events, seed=run)
            unbatched = events[: args.unbatched_events]
            note("redis publish, unbatched", _publish_one_by_one(server.url, unbatched))
            for batch in (100, 1000):
                published, consumed = _publish_and_consume(server.url, events, batch)
                note(f"redis publish_batch of {batch}", published)
                note("redis consume (poll 1000, ack)", consumed)
            note("local publish_batch of 1000", _local(events, 1000))
    print(
        f"{args.events:,} events per batched run, {args.unbatched_events:,} unbatched, "
        f"medians of {args.repeat} runs (redis-server on 127.0.0.1:{server.port})"
    )
    order = (
        "redis publish, unbatched",
        "redis publish_batch of 100",
        "redis publish_batch of 1000",
        "redis consume (poll 1000, ack)",
        "local publish_batch of 1000",
    )
    for name in order:
        values = rates[name]
        median = statistics.median(values)
        print(
            f"  {name:<32} {median:>12,.0f} events/s   "
            f"(min {min(values):,.0f}, max {max(values):,.0f})"
        )
    batched = statistics.median(rates["redis publish_batch of 1000"])
    verdict = "meets" if batched >= 50_000 else "MISSES"
    print(f"  batched Redis Streams publish {verdict} the 50,000 events/s target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
