"""Acceptance scenarios of the safety core (policy, RiskGuard, ESS, coordinator) through the
real backtest engine, on small hand-checkable markets.

Conventions of every scenario here (the engine's documented semantics):

- 1m bars from 2025-01-01T00:00Z; a target decided at bar t's close is stamped t + 1 min and
  fills at bar t+1's open; taker fee 0.0004, no slippage, no funding, leverage 10.
- The ESS checks each bar's closing equity; on activation (stamped at that bar's close, i.e.
  the next bar's open time) it halts trading and sends reduce-only closes that fill at the next
  bar's open. After that the RiskGuard denies every new order with ``trading_halted``.
- ``_limits(**x)`` sets the same limit in every risk mode, which keeps the policy monotonic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from quantum_trader.cli.ess import ess_app
from quantum_trader.data.market import SymbolData
from quantum_trader.domain.clock import ManualClock
from quantum_trader.domain.policy import RiskMode, TradingState
from quantum_trader.engine.backtest import BacktestEngine
from quantum_trader.engine.settings import (
    BacktestSettings,
    CoordinatorSettings,
    EssSettings,
    RiskSettings,
    ScheduledPolicyChange,
)
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.records import Durability, day_files
from quantum_trader.observability.audit.verify import verify_audit_dir
from quantum_trader.observability.reports.result import BacktestResult
from quantum_trader.risk.guard import RiskReason
from quantum_trader.testing.builders import START, ScriptedStrategy, candles, symbol_data

A, B = "AAAUSDT", "BBBUSDT"
CASH = 10_000.0
FEE = 0.0004
NO_COORDINATOR = CoordinatorSettings(enabled=False)


def _t(minute: int) -> pd.Timestamp:
    """The UTC time ``minute`` minutes after the start of the data."""
    return START + pd.Timedelta(minutes=minute)


def _iso(minute: int) -> str:
    return _t(minute).isoformat().replace("+00:00", "Z")


def _audit_ts(minute: int) -> str:
    return _t(minute).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _limits(**values: float) -> dict[RiskMode, dict[str, float]]:
    """The same limit values in every mode (monotonic by construction)."""
    return {mode: dict(values) for mode in RiskMode}


def _settings(*symbols: str, cash: float = CASH, **kw: Any) -> BacktestSettings:
    base: dict[str, Any] = {
        "cash": cash,
        "leverage": 10,
        "fee_taker": FEE,
        "slippage_bps": 0,
        "funding": False,
    }
    return BacktestSettings(symbols=symbols, **{**base, **kw})


def _market(**frames: pd.DataFrame) -> dict[str, SymbolData]:
    return {name: symbol_data(name, frame) for name, frame in frames.items()}


def _run(
    settings: BacktestSettings,
    targets: dict[str, Sequence[float]],
    market: dict[str, SymbolData],
    risk: RiskSettings,
    *,
    audit_dir: Path | None = None,
    state_db: Path | None = None,
) -> BacktestResult:
    clock = ManualClock()
    audit = (
        AuditLogger(audit_dir, clock, durability=Durability.BUFFERED, retention_days=None)
        if audit_dir is not None
        else None
    )
    try:
        return BacktestEngine(
            settings,
            ScriptedStrategy(targets),
            market,
            audit=audit,
            clock=clock,
            risk=risk,
            state_db=state_db,
        ).run()
    finally:
        if audit is not None:
            audit.close()


def _records(directory: Path, event_type: str | None = None) -> list[dict[str, Any]]:
    recs = [orjson.loads(x) for p in day_files(directory) for x in p.read_bytes().splitlines()]
    return [r for r in recs if event_type is None or r["event_type"] == event_type]


def _events(result: BacktestResult, kind: str) -> list[tuple[pd.Timestamp, str, str]]:
    """(time, symbol, reason) of the risk events of ``kind``, in order."""
    ev = result.risk_events
    ev = ev[ev["kind"] == kind]
    return list(zip(ev["time"], ev["symbol"], ev["reason"], strict=True))


def _fills(result: BacktestResult) -> list[tuple[pd.Timestamp, str, str, float, float]]:
    """(time, symbol, side, quantity, price) of every fill, in order."""
    f = result.fills
    return list(zip(f["time"], f["symbol"], f["side"], f["quantity"], f["price"], strict=True))


def _positions_after_each_fill(result: BacktestResult) -> list[tuple[float, float]]:
    """(position before, position after) of the fill's symbol, for every fill in order."""
    held: dict[str, float] = {}
    out = []
    for _, symbol, side, qty, _ in _fills(result):
        before = held.get(symbol, 0.0)
        after = before + (qty if side == "buy" else -qty)
        held[symbol] = after
        out.append((before, after))
    return out


