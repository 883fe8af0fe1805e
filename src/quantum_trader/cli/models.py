"""``qtrader models``: register, list, show, shadow, promote (through the gate), roll back.

Every command works on the registry folder ``--registry`` (env ``QT_MODEL_REGISTRY``, default
``runs/models``). Changes are audited in ``--audit-dir`` (env ``QT_AUDIT_DIR``, default
``runs/audit``), fsynced before the command returns::

    qtrader models register runs/train/model-20250101
    qtrader models shadow 20250101-abc --actor alice --reason "start shadow"
    qtrader models promote 20250101-abc --actor alice --reason "beats v12"
    qtrader models promote 20250101-abc --actor alice --reason "incident 42" --force
    qtrader models rollback --actor alice --reason "live accuracy collapsed"

``promote`` prints the gate's figures (delta, confidence interval, p-value, n, shadow period).
Exit codes: 0 done; 1 the gate refused, the status table forbids the change, or the registry is
corrupt; 2 bad input (unknown version, malformed artifact, invalid gate setting).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from quantum_trader.ai.gate import GateConfig
from quantum_trader.ai.promotion import PromotionResult
from quantum_trader.ai.registry import ModelRecord, ModelRegistry
from quantum_trader.cli.console import console, err_console, fail
from quantum_trader.domain.clock import NANOS_PER_SECOND, WallClock
from quantum_trader.domain.errors import QuantumTraderError
from quantum_trader.engine.audit import open_audit_logger
from quantum_trader.observability.audit.records import Durability

DEFAULT_REGISTRY = Path("runs/models")
DEFAULT_AUDIT_DIR = Path("runs/audit")
_GATE = GateConfig()

models_app = typer.Typer(
    help="Model registry: register, shadow, promote through the gate, roll back.",
    no_args_is_help=True,
)

RegistryDir = Annotated[
    Path,
    typer.Option("--registry", envvar="QT_MODEL_REGISTRY", help="The model registry folder."),
]
AuditDir = Annotated[
    Path,
    typer.Option("--audit-dir", envvar="QT_AUDIT_DIR", help="Audit folder for the change."),
]
Actor = Annotated[str, typer.Option("--actor", help="Who makes the change (your name).")]
Reason = Annotated[str, typer.Option("--reason", help="Why, in words; audited.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _when(ts_ns: int | None) -> str:
    if not ts_ns:
        return "-"
    moment = dt.datetime.fromtimestamp(ts_ns / NANOS_PER_SECOND, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _num(value: object, spec: str = ".5f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


@contextmanager
def _writer(
    registry: Path, audit_dir: Path, gate: GateConfig | None = None
) -> Iterator[ModelRegistry]:
    clock = WallClock()
    # The audit log opens first: if it cannot be written, nothing is changed (fail closed).
    with open_audit_logger(audit_dir, clock, durability=Durability.FSYNC) as audit:
        yield ModelRegistry(registry, clock, audit, gate=gate)


def _record_dict(record: ModelRecord) -> dict[str, Any]:
    return {
        "version": record.version,
        "status": record.status.value,
        "registered_ns": record.registered_ns,
        "created_ns": record.created_ns,
        "horizon": record.horizon,
        "features": list(record.features),
        "metrics": dict(record.metrics),
        "sha256": record.sha256,
        "shadow_started_ns": record.shadow_started_ns,
        "history": [dict(h) for h in record.history],
        "gate_decisions": [dict(g) for g in record.gate_decisions],
    }


@models_app.command("list")
def list_models(registry: RegistryDir = DEFAULT_REGISTRY, as_json: AsJson = False) -> None:
    """List every registered version with its status; the active one is marked."""
    try:
        reader = ModelRegistry(registry, WallClock())
        records = reader.records()
        active = reader.active_version()
    except QuantumTraderError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps([_record_dict(r) for r in records], indent=2, sort_keys=True))
        return
    if not records:
        console.print(f"no models registered in {registry}", highlight=False)
        return
    table = Table(title=f"Models in {registry}")
    for name in ("version", "status", "registered (UTC)", "horizon", "features", "gate decisions"):
        table.add_column(name, no_wrap=name != "features")
    for r in records:
        mark = " *" if r.version == active else ""
        table.add_row(
            r.version + mark,
            r.status.value,
            _when(r.registered_ns),
            str(r.horizon),
            str(len(r.features)),
            str(len(r.gate_decisions)),
        )
    console.print(table)


@models_app.command("show")
def show(
    version: Annotated[str, typer.Argument(help="The model version.")],
    registry: RegistryDir = DEFAULT_REGISTRY,
    as_json: AsJson = False,
) -> None:
    """Show one version: manifest figures, status history and every gate decision."""
    try:
        record = ModelRegistry(registry, WallClock()).get(version)
    except QuantumTraderError as exc:
        raise fail(exc) from None
    data = _record_dict(record)
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    summary = Table(title=f"Model {version}", show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value")
    for name in ("status", "horizon", "sha256"):
        summary.add_row(name, str(data[name]))
    summary.add_row("registered", _when(record.registered_ns))
    summary.add_row("shadow since", _when(record.shadow_started_ns))
    summary.add_row("features", ", ".join(record.features))
    for key, value in sorted(record.metrics.items()):
        summary.add_row(f"metrics.{key}", _num(value))
    console.print(summary)
    history = Table(title="Status history")
    for name in ("when (UTC)", "from", "to", "by", "reason"):
        history.add_column(name)
    for h in record.history:
        history.add_row(
            _when(h["ts_ns"]), str(h["from"] or "-"), h["to"], h["actor"], h["reason"] or "-"
        )
    console.print(history)
    for decision in record.gate_decisions:
        _print_decision_dict(dict(decision))


@models_app.command("register")
def register(
    directory: Annotated[Path, typer.Argument(help="The model artifact folder.")],
    registry: RegistryDir = DEFAULT_REGISTRY,
) -> None:
    """Copy a model artifact into the registry as a candidate (versions are immutable)."""
    try:
        record = ModelRegistry(registry, WallClock()).register(directory)
    except QuantumTraderError as exc:
        raise fail(exc) from None
    console.print(
        f"registered model {record.version} as {record.status.value} (sha256 {record.sha256[:12]})",
        highlight=False,
    )


@models_app.command("shadow")
def shadow(
    version: Annotated[str, typer.Argument(help="The candidate version.")],
    actor: Actor,
    reason: Reason = "",
    registry: RegistryDir = DEFAULT_REGISTRY,
) -> None:
    """Start a candidate's shadow period: its predictions are logged, never traded."""
    try:
        record = ModelRegistry(registry, WallClock()).start_shadow(
            version, actor=actor, reason=reason
        )
    except QuantumTraderError as exc:
        raise fail(exc) from None
    console.print(f"model {record.version} is in shadow since {_when(record.shadow_started_ns)}")


