"""Run settings: typed, frozen, unknown keys rejected; read from TOML or YAML, then CLI flags.

A config file holds one table per concern: ``[backtest]`` and ``[risk]``::

    [backtest]
    data = "../shared/data/marketswarm_binance_usdm_futures"
    symbols = ["BTCUSDT", "ETHUSDT"]
    strategy = "sma_cross"
    params = { fast = 10, slow = 50 }
    cash = 10000
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from quantum_trader.domain.errors import ConfigError
from quantum_trader.domain.policy import Policy, RiskMode, TradingState
from quantum_trader.domain.trading import MarginMode
from quantum_trader.risk.policy_service import with_limit_changes

ParamValue = float | int | str | bool


class BacktestSettings(BaseModel):
    """Everything a backtest needs to run reproducibly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path | None = Field(
        default=None,
        description="Folder or file of market data; omitted: the built-in synthetic market.",
    )
    symbols: tuple[str, ...] = Field(
        default=("BTCUSDT", "ETHUSDT"), min_length=1, description="Symbols, exchange style."
    )
    timeframe: str = Field(default="1m", description="Bar size of the data, e.g. 1m, 5m, 1h.")
    strategy: str = Field(default="sma_cross", description="Strategy name: sma_cross, breakout.")
    params: dict[str, ParamValue] = Field(default_factory=dict, description="Strategy parameters.")
    cash: float = Field(default=10_000.0, gt=0, description="Starting wallet balance in USDT.")
    leverage: float = Field(default=10.0, ge=1, le=125, description="Leverage of every position.")
    margin_mode: MarginMode = Field(default=MarginMode.CROSS, description="cross or isolated.")
    fee_maker: float = Field(default=0.0002, ge=-0.01, le=0.01, description="Maker fee rate.")
    fee_taker: float = Field(default=0.0004, ge=-0.01, le=0.01, description="Taker fee rate.")
    slippage_bps: float = Field(default=0.0, ge=0, le=1000, description="Taker slippage, bps.")
    funding: bool = Field(default=True, description="Apply funding at each funding time.")
    stop_loss: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Protective stop as a fraction of the entry price (0.02 = 2%); a reduce-only "
        "stop-market order follows every position. Omitted: no stop.",
    )
    synthetic_bars: int = Field(
        default=43_200, ge=100, le=5_000_000, description="Bars per symbol of the synthetic market."
    )
    synthetic_seed: int = Field(default=7, description="Seed of the synthetic market.")
    audit: bool = Field(
        default=True, description="Write the run's hash-chained audit trail to <out>/audit."
    )
    out: Path = Field(default=Path("runs/latest"), description="Folder for the run's outputs.")

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s for s in v.split(",")]
        if isinstance(v, list | tuple):
            out = [str(s).strip().upper() for s in v]
            if any(not s for s in out):
                raise ValueError("empty symbol name")
            if len(set(out)) != len(out):
                raise ValueError("a symbol is listed twice")
            return tuple(out)
        return v


class EssSettings(BaseModel):
    """Emergency Stop System thresholds (drawdown and daily loss come from the policy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True,
        description="Run the ESS evaluators (a latch already set in state_db still halts).",
    )
    stale_data_secs: float = Field(
        default=300.0, gt=0, description="Market data older than this activates the ESS."
    )
    max_execution_errors: int = Field(
        default=10, ge=1, description="Rejected orders within the window that activate the ESS."
    )
    error_window_secs: float = Field(default=60.0, gt=0, description="Window for execution errors.")
    max_flatten_attempts: int = Field(
        default=3, ge=1, le=20, description="Attempts to close each position on activation."
    )


class CoordinatorSettings(BaseModel):
    """The coordinator (AI-HFOS) cycle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Move between risk modes by health/drawdown.")
    interval_bars: int = Field(default=60, ge=1, description="Bars between coordinator cycles.")
    up_cycles: int = Field(
        default=5, ge=1, description="Calm cycles needed before moving to a riskier mode."
    )