# --------------------------------------------------------------------------- 1. flash crash

# Bars 0-2 flat (A 100, B 50); bar 3 crashes both by 20% (low = close = 80 / 40); bar 4 opens
# at 81 / 41 and the price stays there. Longs A 15 (1,500 USDT) and B 30 (1,500 USDT) are decided
# at bar 0 and fill at bar 1's open (fees 0.60 each). At bar 5 the strategy wants A 25 (grow)
# and B -10 (a new short).
_CRASH_A = candles(
    opens=[100, 100, 100, 100, 81, 81, 81, 81, 81, 81],
    highs=[100, 100, 100, 100, 81, 81, 81, 81, 81, 81],
    lows=[100, 100, 100, 80, 81, 81, 81, 81, 81, 81],
    closes=[100, 100, 100, 80, 81, 81, 81, 81, 81, 81],
)
_CRASH_B = candles(
    opens=[50, 50, 50, 50, 41, 41, 41, 41, 41, 41],
    highs=[50, 50, 50, 50, 41, 41, 41, 41, 41, 41],
    lows=[50, 50, 50, 40, 41, 41, 41, 41, 41, 41],
    closes=[50, 50, 50, 40, 41, 41, 41, 41, 41, 41],
)
_CRASH_TARGETS: dict[str, Sequence[float]] = {A: [15] * 5 + [25] * 5, B: [30] * 5 + [-10] * 5}
# Closing equity of the crash bar: 10,000 - 2 * 0.60 + 15 * (80 - 100) + 30 * (40 - 50).
_CRASH_EQUITY = 10_000.0 - 1.2 - 300.0 - 300.0
# After the closes at 81 / 41 (fees 15*81*0.0004 and 30*41*0.0004) the account is flat.
_FLAT_WALLET = 10_000.0 - 1.2 + 15 * (81 - 100) + 30 * (41 - 50) - 15 * 81 * FEE - 30 * 41 * FEE

# The crash is a 6.012% loss from both the peak and the day start (10,000, bar 0's close).
_DAILY_LOSS_FIRST = None  # default policy: NORMAL max_daily_loss 5% < max_drawdown 20%
_DRAWDOWN_FIRST: dict[RiskMode, dict[str, float]] = {
    # max_drawdown 4% < 6.012% <= max_daily_loss 10%: only the drawdown limit is reached.
    RiskMode.AGGRESSIVE: {"max_daily_loss": 0.10},
    RiskMode.NORMAL: {"max_drawdown": 0.04, "max_daily_loss": 0.10},
    RiskMode.SAFE: {"max_drawdown": 0.04},
    RiskMode.CRITICAL: {"max_drawdown": 0.04},
}
# The same, with a 25% protective stop after every fill (A at 75, B at 37.5: the crash's lows
# of 80 / 40 do not reach them); the stop puts each entry's risk at 15 * 25 / 10,000 = 3.75%.
_DRAWDOWN_FIRST_WITH_STOPS: dict[RiskMode, dict[str, float]] = {
    RiskMode.AGGRESSIVE: {"max_daily_loss": 0.10, "max_risk_per_trade": 0.05},
    RiskMode.NORMAL: {"max_drawdown": 0.04, "max_daily_loss": 0.10, "max_risk_per_trade": 0.05},
    RiskMode.SAFE: {"max_drawdown": 0.04},
    RiskMode.CRITICAL: {"max_drawdown": 0.04},
}


_DD_DETAIL = "drawdown 6.01% >= limit 4.00% (equity 9398.80, peak 10000.00)"


