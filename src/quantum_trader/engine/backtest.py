"""The backtest runner: event-driven, multi-symbol, deterministic, exact at every bar.

How it is fast without cutting corners (DESIGN.md §5):

1. Strategies are vectorized and causal, so every symbol's targets are computed once, before the
   loop. The bars where a target changes are the only bars where an order can be made.
2. The loop visits *event bars* only: a decision at a bar's close, the next open where that order
   fills, and funding times. Objects (orders, fills, trades) exist only there.
3. Between events the positions do not change, so nothing is done per bar — except finding the
   first bar where something *would* happen on its own: a resting limit/stop order touched, or
   the account reaching its liquidation threshold. A cheap bound over the whole segment (range
   minimum/maximum queries on a sparse table of lows and highs) proves most segments safe; the
   rest are searched bar by bar with numpy, so the result equals bar-by-bar evaluation.
4. Mark-to-market equity at every bar's close is rebuilt after the loop from the step functions
   of wallet, quantity and cost basis that the loop recorded: ``equity[t] = wallet[t] +
   sum_s(qty_s[t] * close_s[t] - basis_s[t])``, one vectorized pass.

Timing within a bar: orders waiting for the open fill first; then funding (funding times fall
just after a bar's open); then resting orders and liquidation against the bar's range (the bar's
low for longs and high for shorts, a conservative reading of where the mark price went); then
the strategy decides at the close. Liquidation is checked on the bar's adverse extremes of every
symbol at once, which is conservative for cross margin across several symbols.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantum_trader.data.market import MarketData, SymbolData, funding_settlements
from quantum_trader.data.timeframes import parse_timeframe
from quantum_trader.domain.clock import NANOS_PER_DAY, NANOS_PER_SECOND, ManualClock
from quantum_trader.domain.errors import DataError, StrategyError
from quantum_trader.domain.instruments import resolve_instrument
from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.trading import Trade
from quantum_trader.engine.loop import EventLoop, SafetyEvents, SymbolState, drive
from quantum_trader.engine.safety import RiskEvent
from quantum_trader.engine.settings import BacktestSettings, RiskSettings
from quantum_trader.execution.sim.costs import FeeModel, SlippageModel
from quantum_trader.execution.sim.exchange import SimulatedExchange
from quantum_trader.observability.audit.recorder import AuditRecorder
from quantum_trader.observability.reports.result import (
    FILL_COLUMNS,
    RISK_EVENT_COLUMNS,
    TRADE_COLUMNS,
    BacktestResult,
)
from quantum_trader.observability.reports.summary import compute_summary
from quantum_trader.portfolio.account import Account
from quantum_trader.strategies.base import Bars, Signals, Strategy

ProgressFn = Callable[[float], None]


class BacktestEngine:
    """Runs one strategy over a market with the simulated exchange."""

    def __init__(
        self,
        settings: BacktestSettings,
        strategy: Strategy,
        market: MarketData,
        *,
        audit: AuditRecorder | None = None,
        clock: ManualClock | None = None,
        risk: RiskSettings | None = None,
        state_db: Path | None = None,
        bar_by_bar: bool = False,
    ) -> None:
        """Prepare a run.

        ``audit`` receives every decision, execution, rejection and closed trade, stamped with
        the data's time through ``clock`` (the clock the logger was built with). If a record
        cannot be written the run sends no further orders and says why (fail closed).
        ``risk`` puts the safety core (policy, RiskGuard, ESS, coordinator) in front of every
        order; ``state_db`` (default: ``risk.state_db``) keeps its policy and ESS latch in that
        SQLite file across runs (None: in memory, fresh each run).
        ``bar_by_bar`` visits every bar as an event bar and checks liquidation on each, without
        the skip-ahead bounds: slower, and the reference the fast path is tested against.
        """
        missing = [s for s in settings.symbols if s not in market]
        if missing:
            raise DataError(f"no market data for {', '.join(missing)}")
        self.settings = settings
        self.strategy = strategy
        self.market = {s: market[s] for s in settings.symbols}
        self.tf_ns = parse_timeframe(settings.timeframe)
        self.bar_by_bar = bar_by_bar
        self.audit = audit
        self.clock = clock if clock is not None else ManualClock()
        self.risk = risk if risk is not None and risk.enabled else None
        self.state_db = state_db if state_db is not None else (risk.state_db if risk else None)

    # ----------------------------------------------------------------- set-up
    def _prepare(self) -> tuple[npt.NDArray[np.int64], list[SymbolState]]:
        bars_by_sym = {s: _to_bars(d) for s, d in self.market.items()}
        union = np.unique(np.concatenate([b.ts for b in bars_by_sym.values()]))
        syms = []
        for s, bars in bars_by_sym.items():
            uidx = np.searchsorted(union, bars.ts)
            pos = np.full(len(union), -1, dtype=np.int64)
            pos[uidx] = np.arange(len(bars))
            # Forward-fill each symbol onto the union timeline; before its first bar use the
            # first open (no position can exist there, so the value only keeps arrays finite).
            fill = np.maximum.accumulate(pos)
            first = fill < 0
            fill[first] = 0
            close_u = bars.close[fill]
            close_u[first] = bars.open[0]
            real_u = (pos >= 0).tolist()
            # When this symbol's price was last observed at each union bar: its last real
            # bar's close (before its first bar: never).
            data_ts_u = np.where(first, np.iinfo(np.int64).min // 2, bars.ts[fill] + self.tf_ns)
            open_u = np.where(pos >= 0, bars.open[np.maximum(pos, 0)], close_u)
            low_u = np.where(pos >= 0, bars.low[np.maximum(pos, 0)], close_u)
            high_u = np.where(pos >= 0, bars.high[np.maximum(pos, 0)], close_u)
            syms.append(
                SymbolState(
                    name=s,
                    inst=resolve_instrument(s, float(bars.close[0])),
                    bars=bars,
                    uidx=uidx,
                    open_u=open_u.tolist(),
                    close_u=close_u.tolist(),
                    low_u=low_u,
                    high_u=high_u,
                    close_arr=close_u,
                    real_u=real_u,
                    data_ts_u=data_ts_u.tolist(),
                    global_low=float(low_u.min()),
                    global_high=float(high_u.max()),
                )
            )
        return union, syms

    def _signals(self, sym: SymbolState) -> Signals:
        try:
            sig = self.strategy.signals(sym.bars)
        except Exception as exc:
            raise StrategyError(
                f"strategy {self.strategy.name!r} failed on {sym.name}: {exc}"
            ) from exc
        target = np.asarray(sig.target, dtype=np.float64)
        if target.shape != (len(sym.bars),):
            raise StrategyError(
                f"strategy {self.strategy.name!r} returned {target.shape} targets for "
                f"{len(sym.bars)} bars of {sym.name}"
            )
        if np.isinf(target).any():
            raise StrategyError(f"strategy {self.strategy.name!r} returned an infinite target")
        confidence = sig.confidence
        if confidence is not None:
            confidence = np.asarray(confidence, dtype=np.float64)
            if confidence.shape != target.shape:
                raise StrategyError(
                    f"strategy {self.strategy.name!r} returned {confidence.shape} confidences "
                    f"for {len(sym.bars)} bars of {sym.name}"
                )
        return Signals(target, sig.unit, confidence, sig.model_version)

    # ----------------------------------------------------------------- run
    def run(self, progress: ProgressFn | None = None) -> BacktestResult:
        """Run the backtest and return its result; deterministic for the same inputs."""
        with _batch_gc():
            return self._run(progress)

    def _run(self, progress: ProgressFn | None) -> BacktestResult:
        started = time.perf_counter()
        st = self.settings
        union, syms = self._prepare()
        n_union = len(union)
        account = Account(
            st.cash,
            {s.name: s.inst for s in syms},
            leverage=st.leverage,
            margin_mode=st.margin_mode,
            strategy=self.strategy.name,
        )
        exchange = SimulatedExchange(
            account,
            fees=FeeModel(maker=st.fee_maker, taker=st.fee_taker),
            slippage=SlippageModel(bps=st.slippage_bps),
        )

        # Static event bars: decisions at closes, the opens where they fill, funding times, and
        # for the safety core UTC midnights, coordinator cycles and stale-data moments. Orders
        # made at run time (ESS closes) add the next bar as an event.
        decide_at: dict[int, list[tuple[SymbolState, float]]] = {}
        fills_next: set[int] = set()
        funding_at: dict[int, list[tuple[SymbolState, float, float, int]]] = {}
        for sym in syms:
            sig = self._signals(sym)
            sym.unit = sig.unit
            sym.confidence = sig.confidence
            sym.model_version = sig.model_version
            eff = pd.Series(sig.target).ffill().fillna(0.0).to_numpy()
            change = np.flatnonzero(np.diff(eff, prepend=0.0) != 0.0)
            change = change[change < len(eff) - 1]  # the last bar has no next open to fill at
            for k in change.tolist():
                decide_at.setdefault(int(sym.uidx[k]), []).append((sym, float(eff[k])))
                fills_next.add(int(sym.uidx[k + 1]))
            if st.funding:
                for u, rate, mark, ts in self._funding_events(sym, union):
                    funding_at.setdefault(u, []).append((sym, rate, mark, ts))
        safety_at = self._safety_events(union, syms) if self.risk is not None else SafetyEvents()
        static = decide_at.keys() | fills_next | funding_at.keys() | safety_at.bars()
        events = list(range(n_union)) if self.bar_by_bar else sorted(static)

        loop = EventLoop(self, account, exchange, syms, union)
        try:
            loop.audit_run_state("running", int(union[0]))
            drive(loop, events, n_union, decide_at, funding_at, safety_at, progress)
            loop.audit_run_state("completed", int(union[-1]) + self.tf_ns)
        finally:
            if loop.safety is not None:
                loop.safety.close()
        if progress is not None:
            progress(1.0)
        return self._result(loop, union, syms, started)

    def _safety_events(self, union: npt.NDArray[np.int64], syms: list[SymbolState]) -> SafetyEvents:
        assert self.risk is not None
        events = SafetyEvents()
        days = union // NANOS_PER_DAY
        events.day_starts = set(np.flatnonzero(np.diff(days, prepend=days[0] - 1) != 0).tolist())
        if self.risk.coordinator.enabled:
            step = self.risk.coordinator.interval_bars
            events.cycles = set(range(step - 1, len(union), step))
        if self.risk.ess.enabled:
            max_age = round(self.risk.ess.stale_data_secs * NANOS_PER_SECOND)
            for sym in syms:
                ts = sym.bars.ts
                last_data = ts[:-1] + self.tf_ns
                stale = np.flatnonzero(ts[1:] - last_data >= max_age)
                for k in stale.tolist():
                    u = int(np.searchsorted(union, last_data[k] + max_age, side="left"))
                    previous = events.stale.get(u)
                    events.stale[u] = (
                        int(last_data[k]) if previous is None else min(previous, int(last_data[k]))
                    )
        for change in self.risk.policy_changes:
            at = int(pd.Timestamp(change.at).value)
            u = int(np.searchsorted(union, at, side="left"))
            if u < len(union):
                events.policy_changes.setdefault(u, []).append(change)
        return events

    def _funding_events(
        self, sym: SymbolState, union: npt.NDArray[np.int64]
    ) -> list[tuple[int, float, float, int]]:
        events = funding_settlements(
            self.market[sym.name], sym.bars.ts, sym.bars.open, self.tf_ns
        )
        return [(int(sym.uidx[e.bar]), e.rate, e.mark, e.ts_ns) for e in events]

    # ----------------------------------------------------------------- result
    def _result(
        self, loop: EventLoop, union: npt.NDArray[np.int64], syms: list[SymbolState], started: float
    ) -> BacktestResult:
        account = loop.account
        n = len(union)
        idx = np.arange(n)
        equity = _steps(loop.wallet_u, loop.wallet_v, self.settings.cash, idx)
        unrealized = np.zeros(n)
        for sym in syms:
            qty = _steps(sym.steps_u, sym.steps_qty, 0.0, idx)
            basis = _steps(sym.steps_u, sym.steps_basis, 0.0, idx)
            unrealized += qty * sym.close_arr - basis
        wallet = equity
        equity = wallet + unrealized
        peak = np.maximum.accumulate(np.maximum(equity, self.settings.cash))
        dates = pd.to_datetime(union, utc=True)
        equity_df = pd.DataFrame(
            {
                "equity": equity,
                "wallet": wallet,
                "unrealized": unrealized,
                "drawdown": (peak - equity) / peak,
            },
            index=pd.DatetimeIndex(dates, name="time"),
        )
        trades_df = _trades_frame(account.all_trades())
        fills = loop.exchange.fills
        fills_df = pd.DataFrame(
            [
                (
                    f.ts_event,
                    f.symbol,
                    f.side.value,
                    f.quantity,
                    f.price,
                    f.fee,
                    f.liquidity.value,
                    f.client_order_id,
                    f.liquidation,
                )
                for f in fills
            ],
            columns=list(FILL_COLUMNS),
        )
        fills_df["time"] = pd.to_datetime(fills_df["time"].astype(np.int64), utc=True)
        rejected = pd.DataFrame(
            [(r.ts, r.symbol, r.side, r.quantity, r.reason) for r in loop.rejections],
            columns=["time", "symbol", "side", "quantity", "reason"],
        )
        rejected["time"] = pd.to_datetime(rejected["time"].astype(np.int64), utc=True)
        bars = sum(len(s.bars) for s in syms)
        # Everything up to here is the run: signals, the loop, the audit trail, the frames.
        elapsed = time.perf_counter() - started
        summary = compute_summary(
            equity_df,
            trades_df,
            fills_df,
            initial_cash=self.settings.cash,
            bars=bars,
            elapsed_s=elapsed,
            funding_total=account.funding_total,
            rejected_orders=len(rejected),
        )
        summary["liquidations"] = int(fills_df["liquidation"].sum()) if len(fills_df) else 0
        risk_events = _risk_events_frame(loop.safety.events if loop.safety is not None else [])
        kinds = risk_events["kind"]
        summary["risk_denials"] = int((kinds == "risk_blocked").sum())
        summary["mode_changes"] = int((kinds == "mode_changed").sum())
        stops = risk_events[kinds == "emergency_stop"]
        summary["emergency_stop"] = (
            {
                "time": stops["time"].iloc[0].isoformat().replace("+00:00", "Z"),
                "reason": str(stops["reason"].iloc[0]),
                "detail": str(stops["detail"].iloc[0]),
            }
            if len(stops)
            else None
        )
        if loop.halted is not None:
            summary["halted"] = loop.halted
        elif loop.safety is not None and loop.safety.latched_at_start is not None:
            summary["halted"] = (
                "the emergency stop was latched before the run started "
                f"({loop.safety.latched_at_start}); reset it with qtrader ess reset"
            )
        elif summary["emergency_stop"] is not None:
            stop = summary["emergency_stop"]
            summary["halted"] = f"emergency stop ({stop['reason']}): {stop['detail']}"
        else:
            summary["halted"] = None
        synthetic = any(d.synthetic for d in self.market.values())
        return BacktestResult(
            equity=equity_df,
            trades=trades_df,
            fills=fills_df,
            prices={s: d.candles for s, d in self.market.items()},
            summary=summary,
            settings={
                **self.settings.model_dump(mode="json"),
                # The parameters the strategy ran with, defaults included.
                "params": self.strategy.params(),
                "data_sources": {s: d.source for s, d in self.market.items()},
                "risk": self.risk.model_dump(mode="json") if self.risk is not None else None,
            },
            rejected_orders=rejected,
            synthetic=synthetic,
            risk_events=risk_events,
        )


def _risk_events_frame(events: list[RiskEvent]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [(e.ts_ns, e.kind, e.symbol, e.reason, e.detail) for e in events],
        columns=list(RISK_EVENT_COLUMNS),
    )
    frame["time"] = pd.to_datetime(frame["time"].astype(np.int64), utc=True)
    return frame


@contextmanager
def _batch_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector during a run.

    A run makes tens of thousands of orders, fills, trades and audit records that live until it
    ends and form no reference cycles, so the collector's passes over them find nothing and cost
    up to a third of the run. Reference counting still frees everything as usual; the collector
    is restored (and runs) afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _steps(
    at: list[int], values: list[float], initial: float, idx: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Expand a step function (value ``values[i]`` from bar ``at[i]`` on) to every bar."""
    if not at:
        return np.full(len(idx), initial)
    pos = np.searchsorted(np.asarray(at, dtype=np.int64), idx, side="right") - 1
    vals = np.concatenate([[initial], np.asarray(values, dtype=np.float64)])
    return vals[pos + 1]


