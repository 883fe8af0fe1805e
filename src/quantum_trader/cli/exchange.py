"""``qtrader exchange check``: do the API keys work, and what does the account hold?

Reads the key and secret from ``QT_BINANCE_KEY`` and ``QT_BINANCE_SECRET`` (never from a flag,
so they stay out of shell history and process lists) and prints the exchange's clock offset,
the balances, the positions and the open orders. It sends no order::

    QT_BINANCE_KEY=... QT_BINANCE_SECRET=... qtrader exchange check --testnet

Exit codes: 0 read; 2 missing or rejected credentials; 1 anything else (network, throttling).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from quantum_trader.cli.console import console, fail
from quantum_trader.domain.errors import ConfigError, QuantumTraderError
from quantum_trader.engine.exchange import ExchangeReport, check_exchange, open_live_venue
from quantum_trader.execution.live.config import BinanceEnvironment

exchange_app = typer.Typer(
    help="Check the live exchange connection (Binance USDT-M).", no_args_is_help=True
)


@exchange_app.command("check")
def check(
    testnet: Annotated[bool, typer.Option("--testnet", help="Binance futures testnet.")] = False,
    demo: Annotated[bool, typer.Option("--demo", help="Binance demo trading.")] = False,
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="Send the fapi requests here (a proxy).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Read balances, positions and open orders with the keys from the environment."""
    if testnet and demo:
        raise fail(ConfigError("choose one of --testnet and --demo"))
    environment = (
        BinanceEnvironment.TESTNET
        if testnet
        else BinanceEnvironment.DEMO
        if demo
        else BinanceEnvironment.MAINNET
    )
    try:
        venue = open_live_venue(environment, api_url=api_url)
        try:
            report = check_exchange(venue)
        finally:
            venue.close()
    except QuantumTraderError as exc:
        raise fail(exc) from exc
    if as_json:
        console.print_json(json.dumps(_as_dict(report)))
    else:
        _print(report)


def _as_dict(report: ExchangeReport) -> dict[str, object]:
    return {
        "environment": report.environment,
        "server_time_ns": report.server_time_ns,
        "clock_offset_ms": report.clock_offset_ms,
        "symbols": report.symbols,
        "account": asdict(report.account),
        "balances": {k: asdict(v) for k, v in report.balances.items()},
        "positions": [{**asdict(p), "margin_mode": p.margin_mode.value} for p in report.positions],
        "open_orders": [
            {
                "client_order_id": o.client_order_id,
                "symbol": o.symbol,
                "side": o.side.value,
                "type": o.type.value,
                "quantity": o.quantity,
                "price": o.price,
                "status": o.status.value,
                "filled_qty": o.filled_qty,
            }
            for o in report.open_orders
        ],
    }


def _print(report: ExchangeReport) -> None:
    acct = report.account
    console.print(
        f"{report.environment}: {report.symbols} perpetuals, clock offset "
        f"{report.clock_offset_ms:+.0f} ms"
    )
    console.print(
        f"equity {acct.equity:,.2f}  wallet {acct.wallet_balance:,.2f}  unrealized "
        f"{acct.unrealized_pnl:+,.2f}  available {acct.available_balance:,.2f}"
    )
    balances = Table("asset", "wallet", "unrealized", "available", title="balances")
    for b in report.balances.values():
        balances.add_row(
            b.asset,
            f"{b.wallet_balance:,.4f}",
            f"{b.unrealized_pnl:+,.4f}",
            f"{b.available_balance:,.4f}",
        )
    console.print(balances)
    positions = Table("symbol", "quantity", "entry", "mark", "unrealized", title="positions")
    for p in report.positions:
        positions.add_row(
            p.symbol, f"{p.quantity:g}", f"{p.entry_price:g}", f"{p.mark_price:g}",
            f"{p.unrealized_pnl:+,.2f}",
        )  # fmt: skip
    console.print(positions if report.positions else "positions: none")
    if report.open_orders:
        orders = Table("client order id", "symbol", "side", "quantity", "price", "status")
        for o in report.open_orders:
            orders.add_row(
                o.client_order_id, o.symbol, o.side.value, f"{o.quantity:g}",
                "" if o.price is None else f"{o.price:g}", o.status.value,
            )  # fmt: skip
        console.print(orders)
    else:
        console.print("open orders: none")
