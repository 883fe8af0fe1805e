"""TradingWorker: one paper-trading process's path, from a bar to an order and back to the stores.

A worker trades a subset of symbols on a feed — replayed candles (``engine.replay``), replayed
websocket captures whose ticks the venue matches (``engine.tick_replay``), or live candles as
they close (``engine.live_feed``) — against its ``PaperVenue`` and shares
the policy, the ESS latch and the trade records with every other process (Redis in a
multi-process run). Per market time, in this order:

1. the venue meets the bar (fills, funding, liquidation) and commits;
2. the fills go on the bus (topic ``fills``) and the trades they touched to the trade store;
3. if the ESS latch is set, the worker enforces it once per activation (cancel, flatten its own
   positions with reduce-only orders) and decides nothing;
4. otherwise, at the bar's close, the strategy's target for each symbol becomes an order
   (``engine.targets.rebalance``, the backtest's own rule), which must pass the RiskGuard and a
   fresh read of the latch before it reaches the venue;
5. a ``worker.status`` event carries equity and positions to the supervisor.

**Never an order twice.** A decision's client order id is derived from what was decided
(``<worker>-<symbol>-<close time in ms>``; an ESS close ``<worker>-ess-<symbol>-<ms>``), and the
venue is asked for it before anything is sent. A worker killed at any point and restarted
recomputes the same decisions from the same bars and finds them already sent.

**Restart recovery** (``recover``): the venue rebuilds itself from its journal (it is the
truth); the stored trades are reconciled with the trades the venue's fills make — a missing
or different record is written, a stored open trade the venue does not know is closed — and
every discrepancy is audited (``system.state_changed``, component ``reconcile``); fills the
venue made but the bus never got are published again (ids are derived from the fill, so a
consumer drops any it already has); a set latch is enforced; the policy is re-read. Then the
worker re-runs the decision at the last bar the venue processed (found already sent, or sent
now if the crash came before it) and goes on with the next bar.

**Stores down.** If the policy or the latch cannot be read, the worker sends no new order that
step (fail closed) but does not flatten: an unreadable latch is not a trigger. Trade records
that cannot be written stay queued and are written at the next step that can; events go to the
publisher, which spools them to disk while the broker is down.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_trader.ai.sizing import PositionSizer, SizingDecision, SizingState
from quantum_trader.bus.events import Event, EventFactory
from quantum_trader.bus.ports import EventPublisher
from quantum_trader.domain.clock import NANOS_PER_DAY, Clock
from quantum_trader.domain.errors import QuantumTraderError, TransientError
from quantum_trader.domain.orders import Order, OrderSide, OrderStatus, OrderType
from quantum_trader.domain.trading import Fill, Trade, TradeStatus
from quantum_trader.engine.replay import MarketFeed
from quantum_trader.engine.safety import intent_for
from quantum_trader.engine.stores import StateStores
from quantum_trader.engine.targets import rebalance
from quantum_trader.execution.paper import PaperVenue
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.metrics.recorder import MetricsRecorder
from quantum_trader.risk.drawdown import utc_day
from quantum_trader.risk.ess import EmergencyStopSystem, ExecutionErrorsEvaluator
from quantum_trader.risk.guard import AccountView, OrderIntent, RiskDecision, RiskGuard
from quantum_trader.risk.policy_service import PolicyService
from quantum_trader.stores.trades import TradeRecord, record_of
from quantum_trader.strategies.base import Signals, Strategy, TargetUnit

FILLS_TOPIC = "fills"
ORDERS_TOPIC = "orders"
STATUS_TOPIC = "worker.status"
_PUBLISHED_NOTE = "published_fills"
_DAY_NOTE = "day"
_DAY_START_NOTE = "day_start_equity"
_NS_PER_MS = 1_000_000
_ESS_TAG = "emergency_stop"
_HEALTH_EVERY = 60  # bars between model-health readings in the status events
_RECENT_VOL_BARS = 240  # the sizer's current volatility: the last few hours of 1m bars
_REFERENCE_VOL_BARS = 2880  # its usual volatility: the last two days


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What one worker trades and how.

    Attributes:
        worker_id: Unique name of the worker (letters, digits, ``_``); prefixes its ids.
        leverage: Leverage of its orders (the RiskGuard checks it against the policy).
        window_bars: Bars the strategy sees at each decision (0: twice its warm-up, + 2).
        speed: Replay speed as a multiple of real time (60: a 1m bar per second); 0 replays
            as fast as the worker can.
    """

    worker_id: str
    leverage: float = 10.0
    window_bars: int = 0
    speed: float = 0.0


