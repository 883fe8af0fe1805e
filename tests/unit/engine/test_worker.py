"""TradingWorker: the paper path equals the backtest, survives a crash anywhere, obeys the latch.

Crashes are injected at the ports (a trade store or publisher that dies on its Nth call, as a
process killed there would); the venue is reopened from its journal, the stores are the same
objects (as Redis outlives a worker). The integration suite kills real processes with SIGKILL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trader.bus.events import Event
from quantum_trader.bus.local import LocalBus
from quantum_trader.data.market import MarketData
from quantum_trader.data.synthetic import generate_market
from quantum_trader.domain.clock import ManualClock
from quantum_trader.domain.errors import TransientError
from quantum_trader.domain.policy import TradingState
from quantum_trader.domain.trading import TradeStatus
from quantum_trader.engine.backtest import run_backtest
from quantum_trader.engine.replay import ReplayFeed
from quantum_trader.engine.settings import BacktestSettings
from quantum_trader.engine.stores import StateStores, open_state_stores
from quantum_trader.engine.worker import FILLS_TOPIC, TradingWorker, WorkerSettings
from quantum_trader.execution.paper import PaperVenue, VenueSettings
from quantum_trader.risk.ess import EmergencyStopSystem
from quantum_trader.risk.policy_service import PolicyService
from quantum_trader.stores.ports import EssState
from quantum_trader.stores.trades import TradeRecord, record_of
from quantum_trader.strategies.sma_cross import SmaCross
from quantum_trader.testing.builders import ScriptedStrategy
from quantum_trader.testing.fakes import RecordingAuditRecorder

SYMBOLS = ("BTCUSDT", "ETHUSDT")
BARS = 700


@pytest.fixture(scope="module")
def market() -> MarketData:
    return generate_market(SYMBOLS, bars=BARS, seed=11)


def strategy() -> SmaCross:
    return SmaCross(fast=5, slow=20)


class Crash(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs."""


@dataclass
class CrashingPublisher:
    """A bus that collects events and dies on its ``die_at``-th publish call."""

    events: list[Event] = field(default_factory=list)
    calls: int = 0
    die_at: int | None = None

    def publish(self, event: Event) -> None:
        self.publish_batch((event,))

    def publish_batch(self, events: Sequence[Event]) -> None:
        self.calls += 1
        if self.die_at is not None and self.calls >= self.die_at:
            raise Crash
        self.events.extend(events)


