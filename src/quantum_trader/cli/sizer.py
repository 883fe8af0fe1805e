"""``qtrader train-sizer``: train the RL sizing agent offline from a backtest of a strategy.

The backtest runs on the real engine (no safety core, so sizing is not already constrained by
it) over ``--data`` (the built-in synthetic market when omitted); every closed trade becomes an
episode; the agent is trained under the default policy's per-mode limits and written to
``--out`` as JSON. The latest ``--holdout`` share of trades is kept out of training and the
agent's mean log growth per trade there is printed next to the rule-based sizer's::

    qtrader train-sizer --data ../shared/data/marketswarm_binance_usdm_futures \\
        --symbols BTCUSDT,ETHUSDT --timeframe 1m --strategy sma_cross --out runs/sizer.json

Exit codes: 0 written; 2 bad input (a flag, the data); 1 anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from quantum_trader.ai.sizing import RuleBasedSizer, all_state_keys
from quantum_trader.ai.sizing_training import (
    EpisodeSettings,
    SizerTrainingConfig,
    episodes_from_backtest,
    train_sizing_agent,
)
from quantum_trader.cli.console import console, fail
from quantum_trader.data.timeframes import parse_timeframe
from quantum_trader.domain.clock import NANOS_PER_DAY, NANOS_PER_HOUR
from quantum_trader.domain.errors import ConfigError, DataError, QuantumTraderError
from quantum_trader.domain.policy import Policy
from quantum_trader.engine.backtest import BacktestEngine
from quantum_trader.engine.runs import load_backtest_market
from quantum_trader.engine.settings import load_config
from quantum_trader.strategies.registry import create_strategy


def _params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--param expects KEY=VALUE, got {item!r}")
        params[key.strip()] = value.strip()
    return params


def episode_settings(timeframe: str) -> EpisodeSettings:
    """Episode windows for ``timeframe``: 4 h of volatility, a 3-day regime, 20 bars of trend."""
    try:
        bar_ns = parse_timeframe(timeframe)
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    per_day = max(2, NANOS_PER_DAY // bar_ns)
    vol = max(20, 4 * NANOS_PER_HOUR // bar_ns)
    return EpisodeSettings(
        bars_per_day=int(per_day),
        vol_window_bars=int(vol),
        regime_window_bars=int(max(vol, 3 * per_day)),
        confidence_window_bars=20,
    )


def train_sizer(
    out: Annotated[Path, typer.Option(help="Where to write the agent (JSON).")],
    data: Annotated[
        Path | None,
        typer.Option(help="Folder or file of market data; omitted: the synthetic market."),
    ] = None,
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT.")
    ] = None,
    timeframe: Annotated[str | None, typer.Option(help="Bar size of the data: 1m, 5m, ...")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="Strategy whose trades are the episodes.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Strategy parameter KEY=VALUE (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    min_samples: Annotated[
        int, typer.Option(help="Fewest trades a state needs before it learns its own action.")
    ] = 30,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples per state.")] = 200,
    quantile: Annotated[
        float, typer.Option(help="Lower quantile of mean reward an action is judged by.")
    ] = 0.2,
    holdout: Annotated[
        float, typer.Option(help="Share of the latest trades kept out of training.")
    ] = 0.3,
    target_volatility: Annotated[
        float, typer.Option(help="Rule-based sizer: daily volatility per position.")
    ] = 0.01,
    config: Annotated[
        Path | None, typer.Option(help="TOML or YAML file with a \\[backtest] table.")
    ] = None,
) -> None:
    """Train the RL position-sizing agent from a backtest and write it to --out."""
    given: dict[str, Any] = {
        "data": data,
        "symbols": symbols,
        "timeframe": timeframe,
        "strategy": strategy,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    overrides["audit"] = False
    try:
        if param:
            overrides["params"] = _params(param)
        settings = load_config(config, overrides).backtest
        training = SizerTrainingConfig(
            min_samples=min_samples,
            n_bootstrap=bootstrap,
            quantile=quantile,
            seed=seed,
            holdout=holdout,
        )
        rule = RuleBasedSizer(target_volatility=target_volatility)
        windows = episode_settings(settings.timeframe)
        market = load_backtest_market(settings)
        result = BacktestEngine(
            settings, create_strategy(settings.strategy, settings.params), market
        ).run()
        episodes = episodes_from_backtest(result, windows)
        if episodes.empty:
            raise ConfigError(
                f"the backtest of {settings.strategy} closed no trade with enough history "
                "to learn from"
            )
        agent, report = train_sizing_agent(episodes, Policy(), rule, training)
        agent.meta.update(
            {
                "strategy": settings.strategy,
                "symbols": list(settings.symbols),
                "timeframe": settings.timeframe,
                "synthetic": result.synthetic,
                "report": report.to_dict(),
            }
        )
        agent.save(out)
    except (QuantumTraderError, ValueError) as exc:
        error = exc if isinstance(exc, QuantumTraderError) else ConfigError(str(exc))
        raise fail(error) from None
    if result.synthetic:
        console.print("[bold yellow]SYNTHETIC DATA[/] — generated prices, not a real market.")
    table = Table(title=f"Sizing agent from {settings.strategy} on {', '.join(settings.symbols)}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    figures = report.to_dict()
    rows = [
        ("episodes (closed trades)", f"{report.episodes:,}"),
        ("train / holdout", f"{report.train_episodes:,} / {report.holdout_episodes:,}"),
        ("trained states", f"{report.trained_states} of {len(all_state_keys())}"),
        ("holdout mean log growth, agent", _fmt(figures["holdout_agent_mean_log_growth"])),
        ("holdout mean log growth, rule-based", _fmt(figures["holdout_rule_mean_log_growth"])),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    console.print(f"agent written to [bold]{out}[/]")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3e}"
