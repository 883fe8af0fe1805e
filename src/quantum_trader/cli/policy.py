"""``qtrader policy``: show the risk policy, change it, switch the risk mode, list its history.

Every command reads the state database (``--state-db``, env ``QT_STATE_DB``, default
``runs/state.db``). Changes go through the PolicyService: validated before anything is written,
compare-and-set on the version read (``--expected-version`` pins the version you looked at), and
audited as ``policy.changed`` in ``--audit-dir`` (env ``QT_AUDIT_DIR``, default ``runs/audit``),
fsynced before the command returns. Settings are given as ``KEY=VALUE``::

    qtrader policy set mode=safe max_price_deviation=0.05 --actor alice --reason "CPI day"
    qtrader policy set limits.safe.max_leverage=4 allowed_symbols=BTCUSDT,ETHUSDT \\
        --actor alice --reason "tighter" --expected-version 7

Exit codes: 0 done (or nothing to change); 2 a bad key, value or rule (nothing is written);
1 anything else (a conflicting version, an unreadable database, the audit log unavailable).
"""

from __future__ import annotations

import datetime as dt
import json
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from quantum_trader.cli.console import console, err_console, fail
from quantum_trader.domain.clock import NANOS_PER_SECOND, WallClock
from quantum_trader.domain.errors import ConfigError, QuantumTraderError
from quantum_trader.domain.policy import MODE_ORDER, ModeLimits, Policy, RiskMode, TradingState
from quantum_trader.engine.audit import open_audit_logger
from quantum_trader.engine.stores import DEFAULT_STATE_DB, open_state_stores, state_exists
from quantum_trader.observability.audit.records import Durability
from quantum_trader.risk.policy_service import LIMIT_FIELDS, PolicyService

DEFAULT_STATE = str(DEFAULT_STATE_DB)
DEFAULT_AUDIT_DIR = Path("runs/audit")

policy_app = typer.Typer(
    help="Show and change the risk policy: mode, trading state, limits, allowed symbols.",
    no_args_is_help=True,
)