class ScheduledPolicyChange(BaseModel):
    """A policy change a backtest applies at a given time, as a person would (what-if runs:
    halt for a CPI release, cut risk before a weekend)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime = Field(description="When (UTC; the first bar at or after it).")
    actor: str = Field(min_length=1, description="Who makes the change (audited).")
    reason: str = Field(min_length=1, description="Why (audited).")
    mode: RiskMode | None = Field(default=None, description="New risk mode.")
    state: TradingState | None = Field(default=None, description="New trading state.")

    def policy_changes(self) -> dict[str, Any]:
        """The changes as keyword arguments of ``PolicyService.update``."""
        out: dict[str, Any] = {}
        if self.mode is not None:
            out["mode"] = self.mode
        if self.state is not None:
            out["state"] = self.state
        return out


class RiskSettings(BaseModel):
    """The safety core: the starting policy, ESS thresholds and the coordinator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Put the safety core in front of every order.")
    mode: RiskMode = Field(default=RiskMode.NORMAL, description="Starting risk mode.")
    limits: dict[RiskMode, dict[str, float]] = Field(
        default_factory=dict,
        description="Per-mode overrides of the default limits, e.g. {safe = {max_drawdown = 0.1}}.",
    )
    allowed_symbols: tuple[str, ...] = Field(default=(), description="Empty: every symbol.")
    max_orders_per_window: int = Field(default=60, ge=1, description="Order-rate limit.")
    order_window_secs: float = Field(default=60.0, gt=0, description="Order-rate window.")
    max_price_age_secs: float = Field(default=120.0, gt=0, description="Freshness of prices.")
    max_price_deviation: float = Field(
        default=0.10, gt=0, le=1, description="Largest distance of an order's price from the mark."
    )
    ess: EssSettings = Field(default_factory=EssSettings)
    coordinator: CoordinatorSettings = Field(default_factory=CoordinatorSettings)
    policy_changes: tuple[ScheduledPolicyChange, ...] = Field(
        default=(), description="Policy changes applied during a backtest, in time order."
    )
    state_db: Path | None = Field(
        default=None,
        description="SQLite file holding the policy and the ESS latch across runs "
        "(qtrader policy / qtrader ess act on it); omitted: fresh in memory per run.",
    )

    def policy(self) -> Policy:
        """The starting policy these settings describe; ConfigError names any invalid limit."""
        # TOML numbers arrive as floats; the one integer limit is made an integer again.
        changes: dict[RiskMode | str, Mapping[str, Any]] = {
            mode: {k: int(v) if k == "max_open_positions" else v for k, v in fields_.items()}
            for mode, fields_ in self.limits.items()
        }
        limits = with_limit_changes(Policy(), changes)
        return Policy(
            mode=self.mode,
            limits=limits,
            allowed_symbols=frozenset(self.allowed_symbols),
            max_orders_per_window=self.max_orders_per_window,
            order_window_secs=self.order_window_secs,
            max_price_age_secs=self.max_price_age_secs,
            max_price_deviation=self.max_price_deviation,
            updated_by="config",
            reason="starting policy from the [risk] settings",
        )


