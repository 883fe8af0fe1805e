"""Composition of a paper run's processes from one configuration: workers and the supervisor.

``qtrader run`` starts the supervisor and one worker per ``[run] workers`` entry as separate
processes (``qtrader supervisor``, ``qtrader worker --index I``); an operator running across
machines starts the same commands by hand, each pointed at the same Redis. This module builds
each process's parts:

- ``open_worker``: the replay feed for its symbols, its ``PaperVenue`` (``<folder>/<id>/venue.db``),
  the shared stores, the publisher (Redis Streams behind a disk spool in ``<folder>/<id>/spool``),
  the shared audit trail (``<folder>/audit``, group commit; one chain for every process), and a
  ``LatchWatcher`` that sets the worker's halt flag the moment a latch is broadcast and
  publishes an ``ess.ack`` event with when it heard it (how fast every worker stops).
- ``open_supervisor``: the shared stores, the bus consumer of ``worker.status`` (consumer group
  ``supervisor``), and the ``Supervisor``.

Both seed the shared policy from ``[risk]`` once: only while the store still holds the default
document (version 1), by compare-and-set, so the first process wins and a policy a person
changed is never overwritten by a restart.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import redis

from quantum_trader.ai.sizing import BanditSizingAgent, PositionSizer
from quantum_trader.bus.events import EventFactory
from quantum_trader.bus.local import LocalBus
from quantum_trader.bus.ports import EventPublisher
from quantum_trader.bus.redis_streams import RedisStreamsBus
from quantum_trader.bus.spool.buffer import EventBuffer
from quantum_trader.bus.spool.publisher import SpoolingPublisher
from quantum_trader.data.loaders import load_market
from quantum_trader.data.market import MarketData
from quantum_trader.data.synthetic import generate_market
from quantum_trader.domain.clock import Clock, WallClock
from quantum_trader.domain.errors import ConfigError, ConflictError, QuantumTraderError
from quantum_trader.engine.audit import open_audit_logger
from quantum_trader.engine.live_feed import LiveCandleFeed
from quantum_trader.engine.replay import MarketFeed, ReplayFeed
from quantum_trader.engine.settings import RiskSettings, RunSettings
from quantum_trader.engine.stores import StateStores, is_redis_url, open_state_stores
from quantum_trader.engine.supervisor import Supervisor
from quantum_trader.engine.tick_replay import TickReplayFeed, capture_files
from quantum_trader.engine.worker import STATUS_TOPIC, TradingWorker, WorkerSettings
from quantum_trader.execution.live.config import BinanceEnvironment, BinanceUsdmSettings
from quantum_trader.execution.live.venue import BinanceUsdmVenue
from quantum_trader.execution.paper import PaperVenue, VenueSettings
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.records import Durability
from quantum_trader.observability.metrics.logger import MetricsLogger
from quantum_trader.stores.ports import EssState
from quantum_trader.stores.redis import LatchWatcher, connect
from quantum_trader.strategies.registry import create_strategy

ACK_TOPIC = "ess.ack"
STATUS_GROUP = "supervisor"


def load_run_market(run: RunSettings, symbols: tuple[str, ...]) -> MarketData:
    """The market the run replays for ``symbols`` (the synthetic one when no data is named)."""
    if run.data is None:
        market = generate_market(
            run.symbols, bars=run.synthetic_bars, timeframe=run.timeframe, seed=run.synthetic_seed
        )
        return {s: market[s] for s in symbols}
    return load_market(run.data, symbols, run.timeframe)


def _ns(moment: Any) -> int | None:
    return None if moment is None else int(pd.Timestamp(moment).value)


def _feed(run: RunSettings, symbols: tuple[str, ...]) -> MarketFeed:
    """The market a worker trades: replayed candles or websocket captures, or live candles."""
    if run.feed == "live":
        # Public market data only: no keys, no signed request (the fills stay simulated).
        public = BinanceUsdmSettings(
            environment=BinanceEnvironment(run.exchange),
            api_url=run.exchange_url,
            load_brackets=False,
        )
        source = BinanceUsdmVenue(None, public, clock=WallClock())
        return LiveCandleFeed(source, symbols, run.timeframe, WallClock())
    if run.feed == "ticks":
        if run.data is None or not run.data.is_dir():
            raise ConfigError(
                "[run] feed = ticks needs data = a folder of websocket captures, e.g. "
                "../shared/data/hftbacktest_binance_ws_streams/usdm"
            )
        return TickReplayFeed(capture_files(run.data, symbols), run.timeframe)
    return ReplayFeed(
        load_run_market(run, symbols),
        symbols,
        run.timeframe,
        start_ns=_ns(run.start),
        end_ns=_ns(run.end),
    )


def seed_policy(stores: StateStores, risk: RiskSettings) -> None:
    """Store the ``[risk]`` policy as version 2 if the store still holds the default (v1)."""
    stored = stores.policy.get()
    if stored.version == 1 and stored.updated_by == "default":
        try:
            stores.policy.compare_and_set(1, replace(risk.policy(), version=2))
        except ConflictError:
            pass  # another process seeded it first


@dataclass(slots=True)
class WorkerParts:
    """A worker with everything it runs on; ``close`` is done by ``open_worker``'s block."""

    worker: TradingWorker
    venue: PaperVenue
    stores: StateStores
    publisher: EventPublisher
    audit: AuditLogger
    metrics: MetricsLogger
    acks: list[tuple[int, int]]


