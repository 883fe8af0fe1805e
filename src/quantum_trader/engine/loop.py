"""The backtest's event loop: what happens at event bars and how bars between them are skipped.

``drive`` visits the event bars in order; between two of them ``EventLoop.scan_passive`` finds
the first bar where something happens on its own (a resting order touched, liquidation, a
drawdown or daily-loss breach) with bounds over the whole segment, and processes only that bar.
See ``engine/backtest.py`` for the overview and the timing within a bar.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from quantum_trader.domain.errors import AuditUnavailableError
from quantum_trader.domain.instruments import Instrument
from quantum_trader.domain.orders import Order, OrderSide, OrderType
from quantum_trader.domain.trading import MarginMode
from quantum_trader.engine.safety import BacktestSafety, account_view, intent_for
from quantum_trader.engine.settings import ScheduledPolicyChange
from quantum_trader.engine.targets import rebalance
from quantum_trader.execution.sim.exchange import SimulatedExchange
from quantum_trader.observability.audit.recorder import (
    closed_record,
    decision_record,
    executed_record,
)
from quantum_trader.portfolio.account import Account
from quantum_trader.risk.drawdown import first_breach
from quantum_trader.risk.guard import AccountView
from quantum_trader.strategies.base import Bars, TargetUnit

ProgressFn = Callable[[float], None]
if TYPE_CHECKING:
    from quantum_trader.engine.backtest import BacktestEngine

_PROGRESS_EVERY = 2048
_STOP_TAG = "stop_loss"
_SCALAR_SCAN_CELLS = 48


class _DataTimes(Mapping[str, int]):
    """When each symbol's price was last seen at bar u, looked up only for the symbols asked."""

    __slots__ = ("_by_name", "_u")

    def __init__(self, by_name: dict[str, SymbolState], u: int) -> None:
        self._by_name = by_name
        self._u = u

    def __getitem__(self, symbol: str) -> int:
        return self._by_name[symbol].data_ts_u[self._u]

    def get(self, symbol: str, default: int | None = None) -> int | None:  # type: ignore[override]
        """The time for ``symbol``, or ``default`` (Mapping's own get is slower)."""
        state = self._by_name.get(symbol)
        return default if state is None else state.data_ts_u[self._u]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


class RangeTable:
    """Sparse table for O(1) min/max over any bar range [a, b)."""

    __slots__ = ("_maxs", "_mins")

    def __init__(self, low: npt.NDArray[np.float64], high: npt.NDArray[np.float64]) -> None:
        self._mins = [low]
        self._maxs = [high]
        span = 1
        while 2 * span <= len(low):
            lo, hi = self._mins[-1], self._maxs[-1]
            self._mins.append(np.minimum(lo[:-span], lo[span:]))
            self._maxs.append(np.maximum(hi[:-span], hi[span:]))
            span *= 2

    def min_max(self, a: int, b: int) -> tuple[float, float]:
        """Lowest low and highest high over bars a..b-1 (b > a)."""
        k = (b - a).bit_length() - 1
        lo, hi = self._mins[k], self._maxs[k]
        j = b - (1 << k)
        return float(min(lo[a], lo[j])), float(max(hi[a], hi[j]))


@dataclass(slots=True)
class SymbolState:
    """Per-symbol arrays on the union timeline, and the loop's running state for it."""

    name: str
    inst: Instrument
    bars: Bars
    uidx: npt.NDArray[np.int64]
    open_u: list[float]
    close_u: list[float]
    low_u: npt.NDArray[np.float64]
    high_u: npt.NDArray[np.float64]
    close_arr: npt.NDArray[np.float64]
    real_u: list[bool]
    data_ts_u: list[int]
    global_low: float
    global_high: float
    unit: TargetUnit = TargetUnit.EQUITY_FRACTION
    confidence: npt.NDArray[np.float64] | None = None  # per own bar, from a model strategy
    model_version: str | None = None
    table: RangeTable | None = None
    steps_u: list[int] = field(default_factory=list)
    steps_qty: list[float] = field(default_factory=list)
    steps_basis: list[float] = field(default_factory=list)