@pytest.mark.parametrize(
    ("limits", "stop_loss", "reason", "detail"),
    [
        pytest.param(
            _DAILY_LOSS_FIRST,
            None,
            "daily_loss",
            "daily loss 6.01% >= limit 5.00% (equity 9398.80, day start 10000.00)",
            id="default-limits-daily-loss",
        ),
        pytest.param(_DRAWDOWN_FIRST, None, "drawdown", _DD_DETAIL, id="tight-drawdown"),
        pytest.param(
            _DRAWDOWN_FIRST_WITH_STOPS, 0.25, "drawdown", _DD_DETAIL, id="resting-stops-canceled"
        ),
    ],
)
def test_ess_when_flash_crash_on_two_longs_halts_on_that_bar_and_flattens_at_next_open(
    tmp_path: Path,
    limits: dict[RiskMode, dict[str, float]] | None,
    stop_loss: float | None,
    reason: str,
    detail: str,
) -> None:
    risk = RiskSettings(limits=limits or {}, coordinator=NO_COORDINATOR)
    result = _run(
        _settings(A, B, stop_loss=stop_loss),
        _CRASH_TARGETS,
        _market(**{A: _CRASH_A, B: _CRASH_B}),
        risk,
        audit_dir=tmp_path,
    )

    # Activated at the crash bar's close (00:03 bar -> stamped 00:04), once, with that reason.
    assert _events(result, "emergency_stop") == [(_t(4), "", reason)]
    assert result.summary["emergency_stop"] == {"time": _iso(4), "reason": reason, "detail": detail}
    assert result.summary["halted"] == f"emergency stop ({reason}): {detail}"
    assert result.equity["equity"].iloc[3] == pytest.approx(_CRASH_EQUITY, abs=1e-9)

    # Entries at 00:01; the reduce-only closes at the next bar's open (81 / 41); nothing after.
    assert _fills(result) == [
        (_t(1), A, "buy", 15.0, 100.0),
        (_t(1), B, "buy", 30.0, 50.0),
        (_t(4), A, "sell", 15.0, 81.0),
        (_t(4), B, "sell", 30.0, 41.0),
    ]
    moves = _positions_after_each_fill(result)
    after = [m for t, m in zip(result.fills["time"], moves, strict=True) if t >= _t(4)]
    assert after == [(15.0, 0.0), (30.0, 0.0)]  # every fill after activation only shrinks
    assert not result.fills["liquidation"].any()

    # Flat from the next bar on: no unrealized PnL, equity == wallet == the hand-computed value.
    eq = result.equity
    assert (eq["unrealized"].iloc[4:] == 0.0).all()
    assert eq["equity"].iloc[4:].to_numpy() == pytest.approx([_FLAT_WALLET] * 6, abs=1e-9)

    # The strategy's later targets (A grow, B new short at bar 5's close) are denied.
    assert _events(result, "risk_blocked") == [
        (_t(6), A, "trading_halted"),
        (_t(6), B, "trading_halted"),
    ]
    assert result.summary["risk_denials"] == 2
    assert result.summary["mode_changes"] == 0
    assert result.rejected_orders.empty

    # The audit trail: one emergency.triggered naming the reason and the positions it closed.
    (triggered,) = _records(tmp_path, "emergency.triggered")
    assert triggered["ts"] == _audit_ts(4)
    assert triggered["actor"] == "ess"
    assert triggered["reason"] == reason
    assert triggered["outcome"] == "halted"
    meta = triggered["metadata"]
    assert meta["positions_closed"] == [A, B]
    assert meta["orders_canceled"] == (0 if stop_loss is None else 2)  # the two stops
    assert meta["detail"] == detail
    assert meta["failed_closes"] == []
    assert [(a["symbol"], a["quantity"], a["filled"]) for a in meta["flatten_attempts"]] == [
        (A, 15.0, True),
        (B, 30.0, True),
    ]
    decided = [r["ts"] for r in _records(tmp_path, "trade.decision")]
    assert decided == [_audit_ts(1), _audit_ts(1)]  # no strategy order after the activation
    halts = [r for r in _records(tmp_path, "policy.changed") if r["actor"] == "ess"]
    assert [(r["ts"], r["metadata"]["new"]["state"]) for r in halts] == [(_audit_ts(4), "halted")]
    blocked = _records(tmp_path, "risk.blocked")
    assert [(r["ts"], r["target"], r["reason"]) for r in blocked] == [
        (_audit_ts(6), A, "trading_halted"),
        (_audit_ts(6), B, "trading_halted"),
    ]
    assert verify_audit_dir(tmp_path).ok