@models_app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help="The version to make active.")],
    actor: Actor,
    reason: Reason,
    force: Annotated[
        bool, typer.Option("--force", help="Skip the gate (audited as forced; needs --reason).")
    ] = False,
    metric: Annotated[
        str, typer.Option(help="Gate metric: log_loss or accuracy.")
    ] = _GATE.metric.value,
    margin: Annotated[
        float, typer.Option(help="Improvement the candidate must exceed.")
    ] = _GATE.margin,
    confidence: Annotated[
        float, typer.Option(help="Confidence of the bootstrap test.")
    ] = _GATE.confidence,
    min_samples: Annotated[
        int, typer.Option(help="Fewest paired OOS predictions.")
    ] = _GATE.min_samples,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples.")] = _GATE.n_bootstrap,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = _GATE.seed,
    min_shadow_secs: Annotated[
        float, typer.Option(help="Least shadow period, in seconds.")
    ] = _GATE.min_shadow_secs,
    min_shadow_predictions: Annotated[
        int, typer.Option(help="Fewest logged shadow predictions.")
    ] = _GATE.min_shadow_predictions,
    registry: RegistryDir = DEFAULT_REGISTRY,
    audit_dir: AuditDir = DEFAULT_AUDIT_DIR,
) -> None:
    """Make a version active if it passes the gate; print the gate's figures."""
    try:
        gate = GateConfig(
            metric=metric,  # type: ignore[arg-type]  # validated by GateConfig
            margin=margin,
            confidence=confidence,
            n_bootstrap=bootstrap,
            seed=seed,
            min_samples=min_samples,
            min_shadow_secs=min_shadow_secs,
            min_shadow_predictions=min_shadow_predictions,
        )
        with _writer(registry, audit_dir, gate) as writer:
            result = writer.promote(version, actor=actor, reason=reason, force=force)
    except QuantumTraderError as exc:
        raise fail(exc) from None
    _print_decision(result)
    if not result.promoted:
        err_console.print(f"[bold red]refused:[/] {result.reason}", highlight=False)
        raise typer.Exit(1)


@models_app.command("rollback")
def rollback(
    actor: Actor,
    reason: Reason,
    registry: RegistryDir = DEFAULT_REGISTRY,
    audit_dir: AuditDir = DEFAULT_AUDIT_DIR,
) -> None:
    """Retire the active version and re-activate the one active before it."""
    try:
        with _writer(registry, audit_dir) as writer:
            retired, restored = writer.rollback(actor=actor, reason=reason)
    except QuantumTraderError as exc:
        raise fail(exc) from None
    console.print(f"rolled back: {retired} retired, {restored} active again", highlight=False)


def _print_decision(result: PromotionResult) -> None:
    _print_decision_dict(result.to_dict())


def _print_decision_dict(decision: dict[str, Any]) -> None:
    verdict = (
        "FORCED" if decision.get("forced") else "PROMOTED" if decision["promoted"] else "REFUSED"
    )
    table = Table(
        title=f"Gate for {decision['version']} ({_when(decision.get('ts_ns'))}): {verdict}"
    )
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    comparison = decision.get("comparison") or {}
    if comparison:
        ci = f"[{_num(comparison['ci_low'])}, {_num(comparison['ci_high'])}]"
        rows = [
            ("metric", comparison["metric"]),
            ("reference", comparison["reference"]),
            ("paired OOS samples (n)", _num(comparison["n"])),
            ("bootstrap block (rows)", _num(comparison["block_length"])),
            ("candidate score", _num(comparison["candidate_score"])),
            ("reference score", _num(comparison["reference_score"])),
            ("delta (improvement)", _num(comparison["delta"])),
            (f"{comparison['confidence']:.0%} CI of delta", ci),
            ("p-value (delta <= margin)", _num(comparison["p_value"], ".4f")),
            ("margin", _num(comparison["margin"], "g")),
            ("out-of-sample test", "pass" if comparison["passed"] else "fail"),
        ]
        for name, value in rows:
            table.add_row(name, str(value))
    shadow_check = decision.get("shadow") or {}
    if shadow_check:
        summary = shadow_check.get("summary") or {}
        elapsed = _num(shadow_check["elapsed_secs"], ".0f")
        table.add_row("shadow period", f"{elapsed}s / {_num(shadow_check['min_secs'], '.0f')}s")
        table.add_row(
            "shadow predictions",
            f"{shadow_check['predictions']} / {shadow_check['min_predictions']}"
            f" ({summary.get('resolved', 0)} resolved)",
        )
        table.add_row("shadow check", "pass" if shadow_check["passed"] else "fail")
    console.print(table)
    console.print(f"reason: {decision['reason']}", highlight=False)