@dataclass(slots=True)
class SafetyEvents:
    """Bars where the safety core has something to do besides orders and funding."""

    day_starts: set[int] = field(default_factory=set)
    cycles: set[int] = field(default_factory=set)
    stale: dict[int, int] = field(default_factory=dict)  # bar -> when data was last seen
    policy_changes: dict[int, list[ScheduledPolicyChange]] = field(default_factory=dict)

    def bars(self) -> set[int]:
        return self.day_starts | self.cycles | self.stale.keys() | self.policy_changes.keys()


@dataclass(frozen=True, slots=True)
class Rejection:
    ts: int
    symbol: str
    side: str
    quantity: float
    reason: str


def _model_view(s: SymbolState, u: int) -> tuple[float, dict[str, object]]:
    """The confidence of ``s``'s decision at union bar ``u`` and its audit metadata."""
    if s.confidence is None:
        return 1.0, {}
    k = int(np.searchsorted(s.uidx, u))
    value = float(s.confidence[k]) if k < len(s.confidence) else math.nan
    confidence = value if math.isfinite(value) else 0.0
    meta: dict[str, object] = {"confidence": confidence}
    if s.model_version is not None:
        meta["model_version"] = s.model_version
    return confidence, meta


class EventLoop:
    """The event loop's state: what happens at event bars and between them."""

    def __init__(
        self,
        engine: BacktestEngine,
        account: Account,
        exchange: SimulatedExchange,
        syms: list[SymbolState],
        union: npt.NDArray[np.int64],
    ) -> None:
        self.engine = engine
        self.account = account
        self.exchange = exchange
        self.syms = syms
        self.by_name = {s.name: s for s in syms}
        self.union = union.tolist()
        self.tf_ns = engine.tf_ns
        self.isolated = engine.settings.margin_mode is MarginMode.ISOLATED
        self.stop_loss = engine.settings.stop_loss
        self.wallet_u: list[int] = []
        self.wallet_v: list[float] = []
        self.rejections: list[Rejection] = []
        self.audit = engine.audit
        self.clock = engine.clock
        self.actor = engine.strategy.name
        # Set when the audit log fails: no order is sent after that (fail closed).
        self.halted: str | None = None
        self._n_audited_fills = 0
        self._n_audited_closed = 0
        self.leverage = engine.settings.leverage
        self.closes = np.vstack([s.close_arr for s in syms])
        self.safety = (
            BacktestSafety(
                engine.risk,
                clock=engine.clock,
                executor=self,
                audit=engine.audit,
                state_db=engine.state_db,
            )
            if engine.risk is not None
            else None
        )
        self._n_fills = 0
        self._n_funding = 0
        self._legs: list[tuple[SymbolState, float, float]] | None = None
        self._legs_matrix: tuple[list[int], npt.NDArray[np.float64], float] | None = None
        self._row = {s.name: i for i, s in enumerate(syms)}
        self._seq = 0
        # True while the current positions provably cannot be liquidated at any price the data
        # contains; recomputed whenever positions or the wallet change.
        self._safe = True

    # ----------------------------------------------------------------- helpers
    def awaiting_open(self) -> bool:
        """True while some order waits for its symbol's next open."""
        return self.exchange.has_awaiting()

    def _close_equity(self, u: int) -> float:
        """Mark-to-market equity at bar u's close."""
        equity = self.account.wallet
        for s, qty, entry in self._open_legs():
            equity += qty * (s.close_u[u] - entry)
        return equity

    def _open_legs(self) -> list[tuple[SymbolState, float, float]]:
        """(symbol, quantity, entry) of every open position; cached until positions change."""
        legs = self._legs
        if legs is None:
            positions = self.account.positions
            legs = [
                (s, positions[s.name].quantity, positions[s.name].entry_price)
                for s in self.syms
                if positions[s.name].quantity
            ]
            self._legs = legs
            self._legs_matrix = None
        return legs

    # FlattenExecutor, for the ESS: closes are reduce-only market orders at the next open.
    def cancel_all_orders(self) -> int:
        """Cancel every open order (ESS)."""
        return len(self.exchange.cancel_all(self.clock.now_ns()))

    def open_positions(self) -> dict[str, float]:
        """Signed quantity of every open position (ESS)."""
        return {n: p.quantity for n, p in self.account.positions.items() if p.quantity}

    def close_position(self, symbol: str, quantity: float) -> bool:
        """Send a reduce-only market order closing ``quantity`` (signed position) (ESS)."""
        ts = self.clock.now_ns()
        s = self.by_name[symbol]
        self._seq += 1
        order = Order(
            client_order_id=f"bt-{self._seq:07d}",
            symbol=symbol,
            side=OrderSide.SELL if quantity > 0 else OrderSide.BUY,
            type=OrderType.MARKET,
            quantity=abs(quantity),
            ts_init=ts,
            reduce_only=True,
            tag="ess",
        )
        if self.safety is not None:
            u = self._bar_of(ts)
            intent = intent_for(
                symbol,
                -quantity,
                s.close_u[u],
                ts,
                leverage=self.leverage,
                stop_loss=None,
                strategy="ess",
                emergency=True,
            )
            view = self._account_view(u, self.account.wallet)
            if not self.safety.check(intent, view).approved:
                return False
        self.exchange.submit(order, self._marks(self._bar_of(ts), closes=True))
        return not order.reject_reason

    def _bar_of(self, ts: int) -> int:
        """The last bar whose open is at or before ``ts``."""
        return max(0, bisect.bisect_right(self.union, ts) - 1)

    def _account_view(
        self, u: int, equity: float, marks: dict[str, float] | None = None
    ) -> AccountView:
        assert self.safety is not None
        positions = {n: p.quantity for n, p in self.account.positions.items()}
        if marks is None:
            marks = self._marks(u, closes=True)
        return account_view(
            equity, self.safety.day_start, positions, marks, _DataTimes(self.by_name, u)
        )

    def _marks(self, u: int, closes: bool) -> dict[str, float]:
        prices = {}
        for s in self.syms:
            prices[s.name] = s.close_u[u] if closes else s.open_u[u]
        return prices

    def _record(self, u: int) -> None:
        """Record the state after bar u if anything changed (for the equity rebuild)."""
        ex = self.exchange
        if len(ex.fills) == self._n_fills and len(ex.funding_payments) == self._n_funding:
            return
        self._n_fills = len(ex.fills)
        self._n_funding = len(ex.funding_payments)
        self._legs = None
        if self.audit is not None:
            self._audit_outcomes()
        self.wallet_u.append(u)
        self.wallet_v.append(self.account.wallet)
        for s in self.syms:
            pos = self.account.positions[s.name]
            basis = pos.quantity * pos.entry_price
            if not s.steps_qty or s.steps_qty[-1] != pos.quantity or s.steps_basis[-1] != basis:
                s.steps_u.append(u)
                s.steps_qty.append(pos.quantity)
                s.steps_basis.append(basis)
        self._safe = self._provably_safe() and not self.engine.bar_by_bar

    def _audit_outcomes(self) -> None:
        """Audit the fills and closed trades that happened since the last call."""
        audit = self.audit
        assert audit is not None
        fills = self.exchange.fills
        closed = self.account.closed_trades
        actor = self.actor
        batch = [
            executed_record(
                f.ts_event,
                "sim-exchange",
                f.symbol,
                f.side.value,
                f.quantity,
                f.price,
                f.fee,
                f.client_order_id,
                "liquidated" if f.liquidation else "filled",
                "",
                {"liquidity": f.liquidity.value},
            )
            for f in fills[self._n_audited_fills :]
        ]
        batch.extend(
            closed_record(
                t.exit_ts,
                actor,
                t.symbol,
                t.trade_id,
                "long" if t.side is OrderSide.BUY else "short",
                t.quantity,
                t.entry_price,
                t.exit_price,
                t.realized_pnl,
                t.fees,
                t.funding,
                t.status.value,
            )
            for t in closed[self._n_audited_closed :]
        )
        # Every record carries its own time; they are queued in one step, in time order
        # (fills come before the trade they close).
        batch.sort(key=lambda record: record[0] or 0)
        self._n_audited_fills = len(fills)
        self._n_audited_closed = len(closed)
        try:
            audit.append_many(batch)
        except AuditUnavailableError as exc:
            self.halted = str(exc)

    def audit_run_state(self, state: str, ts: int) -> None:
        """Audit the run starting or completing; on completion write out the buffer."""
        if self.audit is None:
            return
        settings = self.engine.settings
        try:
            self.clock.set(ts)
            self.audit.system_state_changed(
                actor="backtest",
                component="backtest",
                old="idle" if state == "running" else "running",
                new=state,
                reason=self.halted or "",
                metadata={
                    "strategy": self.actor,
                    "params": self.engine.strategy.params(),
                    "symbols": list(settings.symbols),
                },
            )
            if state == "completed":
                self.audit.flush()
        except AuditUnavailableError as exc:
            self.halted = self.halted or str(exc)

    def _reject(self, ts: int, symbol: str, side: str, qty: float, reason: str) -> None:
        self.rejections.append(Rejection(ts, symbol, side, qty, reason))
        if self.audit is not None and self.halted is None:
            try:
                self.clock.set(ts)
                self.audit.trade_executed(
                    actor="sim-exchange",
                    symbol=symbol,
                    side=side,
                    quantity=qty,
                    price=0.0,
                    fee=0.0,
                    client_order_id="",
                    outcome="rejected",
                    reason=reason.split(":", 1)[0],
                    metadata={"detail": reason},
                )
            except AuditUnavailableError as exc:
                self.halted = str(exc)

    def _audit_decision(
        self, ts: int, order: Order, price: float, target: float, model: dict[str, object]
    ) -> bool:
        """Audit the decision to send ``order``; False (and halt) if the audit log failed.

        ``model`` adds the model version and confidence of a model-driven decision.
        """
        if self.audit is None:
            return True
        record = decision_record(
            ts,
            self.actor,
            order.symbol,
            order.side.value,
            order.quantity,
            price,
            "",
            {"target": target, "client_order_id": order.client_order_id, **model},
        )
        try:
            self.audit.append_many((record,))
        except AuditUnavailableError as exc:
            self.halted = str(exc)
            return False
        return True

    def _provably_safe(self) -> bool:
        """True if no price within the data's global range can liquidate the positions."""
        acct = self.account
        if self.isolated:
            for s in self.syms:
                pos = acct.positions[s.name]
                if pos.quantity:
                    liq = acct.isolated_liquidation_price(s.name)
                    if (pos.quantity > 0 and s.global_low <= liq) or (
                        pos.quantity < 0 and s.global_high >= liq
                    ):
                        return False
            return True
        equity_lb = acct.wallet
        mm_ub = 0.0
        for s in self.syms:
            pos = acct.positions[s.name]
            q = pos.quantity
            if q:
                adverse = s.global_low if q > 0 else s.global_high
                equity_lb += q * (adverse - pos.entry_price)
                mm_ub += abs(q) * s.global_high * s.inst.maintenance_margin_rate
        return equity_lb > mm_ub

    # ----------------------------------------------------------------- event bars
    def process_event_bar(
        self,
        u: int,
        funding: list[tuple[SymbolState, float, float, int]] | None,
        decisions: list[tuple[SymbolState, float]] | None,
        safety_at: SafetyEvents,
    ) -> None:
        """Handle one event bar: stale data, opening fills, funding, intrabar matching, the
        safety core's checks at the close, then the strategy's decisions."""
        ts = self.union[u]
        ex = self.exchange
        safety = self.safety
        if safety is not None and u in safety_at.stale:
            # Data stopped and the staleness limit passed before this bar: the ESS acts now,
            # and its closes meet this bar's open.
            self.clock.set(ts)
            safety.evaluate(ts_ns=ts, last_data_ns=safety_at.stale[u])
        if ex.has_awaiting():
            self._fill_opens(u)
        if funding:
            for s, rate, mark, f_ts in funding:
                ex.settle_funding(s.name, rate, mark, f_ts)
        self._intrabar(u)
        if safety is not None:
            changes = safety_at.policy_changes.get(u)
            if changes:
                self._apply_policy_changes(u, changes)
            equity = self._close_equity(u)
            if u in safety_at.cycles:
                # The cycle reads this bar's drawdown and may tighten the limits; the ESS check
                # below then uses the limits the cycle left.
                safety.on_equity(equity, ts)
                self.clock.set(ts + self.tf_ns)
                recent = safety.errors.recent(ts + self.tf_ns)
                safety.cycle(equity, ts + self.tf_ns, recent)
            self._check_equity(u, equity)
        if decisions:
            self._decide(u, decisions)

    def _fill_opens(self, u: int) -> None:
        """Fill the orders waiting for the open of bar u (symbols with a real bar there)."""
        ex = self.exchange
        ts = self.union[u]
        opens = [s for s in self.syms if s.real_u[u] and ex.has_awaiting(s.name)]
        if not opens:
            return
        marks = self._marks(u, closes=False)
        for s in opens:
            ex.on_open(s.name, s.open_u[u], ts, marks)
        if self.stop_loss is not None:
            for s in opens:
                self._place_stop(s, ts, marks)

    def _check_equity(self, u: int, equity: float) -> None:
        """Feed bar u's closing equity to the safety core; it may activate the ESS."""
        safety = self.safety
        assert safety is not None
        if safety.on_equity(equity, self.union[u]):
            ts_close = self.union[u] + self.tf_ns
            self.clock.set(ts_close)
            safety.evaluate(ts_ns=ts_close, equity=equity)

    def _apply_policy_changes(self, u: int, changes: list[ScheduledPolicyChange]) -> None:
        assert self.safety is not None
        self.clock.set(self.union[u])
        for change in changes:
            before = self.safety.policy.current().mode
            policy = self.safety.policy.update(
                actor=change.actor, reason=change.reason, **change.policy_changes()
            )
            if policy.mode is not before:
                self.safety.note_mode_change(self.union[u], before, policy.mode, change.reason)

    def _intrabar(self, u: int) -> None:
        ts = self.union[u]
        for s in self.syms:
            if self.exchange.has_resting(s.name):
                marks = self._marks(u, closes=False)
                self.exchange.on_bar(s.name, float(s.high_u[u]), float(s.low_u[u]), ts, marks)
        self._record(u)  # refreshes the liquidation bound after the fills above
        if not self._safe and self._liquidate_if_breached(u):
            self._record(u)

    def _liquidate_if_breached(self, u: int) -> bool:
        acct = self.account
        ts = self.union[u]
        if self.isolated:
            hit = False
            for s in self.syms:
                pos = acct.positions[s.name]
                if pos.quantity:
                    liq = acct.isolated_liquidation_price(s.name)
                    if (pos.quantity > 0 and s.low_u[u] <= liq) or (
                        pos.quantity < 0 and s.high_u[u] >= liq
                    ):
                        self.exchange.liquidate_isolated(s.name, ts)
                        hit = True
            return hit
        adverse = {}
        equity = acct.wallet
        mm = 0.0
        for s in self.syms:
            pos = acct.positions[s.name]
            q = pos.quantity
            price = float(s.low_u[u] if q > 0 else s.high_u[u]) if q else s.close_u[u]
            adverse[s.name] = price
            if q:
                equity += q * (price - pos.entry_price)
                mm += abs(q) * price * s.inst.maintenance_margin_rate
        if mm > 0 and equity <= mm:
            self.exchange.liquidate_cross(adverse, ts)
            return True
        return False

    def _decide(self, u: int, decisions: list[tuple[SymbolState, float]]) -> None:
        acct = self.account
        marks = self._marks(u, closes=True)
        equity = acct.equity(marks)
        # The order is made at the bar's close, which is the next bar's open time.
        ts = self.union[u] + self.tf_ns
        safety = self.safety
        view = None
        scale = 1.0
        if safety is not None:
            self.clock.set(ts)
            scale = safety.size_scale()
            view = self._account_view(u, equity, marks)
        for s, raw_target in decisions:
            target = raw_target * scale
            price = marks[s.name]
            confidence, model = _model_view(s, u)
            held = acct.positions[s.name].quantity
            move = rebalance(target, s.unit, equity, price, held, s.inst)
            delta = move.quantity
            if delta == 0.0:
                if move.below_lot:
                    self._reject(ts, s.name, OrderSide.of(target).value, 0.0, "below_lot_size")
                continue
            if self.halted is not None:
                self._reject(ts, s.name, OrderSide.of(delta).value, abs(delta), "audit_unavailable")
                continue
            qty = abs(delta)
            reduce_only = move.reduce_only
            if safety is not None and view is not None:
                intent = intent_for(
                    s.name,
                    math.copysign(qty, delta),
                    price,
                    ts,
                    leverage=self.leverage,
                    stop_loss=self.stop_loss,
                    strategy=self.actor,
                    confidence=confidence,
                )
                if not safety.check(intent, view).approved:
                    continue
                # Later intents at this close see this order as if filled (conservative).
                positions = view.positions
                assert isinstance(positions, dict)
                positions[s.name] = held + math.copysign(qty, delta)
            self._seq += 1
            order = Order(
                client_order_id=f"bt-{self._seq:07d}",
                symbol=s.name,
                side=OrderSide.of(delta),
                type=OrderType.MARKET,
                quantity=qty,
                ts_init=ts,
                reduce_only=reduce_only,
                tag=self.engine.strategy.name,
            )
            if not self._audit_decision(ts, order, price, target, model):
                self._reject(ts, s.name, order.side.value, qty, "audit_unavailable")
                continue
            self.exchange.submit(order, marks)
            if order.reject_reason:
                self._reject(ts, s.name, order.side.value, qty, order.reject_reason)
                if safety is not None:
                    safety.on_rejection(ts)

    def _place_stop(self, s: SymbolState, ts: int, marks: dict[str, float]) -> None:
        """Replace ``s``'s protective stop so it guards the position now held."""
        assert self.stop_loss is not None
        for order in self.exchange.resting(s.name):
            if order.tag == _STOP_TAG:
                self.exchange.cancel(order.client_order_id, ts)
        pos = self.account.positions[s.name]
        if pos.quantity == 0.0:
            return
        long = pos.quantity > 0
        level = pos.entry_price * (1.0 - self.stop_loss if long else 1.0 + self.stop_loss)
        self._seq += 1
        stop = Order(
            client_order_id=f"bt-{self._seq:07d}",
            symbol=s.name,
            side=OrderSide.SELL if long else OrderSide.BUY,
            type=OrderType.STOP_MARKET,
            quantity=abs(pos.quantity),
            ts_init=ts,
            trigger_price=s.inst.round_price(level, up=not long),
            reduce_only=True,
            tag=_STOP_TAG,
        )
        self.exchange.submit(stop, marks, intrabar=True)
        if stop.reject_reason:
            self._reject(ts, s.name, stop.side.value, stop.quantity, stop.reject_reason)

    # ----------------------------------------------------------------- passive segments
    def scan_passive(self, a: int, b: int) -> int | None:
        """Bars a..b-1 have no scheduled event: find and handle the ones where one happens.

        Returns the bar that left orders waiting for the next open (an ESS activation), so the
        caller visits the following bar; None when the segment ends quietly.
        """
        while a < b:
            v = self._first_active(a, b)
            if v >= b:
                return None
            self._intrabar(v)
            if self.safety is not None:
                self._check_equity(v, self._close_equity(v))
            if self.exchange.has_awaiting():
                return v
            a = v + 1
        return None

    def _first_active(self, a: int, b: int) -> int:
        first = b
        for s in self.syms:
            if self.exchange.has_resting(s.name):
                buy_level, sell_level = self.exchange.trigger_price_bounds(s.name)
                hit = (s.low_u[a:b] <= buy_level) | (s.high_u[a:b] >= sell_level)
                if hit.any():
                    first = min(first, a + int(hit.argmax()))
        if not self._safe:
            first = min(first, self._first_liquidation(a, first))
        if self.safety is not None and not self.safety.halted:
            first = min(first, self._first_equity_breach(a, first))
        return first

    def _first_equity_breach(self, a: int, b: int) -> int:
        """First bar in a..b-1 whose closing equity may breach the drawdown or daily-loss limit.

        Equity over the segment is one matrix-vector product (positions are constant here).
        A bar within a hair of a limit counts as a candidate; the caller confirms it with the
        same scalar arithmetic as an event bar, so the result equals bar-by-bar evaluation.
        The running peak is carried through the bars that are passed over.
        """
        safety = self.safety
        assert safety is not None
        if a >= b:
            return b
        legs = self._open_legs()
        if not legs:
            return b  # flat: equity stays at the wallet, which the last event bar checked
        if (b - a) * len(legs) <= _SCALAR_SCAN_CELLS:
            # Short segments (most of them) cost less bar by bar than a numpy round trip, and
            # use exactly the event bars' arithmetic.
            # Same arithmetic and the same comparisons as ``on_equity``; a passive segment never
            # crosses a UTC midnight (midnights are event bars), so the day start is fixed here.
            wallet = self.account.wallet
            peak, start = safety.peak, safety.day_start
            max_dd, max_dl = safety.limits()
            armed = safety.ess_enabled  # with the ESS off only the peak is tracked
            for v in range(a, b):
                bar_equity = wallet
                for sym, leg_qty, entry in legs:
                    bar_equity += leg_qty * (sym.close_u[v] - entry)
                if bar_equity > peak:
                    peak = bar_equity
                if armed and (
                    (peak > 0 and (peak - bar_equity) >= max_dd * peak)
                    or (start > 0 and (start - bar_equity) >= max_dl * start)
                ):
                    safety.peak = peak
                    return v
            safety.peak = peak
            return b
        if self._legs_matrix is None:
            rows = [self._row[s.name] for s, _, _ in legs]
            qty = np.array([q for _, q, _ in legs])
            self._legs_matrix = (rows, qty, sum(q * e for _, q, e in legs))
        rows, qty, basis = self._legs_matrix
        equity = self.account.wallet - basis + qty @ self.closes[rows, a:b]
        peak, start = safety.peak, safety.day_start
        max_dd, max_dl = safety.limits()
        slack = 1.0 - 1e-9
        top, bottom = float(equity.max()), float(equity.min())
        if (
            top <= peak
            and peak - bottom < slack * max_dd * peak
            and start - bottom < slack * max_dl * start
        ):
            return b
        hit = first_breach(equity, peak, np.full(b - a, start), max_dd * slack, max_dl * slack)
        if hit is None:
            safety.peak = max(peak, top)
            return b
        if hit:
            safety.peak = max(peak, float(equity[:hit].max()))
        return a + hit

    def _first_liquidation(self, a: int, b: int) -> int:
        """First bar in a..b-1 where the account would be liquidated, or b."""
        if a >= b:
            return b
        acct = self.account
        active = [(s, acct.positions[s.name]) for s in self.syms if acct.positions[s.name].quantity]
        if not active:
            return b
        if self.isolated:
            first = b
            for s, pos in active:
                liq = acct.isolated_liquidation_price(s.name)
                table = self._table(s)
                lo, hi = table.min_max(a, b)
                if (pos.quantity > 0 and lo <= liq) or (pos.quantity < 0 and hi >= liq):
                    hit = s.low_u[a:b] <= liq if pos.quantity > 0 else s.high_u[a:b] >= liq
                    first = min(first, a + int(hit.argmax()))
            return first
        # Cross: bound the whole segment first, then search it bar by bar only if needed.
        equity_lb = acct.wallet
        mm_ub = 0.0
        for s, pos in active:
            lo, hi = self._table(s).min_max(a, b)
            equity_lb += pos.quantity * ((lo if pos.quantity > 0 else hi) - pos.entry_price)
            mm_ub += abs(pos.quantity) * hi * s.inst.maintenance_margin_rate
        if equity_lb > mm_ub:
            return b
        equity = np.full(b - a, acct.wallet)
        mm = np.zeros(b - a)
        for s, pos in active:
            adverse = s.low_u[a:b] if pos.quantity > 0 else s.high_u[a:b]
            equity += pos.quantity * (adverse - pos.entry_price)
            mm += abs(pos.quantity) * adverse * s.inst.maintenance_margin_rate
        hit = equity <= mm
        return a + int(hit.argmax()) if hit.any() else b

    def _table(self, s: SymbolState) -> RangeTable:
        if s.table is None:
            s.table = RangeTable(s.low_u, s.high_u)
        return s.table


def drive(
    loop: EventLoop,
    events: list[int],
    n_union: int,
    decide_at: dict[int, list[tuple[SymbolState, float]]],
    funding_at: dict[int, list[tuple[SymbolState, float, float, int]]],
    safety_at: SafetyEvents,
    progress: ProgressFn | None,
) -> None:
    """Visit the event bars in order, scanning the passive bars between them."""
    if not events:
        return
    pos = 0
    count = 0
    u = events[0]
    while u < n_union:
        loop.process_event_bar(u, funding_at.get(u), decide_at.get(u), safety_at)
        while pos < len(events) and events[pos] <= u:
            pos += 1
        nxt = events[pos] if pos < len(events) else n_union
        if loop.awaiting_open():
            nxt = min(nxt, u + 1)  # orders made at run time fill at the next open
        elif nxt > u + 1:
            made_orders_at = loop.scan_passive(u + 1, nxt)
            if made_orders_at is not None:
                nxt = made_orders_at + 1
        count += 1
        if progress is not None and count % _PROGRESS_EVERY == 0:
            progress(u / n_union)
        u = nxt
