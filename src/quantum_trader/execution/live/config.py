"""Settings and credentials of the Binance USDT-M live venue.

Credentials are passed in (``BinanceCredentials.from_env`` reads ``QT_BINANCE_KEY`` and
``QT_BINANCE_SECRET``); they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from quantum_trader.domain.errors import ConfigError

KEY_VARIABLE = "QT_BINANCE_KEY"
SECRET_VARIABLE = "QT_BINANCE_SECRET"  # noqa: S105 - the variable's name, not a secret


class BinanceEnvironment(StrEnum):
    """Which Binance the venue talks to.

    MAINNET: real money. TESTNET: testnet.binancefuture.com through ccxt's sandbox mode (ccxt
    warns that Binance is retiring it; the venue silences that warning on purpose). DEMO:
    Binance's demo trading (demo-fapi.binance.com), which replaces the testnet.
    """

    MAINNET = "mainnet"
    TESTNET = "testnet"
    DEMO = "demo"


@dataclass(frozen=True, slots=True)
class BinanceCredentials:
    """An API key and its secret; both are left out of the repr."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_secret:
            raise ConfigError("Binance credentials: the API key and the secret must be non-empty")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BinanceCredentials:
        """Read the key and secret from ``QT_BINANCE_KEY`` and ``QT_BINANCE_SECRET``."""
        env = os.environ if environ is None else environ
        missing = [name for name in (KEY_VARIABLE, SECRET_VARIABLE) if not env.get(name)]
        if missing:
            raise ConfigError(f"Binance credentials: set {' and '.join(missing)}")
        return cls(env[KEY_VARIABLE], env[SECRET_VARIABLE])


@dataclass(frozen=True, slots=True)
class BinanceUsdmSettings:
    """How the venue talks to the exchange.

    Attributes:
        environment: Mainnet, testnet or demo trading.
        timeout_secs: HTTP timeout of one request.
        recv_window_ms: How long a signed request stays valid at the exchange.
        max_attempts: Tries of one call that fails with a transient error (the first included).
        backoff_base_secs: First retry delay; doubles each attempt, with jitter.
        backoff_max_secs: Cap of one retry delay.
        max_retry_after_secs: A longer wait asked by the exchange (an IP ban) is raised as a
            RateLimitedError instead of being slept through.
        rate_limit_ms: Minimum spacing of requests per unit of Binance request weight (ccxt's
            ``rateLimit``; 50 ms for Binance). None keeps ccxt's value.
        api_url: Send every ``fapi`` request to this base URL instead (a proxy, a local fake).
        quote_asset: The margin asset whose balance is the equity.
        load_brackets: Read the first leverage bracket of every symbol on ``load_instruments``
            (a signed request) for the maintenance-margin rate and maximum leverage.
    """

    environment: BinanceEnvironment = BinanceEnvironment.MAINNET
    timeout_secs: float = 10.0
    recv_window_ms: int = 5000
    max_attempts: int = 5
    backoff_base_secs: float = 0.5
    backoff_max_secs: float = 30.0
    max_retry_after_secs: float = 120.0
    rate_limit_ms: int | None = None
    api_url: str | None = None
    quote_asset: str = "USDT"
    load_brackets: bool = True

    def __post_init__(self) -> None:
        for name in ("timeout_secs", "backoff_base_secs", "backoff_max_secs"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"Binance settings: {name} must be > 0, got {value!r}")
        if self.max_attempts < 1:
            raise ConfigError("Binance settings: max_attempts must be >= 1")
        if not 0 < self.recv_window_ms <= 60_000:
            raise ConfigError("Binance settings: recv_window_ms must be in 1..60000")
        if self.rate_limit_ms is not None and self.rate_limit_ms < 0:
            raise ConfigError("Binance settings: rate_limit_ms must be >= 0")