StateDb = Annotated[
    str,
    typer.Option(
        "--state-db",
        envvar="QT_STATE_DB",
        help="The SQLite state file holding the policy, or a redis:// URL "
        "(key prefix: $QT_REDIS_PREFIX, default qt).",
    ),
]
AuditDir = Annotated[
    Path,
    typer.Option("--audit-dir", envvar="QT_AUDIT_DIR", help="Audit folder for the change."),
]
Actor = Annotated[str, typer.Option("--actor", help="Who makes the change (your name).")]
Reason = Annotated[str, typer.Option("--reason", help="Why, in words; kept in the history.")]
ExpectedVersion = Annotated[
    int | None,
    typer.Option(
        "--expected-version",
        help="Refuse the change unless the policy is still at this version.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


# ---------------------------------------------------------------- parsing KEY=VALUE


def _parse_int(key: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ConfigError(f"{key}: {text!r} is not an integer") from None


def _parse_float(key: str, text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ConfigError(f"{key}: {text!r} is not a number") from None


def _parse_mode(key: str, text: str) -> RiskMode:
    try:
        return RiskMode(text.strip().lower())
    except ValueError:
        valid = ", ".join(m.value for m in MODE_ORDER)
        raise ConfigError(f"{key}: {text!r} is not a risk mode (one of: {valid})") from None


def _parse_state(key: str, text: str) -> TradingState:
    try:
        return TradingState(text.strip().lower())
    except ValueError:
        valid = ", ".join(s.value for s in TradingState)
        raise ConfigError(f"{key}: {text!r} is not a trading state (one of: {valid})") from None


def _parse_symbols(key: str, text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


Parser = Callable[[str, str], Any]
LimitChanges = dict[RiskMode | str, dict[str, Any]]
_SETTINGS: dict[str, Parser] = {
    "mode": _parse_mode,
    "state": _parse_state,
    "allowed_symbols": _parse_symbols,
    "max_orders_per_window": _parse_int,
    "order_window_secs": _parse_float,
    "max_price_age_secs": _parse_float,
    "max_price_deviation": _parse_float,
}
_LIMIT_TYPES = typing.get_type_hints(ModeLimits)


def _unknown_key(key: str) -> ConfigError:
    if key.startswith("limits."):
        return ConfigError(
            f"unknown policy limit {key!r}; use limits.<mode>.<field> with mode one of "
            f"{', '.join(m.value for m in MODE_ORDER)} and field one of {', '.join(LIMIT_FIELDS)}"
        )
    return ConfigError(
        f"unknown policy setting {key!r}; settable: {', '.join(_SETTINGS)}, limits.<mode>.<field>"
    )


def parse_settings(
    items: Sequence[str],
) -> tuple[dict[str, Any], LimitChanges]:
    """Parse ``KEY=VALUE`` items into policy changes and per-mode limit changes.

    Raises ConfigError naming the item for a missing ``=``, an unknown or repeated key, or a
    value of the wrong type. Ranges and the monotonic rule are checked by the policy itself.
    """
    changes: dict[str, Any] = {}
    limit_changes: LimitChanges = {}
    seen: set[str] = set()
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{item!r} is not KEY=VALUE")
        if key in seen:
            raise ConfigError(f"{key} is given more than once")
        seen.add(key)
        if key.startswith("limits."):
            parts = key.split(".")
            if len(parts) != 3 or parts[2] not in _LIMIT_TYPES:
                raise _unknown_key(key)
            mode = _parse_mode(key, parts[1])
            kind = _LIMIT_TYPES[parts[2]]
            parse = _parse_int if kind is int else _parse_float
            limit_changes.setdefault(mode, {})[parts[2]] = parse(key, text)
        elif key in _SETTINGS:
            changes[key] = _SETTINGS[key](key, text)
        else:
            raise _unknown_key(key)
    return changes, limit_changes


# ---------------------------------------------------------------- formatting


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.10g}"


def _when(ts_ns: int) -> str:
    if ts_ns <= 0:
        return "-"
    moment = dt.datetime.fromtimestamp(ts_ns // NANOS_PER_SECOND, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _state_text(policy: Policy) -> str:
    if policy.effective_state is not policy.state:
        return f"{policy.state.value} (effective: {policy.effective_state.value}, critical mode)"
    return policy.state.value


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _print_policy(policy: Policy) -> None:
    summary = Table(title=f"Policy version {policy.version}", show_header=False)
    summary.add_column("setting", style="bold")
    summary.add_column("value")
    symbols = ", ".join(sorted(policy.allowed_symbols)) or "all symbols"
    rows = [
        ("mode", policy.mode.value),
        ("state", _state_text(policy)),
        ("allowed_symbols", symbols),
        ("max_orders_per_window", _number(policy.max_orders_per_window)),
        ("order_window_secs", _number(policy.order_window_secs)),
        ("max_price_age_secs", _number(policy.max_price_age_secs)),
        ("max_price_deviation", _number(policy.max_price_deviation)),
        ("updated", f"{_when(policy.updated_at_ns)} by {policy.updated_by}"),
        ("reason", policy.reason),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)
    limits = Table(title="Limits per mode (* active)")
    limits.add_column("limit", style="bold")
    for mode in MODE_ORDER:
        active = mode is policy.mode
        limits.add_column(
            f"{mode.value}{' *' if active else ''}", justify="right", style="cyan" if active else ""
        )
    for name in LIMIT_FIELDS:
        limits.add_row(name, *(_number(getattr(policy.limits[m], name)) for m in MODE_ORDER))
    console.print(limits)


def _print_change(old: Policy, new: Policy) -> None:
    if new.version == old.version:
        console.print(f"no change: policy version {old.version} already has these settings")
        return
    console.print(
        f"policy version {new.version} written by {new.updated_by} "
        f"(was {old.version}): {new.reason}",
        highlight=False,
    )
    before, after = _flatten(old.to_dict()), _flatten(new.to_dict())
    for key, value in after.items():
        if key in ("version", "updated_at_ns", "updated_by", "reason"):
            continue
        if before.get(key) != value:
            console.print(f"  {key}: {before.get(key)!r} → {value!r}", highlight=False)


# ---------------------------------------------------------------- store access


def _read(state_db: str, read: Callable[[PolicyService], Any]) -> Any:
    if not state_exists(state_db):
        # A read never creates the database: show what a new one would hold.
        err_console.print(
            f"note: no state database at {state_db} yet; showing the default policy",
            highlight=False,
        )
        return read(PolicyService(_DefaultOnly(), WallClock()))
    with open_state_stores(state_db) as stores:
        return read(PolicyService(stores.policy, WallClock()))


class _DefaultOnly:
    def get(self) -> Policy:
        return Policy()

    def compare_and_set(self, expected_version: int, new: Policy) -> Policy:
        raise ConfigError("the default policy is read-only")  # pragma: no cover - never called

    def history(self, limit: int = 50) -> Sequence[Policy]:
        return [Policy()]


@contextmanager
def _writer(state_db: str, audit_dir: Path) -> Iterator[PolicyService]:
    clock = WallClock()
    # The audit log opens first: if it cannot be written, nothing is changed (fail closed).
    with open_audit_logger(audit_dir, clock, durability=Durability.FSYNC) as audit:
        with open_state_stores(state_db) as stores:
            yield PolicyService(stores.policy, clock, audit)


def _change(
    state_db: str,
    audit_dir: Path,
    *,
    actor: str,
    reason: str,
    expected_version: int | None,
    changes: dict[str, Any],
    limit_changes: LimitChanges,
) -> tuple[Policy, Policy]:
    with _writer(state_db, audit_dir) as service:
        old = service.refresh()
        new = service.update(
            actor=actor,
            reason=reason,
            # Write over the version read (and shown in the diff) unless one was pinned.
            expected_version=old.version if expected_version is None else expected_version,
            limit_changes=limit_changes or None,
            **changes,
        )
    return old, new


# ---------------------------------------------------------------- commands


@policy_app.command("show")
def show(state_db: StateDb = DEFAULT_STATE, as_json: AsJson = False) -> None:
    """Show the active mode, trading state, allowed symbols and every mode's limits."""
    try:
        policy: Policy = _read(state_db, lambda service: service.current())
    except QuantumTraderError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(policy.to_dict(), indent=2, sort_keys=True))
    else:
        _print_policy(policy)


@policy_app.command("set")
def set_policy(
    settings: Annotated[
        list[str],
        typer.Argument(
            metavar="KEY=VALUE...",
            help="Settings: mode, state, allowed_symbols (comma list), max_orders_per_window, "
            "order_window_secs, max_price_age_secs, max_price_deviation, "
            "limits.<mode>.<field> (e.g. limits.safe.max_leverage=4).",
            show_default=False,
        ),
    ],
    actor: Actor,
    reason: Reason,
    expected_version: ExpectedVersion = None,
    state_db: StateDb = DEFAULT_STATE,
    audit_dir: AuditDir = DEFAULT_AUDIT_DIR,
) -> None:
    """Change policy settings; all are validated first, and nothing is written on an error."""
    try:
        changes, limit_changes = parse_settings(settings)
        old, new = _change(
            state_db,
            audit_dir,
            actor=actor,
            reason=reason,
            expected_version=expected_version,
            changes=changes,
            limit_changes=limit_changes,
        )
    except QuantumTraderError as exc:
        raise fail(exc) from None
    _print_change(old, new)


@policy_app.command("mode")
def set_mode(
    mode: Annotated[str, typer.Argument(help="aggressive, normal, safe or critical.")],
    actor: Actor,
    reason: Reason,
    expected_version: ExpectedVersion = None,
    state_db: StateDb = DEFAULT_STATE,
    audit_dir: AuditDir = DEFAULT_AUDIT_DIR,
) -> None:
    """Switch the active risk mode."""
    try:
        old, new = _change(
            state_db,
            audit_dir,
            actor=actor,
            reason=reason,
            expected_version=expected_version,
            changes={"mode": _parse_mode("mode", mode)},
            limit_changes={},
        )
    except QuantumTraderError as exc:
        raise fail(exc) from None
    _print_change(old, new)


@policy_app.command("history")
def history(
    limit: Annotated[int, typer.Option(min=1, help="How many versions, newest first.")] = 20,
    state_db: StateDb = DEFAULT_STATE,
    as_json: AsJson = False,
) -> None:
    """List the stored policy versions, newest first: who changed what, when and why."""
    try:
        versions: list[Policy] = _read(state_db, lambda service: service.history(limit))
    except QuantumTraderError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in versions], indent=2, sort_keys=True))
        return
    table = Table(title="Policy history (newest first)")
    for name in ("version", "updated (UTC)", "by", "mode", "state"):
        table.add_column(name, justify="right" if name == "version" else "left", no_wrap=True)
    table.add_column("reason")
    for p in versions:
        table.add_row(
            str(p.version),
            _when(p.updated_at_ns),
            p.updated_by,
            p.mode.value,
            p.state.value,
            p.reason,
        )
    console.print(table)
