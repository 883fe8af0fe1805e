"""``qtrader ess``: show, trigger and reset the Emergency Stop System latch.

Every command reads the state database (``--state-db``, env ``QT_STATE_DB``, default
``runs/state.db``); ``trigger`` and ``reset`` audit what they do in ``--audit-dir`` (env
``QT_AUDIT_DIR``, default ``runs/audit``), fsynced before the command returns::

    qtrader ess status
    qtrader ess trigger --actor alice --reason "exchange incident"
    qtrader ess reset --actor alice --reason "incident over" --resume reducing

The command line has no exchange connection. ``trigger`` latches the ESS, sets the trading
state HALTED and writes ``emergency.triggered`` with the note that positions must be flattened
by the running engine: every engine and worker reads the latch from the shared store
(``EmergencyStopSystem.is_active``), stops sending orders, and cancels and flattens itself
(``EmergencyStopSystem.enforce``). ``reset`` needs both ``--actor`` and ``--reason``; it clears
the latch, sets the trading state to ``--resume`` (reducing by default) and writes
``emergency.recovered``.

Exit codes: 0 done (also: already active, or nothing to reset); 2 a missing actor or reason;
1 anything else (an unreadable database, the audit log unavailable).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from quantum_trader.cli.console import console, err_console, fail
from quantum_trader.domain.clock import NANOS_PER_SECOND, WallClock
from quantum_trader.domain.errors import QuantumTraderError
from quantum_trader.domain.policy import TradingState
from quantum_trader.engine.audit import open_audit_logger
from quantum_trader.engine.stores import DEFAULT_STATE_DB, open_state_stores, state_exists
from quantum_trader.observability.audit.records import Durability
from quantum_trader.risk.ess import EmergencyStopSystem, NoVenueExecutor
from quantum_trader.risk.policy_service import PolicyService
from quantum_trader.stores.ports import EssState

DEFAULT_STATE = str(DEFAULT_STATE_DB)
DEFAULT_AUDIT_DIR = Path("runs/audit")
NO_EXCHANGE_NOTE = "no exchange connected: positions must be flattened by the running engine"

ess_app = typer.Typer(
    help="Show, trigger and reset the Emergency Stop System (latched until a person resets it).",
    no_args_is_help=True,
)

StateDb = Annotated[
    str,
    typer.Option(
        "--state-db",
        envvar="QT_STATE_DB",
        help="The SQLite state file holding the latch, or a redis:// URL "
        "(key prefix: $QT_REDIS_PREFIX, default qt).",
    ),
]
AuditDir = Annotated[
    Path,
    typer.Option("--audit-dir", envvar="QT_AUDIT_DIR", help="Audit folder for the record."),
]
Actor = Annotated[str, typer.Option("--actor", help="Who does this (your name).")]
Reason = Annotated[str, typer.Option("--reason", help="Why, in words; audited.")]


class ResumeState(StrEnum):
    """The trading state after a reset."""

    REDUCING = "reducing"
    ACTIVE = "active"


def _when(ts_ns: int) -> str:
    if ts_ns <= 0:
        return "-"
    moment = dt.datetime.fromtimestamp(ts_ns // NANOS_PER_SECOND, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


@contextmanager
def _ess(state_db: str, audit_dir: Path) -> Iterator[EmergencyStopSystem]:
    clock = WallClock()
    # The audit log opens first: if it cannot be written, nothing is changed (fail closed).
    with open_audit_logger(audit_dir, clock, durability=Durability.FSYNC) as audit:
        with open_state_stores(state_db) as stores:
            policy = PolicyService(stores.policy, clock, audit)
            yield EmergencyStopSystem(
                stores.ess, policy, NoVenueExecutor(), clock, audit, evaluators=()
            )


def _print_state(state: EssState) -> None:
    if state.active:
        console.print("emergency stop: [bold red]ACTIVE[/] (latched until reset)")
        rows = [
            ("reason", state.reason),
            ("severity", state.severity),
            ("activated by", state.activated_by),
            ("activated at", _when(state.activated_at_ns)),
        ]
    else:
        console.print("emergency stop: [bold green]inactive[/]")
        rows = []
    rows += [
        ("activations", str(state.activations)),
        ("ignored triggers", str(state.ignored_triggers)),
    ]
    if state.reset_at_ns:
        rows.append(
            ("last reset", f"{_when(state.reset_at_ns)} by {state.reset_by}: {state.reset_reason}")
        )
    for name, value in rows:
        console.print(f"  {name + ':':<17} {value}", highlight=False, soft_wrap=True)


@ess_app.command("status")
def status(
    state_db: StateDb = DEFAULT_STATE,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show whether the emergency stop is latched, why, by whom and since when."""
    try:
        if state_exists(state_db):
            with open_state_stores(state_db) as stores:
                state = stores.ess.load()
        else:  # a read never creates the database
            err_console.print(f"note: no state database at {state_db} yet", highlight=False)
            state = EssState()
    except QuantumTraderError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(asdict(state), indent=2, sort_keys=True))
    else:
        _print_state(state)


@ess_app.command("trigger")
def trigger(
    actor: Actor,
    reason: Reason,
    state_db: StateDb = DEFAULT_STATE,
    audit_dir: AuditDir = DEFAULT_AUDIT_DIR,
) -> None:
    """Latch the emergency stop and halt trading; the running engine flattens positions."""
    try:
        with _ess(state_db, audit_dir) as ess:
            activation = ess.trigger_manual(
                actor, reason, metadata={"executor": "none", "note": NO_EXCHANGE_NOTE}
            )
            state = ess.state()
    except QuantumTraderError as exc:
        raise fail(exc) from None
    if not activation.activated:
        console.print(
            f"emergency stop already active since {_when(state.activated_at_ns)} "
            f"({state.reason}); this trigger was counted as ignored "
            f"({state.ignored_triggers} so far)",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(
        f"emergency stop ACTIVE: trading halted by {actor}: {reason}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"note: {NO_EXCHANGE_NOTE}", highlight=False, soft_wrap=True)


@ess_app.command("reset")
def reset(
    actor: Actor,
    reason: Reason,
    resume: Annotated[
        ResumeState, typer.Option("--resume", help="Trading state after the reset.")
    ] = ResumeState.REDUCING,
    state_db: StateDb = DEFAULT_STATE,
    audit_dir: AuditDir = DEFAULT_AUDIT_DIR,
) -> None:
    """Clear the emergency stop latch and resume trading (reducing by default)."""
    try:
        with _ess(state_db, audit_dir) as ess:
            done = ess.reset(actor, reason, TradingState(resume.value))
    except QuantumTraderError as exc:
        raise fail(exc) from None
    if not done:
        console.print("emergency stop is not active: nothing to reset")
        return
    console.print(
        f"emergency stop reset by {actor}: {reason}; trading state now {resume.value}",
        highlight=False,
        soft_wrap=True,
    )