def test_ess_when_disabled_in_settings_does_not_activate_on_a_flash_crash() -> None:
    risk = RiskSettings(coordinator=NO_COORDINATOR, ess=EssSettings(enabled=False))
    result = _run(_settings(A, B), _CRASH_TARGETS, _market(**{A: _CRASH_A, B: _CRASH_B}), risk)
    assert result.summary["emergency_stop"] is None
    assert _events(result, "emergency_stop") == []


# --------------------------------------------------------------------------- 3. stale data


def _with_hole(first: int, resume_minute: int, price: float, resumed: float) -> pd.DataFrame:
    """``first`` bars at ``price`` from 00:00, then bars at ``resumed`` from ``resume_minute``
    up to minute 29 (the last bar before the hole closes at ``first`` minutes)."""
    head = candles([price] * first)
    tail = candles([resumed] * (30 - resume_minute), start=_t(resume_minute))
    return pd.concat([head, tail], ignore_index=True)


@pytest.mark.parametrize(
    ("resume_minute", "stale_secs"),
    [
        pytest.param(20, 600, id="10-minute-hole"),
        pytest.param(15, 300, id="hole-exactly-at-the-limit"),
    ],
)
def test_ess_when_data_has_a_hole_of_at_least_stale_secs_flattens_at_the_first_bar_after_it(
    tmp_path: Path, resume_minute: int, stale_secs: int
) -> None:
    # Bars 00:00..00:09 at 100, then nothing until ``resume_minute`` (open 101). The last data
    # is the 00:09 bar's close at 00:10; stale from 00:15 (300 s); the first bar at/after that
    # is the one at ``resume_minute``: the ESS acts before its open, so the close fills there.
    frame = _with_hole(10, resume_minute, 100.0, 101.0)
    risk = RiskSettings(coordinator=NO_COORDINATOR, ess=EssSettings(stale_data_secs=300))
    result = _run(
        _settings(A), {A: [10] * len(frame)}, _market(**{A: frame}), risk, audit_dir=tmp_path
    )

    detail = f"last market data {stale_secs:.3f}s old >= 300s allowed"
    assert _events(result, "emergency_stop") == [(_t(resume_minute), "", "stale_market_data")]
    assert result.summary["emergency_stop"] == {
        "time": _iso(resume_minute),
        "reason": "stale_market_data",
        "detail": detail,
    }
    assert _fills(result) == [
        (_t(1), A, "buy", 10.0, 100.0),
        (_t(resume_minute), A, "sell", 10.0, 101.0),
    ]
    assert result.equity.loc[_t(resume_minute) :, "unrealized"].eq(0.0).all()
    (triggered,) = _records(tmp_path, "emergency.triggered")
    assert triggered["ts"] == _audit_ts(resume_minute)
    assert triggered["reason"] == "stale_market_data"
    assert triggered["metadata"]["positions_closed"] == [A]
    assert triggered["metadata"]["failed_closes"] == []


def test_ess_when_data_hole_is_shorter_than_stale_secs_stays_inactive() -> None:
    # Last data at 00:10, next bar at 00:14: 240 s < 300 s.
    frame = _with_hole(10, 14, 100.0, 101.0)
    risk = RiskSettings(coordinator=NO_COORDINATOR, ess=EssSettings(stale_data_secs=300))
    result = _run(_settings(A), {A: [10] * len(frame)}, _market(**{A: frame}), risk)
    assert result.risk_events.empty
    assert _fills(result) == [(_t(1), A, "buy", 10.0, 100.0)]


def test_ess_when_one_of_two_symbols_goes_stale_flattens_both(tmp_path: Path) -> None:
    # A stops after its 00:09 bar and resumes at 00:20; B trades every minute. Stale from
    # 00:15, a bar B has: the ESS acts there; B's close fills at 00:15, A's close waits for
    # A's next open (00:20). Getting out must always be possible: both end flat.
    frame_a = _with_hole(10, 20, 100.0, 101.0)
    frame_b = candles([50.0] * 30)
    risk = RiskSettings(coordinator=NO_COORDINATOR, ess=EssSettings(stale_data_secs=300))
    result = _run(
        _settings(A, B),
        {A: [10] * len(frame_a), B: [20] * 30},
        _market(**{A: frame_a, B: frame_b}),
        risk,
        audit_dir=tmp_path,
    )
    assert _events(result, "emergency_stop") == [(_t(15), "", "stale_market_data")]
    (triggered,) = _records(tmp_path, "emergency.triggered")
    assert triggered["metadata"]["failed_closes"] == []
    assert triggered["metadata"]["positions_closed"] == [A, B]
    assert _events(result, "risk_blocked") == []
    assert result.equity["unrealized"].iloc[-1] == 0.0