class RunSettings(BaseModel):
    """A paper run across processes (``qtrader run``): a supervisor, workers, the metrics endpoint.

    Every worker trades its own symbols on replayed market data against its own simulated venue
    (its own wallet of ``cash``); all of them share the policy, the ESS latch, the trade records
    and the event bus in ``state`` (a Redis URL; a SQLite file works for one machine, without
    the bus).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path | None = Field(
        default=None,
        description="Folder or file of market data to replay; omitted: the synthetic market.",
    )
    timeframe: str = Field(default="1m", description="Bar size of the data.")
    feed: Literal["candles", "ticks", "live"] = Field(
        default="candles",
        description="candles: replay candle files (orders meet the next bar); ticks: replay "
        "Binance websocket captures in data (orders meet quotes and prints; bars of timeframe, "
        "e.g. 1s, are built from the prints); live: Binance's candles as they close, through "
        "ccxt (public data, no keys), the fills still simulated.",
    )
    exchange: Literal["mainnet", "testnet", "demo"] = Field(
        default="testnet", description="Where the live feed reads candles."
    )
    exchange_url: str | None = Field(
        default=None, description="Send the live feed's requests to this base URL instead."
    )
    workers: tuple[tuple[str, ...], ...] = Field(
        default=(("BTCUSDT",), ("ETHUSDT",)),
        min_length=1,
        description="The symbols of each worker, e.g. [[\"BTCUSDT\", \"ETHUSDT\"], [\"SOLUSDT\"]].",
    )
    strategy: str = Field(default="sma_cross", description="Strategy name.")
    params: dict[str, ParamValue] = Field(default_factory=dict, description="Strategy parameters.")
    start: datetime | None = Field(default=None, description="First bar to replay (UTC).")
    end: datetime | None = Field(default=None, description="Replay bars before this time (UTC).")
    speed: float = Field(
        default=60.0,
        ge=0,
        description="Replay speed as a multiple of real time (60: one 1m bar per second); "
        "0: as fast as the workers can.",
    )
    cash: float = Field(default=10_000.0, gt=0, description="Starting wallet of each worker.")
    leverage: float = Field(default=10.0, ge=1, le=125, description="Leverage of every position.")
    margin_mode: MarginMode = Field(default=MarginMode.CROSS, description="cross or isolated.")
    fee_maker: float = Field(default=0.0002, ge=-0.01, le=0.01, description="Maker fee rate.")
    fee_taker: float = Field(default=0.0004, ge=-0.01, le=0.01, description="Taker fee rate.")
    slippage_bps: float = Field(default=0.0, ge=0, le=1000, description="Taker slippage, bps.")
    synthetic_bars: int = Field(default=43_200, ge=100, le=5_000_000)
    synthetic_seed: int = Field(default=7)
    state: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Where the shared state lives: a redis:// URL, or a SQLite file path.",
    )
    redis_prefix: str = Field(default="qt", description="Key prefix (hash tag) in Redis.")
    folder: Path = Field(
        default=Path("runs/paper"),
        description="Each worker's venue journal and event spool, and the audit trail.",
    )
    metrics_port: int = Field(
        default=9108, ge=0, le=65535, description="Port of /metrics (0: any free port)."
    )
    api_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of the HTTP API and dashboard that qtrader run starts as one more "
        "process (qtrader serve); omitted: no API process. Its token comes from QT_API_TOKEN.",
    )
    api_host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    supervisor_interval_secs: float = Field(
        default=1.0, gt=0, description="Seconds between supervisor cycles."
    )
    worker_stale_secs: float = Field(
        default=10.0, gt=0, description="A worker silent this long counts as failed."
    )
    max_restarts: int = Field(
        default=5, ge=0, description="Restarts of a crashed worker before the run gives up."
    )
    durable: bool = Field(
        default=True, description="fsync every venue commit (False: crash-safe, not power-safe)."
    )
    sizer: Path | None = Field(
        default=None,
        description="A sizing agent trained by qtrader train-sizer: it sizes every new position "
        "(the rule-based sizer takes over when it fails); omitted: the strategy's own fraction.",
    )

    @field_validator("workers", mode="before")
    @classmethod
    def _normalise_workers(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            out = []
            for group in v:
                names = group.split(",") if isinstance(group, str) else group
                out.append(tuple(str(s).strip().upper() for s in names))
            flat = [s for g in out for s in g]
            if any(not s for s in flat) or any(not g for g in out):
                raise ValueError("every worker needs at least one symbol, and no empty names")
            if len(set(flat)) != len(flat):
                raise ValueError("a symbol is given to two workers")
            return tuple(out)
        return v

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol of the run, in worker order."""
        return tuple(s for group in self.workers for s in group)

    def worker_id(self, index: int) -> str:
        """The name of worker ``index`` (``w0``, ``w1``, ...)."""
        return f"w{index}"


class QtConfig(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    run: RunSettings = Field(default_factory=RunSettings)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML or YAML config file into plain data; ConfigError names the file and problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {path}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"config file {path} is not valid {path.suffix[1:].upper()}: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a table of sections")
    return data


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> QtConfig:
    """Build the configuration from an optional file, then ``overrides`` for ``[backtest]``.

    ``overrides`` are the CLI flags that were given; they win over the file.
    """
    raw = read_config_file(path) if path is not None else {}
    section = dict(raw.get("backtest") or {})
    if overrides:
        params = {**section.get("params", {}), **overrides.pop("params", {})}
        section.update(overrides)
        if params:
            section["params"] = params
    raw = {**raw, "backtest": section}
    try:
        return QtConfig.model_validate(raw)
    except ValidationError as exc:
        where = f" in {path}" if path is not None else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration{where}: {problems}") from None
