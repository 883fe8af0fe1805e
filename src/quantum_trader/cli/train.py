"""``qtrader train``: train the direction ensemble walk-forward and write a model artifact.

Exit codes: 0 trained; 1 the data could not be used or training failed; 2 a bad option.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from quantum_trader.cli.console import console, fail, progress_bar
from quantum_trader.domain.errors import ConfigError, QuantumTraderError

if TYPE_CHECKING:
    from quantum_trader.engine.training import TrainRun, TrainSettings


def _settings(given: dict[str, Any]) -> TrainSettings:
    from quantum_trader.engine.training import TrainSettings

    try:
        return TrainSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"--{where.replace('_', '-')}: {first['msg']}") from None


def train(
    data: Annotated[Path, typer.Option(help="Folder or file of market data.")],
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols to pool, e.g. BTCUSDT.")],
    out: Annotated[Path, typer.Option(help="Folder for the model artifact.")],
    timeframe: Annotated[str, typer.Option(help="Bar size of the data.")] = "1m",
    horizon: Annotated[int, typer.Option(help="Bars ahead to predict the direction of.")] = 15,
    train_days: Annotated[float, typer.Option(help="Training window per fold, days.")] = 20.0,
    test_days: Annotated[float, typer.Option(help="Test window per fold, days.")] = 10.0,
    split: Annotated[
        datetime | None,
        typer.Option(help="One split instead of walk-forward: train before this UTC time."),
    ] = None,
    embargo_bars: Annotated[
        int | None, typer.Option(help="Embargo after each test window, bars (default: horizon).")
    ] = None,
    expanding: Annotated[
        bool, typer.Option("--expanding", help="Train each fold on all of the past.")
    ] = False,
    refit: Annotated[
        bool,
        typer.Option("--refit", help="Ship a model refitted on every row (for deployment)."),
    ] = False,
    min_confidence: Annotated[
        float, typer.Option(help="Validation backtest trades at this confidence or above.")
    ] = 0.55,
    fraction: Annotated[float, typer.Option(help="Equity fraction per position.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 7,
    threads: Annotated[int, typer.Option(help="Threads for LightGBM.")] = 2,
) -> None:
    """Train with purged walk-forward validation; write the artifact and its validation report."""
    try:
        settings = _settings(
            {
                "data": data,
                "symbols": symbols,
                "out": out,
                "timeframe": timeframe,
                "horizon": horizon,
                "train_days": train_days,
                "test_days": test_days,
                "split": split,
                "embargo_bars": embargo_bars,
                "expanding": expanding,
                "refit": refit,
                "min_confidence": min_confidence,
                "fraction": fraction,
                "seed": seed,
                "threads": threads,
            }
        )
        if not settings.data.exists():
            raise ConfigError(f"--data: {settings.data} does not exist")
        from quantum_trader.engine.training import run_training_job

        with progress_bar("train") as bar:
            task = bar.task_ids[0]

            def progress(stage: str, done: float) -> None:
                # Training is most of the time; the four validation backtests are the rest.
                share = 0.8 * done if stage == "train" else 0.8 + 0.2 * done
                bar.update(task, completed=share, description=stage)

            run = run_training_job(settings, progress=progress)
    except QuantumTraderError as exc:
        raise fail(exc) from None
    _print_summary(run)


def _print_summary(run: TrainRun) -> None:
    v = run.validation
    if v.get("synthetic"):
        console.print("[bold yellow]SYNTHETIC DATA[/] — generated prices, not a real market.")
    table = Table(
        title=f"Out of sample: {', '.join(run.settings.symbols)}, h={run.settings.horizon}"
    )
    for column in ("model", "n", "accuracy", "log loss", "Brier"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for name, m in v["metrics"].items():
        table.add_row(
            name, f"{m['n']:,}", f"{m['accuracy']:.4f}", f"{m['log_loss']:.4f}", f"{m['brier']:.4f}"
        )
    console.print(table)
    bt = Table(title="Backtests over the out-of-sample span (fees + funding)")
    for column in ("strategy", "trades", "return", "max drawdown"):
        bt.add_column(column, justify="right" if column != "strategy" else "left")
    for b in v["backtests"].values():
        s = b["summary"]
        bt.add_row(
            b["strategy"],
            f"{s['trades']:,}",
            f"{s['total_return']:+.2%}",
            f"{s['max_drawdown']:.2%}",
        )
    console.print(bt)
    console.print(
        f"Model [bold]{run.version}[/] written to {run.settings.out} "
        "(manifest.json, validation.md, oos_predictions.parquet)"
    )