# --------------------------------------------------------------------------- 4. rejections

# Cash 1,000 at 1x leverage: a target of 20 @ 100 (2,000 USDT) needs 2,000 of margin, so the
# venue rejects it (insufficient margin). The guard lets it through: a 1% protective stop puts
# the trade's risk at 20 * 1 / 1,000 = 2%, and exposure limits are opened wide.
_WIDE = _limits(
    max_risk_per_trade=0.5,
    max_symbol_exposure=100.0,
    max_gross_exposure=1000.0,
    max_position_notional=1e9,
)


def test_ess_when_tenth_rejection_within_60s_window_activates_there_and_not_before(
    tmp_path: Path,
) -> None:
    # Six symbols decide at the same closes (00:01 and 00:02; each target changes every bar).
    # Rejections 1-6 at 00:01, 7-10 at 00:02 (60 s apart: inside the inclusive window): the
    # 10th is S3's; S4 and S5 at that same close are already denied trading_halted.
    syms = tuple(f"S{i}USDT" for i in range(6))
    market = _market(**{s: candles([100.0] * 6) for s in syms})
    targets: dict[str, Sequence[float]] = {s: [20, 21, 20, 21, 20, 21] for s in syms}
    risk = RiskSettings(limits=_WIDE, coordinator=NO_COORDINATOR)
    result = _run(
        _settings(*syms, cash=1_000.0, leverage=1, stop_loss=0.01),
        targets,
        market,
        risk,
        audit_dir=tmp_path,
    )

    rejected = result.rejected_orders
    assert len(rejected) == 10
    assert list(zip(rejected["time"], rejected["symbol"], strict=True)) == [
        *((_t(1), s) for s in syms),
        *((_t(2), s) for s in syms[:4]),
    ]
    assert rejected["reason"].str.startswith("insufficient_margin").all()
    stop = {"time": _iso(2), "reason": "execution_errors"}
    assert result.summary["emergency_stop"] == {
        **stop,
        "detail": "10 execution errors or rejects within 60s",
    }
    assert _events(result, "emergency_stop") == [(_t(2), "", "execution_errors")]
    halted = _events(result, "risk_blocked")
    assert halted[:2] == [(_t(2), "S4USDT", "trading_halted"), (_t(2), "S5USDT", "trading_halted")]
    assert {r for _, _, r in halted} == {"trading_halted"}
    assert len(halted) == 2 + 3 * 6  # every later decision (closes of bars 2, 3, 4) is denied
    assert result.fills.empty
    # In the audit trail the activation comes right after the 10th rejection.
    recs = [
        r
        for r in _records(tmp_path)
        if r["event_type"] == "emergency.triggered"
        or (r["event_type"] == "trade.executed" and r["outcome"] == "rejected")
    ]
    assert [r["event_type"] for r in recs] == ["trade.executed"] * 10 + ["emergency.triggered"]
    assert recs[-1]["reason"] == "execution_errors"
    assert recs[-1]["ts"] == _audit_ts(2)


def test_ess_when_ten_rejections_are_spread_over_600s_window_activates_at_the_tenth() -> None:
    # One symbol, a new target every bar: one rejection per close at 00:01, 00:02, ...; the
    # 10th (00:10) is 540 s after the first, inside a 600 s window.
    targets = [20.0 + (i % 2) for i in range(14)]
    risk = RiskSettings(
        limits=_WIDE,
        coordinator=NO_COORDINATOR,
        ess=EssSettings(max_execution_errors=10, error_window_secs=600),
    )
    result = _run(
        _settings(A, cash=1_000.0, leverage=1, stop_loss=0.01),
        {A: targets},
        _market(**{A: candles([100.0] * 14)}),
        risk,
    )
    assert list(result.rejected_orders["time"]) == [_t(m) for m in range(1, 11)]
    assert _events(result, "emergency_stop") == [(_t(10), "", "execution_errors")]
    assert _events(result, "risk_blocked") == [(_t(m), A, "trading_halted") for m in (11, 12, 13)]