def _to_bars(data: SymbolData) -> Bars:
    c = data.candles
    if c.empty:
        raise DataError(f"{data.symbol}: no candles in {data.source or 'the data'}")
    funding = data.funding if data.funding is not None and not data.funding.empty else None
    return Bars(
        symbol=data.symbol,
        ts=c["date"].to_numpy("datetime64[ns]").astype(np.int64),
        open=c["open"].to_numpy(np.float64),
        high=c["high"].to_numpy(np.float64),
        low=c["low"].to_numpy(np.float64),
        close=c["close"].to_numpy(np.float64),
        volume=c["volume"].to_numpy(np.float64),
        funding_ts=funding["date"].to_numpy("datetime64[ns]").astype(np.int64)
        if funding is not None
        else None,
        funding_rate=funding["rate"].to_numpy(np.float64) if funding is not None else None,
    )


def _trades_frame(trades: list[Trade]) -> pd.DataFrame:
    rows = [
        (
            t.trade_id,
            t.symbol,
            "long" if t.side is OrderSide.BUY else "short",
            t.quantity,
            t.entry_ts,
            t.entry_price,
            t.exit_ts if t.exit_ts else None,
            t.exit_price if t.exit_ts else math.nan,
            t.status.value,
            t.realized_pnl,
            t.fees,
            t.funding,
            t.net_pnl,
        )
        for t in trades
    ]
    df = pd.DataFrame(rows, columns=list(TRADE_COLUMNS))
    df["entry_time"] = pd.to_datetime(df["entry_time"].astype(np.int64), utc=True)
    df["exit_time"] = pd.to_datetime(df["exit_time"].astype("Int64"), utc=True)
    return df


def run_backtest(
    settings: BacktestSettings,
    strategy: Strategy,
    market: Mapping[str, SymbolData],
    progress: ProgressFn | None = None,
) -> BacktestResult:
    """Run ``strategy`` over ``market`` with ``settings``; the one entry point for backtests."""
    return BacktestEngine(settings, strategy, market).run(progress)