@contextmanager
def open_worker(
    run: RunSettings,
    risk: RiskSettings,
    index: int,
    *,
    clock: Clock | None = None,
    local_bus: LocalBus | None = None,
) -> Iterator[WorkerParts]:
    """Build worker ``index`` of ``run``; everything is closed when the block ends.

    Without Redis, events go to ``local_bus`` (one process: ``run_in_one_process``), or to a
    bus of the worker's own.
    """
    if not 0 <= index < len(run.workers):
        raise ConfigError(f"worker index {index} is outside 0..{len(run.workers) - 1}")
    clock = clock or WallClock()
    wid = run.worker_id(index)
    symbols = run.workers[index]
    strategy = create_strategy(run.strategy, run.params)
    feed = _feed(run, symbols)
    home = run.folder / wid
    with ExitStack() as stack:
        audit = open_audit_logger(run.folder / "audit", clock, durability=Durability.GROUP)
        stack.callback(audit.close)
        metrics = MetricsLogger()
        venue = PaperVenue(
            home / "venue.db",
            feed.instruments(),
            VenueSettings(
                cash=run.cash,
                leverage=run.leverage,
                margin_mode=run.margin_mode,
                fee_maker=run.fee_maker,
                fee_taker=run.fee_taker,
                slippage_bps=run.slippage_bps,
                matching="ticks" if run.feed == "ticks" else "bars",
            ),
            clock,
            durable=run.durable,
        )
        stack.callback(venue.close)
        stores = open_state_stores(run.state, redis_prefix=run.redis_prefix)
        stack.callback(stores.close)
        seed_policy(stores, risk)
        client: redis.Redis | None = None
        publisher: EventPublisher
        if is_redis_url(run.state):
            client = connect(run.state)
            stack.callback(client.close)
            bus = RedisStreamsBus(client, prefix=run.redis_prefix, consumer=wid)
            spool = EventBuffer(home / "spool", audit=audit)
            stack.callback(spool.close)
            publisher = SpoolingPublisher(bus, spool)
        else:
            publisher = local_bus if local_bus is not None else LocalBus()
        sizer = None
        if run.sizer is not None:
            if not run.sizer.is_file():
                raise ConfigError(f"[run] sizer: no sizing agent at {run.sizer}")
            agent = BanditSizingAgent.load(run.sizer)
            sizer = PositionSizer(agent, metrics=metrics, audit=audit, actor=f"{wid}-sizer")
        worker = TradingWorker(
            WorkerSettings(wid, leverage=run.leverage, speed=run.speed),
            feed,
            strategy,
            venue,
            stores,
            publisher,
            clock,
            audit=audit,
            metrics=metrics,
            max_execution_errors=risk.ess.max_execution_errors,
            error_window_secs=risk.ess.error_window_secs,
            sizer=sizer,
        )
        acks: list[tuple[int, int]] = []
        if client is not None:
            ack_bus = RedisStreamsBus(client, prefix=run.redis_prefix, consumer=wid)
            acks_events = EventFactory(clock, f"{wid}-ess")

            def on_latch(state: EssState) -> None:
                if not state.active:
                    return
                worker.halt.set()  # from here on the worker sends no new order
                seen = clock.now_ns()
                acks.append((state.activations, seen))
                payload: dict[str, Any] = {
                    "worker": wid,
                    "activation": state.activations,
                    "activated_at_ns": state.activated_at_ns,
                    "seen_ns": seen,
                }
                try:
                    ack_bus.publish(acks_events.create(ACK_TOPIC, payload))
                except QuantumTraderError:
                    pass  # only a measurement; the halt itself already happened

            watcher = LatchWatcher(client, on_latch, prefix=run.redis_prefix).start()
            stack.callback(watcher.stop)
        yield WorkerParts(worker, venue, stores, publisher, audit, metrics, acks)


@dataclass(slots=True)
class SupervisorParts:
    """The supervisor and its bus consumer."""

    supervisor: Supervisor
    stores: StateStores
    bus: RedisStreamsBus | None
    audit: AuditLogger
    metrics: MetricsLogger
    stop: threading.Event