def test_ess_when_nine_rejections_within_window_stays_inactive() -> None:
    targets = [20.0 + (i % 2) for i in range(10)]  # decisions at bars 0..8: nine rejections
    risk = RiskSettings(
        limits=_WIDE,
        coordinator=NO_COORDINATOR,
        ess=EssSettings(max_execution_errors=10, error_window_secs=600),
    )
    result = _run(
        _settings(A, cash=1_000.0, leverage=1, stop_loss=0.01),
        {A: targets},
        _market(**{A: candles([100.0] * 10)}),
        risk,
    )
    assert len(result.rejected_orders) == 9
    assert result.risk_events.empty
    assert result.summary["emergency_stop"] is None


# --------------------------------------------------------------------------- 5. restart


def _ess_cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(ess_app, name="ess")
    return app


@pytest.mark.parametrize(
    ("resume", "cli_args"),
    [
        pytest.param("reducing", [], id="default-resume-reducing"),
        pytest.param("active", ["--resume", "active"], id="resume-active"),
    ],
)
def test_ess_when_restarted_while_latched_denies_everything_until_a_person_resets_it(
    tmp_path: Path, resume: str, cli_args: list[str]
) -> None:
    state_db, audit_dir = tmp_path / "state.db", tmp_path / "audit"
    risk = RiskSettings(coordinator=NO_COORDINATOR, state_db=state_db)
    # Run 1: the flash crash latches the ESS in the state database.
    first = _run(
        _settings(A, B),
        _CRASH_TARGETS,
        _market(**{A: _CRASH_A, B: _CRASH_B}),
        risk,
        state_db=state_db,
    )
    assert first.summary["emergency_stop"] is not None
    status = CliRunner().invoke(
        _ess_cli(), ["ess", "status", "--json", "--state-db", str(state_db)]
    )
    assert status.exit_code == 0, status.output
    assert orjson.loads(status.output)["active"] is True

    # Run 2: new engine and objects, same database, a fresh flat market where the strategy
    # wants to go long A at bar 0 and short B at bar 2: every intent is denied, nothing fills.
    fresh = _market(**{A: candles([100.0] * 6), B: candles([50.0] * 6)})
    wants: dict[str, Sequence[float]] = {A: [10] * 6, B: [0, 0, -20, -20, -20, -20]}
    second = _run(_settings(A, B), wants, fresh, risk, state_db=state_db)
    assert second.fills.empty
    assert _events(second, "risk_blocked") == [
        (_t(1), A, "trading_halted"),
        (_t(3), B, "trading_halted"),
    ]
    assert second.summary["emergency_stop"] is None  # no new activation: it was latched before

    # A person resets the latch through the command line.
    reset = CliRunner().invoke(
        _ess_cli(),
        [
            "ess", "reset", "--actor", "alice", "--reason", "post-mortem done",
            "--state-db", str(state_db), "--audit-dir", str(audit_dir), *cli_args,
        ],
    )  # fmt: skip
    assert reset.exit_code == 0, reset.output
    (recovered,) = _records(audit_dir, "emergency.recovered")
    assert (recovered["actor"], recovered["reason"], recovered["outcome"]) == (
        "alice",
        "post-mortem done",
        resume,
    )

    # Run 3: the same market and strategy again.
    third = _run(_settings(A, B), wants, fresh, risk, state_db=state_db)
    assert third.summary["emergency_stop"] is None
    if resume == "reducing":
        # Reducing: only orders that shrink a position pass; these would open positions.
        assert third.fills.empty
        assert _events(third, "risk_blocked") == [
            (_t(1), A, "reduce_only"),
            (_t(3), B, "reduce_only"),
        ]
    else:
        assert _fills(third) == [(_t(1), A, "buy", 10.0, 100.0), (_t(3), B, "sell", 20.0, 50.0)]
        assert third.risk_events.empty


def test_ess_when_state_db_is_given_only_in_risk_settings_latch_survives_the_run(
    tmp_path: Path,
) -> None:
    state_db = tmp_path / "state.db"
    risk = RiskSettings(coordinator=NO_COORDINATOR, state_db=state_db)
    _run(_settings(A, B), _CRASH_TARGETS, _market(**{A: _CRASH_A, B: _CRASH_B}), risk)
    fresh = _market(**{A: candles([100.0] * 6)})
    second = _run(_settings(A), {A: [10] * 6}, fresh, risk)
    assert second.fills.empty
    assert _events(second, "risk_blocked") == [(_t(1), A, "trading_halted")]


# --------------------------------------------------------------------------- 7. reason codes