class CrashingTrades:
    """The in-memory trade store, dying on its ``die_at``-th save (or failing while ``down``)."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.saves = 0
        self.die_at: int | None = None
        self.down = False

    def save(self, record: TradeRecord) -> None:
        self.saves += 1
        if self.die_at is not None and self.saves >= self.die_at:
            raise Crash
        if self.down:
            raise TransientError("store down")
        self._inner.save(record)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def make_worker(
    tmp: Path,
    market: MarketData,
    stores: StateStores,
    publisher: object,
    audit: RecordingAuditRecorder | None = None,
) -> TradingWorker:
    feed = ReplayFeed(market, SYMBOLS, "1m")
    venue = PaperVenue(
        tmp / "venue.db", feed.instruments(), VenueSettings(), ManualClock(1), durable=False
    )
    return TradingWorker(
        WorkerSettings("w0"),
        feed,
        strategy(),
        venue,
        stores,
        publisher,  # type: ignore[arg-type]
        ManualClock(1),
        audit=audit,
    )


def fill_keys(worker: TradingWorker) -> list[tuple[object, ...]]:
    return [
        (f.client_order_id, f.symbol, f.side, f.quantity, f.price, f.fee, f.ts_event)
        for f in worker.venue.exchange.fills
    ]


def stored_trades(stores: StateStores) -> dict[str, dict[str, object]]:
    out = {}
    for symbol in SYMBOLS:
        for r in stores.trades.list(symbol=symbol):
            d = r.to_dict()
            d.pop("updated_ts_ns")
            out[r.trade_id] = d
    return out


def venue_trades(worker: TradingWorker) -> dict[str, dict[str, object]]:
    out = {}
    for t in worker.venue.account.all_trades():
        d = record_of(t, trade_id=f"w0-{t.trade_id}", metadata={"worker": "w0"}).to_dict()
        d.pop("updated_ts_ns")
        out[d["trade_id"]] = d
    return out


@pytest.fixture(scope="module")
def reference(market: MarketData, tmp_path_factory: pytest.TempPathFactory) -> TradingWorker:
    stores = open_state_stores(None)
    worker = make_worker(tmp_path_factory.mktemp("ref"), market, stores, LocalBus())
    assert worker.run(wait=lambda _s: None) == BARS
    return worker


def test_paper_replay_makes_exactly_the_backtests_fills(
    market: MarketData, reference: TradingWorker
) -> None:
    result = run_backtest(BacktestSettings(symbols=SYMBOLS, timeframe="1m"), strategy(), market)
    bt = result.fills
    assert len(bt) == len(reference.venue.exchange.fills) > 20
    for row, fill in zip(bt.itertuples(), reference.venue.exchange.fills, strict=True):
        assert (row.symbol, row.side, row.quantity, row.price, row.fee) == (
            fill.symbol,
            fill.side.value,
            fill.quantity,
            fill.price,
            fill.fee,
        )
    assert result.summary["final_equity"] == reference.venue.equity()


def test_every_trade_is_stored_as_the_venue_booked_it(reference: TradingWorker) -> None:
    assert stored_trades(reference.stores) == venue_trades(reference)
    assert reference.duplicates_prevented == 0


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    crash=st.one_of(
        # the Nth publish call (about two per bar) or the Nth trade write (one per change)
        st.tuples(st.just("publish"), st.integers(min_value=1, max_value=600)),
        st.tuples(st.just("trade_save"), st.integers(min_value=1, max_value=100)),
    )
)
def test_a_crash_anywhere_then_recovery_loses_and_repeats_nothing(
    market: MarketData,
    reference: TradingWorker,
    tmp_path_factory: pytest.TempPathFactory,
    crash: tuple[str, int],
) -> None:
    where, at = crash
    tmp = tmp_path_factory.mktemp("crash")
    stores = open_state_stores(None)
    trades = CrashingTrades(stores.trades)
    stores = replace(stores, trades=trades)  # type: ignore[arg-type]
    bus = CrashingPublisher()
    if where == "publish":
        bus.die_at = at
    else:
        trades.die_at = at
    first = make_worker(tmp, market, stores, bus)
    with pytest.raises(Crash):
        first.run(wait=lambda _s: None)
    assert first.venue.last_ts < int(first.feed.times[-1])  # it died before the end
    bus.die_at = trades.die_at = None
    first.venue.close()  # the dead process's file lock goes with it
    audit = RecordingAuditRecorder()
    second = make_worker(tmp, market, stores, bus, audit)  # reopens the journal
    assert second.run(wait=lambda _s: None) == BARS
    assert fill_keys(second) == fill_keys(reference)
    assert second.orders_sent + first.orders_sent == reference.orders_sent
    assert stored_trades(stores) == venue_trades(second)
    fills = [e for e in bus.events if e.topic == FILLS_TOPIC]
    # every fill reached the bus; a repeat carries the same id, so consumers drop it
    by_id = {e.event_id: e.payload["client_order_id"] for e in fills}
    assert len(by_id) == len(reference.venue.exchange.fills)
    assert sorted(by_id.values()) == sorted(
        f.client_order_id for f in reference.venue.exchange.fills
    )
    ready = [r for r in audit.records if r["target"] == "worker"]
    assert ready[0]["metadata"]["resume_market_ts"] == first.venue.last_ts


def test_recovery_fixes_and_audits_every_discrepancy(market: MarketData, tmp_path: Path) -> None:
    stores = open_state_stores(None)
    first = make_worker(tmp_path, market, stores, LocalBus())
    for i in range(400):
        first.step(i)
    open_ids = [f"w0-{t.trade_id}" for t in first.venue.account.open_trades.values()]
    closed = first.venue.account.closed_trades
    assert open_ids
    assert len(closed) >= 2
    victim = stores.trades.get(open_ids[0])
    assert victim is not None
    stores.trades.save(replace(victim, quantity=victim.quantity * 3))  # a wrong record
    stored_closed = stores.trades.get(f"w0-{closed[0].trade_id}")
    assert stored_closed is not None
    stores.trades.save(replace(stored_closed, fees=stored_closed.fees + 1.0))
    ghost = replace(victim, trade_id="w0-T999999", symbol="ETHUSDT")  # unknown to the venue
    stores.trades.save(ghost)
    stores.trades.save(replace(victim, trade_id="w9-T000001"))  # another worker's: untouched
    first.venue.close()
    audit = RecordingAuditRecorder()
    second = make_worker(tmp_path, market, stores, LocalBus(), audit)
    report = second.recover()
    kinds = sorted(line.split(": ")[1].split(" ")[0] for line in report.discrepancies)
    assert kinds == ["differs_from_venue", "differs_from_venue", "unknown_to_venue"]
    fixes = [r for r in audit.records if r["target"] == "reconcile"]
    assert sorted(r["reason"] for r in fixes) == kinds
    assert {r["metadata"]["trade_id"] for r in fixes} == {
        open_ids[0],
        f"w0-{closed[0].trade_id}",
        "w0-T999999",
    }
    assert stores.trades.get("w0-T999999").status is TradeStatus.CLOSED  # type: ignore[union-attr]
    assert stores.trades.get("w9-T000001") is not None
    mine = {k: v for k, v in stored_trades(stores).items() if k != "w0-T999999"}
    assert {k: v for k, v in mine.items() if k.startswith("w0-")} == venue_trades(second)
    assert report.resume_index == 400


def test_a_latch_stops_new_orders_and_flattens_the_workers_own_book(
    market: MarketData, tmp_path: Path
) -> None:
    stores = open_state_stores(None)
    audit = RecordingAuditRecorder()
    worker = make_worker(tmp_path, market, stores, LocalBus(), audit)
    worker.recover()
    i = 0
    while not worker.venue.positions():
        worker.step(i)
        i += 1
    # A person triggers from another process: it can reach no venue, only the latch.
    other = EmergencyStopSystem(
        stores.ess,
        PolicyService(stores.policy, ManualClock(5)),
        worker,  # any executor: the trigger's own flatten is not what is tested here
        ManualClock(5),
        evaluators=(),
    )
    stores.ess.save(replace(stores.ess.load(), active=True, activations=1, reason="manual: test"))
    sent = set(worker.venue.exchange.orders)
    for k in range(i, i + 60):
        worker.step(k)
    new = [cid for cid in worker.venue.exchange.orders if cid not in sent]
    assert new
    assert all("-ess-" in cid for cid in new)
    assert all(worker.venue.order(cid).reduce_only for cid in new)  # type: ignore[union-attr]
    assert worker.venue.positions() == {}
    enforced = [r for r in audit.records if r["target"] == "emergency_stop"]
    assert len(enforced) == 1  # once per activation, not once per bar
    assert other.reset("alice", "checked", resume=TradingState.ACTIVE)
    before = len(worker.venue.exchange.orders)
    k = i + 60
    while len(worker.venue.exchange.orders) == before and k < BARS - 1:
        worker.step(k)
        k += 1
    assert len(worker.venue.exchange.orders) > before  # it trades again after the reset


def test_an_unreadable_latch_sends_nothing_and_flattens_nothing(
    market: MarketData, tmp_path: Path
) -> None:
    stores = open_state_stores(None)
    worker = make_worker(tmp_path, market, stores, LocalBus())
    worker.recover()
    i = 0
    while not worker.venue.positions():
        worker.step(i)
        i += 1

    class Down:
        def load(self) -> EssState:
            raise TransientError("redis down")

        def save(self, state: EssState) -> None:
            raise TransientError("redis down")

    worker.stores = replace(stores, ess=Down())
    orders = len(worker.venue.exchange.orders)
    worker.step(i)  # an order the venue already took may still fill: nothing else may happen
    held = worker.venue.positions()
    assert held
    for k in range(i + 1, i + 200):
        worker.step(k)
    assert len(worker.venue.exchange.orders) == orders
    assert worker.venue.positions() == held


def test_trade_writes_wait_while_the_store_is_down(market: MarketData, tmp_path: Path) -> None:
    stores = open_state_stores(None)
    trades = CrashingTrades(stores.trades)
    stores = replace(stores, trades=trades)  # type: ignore[arg-type]
    worker = make_worker(tmp_path, market, stores, LocalBus())
    worker.recover()
    trades.down = True
    for i in range(300):
        worker.step(i)
    assert stored_trades(stores) == {}
    trades.down = False
    worker.step(300)
    assert stored_trades(stores) == venue_trades(worker)


def test_a_trigger_reset_before_the_next_bar_leaves_the_worker_trading(
    market: MarketData, tmp_path: Path
) -> None:
    stores = open_state_stores(None)
    worker = make_worker(tmp_path, market, stores, LocalBus())
    worker.recover()
    for i in range(100):
        worker.step(i)
    other = EmergencyStopSystem(
        stores.ess,
        PolicyService(stores.policy, ManualClock(5)),
        worker,
        ManualClock(5),
        evaluators=(),
    )
    # The broadcast reached the worker, and a person reset before its next bar.
    stores.ess.save(replace(stores.ess.load(), active=True, activations=1, reason="manual: x"))
    worker.halt.set()
    assert other.reset("alice", "false alarm", resume=TradingState.ACTIVE)
    before = len(worker.venue.exchange.orders)
    k = 100
    while len(worker.venue.exchange.orders) == before and k < BARS - 1:
        worker.step(k)
        k += 1
    assert not worker.halt.is_set()
    assert len(worker.venue.exchange.orders) > before


def test_a_restart_while_latched_keeps_the_pending_emergency_closes(
    market: MarketData, tmp_path: Path
) -> None:
    """The ESS closes wait for the next open; a restart before it must not cancel them (their
    ids are taken for that bar, so a canceled close could not be sent again)."""
    stores = open_state_stores(None)
    worker = make_worker(tmp_path, market, stores, LocalBus())
    worker.recover()
    i = 0
    while not worker.venue.positions():
        worker.step(i)
        i += 1
    stores.ess.save(replace(stores.ess.load(), active=True, activations=1, reason="manual: x"))
    worker.step(i)  # enforces: the closes now wait for the next open
    closes = [o for o in worker.venue.open_orders() if "-ess-" in o.client_order_id]
    assert closes
    worker.venue.close()
    again = make_worker(tmp_path, market, stores, LocalBus())
    report = again.recover()  # enforces again at start-up
    assert report.latched
    assert {o.client_order_id for o in again.venue.open_orders()} == {
        o.client_order_id for o in closes
    }
    again.step(i + 1)
    assert again.venue.positions() == {}


def test_repeated_rejections_trigger_the_emergency_stop(tmp_path: Path) -> None:
    """Orders the venue rejects (under its minimum notional) count as execution errors."""
    market = generate_market(("BTCUSDT",), bars=200, seed=3)
    flips = [0.001 if k % 2 else -0.001 for k in range(200)]  # below the minimum notional
    feed = ReplayFeed(market, ("BTCUSDT",), "1m")
    venue = PaperVenue(
        tmp_path / "venue.db", feed.instruments(), VenueSettings(), ManualClock(1), durable=False
    )
    stores = open_state_stores(None)
    worker = TradingWorker(
        WorkerSettings("w0"),
        feed,
        ScriptedStrategy({"BTCUSDT": flips}),
        venue,
        stores,
        LocalBus(),
        ManualClock(1),
        max_execution_errors=3,
        error_window_secs=600,
    )
    worker.run(wait=lambda _s: None)
    state = stores.ess.load()
    assert state.active
    assert state.reason.startswith("execution_errors")
    assert len(venue.exchange.rejected) == 3  # nothing more was sent once it stopped


def test_a_restart_keeps_the_days_loss_base(market: MarketData, tmp_path: Path) -> None:
    stores = open_state_stores(None)
    first = make_worker(tmp_path, market, stores, LocalBus())
    first.recover()
    for i in range(300):
        first.step(i)
    base = first._day_start
    first.venue.close()
    again = make_worker(tmp_path, market, stores, LocalBus())
    again.run(300, wait=lambda _s: None)
    assert again._day_start == base  # the same UTC day: not reset to the equity at restart
