"""Wiring of the live exchange for commands: build the venue from the environment, read it.

``open_live_venue`` is the one place that names the concrete live venue (Binance USDT-M on
ccxt); the credentials come from ``QT_BINANCE_KEY`` and ``QT_BINANCE_SECRET``.
``check_exchange`` reads what an operator wants to see before trading: that the keys work, the
exchange's clock, the balances, the positions and the open orders. It only reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from quantum_trader.domain.clock import WallClock
from quantum_trader.domain.orders import Order
from quantum_trader.domain.trading import AccountSnapshot
from quantum_trader.execution.live.config import (
    BinanceCredentials,
    BinanceEnvironment,
    BinanceUsdmSettings,
)
from quantum_trader.execution.live.parsing import AssetBalance, LivePosition
from quantum_trader.execution.live.venue import BinanceUsdmVenue


@dataclass(frozen=True, slots=True)
class ExchangeReport:
    """What ``check_exchange`` read."""

    environment: str
    server_time_ns: int
    clock_offset_ms: float
    symbols: int
    account: AccountSnapshot
    balances: dict[str, AssetBalance]
    positions: list[LivePosition]
    open_orders: list[Order]


def open_live_venue(
    environment: BinanceEnvironment,
    *,
    api_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> BinanceUsdmVenue:
    """The Binance USDT-M venue on the wall clock, with the credentials from the environment.

    Raises:
        ConfigError: ``QT_BINANCE_KEY`` or ``QT_BINANCE_SECRET`` is missing.
    """
    credentials = BinanceCredentials.from_env(environ)
    settings = BinanceUsdmSettings(environment=environment, api_url=api_url)
    return BinanceUsdmVenue(credentials, settings, clock=WallClock())


def check_exchange(venue: BinanceUsdmVenue, clock: WallClock | None = None) -> ExchangeReport:
    """Read the exchange's clock, instruments, account, positions and open orders."""
    wall = clock or WallClock()
    before = wall.now_ns()
    server = venue.server_time_ns()
    after = wall.now_ns()
    instruments = venue.load_instruments()
    account, balances = venue.account_snapshot()
    return ExchangeReport(
        environment=repr(venue),
        server_time_ns=server,
        clock_offset_ms=(server - (before + after) / 2) / 1e6,
        symbols=len(instruments),
        account=account,
        balances=balances,
        positions=venue.position_details(),
        open_orders=venue.open_orders(),
    )
