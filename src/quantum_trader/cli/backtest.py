"""``qtrader backtest``: run a strategy over market data and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from quantum_trader.cli.console import console, fail, progress_bar
from quantum_trader.domain.errors import ConfigError, QuantumTraderError
from quantum_trader.engine.runs import BacktestRun, run_backtest_job
from quantum_trader.engine.settings import load_config


def _parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--param expects KEY=VALUE, got {item!r}")
        params[key.strip()] = value.strip()
    return params


def backtest(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Folder or file of market data. Omit it to use the built-in synthetic market."
        ),
    ] = None,
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT.")
    ] = None,
    timeframe: Annotated[
        str | None, typer.Option(help="Bar size of the data: 1m, 5m, 15m, 1h, ...")
    ] = None,
    strategy: Annotated[str | None, typer.Option(help="Strategy: sma_cross or breakout.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Strategy parameter KEY=VALUE (repeatable).")
    ] = None,
    cash: Annotated[
        float | None, typer.Option(help="Starting balance in USDT (default 10000).")
    ] = None,
    leverage: Annotated[float | None, typer.Option(help="Leverage (default 10).")] = None,
    margin_mode: Annotated[
        str | None, typer.Option(help="cross or isolated (default cross).")
    ] = None,
    fee_maker: Annotated[
        float | None, typer.Option(help="Maker fee rate (default 0.0002).")
    ] = None,
    fee_taker: Annotated[
        float | None, typer.Option(help="Taker fee rate (default 0.0004).")
    ] = None,
    slippage_bps: Annotated[
        float | None, typer.Option(help="Taker slippage in bps (default 0).")
    ] = None,
    stop_loss: Annotated[
        float | None, typer.Option(help="Protective stop as a fraction of entry, e.g. 0.02.")
    ] = None,
    no_funding: Annotated[
        bool, typer.Option("--no-funding", help="Do not apply funding payments.")
    ] = False,
    no_audit: Annotated[
        bool, typer.Option("--no-audit", help="Do not write the audit trail to DIR/audit.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Output folder (default runs/latest).")] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML or YAML file with \\[backtest] and \\[risk] tables; flags win over it."
        ),
    ] = None,
) -> None:
    """Run a backtest and write summary.json, trades.csv, equity.csv and report.html."""
    given: dict[str, Any] = {
        "data": data,
        "symbols": symbols,
        "timeframe": timeframe,
        "strategy": strategy,
        "cash": cash,
        "leverage": leverage,
        "margin_mode": margin_mode,
        "fee_maker": fee_maker,
        "fee_taker": fee_taker,
        "slippage_bps": slippage_bps,
        "stop_loss": stop_loss,
        "out": out,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    if no_funding:
        overrides["funding"] = False
    if no_audit:
        overrides["audit"] = False
    try:
        if param:
            overrides["params"] = _parse_params(param)
        qt_config = load_config(config, overrides)
        settings = qt_config.backtest
        with progress_bar("backtest") as bar:
            task = bar.task_ids[0]
            run = run_backtest_job(
                settings,
                progress=lambda f: bar.update(task, completed=f),
                risk=qt_config.risk,
            )
    except QuantumTraderError as exc:
        raise fail(exc) from None
    _print_summary(run)


def _print_summary(run: BacktestRun) -> None:
    s = run.result.summary
    if run.result.synthetic:
        console.print("[bold yellow]SYNTHETIC DATA[/] — generated prices, not a real market.")
    table = Table(title=f"Backtest: {run.settings.strategy} on {', '.join(run.settings.symbols)}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("bars", f"{s['bars']:,}"),
        ("trades", f"{s['trades']:,}"),
        ("final equity", f"{s['final_equity']:,.2f} USDT"),
        ("total return", f"{s['total_return']:+.2%}"),
        ("max drawdown", f"{s['max_drawdown']:.2%}"),
        ("sharpe (daily, annualised)", f"{s['sharpe']:.2f}"),
        ("fees", f"{s['fees']:,.2f} USDT"),
        ("funding", f"{s['funding']:+,.2f} USDT"),
        ("rejected orders", f"{s['rejected_orders']:,}"),
        ("engine time", f"{s['elapsed_s']:.3f} s ({s['bars_per_s']:,.0f} bars/s)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    stop = s.get("emergency_stop")
    if stop:
        console.print(
            f"[bold red]EMERGENCY STOP[/] at {stop['time']}: {stop['reason']} — {stop['detail']}. "
            "Positions were flattened and trading halted for the rest of the run."
        )
    elif s.get("halted"):
        console.print(f"[bold red]TRADING HALTED[/]: {s['halted']}")
    if s.get("risk_denials") or s.get("mode_changes"):
        console.print(
            f"Safety core: {s.get('risk_denials', 0):,} orders denied by the RiskGuard, "
            f"{s.get('mode_changes', 0):,} risk-mode changes (see report.html)."
        )
    console.print(f"Report: [bold]{run.paths['report']}[/]  (outputs in {run.settings.out})")
