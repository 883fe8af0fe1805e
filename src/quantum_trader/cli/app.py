"""The ``qtrader`` application: one typer app, one module per command group."""

from __future__ import annotations

import json

import typer

from quantum_trader import __version__
from quantum_trader.cli.audit import audit_app
from quantum_trader.cli.backtest import backtest
from quantum_trader.cli.console import console
from quantum_trader.cli.data import data_app
from quantum_trader.cli.ess import ess_app
from quantum_trader.cli.exchange import exchange_app
from quantum_trader.cli.models import models_app
from quantum_trader.cli.policy import policy_app
from quantum_trader.cli.run import paper, run, supervisor, worker
from quantum_trader.cli.serve import serve
from quantum_trader.cli.sizer import train_sizer
from quantum_trader.cli.train import train
from quantum_trader.engine.settings import QtConfig

app = typer.Typer(
    name="qtrader",
    help="Quantum Trader: autonomous trading for crypto perpetual futures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(backtest)
app.add_typer(data_app, name="data", help="Validate and import market data.")
app.command()(serve)
app.command()(paper)
app.command()(run)
app.command()(worker)
app.command()(supervisor)
app.add_typer(policy_app, name="policy", help="Show and change the risk policy.")
app.add_typer(ess_app, name="ess", help="Emergency Stop System: status, trigger, reset.")
app.add_typer(exchange_app, name="exchange", help="Check the live exchange connection.")
app.add_typer(audit_app, name="audit", help="Verify, query, report on and export the audit trail.")
app.add_typer(models_app, name="models", help="Model registry: list, show, promote, roll back.")
app.command("train-sizer")(train_sizer)
app.command()(train)

config_app = typer.Typer(help="Inspect the configuration format.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON schema of the configuration file."""
    console.print_json(json.dumps(QtConfig.model_json_schema()))


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    """Run the CLI."""
    app()