@dataclass(slots=True)
class RecoveryReport:
    """What ``recover`` found and did.

    Attributes:
        resume_index: The feed index of the first bar to process after the re-run decision.
        open_trades: Open trades after reconciliation.
        open_orders: Orders open at the venue.
        discrepancies: One line per difference between the store and the venue, fixed.
        republished_fills: Fills published again (the bus may not have had them).
        latched: The ESS latch was set at start-up (and was enforced).
    """

    resume_index: int = 0
    open_trades: int = 0
    open_orders: int = 0
    discrepancies: list[str] = field(default_factory=list)
    republished_fills: int = 0
    latched: bool = False


class TradingWorker:
    """One worker's trading path on a replayed feed; see the module docstring."""

    def __init__(
        self,
        settings: WorkerSettings,
        feed: MarketFeed,
        strategy: Strategy,
        venue: PaperVenue,
        stores: StateStores,
        publisher: EventPublisher,
        clock: Clock,
        *,
        audit: AuditRecorder | None = None,
        metrics: MetricsRecorder | None = None,
        max_execution_errors: int = 10,
        error_window_secs: float = 60.0,
        on_step: Callable[[int], None] | None = None,
        sizer: PositionSizer | None = None,
    ) -> None:
        """Wire the worker; nothing is read or sent until ``recover``.

        ``clock`` is the wall clock (audit, policy and latch stamps); market time comes from
        the feed. ``on_step`` is called after each market time with its index (tests, pacing).
        ``sizer`` (the RL agent with its rule-based fallback) sizes every new position of a
        strategy that targets fractions of equity; without it the strategy's own fraction,
        scaled by the mode's ``size_scale``, is used (as in the backtest).
        """
        self.settings = settings
        self.wid = settings.worker_id
        self.feed = feed
        self.strategy = strategy
        self.venue = venue
        self.stores = stores
        self.publisher = publisher
        self.clock = clock
        self.audit = audit
        self.metrics = metrics
        self.on_step = on_step
        self.sizer = sizer
        self._peak = 0.0
        self._steps = 0
        self._health: dict[str, Any] | None = None
        self.policy = PolicyService(stores.policy, clock, audit, metrics)
        self.guard = RiskGuard(self.policy.current, on_denied=self._denied)
        self.errors = ExecutionErrorsEvaluator(max_execution_errors, error_window_secs)
        self.ess = EmergencyStopSystem(
            stores.ess, self.policy, self, clock, audit, metrics, evaluators=[self.errors]
        )
        self.window = settings.window_bars or 2 * strategy.warmup_bars + 2
        self.halt = threading.Event()
        """Set when a latch broadcast arrives: no new order from then on (cleared on reset)."""
        self.stop = threading.Event()
        """Set to make ``run`` return after the current step."""
        self._events = EventFactory(clock, self.wid)
        self._fill_bits = hashlib.blake2b(self.wid.encode(), digest_size=4).hexdigest()
        self._pending: dict[str, TradeRecord] = {}
        self._written: dict[str, TradeRecord] = {}
        self._published: int | None = None
        self._synced_closed = 0
        self._enforced_activation = -1
        self._market_ts = 0
        self._day = ""
        self._day_start = 0.0
        self.duplicates_prevented = 0
        self.decision_latency_ns: list[int] = []
        """Per order sent: from the start of its bar's step to the venue's acknowledgement."""
        self._step_started_ns = 0
        self.orders_sent = 0
        self.denials: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    def recover(self) -> RecoveryReport:
        """Reconcile the stores with the venue and find where to resume (module docstring)."""
        report = RecoveryReport()
        self._reconcile_trades(report)
        self._synced_closed = len(self.venue.account.closed_trades)
        report.republished_fills = self._publish_fills()
        report.open_orders = len(self.venue.open_orders())
        self._market_ts = self.venue.last_ts
        try:
            self.policy.refresh()
            state = self.stores.ess.load()
        except TransientError as exc:
            report.discrepancies.append(f"stores unreachable at start-up: {exc}")
        else:
            if state.active:
                report.latched = True
                self._enforce(state.activations)
        if self.venue.last_ts:
            # Re-run the decision at the last bar the venue met: sent already, or sent now;
            # then go on from the next bar (on a live feed, the bars missed while down too).
            last = self.feed.index_after(self.venue.last_ts) - 1
            if last >= 0 and int(self.feed.times[last]) == self.venue.last_ts:
                self._decide(last)
            report.resume_index = last + 1
        else:
            # A fresh start on a live feed: its history is warm-up, trade what closes from now.
            report.resume_index = getattr(self.feed, "start_index", 0)
        if self.audit is not None:
            self.audit.system_state_changed(
                actor=self.wid,
                component="worker",
                old="stopped",
                new="ready",
                reason="recovered" if self.venue.last_ts else "started",
                metadata={
                    "resume_market_ts": self.venue.last_ts,
                    "open_trades": report.open_trades,
                    "open_orders": report.open_orders,
                    "discrepancies": len(report.discrepancies),
                    "republished_fills": report.republished_fills,
                    "latched": report.latched,
                },
            )
        return report

    def run(self, start_index: int | None = None, *, wait: Callable[[float], object]) -> int:
        """Recover (unless ``start_index`` is given), then step through the feed.

        ``wait(seconds)`` paces the replay (``threading.Event.wait`` of ``stop`` in a real
        run, so a stop request cuts a pause short). Returns the index of the next bar not
        processed (``len(feed)`` when the replay finished).
        """
        i = self.recover().resume_index if start_index is None else start_index
        pause = self.feed.tf_ns / 1e9 / self.settings.speed if self.settings.speed > 0 else 0.0
        wait_for = getattr(self.feed, "wait_for", None)  # a live feed grows as bars close
        while not self.stop.is_set():
            if i >= len(self.feed) and (wait_for is None or not wait_for(i, self.stop)):
                break
            self.step(i)
            i += 1
            if pause and wait_for is None:
                wait(pause)
        self.finish()
        return i

    def finish(self) -> None:
        """Write what is still queued: trade records, spooled events, a strategy's buffers."""
        self._flush_trades()
        self._drain()
        close = getattr(self.strategy, "close", None)
        if close is not None:
            close()  # a model strategy writes what it buffered (its shadow log)

    # ------------------------------------------------------------------ one market time
    def step(self, i: int) -> None:
        """Process the market at ``feed.times[i]``: venue, fills, stores, latch, decisions."""
        started = time.perf_counter_ns()
        self._step_started_ns = started
        ts = int(self.feed.times[i])
        self._market_ts = ts
        ticks_at = getattr(self.feed, "ticks_at", None)  # a tick replay: the venue meets ticks
        ticks = ticks_at(i) if ticks_at is not None else None
        fills = self.venue.advance(ts, self.feed.bars_at(i), self.feed.funding_at(i), ticks)
        for fill in fills:
            if self.audit is not None:
                self._audit_fill(fill)
        self._publish_fills()
        self._sync_trades()
        self._track_day(ts)
        latched, activation = self._latch()
        if latched:
            if activation is not None:
                self._enforce(activation)
        elif activation is not None:  # the latch is readable and clear
            self.halt.clear()
            self._decide(i)
        self._drain()
        self._publish_status(ts)
        if self.on_step is not None:
            self.on_step(i)

    def _latch(self) -> tuple[bool, int | None]:
        """(latched, activation number); activation is None when the latch cannot be read."""
        try:
            state = self.stores.ess.load()
        except QuantumTraderError:
            return True, None  # cannot tell: send nothing, flatten nothing
        # The broadcast is sent in the same transaction as the write, so the store is never
        # behind it: an inactive latch here means reset (and a halt flag set since is caught by
        # the store read before every order).
        return state.active, state.activations

    def _enforce(self, activation: int) -> None:
        self.halt.set()
        if activation == self._enforced_activation:
            return
        self._enforced_activation = activation
        self.ess.enforce(actor=self.wid)

    # ------------------------------------------------------------------ decisions
    def _decide(self, i: int) -> None:
        if i >= len(self.feed) - 1 and not hasattr(self.feed, "wait_for"):
            return  # a replay's last bar has no next open to fill at (as in the backtest)
        ts_close = int(self.feed.times[i]) + self.feed.tf_ns
        try:
            self.policy.refresh()
        except QuantumTraderError:
            return  # fail closed: no policy, no orders
        scale = self.policy.current().active_limits.size_scale
        equity = self.venue.equity()
        marks = dict(self.venue.marks)
        positions = self.venue.positions()
        mark_ts = {s: self._market_ts for s in marks}
        view = AccountView(equity, self._day_start or equity, positions, marks, mark_ts)
        for symbol in self.feed.symbols:
            if symbol not in marks:
                continue
            signals = self.strategy.signals(self.feed.window(symbol, i, self.window))
            target = _changed_target(signals.target)
            if target is None:
                continue
            sized = self._sized(symbol, i, signals, target, scale, equity, ts_close)
            target, leverage, confidence, model = sized
            inst = self.venue.account.instruments[symbol]
            held = self.venue.account.positions[symbol].quantity
            move = rebalance(target, signals.unit, equity, marks[symbol], held, inst)
            if move.quantity == 0.0:
                continue
            cid = f"{self.wid}-{symbol}-{ts_close // _NS_PER_MS}"
            if self.venue.has_order(cid):
                self.duplicates_prevented += 1
                continue
            intent = intent_for(
                symbol,
                move.quantity,
                marks[symbol],
                ts_close,
                leverage=leverage,
                stop_loss=None,
                strategy=self.strategy.name,
                confidence=confidence,
            )
            if not self.guard.check(intent, view).approved:
                continue
            if self.halt.is_set() or self.ess.is_active():
                return  # the latch was set while deciding: not one more order
            order = Order(
                client_order_id=cid,
                symbol=symbol,
                side=OrderSide.of(move.quantity),
                type=OrderType.MARKET,
                quantity=abs(move.quantity),
                ts_init=ts_close,
                reduce_only=move.reduce_only,
                tag=self.strategy.name,
            )
            self._send(order, marks[symbol], target, model)

    def _sized(
        self,
        symbol: str,
        i: int,
        signals: Signals,
        target: float,
        scale: float,
        equity: float,
        ts_ns: int,
    ) -> tuple[float, float, float, dict[str, Any]]:
        """(target, leverage, confidence, audit facts) of a decision, sized.

        With a sizer, a new position of a fraction-of-equity strategy takes the sizer's
        fraction (which already holds the mode's ``size_scale``); otherwise the strategy's
        target is scaled by ``size_scale``, as in the backtest.
        """
        confidence = _last_confidence(signals)
        model: dict[str, Any] = {}
        if signals.model_version is not None:
            model = {"model_version": signals.model_version, "confidence": confidence}
            if self.metrics is not None:
                direction = "flat" if target == 0 else "up" if target > 0 else "down"
                self.metrics.record_model_prediction(self.strategy.name, direction, confidence)
        use_sizer = target != 0.0 and signals.unit is TargetUnit.EQUITY_FRACTION
        if self.sizer is None or not use_sizer:
            return target * scale, self.settings.leverage, confidence, model
        sized = self._size(symbol, i, confidence, equity, ts_ns)
        model["sizing"] = sized.source if sized.cause is None else sized.cause.value
        return math.copysign(sized.fraction, target), sized.leverage, confidence, model

    def _size(
        self, symbol: str, i: int, confidence: float, equity: float, ts_ns: int
    ) -> SizingDecision:
        """Ask the sizer (agent, else the rule) how large a new position may be."""
        assert self.sizer is not None
        per_day = NANOS_PER_DAY / self.feed.tf_ns
        closes = self.feed.window(symbol, i, _REFERENCE_VOL_BARS + 1).close
        returns = np.diff(np.log(closes))
        recent = returns[-_RECENT_VOL_BARS:]
        vol = float(np.std(recent)) * math.sqrt(per_day) if len(recent) > 1 else 0.0
        ref = float(np.std(returns)) * math.sqrt(per_day) if len(returns) > 1 else vol
        self._peak = max(self._peak, equity)
        drawdown = min(1.0, max(0.0, (self._peak - equity) / self._peak)) if self._peak else 0.0
        state = SizingState(
            volatility=vol,
            reference_volatility=ref,
            confidence=min(1.0, max(0.0, confidence)),
            drawdown=drawdown,
            equity=max(equity, 0.0),
        )
        return self.sizer.size(state, self.policy.current(), symbol=symbol, ts_ns=ts_ns)

    def _send(self, order: Order, price: float, target: float, model: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.trade_decision(
                actor=self.wid,
                symbol=order.symbol,
                side=order.side.value,
                quantity=order.quantity,
                price=price,
                reason=self.strategy.name,
                metadata={
                    "client_order_id": order.client_order_id,
                    "target": target,
                    "market_ts": order.ts_init,
                    "reduce_only": order.reduce_only,
                    **model,
                },
            )
        self.venue.submit(order)
        self.orders_sent += 1
        # Bar in hand (its ticks met) to the order at the venue: the path's own latency.
        self.decision_latency_ns.append(time.perf_counter_ns() - self._step_started_ns)
        payload: dict[str, Any] = {
            "worker": self.wid,
            "client_order_id": order.client_order_id,
            "symbol": order.symbol,
            "side": order.side.value,
            "quantity": order.quantity,
            "reduce_only": order.reduce_only,
            "status": order.status.value,
            "reason": order.reject_reason,
            "market_ts": order.ts_init,
        }
        self._publish(self._events.create(ORDERS_TOPIC, payload))
        if order.status is OrderStatus.REJECTED:
            self.errors.record_reject(order.ts_init)
            self.ess.check(ts_ns=order.ts_init)  # too many rejections in the window: stop
            if self.audit is not None:
                self.audit.trade_executed(
                    actor=self.wid,
                    symbol=order.symbol,
                    side=order.side.value,
                    quantity=order.quantity,
                    price=price,
                    fee=0.0,
                    client_order_id=order.client_order_id,
                    outcome="rejected",
                    reason=order.reject_reason,
                )

    def _denied(self, intent: OrderIntent, decision: RiskDecision) -> None:
        reason = decision.reason.value
        self.denials[reason] = self.denials.get(reason, 0) + 1
        if self.audit is not None:
            self.audit.risk_blocked(
                actor=self.wid,
                symbol=intent.symbol,
                reason_code=reason,
                detail=decision.detail,
                metadata={"market_ts": intent.ts_ns, "quantity": intent.quantity},
            )
        if self.metrics is not None:
            self.metrics.record_risk_denial(reason)

    # ------------------------------------------------------------------ FlattenExecutor
    def cancel_all_orders(self) -> int:
        """Cancel every open order at the venue (the ESS's step 3), but its own closes.

        A close sent by an earlier enforcement may still wait for the next open (the worker
        restarted in between): it is the flatten itself, and canceling it would leave the
        positions open, since its id is taken for the bar.
        """
        canceled = 0
        for order in self.venue.open_orders():
            if order.tag != _ESS_TAG and self.venue.cancel(order.client_order_id, self._market_ts):
                canceled += 1
        return canceled

    def open_positions(self) -> dict[str, float]:
        """The venue's positions (the ESS's step 4 closes them)."""
        return self.venue.positions()

    def close_position(self, symbol: str, quantity: float) -> bool:
        """Send a reduce-only market order closing ``quantity``; True when the venue took it."""
        cid = f"{self.wid}-ess-{symbol}-{self._market_ts // _NS_PER_MS}"
        order = Order(
            client_order_id=cid,
            symbol=symbol,
            side=OrderSide.SELL if quantity > 0 else OrderSide.BUY,
            type=OrderType.MARKET,
            quantity=abs(quantity),
            ts_init=self._market_ts,
            reduce_only=True,
            tag=_ESS_TAG,
        )
        sent = self.venue.submit(order)
        if sent is order:
            self.orders_sent += 1
        return sent.status.is_open or sent.status is OrderStatus.FILLED

    # ------------------------------------------------------------------ trades and the bus
    def _record(self, trade_id: str) -> str:
        return f"{self.wid}-{trade_id}"

    def _record_of(self, trade: Trade, now: int) -> TradeRecord:
        """The store's record of one of this worker's trades (its id prefixed with the worker)."""
        rid = self._record(trade.trade_id)
        return record_of(trade, trade_id=rid, updated_ts_ns=now, metadata={"worker": self.wid})

    def _sync_trades(self) -> None:
        """Queue the trades that changed since they were last written, then write the queue."""
        acct = self.venue.account
        now = self.clock.now_ns()
        closed = acct.closed_trades[self._synced_closed :]
        self._synced_closed = len(acct.closed_trades)
        for trade in (*closed, *acct.open_trades.values()):
            record = self._record_of(trade, now)
            written = self._written.get(record.trade_id)
            if written is None or replace(written, updated_ts_ns=now) != record:
                self._pending[record.trade_id] = record
        self._flush_trades()

    def _flush_trades(self) -> None:
        for rid in list(self._pending):
            record = self._pending[rid]
            try:
                self.stores.trades.save(record)
            except TransientError:
                return  # keep the rest queued; the next step tries again
            del self._pending[rid]
            if record.is_open:
                self._written[rid] = record  # unchanged open trades are not written again
            else:
                self._written.pop(rid, None)

    def _reconcile_trades(self, report: RecoveryReport) -> None:
        prefix = f"{self.wid}-"
        now = self.clock.now_ns()
        expected = {
            r.trade_id: r
            for r in (self._record_of(t, now) for t in self.venue.account.all_trades())
        }
        stored: dict[str, TradeRecord] = {
            r.trade_id: r
            for symbol in self.feed.symbols
            for r in self.stores.trades.list_open(symbol)
            if r.trade_id.startswith(prefix)
        }
        if expected:
            since = min(r.entry_ts_ns for r in expected.values())
            for symbol in self.feed.symbols:
                for r in self.stores.trades.list(symbol=symbol, since_ns=since):
                    if r.trade_id.startswith(prefix):
                        stored[r.trade_id] = r
        for rid, want in expected.items():
            have = stored.pop(rid, None)
            if have is None:
                self._fix(report, rid, "missing_in_store", "absent", want.status.value, [])
            else:
                fields = _differences(have, want)
                if not fields:
                    continue
                self._fix(
                    report, rid, "differs_from_venue", have.status.value, want.status.value, fields
                )
            self.stores.trades.save(want)
        for rid, have in stored.items():
            if not have.is_open:
                continue
            self._fix(report, rid, "unknown_to_venue", "open", "closed", [])
            self.stores.trades.close(
                rid,
                exit_price=have.entry_price,
                exit_ts_ns=max(have.entry_ts_ns, self.venue.last_ts),
                status=TradeStatus.CLOSED,
                realized_pnl=have.realized_pnl,
                fees=have.fees,
                funding=have.funding,
                updated_ts_ns=now,
            )
        report.open_trades = sum(1 for r in expected.values() if r.is_open)

    def _fix(
        self,
        report: RecoveryReport,
        rid: str,
        kind: str,
        old: str,
        new: str,
        fields: list[str],
    ) -> None:
        report.discrepancies.append(
            f"{rid}: {kind}" + (f" ({', '.join(fields)})" if fields else "")
        )
        if self.audit is not None:
            self.audit.system_state_changed(
                actor=self.wid,
                component="reconcile",
                old=old,
                new=new,
                reason=kind,
                metadata={"trade_id": rid, "fields": fields, "resolution": "venue_wins"},
            )

    def _fill_event(self, seq: int, fill: Fill) -> Event:
        # The id is the fill's own (time | worker | sequence at the venue), so a fill published
        # again after a restart carries the id it had, and consumers drop the second copy.
        event_id = f"{fill.ts_event:016x}{self._fill_bits}{seq:08x}"
        payload: dict[str, Any] = {
            "worker": self.wid,
            "seq": seq,
            "client_order_id": fill.client_order_id,
            "symbol": fill.symbol,
            "side": fill.side.value,
            "quantity": fill.quantity,
            "price": fill.price,
            "fee": fill.fee,
            "liquidity": fill.liquidity.value,
            "liquidation": fill.liquidation,
            "market_ts": fill.ts_event,
        }
        return Event(event_id, FILLS_TOPIC, self.clock.now_ns(), payload, self.wid)

    def _publish_fills(self) -> int:
        """Publish the venue's fills the bus has not had; the count is kept with the venue.

        Read from the journal once (at recovery), then kept in memory: written after every
        publish, read only when this object starts.
        """
        fills = self.venue.exchange.fills
        if self._published is None:
            self._published = int(self.venue.note(_PUBLISHED_NOTE))
        done = self._published
        if done >= len(fills):
            return 0
        events = [self._fill_event(seq, fills[seq - 1]) for seq in range(done + 1, len(fills) + 1)]
        self.publisher.publish_batch(events)
        self.venue.set_note(_PUBLISHED_NOTE, len(fills))
        self._published = len(fills)
        return len(events)

    def _publish_status(self, ts: int) -> None:
        acct = self.venue.account
        marks = self.venue.marks
        payload: dict[str, Any] = {
            "worker": self.wid,
            "market_ts": ts,
            "equity": self.venue.equity(),
            "wallet": acct.wallet,
            "positions": self.venue.positions(),
            "entry_prices": {s: p.entry_price for s, p in acct.positions.items() if p.quantity},
            "marks": dict(marks),
            "unrealized": {
                s: p.quantity * (marks[s] - p.entry_price)
                for s, p in acct.positions.items()
                if p.quantity and s in marks
            },
            "realized": acct.realized_total,
            "fees": acct.fees_total,
            "funding": acct.funding_total,
            "open_orders": len(self.venue.open_orders()),
            "halted": self.halt.is_set(),
            "pending_trade_writes": len(self._pending),
        }
        health = getattr(self.strategy, "model_health", None)
        if health is not None:
            if self._health is None or self._steps % _HEALTH_EVERY == 0:
                self._health = health().to_dict()
            payload["model_health"] = self._health
        self._steps += 1
        self._publish(self._events.create(STATUS_TOPIC, payload))

    def _publish(self, event: Event) -> None:
        self.publisher.publish(event)

    def _drain(self) -> None:
        drain = getattr(self.publisher, "drain", None)
        if drain is not None and getattr(self.publisher, "spooling", False):
            drain()

    def _audit_fill(self, fill: Fill) -> None:
        assert self.audit is not None
        self.audit.trade_executed(
            actor=self.wid,
            symbol=fill.symbol,
            side=fill.side.value,
            quantity=fill.quantity,
            price=fill.price,
            fee=fill.fee,
            client_order_id=fill.client_order_id,
            outcome="liquidated" if fill.liquidation else "filled",
            metadata={"market_ts": fill.ts_event, "liquidity": fill.liquidity.value},
        )

    def _track_day(self, ts: int) -> None:
        """The UTC start-of-day equity (the RiskGuard's daily-loss base), kept with the venue
        so that a restart in the middle of a day does not forget the day's losses."""
        day = utc_day(ts)
        if day == self._day:
            return
        number = ts // NANOS_PER_DAY
        if self.venue.note(_DAY_NOTE, -1) == number:
            self._day_start = self.venue.note(_DAY_START_NOTE)
        else:
            self._day_start = self.venue.equity()
            self.venue.set_note(_DAY_START_NOTE, self._day_start)
            self.venue.set_note(_DAY_NOTE, number)
        self._day = day

    def positions(self) -> Mapping[str, float]:
        """The venue's positions (the truth)."""
        return self.venue.positions()


def _differences(have: TradeRecord, want: TradeRecord) -> list[str]:
    a, b = have.to_dict(), want.to_dict()
    return sorted(k for k in b if k != "updated_ts_ns" and a.get(k) != b[k])


def _last_confidence(signals: Signals) -> float:
    """The model's confidence at the last bar (1.0 for a rule-based strategy, 0 if unknown)."""
    if signals.confidence is None:
        return 1.0
    value = float(signals.confidence[-1])
    return value if math.isfinite(value) else 0.0


def _changed_target(target: npt.NDArray[np.float64]) -> float | None:
    """The target to act on at the last bar, or None when it did not change there.

    As in the backtest: NaN keeps the previous target (none yet counts as flat), and only a
    change is acted on. The window must be longer than any NaN stretch of the strategy.
    """
    previous = 0.0
    current = 0.0
    for value in target.tolist():
        if not math.isnan(value):
            previous, current = current, value
        else:
            previous = current
    return current if current != previous else None