@dataclass(frozen=True)
class _GuardCase:
    """A run built to make the RiskGuard deny with one reason code."""

    targets: dict[str, Sequence[float]]
    risk: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    prices_a: Sequence[float] = (100.0,) * 8
    prices_b: Sequence[float] = (50.0,) * 8
    denied: tuple[tuple[int, str], ...] = ()  # (minute, symbol) of each denial, in order


def _at(minute: int) -> dt.datetime:
    return _t(minute).to_pydatetime()


_GUARD_CASES: dict[RiskReason, _GuardCase] = {
    RiskReason.SYMBOL_NOT_ALLOWED: _GuardCase(
        {A: [10] * 8, B: [20] * 8}, risk={"allowed_symbols": (A,)}, denied=((1, B),)
    ),
    # leverage 10 (the run's) > max_leverage 5
    RiskReason.LEVERAGE: _GuardCase(
        {A: [10] * 8}, risk={"limits": _limits(max_leverage=5.0)}, denied=((1, A),)
    ),
    # 30 @ 100 at 10x: margin 300 = 3% of equity > 2% (default NORMAL)
    RiskReason.RISK_PER_TRADE: _GuardCase({A: [30] * 8}, denied=((1, A),)),
    # 15 @ 100 = 1,500 > 1,000
    RiskReason.POSITION_NOTIONAL: _GuardCase(
        {A: [15] * 8}, risk={"limits": _limits(max_position_notional=1_000.0)}, denied=((1, A),)
    ),
    # A opens first; B would be the second open position
    RiskReason.OPEN_POSITIONS: _GuardCase(
        {A: [10] * 8, B: [20] * 8},
        risk={"limits": _limits(max_open_positions=1)},
        denied=((1, B),),
    ),
    # 80 @ 100 = 0.8x equity > 0.5x
    RiskReason.SYMBOL_EXPOSURE: _GuardCase(
        {A: [80] * 8},
        risk={"limits": _limits(max_risk_per_trade=0.5, max_symbol_exposure=0.5)},
        denied=((1, A),),
    ),
    # A 0.6x then B 0.6x: 1.2x gross > 1.0x
    RiskReason.GROSS_EXPOSURE: _GuardCase(
        {A: [60] * 8, B: [120] * 8},
        risk={"limits": _limits(max_risk_per_trade=0.5, max_gross_exposure=1.0)},
        denied=((1, B),),
    ),
    # Long A 20 @ 100 from 00:01; A closes at 70 at bar 3: equity 10,000 - 0.8 - 600 =
    # 9,399.2, a 6.01% loss today >= 5% (NORMAL). With the ESS switched off, B's entry at that
    # close is denied daily_loss. (With the ESS on, the ESS fires at the same limit at that
    # bar's close, before the decisions, and the denial reads trading_halted instead; the
    # coordinator moves the mode, and so the limits, before that ESS check.)
    RiskReason.DAILY_LOSS: _GuardCase(
        {A: [20] * 8, B: [0, 0, 0, 10, 10, 10, 10, 10]},
        risk={"ess": EssSettings(enabled=False)},
        prices_a=(100.0, 100.0, 100.0, 70.0, 70.0, 70.0, 70.0, 70.0),
        denied=((4, B),),
    ),
    # Two entries at one close, one order allowed per 60 s
    RiskReason.ORDER_RATE: _GuardCase(
        {A: [10] * 8, B: [20] * 8}, risk={"max_orders_per_window": 1}, denied=((1, B),)
    ),
    # Halted by a person at 00:02 (the bar-2 decision is stamped 00:03)
    RiskReason.TRADING_HALTED: _GuardCase(
        {A: [0, 0, 10, 10, 10, 10, 10, 10]},
        risk={
            "policy_changes": (
                ScheduledPolicyChange(
                    at=_at(2), actor="bob", reason="CPI release", state=TradingState.HALTED
                ),
            )
        },
        denied=((3, A),),
    ),
    RiskReason.REDUCE_ONLY: _GuardCase(
        {A: [0, 0, 10, 10, 10, 10, 10, 10]},
        risk={
            "policy_changes": (
                ScheduledPolicyChange(
                    at=_at(2), actor="bob", reason="weekend", state=TradingState.REDUCING
                ),
            )
        },
        denied=((3, A),),
    ),
}