@contextmanager
def open_supervisor(
    run: RunSettings,
    risk: RiskSettings,
    *,
    clock: Clock | None = None,
    metrics: MetricsLogger | None = None,
    local_bus: LocalBus | None = None,
) -> Iterator[SupervisorParts]:
    """Build the supervisor of ``run``; everything is closed when the block ends.

    Without Redis, the workers' status events come from ``local_bus`` (one process).
    """
    clock = clock or WallClock()
    with ExitStack() as stack:
        audit = open_audit_logger(run.folder / "audit", clock, durability=Durability.GROUP)
        stack.callback(audit.close)
        metrics = metrics or MetricsLogger()
        stores = open_state_stores(run.state, redis_prefix=run.redis_prefix)
        stack.callback(stores.close)
        seed_policy(stores, risk)
        bus: RedisStreamsBus | None = None
        probe = None
        if is_redis_url(run.state):
            client = connect(run.state)
            stack.callback(client.close)
            bus = RedisStreamsBus(
                client, prefix=run.redis_prefix, group=STATUS_GROUP, consumer="supervisor"
            )

            def probe() -> bool:
                try:
                    return bool(client.ping())
                except (redis.RedisError, OSError):
                    return False

        supervisor = Supervisor(
            tuple(run.worker_id(i) for i in range(len(run.workers))),
            stores.policy,
            stores.ess,
            stores.equity_marks,
            clock,
            audit=audit,
            metrics=metrics,
            worker_stale_secs=run.worker_stale_secs,
            up_cycles=risk.coordinator.up_cycles,
            ess_enabled=risk.ess.enabled,
            probe=probe,
        )
        if bus is not None:
            bus.subscribe(STATUS_TOPIC, supervisor.on_status)
        elif local_bus is not None:
            local_bus.subscribe(STATUS_TOPIC, supervisor.on_status)
        yield SupervisorParts(supervisor, stores, bus, audit, metrics, threading.Event())


def supervise(parts: SupervisorParts, interval_secs: float) -> None:
    """Run supervisor cycles every ``interval_secs`` until ``parts.stop`` is set.

    Between cycles it consumes the workers' status events (blocking on the bus for at most the
    interval), so a stop request or a status arrives without waiting out a sleep.
    """
    block_ms = max(1, int(interval_secs * 1000))
    while not parts.stop.is_set():
        if parts.bus is not None:
            try:
                parts.bus.poll(block_ms=block_ms)
            except QuantumTraderError:
                parts.stop.wait(interval_secs)  # Redis is down: the cycle reports it
        else:
            parts.stop.wait(interval_secs)
        parts.supervisor.cycle()


@dataclass(frozen=True, slots=True)
class PaperResult:
    """How a one-process paper run ended."""

    finished: bool
    steps: int
    equity: dict[str, float]
    orders_sent: int
    emergency_stop: bool


def run_in_one_process(
    run: RunSettings,
    risk: RiskSettings,
    *,
    stop: threading.Event,
    clock: Clock | None = None,
    progress: Callable[[float], None] | None = None,
) -> PaperResult:
    """``qtrader paper``: the supervisor and every worker of ``run`` in this one process.

    One thread, one local bus: the workers step through their feeds in market-time order (the
    earliest next bar first), paced to ``run.speed`` on the wall clock, and the supervisor cycles
    every ``supervisor_interval_secs``. The state is ``run.state`` (a SQLite file by default in
    ``qtrader paper``); restarting the command resumes every worker from its venue journal.
    """
    clock = clock or WallClock()
    bus = LocalBus()
    with ExitStack() as stack:
        supervisor = stack.enter_context(
            open_supervisor(run, risk, clock=clock, local_bus=bus)
        ).supervisor
        workers = [
            stack.enter_context(open_worker(run, risk, i, clock=clock, local_bus=bus)).worker
            for i in range(len(run.workers))
        ]
        nxt = [w.recover().resume_index for w in workers]
        total = sum(len(w.feed) for w in workers)
        heap = [
            (int(w.feed.times[k]), n)
            for n, (w, k) in enumerate(zip(workers, nxt, strict=True))
            if k < len(w.feed)
        ]
        heapq.heapify(heap)
        first = heap[0][0] if heap else 0
        started = time.monotonic()
        cycle_every = run.supervisor_interval_secs
        next_cycle = started
        steps = 0
        while heap and not stop.is_set():
            ts, n = heapq.heappop(heap)
            if run.speed > 0:  # the bar is due (ts - first) / speed seconds after the start
                due = started + (ts - first) / 1e9 / run.speed
                stop.wait(max(0.0, due - time.monotonic()))
            workers[n].step(nxt[n])
            nxt[n] += 1
            steps += 1
            if nxt[n] < len(workers[n].feed):
                heapq.heappush(heap, (int(workers[n].feed.times[nxt[n]]), n))
            if time.monotonic() >= next_cycle:
                supervisor.cycle()
                next_cycle = time.monotonic() + cycle_every
            if progress is not None and steps % 256 == 0:
                progress(sum(nxt) / max(1, total))
        supervisor.cycle()
        for w in workers:
            w.finish()
        return PaperResult(
            finished=not heap,
            steps=steps,
            equity={w.wid: w.venue.equity() for w in workers},
            orders_sent=sum(w.orders_sent for w in workers),
            emergency_stop=supervisor.ess.is_active(),
        )