# Codes no backtest can produce without patching the engine, and why:
_NOT_REACHABLE = {
    # The intent is priced at the bar's close, which is also the guard's mark: deviation 0,
    # and the quantity is always > 0 after rounding (a zero delta makes no intent).
    RiskReason.PRICE_INVALID,
    # Strategies decide only at their own symbol's real bars, so the mark is never old for
    # a strategy order; the ESS's closes (also of a stale symbol, see
    # test_ess_when_one_of_two_symbols_goes_stale_flattens_both) skip the price checks.
    RiskReason.PRICE_STALE,
    # Backtest intents carry confidence 1.0, which every min_confidence (<= 1) allows.
    RiskReason.LOW_CONFIDENCE,
    # An exception inside a check: tests/unit/risk/test_guard.py covers the fail-closed path.
    RiskReason.GUARD_ERROR,
}


def test_guard_reason_codes_when_listed_cover_every_denial_code() -> None:
    covered = set(_GUARD_CASES) | _NOT_REACHABLE
    assert covered == set(RiskReason) - {RiskReason.APPROVED}
    assert not set(_GUARD_CASES) & _NOT_REACHABLE


@pytest.mark.parametrize("reason", list(_GUARD_CASES), ids=str)
def test_guard_when_engine_meets_each_limit_denies_with_its_reason_code(
    tmp_path: Path, reason: RiskReason
) -> None:
    case = _GUARD_CASES[reason]
    symbols = tuple(case.targets)
    risk = RiskSettings(**{"coordinator": NO_COORDINATOR, **case.risk})
    market = _market(**{A: candles(list(case.prices_a)), B: candles(list(case.prices_b))})
    result = _run(
        _settings(*symbols, **case.settings), case.targets, market, risk, audit_dir=tmp_path
    )
    expected = [(_t(m), s, reason.value) for m, s in case.denied]
    assert _events(result, "risk_blocked") == expected
    audited = _records(tmp_path, "risk.blocked")
    assert [(r["ts"], r["target"], r["reason"]) for r in audited] == [
        (_audit_ts(m), s, reason.value) for m, s in case.denied
    ]
    # The denied intents never reached the venue.
    assert set(result.fills["symbol"]).isdisjoint({s for _, s in case.denied})


# --------------------------------------------------------------------------- 8. policy change


def test_policy_change_when_state_set_reducing_at_t_denies_the_next_entry_but_allows_closes(
    tmp_path: Path,
) -> None:
    # REDUCING scheduled at 00:05 = bar 5's open (applied before bar 5's decisions).
    #   bar 0 close: target 10 -> buy 10   (fills 00:01)
    #   bar 4 close (stamped 00:05, made before bar 5): grow to 20 -> allowed (fills 00:05)
    #   bar 5 close: grow to 30 -> denied reduce_only
    #   bar 6 close: 10 -> sell 10, reduces -> allowed (fills 00:07)
    #   bar 7 close: -5 -> would flip to a new short -> denied reduce_only
    #   bar 8 close: 0 -> sell... closes the rest (10 -> 0) -> allowed (fills 00:09)
    targets = [10, 10, 10, 10, 20, 30, 10, -5, 0, 0]
    change = ScheduledPolicyChange(
        at=_at(5), actor="carol", reason="cut risk before the weekend", state=TradingState.REDUCING
    )
    risk = RiskSettings(coordinator=NO_COORDINATOR, policy_changes=(change,))
    result = _run(
        _settings(A),
        {A: targets},
        _market(**{A: candles([100.0] * 10)}),
        risk,
        audit_dir=tmp_path,
    )
    assert _fills(result) == [
        (_t(1), A, "buy", 10.0, 100.0),
        (_t(5), A, "buy", 10.0, 100.0),
        (_t(7), A, "sell", 10.0, 100.0),
        (_t(9), A, "sell", 10.0, 100.0),
    ]
    assert _events(result, "risk_blocked") == [(_t(6), A, "reduce_only"), (_t(8), A, "reduce_only")]
    assert result.summary["emergency_stop"] is None
    (changed,) = [r for r in _records(tmp_path, "policy.changed") if r["actor"] == "carol"]
    assert changed["ts"] == _audit_ts(5)
    assert changed["reason"] == "cut risk before the weekend"
    assert changed["metadata"]["old"]["state"] == "active"
    assert changed["metadata"]["new"]["state"] == "reducing"
