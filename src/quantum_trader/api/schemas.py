"""Request and response models of the HTTP API (pydantic, at the edge only).

Requests reject unknown fields (``extra="forbid"``), so a misspelt field is a 422 that names it
rather than a silent no-op. Times are ISO 8601 UTC; money is USDT; fractions are of equity.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from quantum_trader.domain.policy import RiskMode, TradingState
from quantum_trader.observability.audit.records import AuditEventType

Text = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"
    ),
]
"""Who or why: 1 to 500 printable characters, not only spaces."""

Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,20}$")]
"""An exchange symbol such as BTCUSDT."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorResponse(BaseModel):
    """An error the client can read: what went wrong, in words."""

    detail: str


class ConflictResponse(BaseModel):
    """A compare-and-set lost: the policy moved on since the client read it."""

    detail: str
    expected_version: int
    current_version: int


class HealthResponse(BaseModel):
    """Liveness: the process answers."""

    status: Literal["ok"] = "ok"
    version: str


class ReadinessCheck(BaseModel):
    """One readiness condition."""

    name: str
    ok: bool
    detail: str = ""


class ReadinessResponse(BaseModel):
    """Readiness: the stores answer and the workers report (503 when not ready)."""

    ready: bool
    checks: list[ReadinessCheck]


class EssStateModel(BaseModel):
    """The Emergency Stop System latch."""

    active: bool
    state: Literal["ACTIVE", "INACTIVE"]
    reason: str
    severity: str
    activated_at: dt.datetime | None
    activated_by: str
    reset_at: dt.datetime | None
    reset_by: str
    reset_reason: str
    activations: int
    ignored_triggers: int


class WorkerModel(BaseModel):
    """One worker as last heard on the bus."""

    worker: str
    last_heartbeat: dt.datetime
    heartbeat_age_secs: float
    stale: bool
    market_time: dt.datetime
    equity: float
    wallet: float
    unrealized_pnl: float
    realized_pnl: float
    fees: float
    funding: float
    open_positions: int
    open_orders: int
    halted: bool
    pending_trade_writes: int


class StatusResponse(BaseModel):
    """The whole system at a glance."""

    as_of: dt.datetime
    risk_mode: RiskMode | None
    trading_state: TradingState | None
    effective_trading_state: TradingState | None
    policy_version: int | None
    ess: EssStateModel | None
    stores_reachable: bool
    bus_connected: bool | None
    expected_workers: list[str]
    workers: list[WorkerModel]
    total_equity: float | None
    unrealized_pnl: float
    realized_pnl: float
    fees: float
    funding: float
    peak_equity: float
    drawdown: float | None
    max_drawdown: float
    open_positions: int
    open_orders: int
    orders_seen: int
    fills_seen: int


class PositionModel(BaseModel):
    """One open position."""

    symbol: str
    worker: str
    side: Literal["long", "short"]
    quantity: float
    entry_price: float | None
    mark_price: float | None
    notional: float | None
    unrealized_pnl: float


class PositionsResponse(BaseModel):
    """The open positions of every worker."""

    as_of: dt.datetime
    positions: list[PositionModel]
    total_unrealized_pnl: float


class OrderModel(BaseModel):
    """An order a worker sent, as published on the bus."""

    worker: str
    client_order_id: str
    symbol: str
    side: str
    quantity: float
    reduce_only: bool
    status: str
    reason: str
    market_time: dt.datetime | None
    published_at: dt.datetime


class OrdersResponse(BaseModel):
    """Recent orders, newest first."""

    orders: list[OrderModel]


class TradeModel(BaseModel):
    """One trade record from the trade store."""

    trade_id: str
    worker: str
    symbol: str
    side: str
    quantity: float
    entry_price: float
    entry_time: dt.datetime
    exit_price: float | None
    exit_time: dt.datetime | None
    status: str
    realized_pnl: float
    fees: float
    funding: float
    net_pnl: float
    strategy: str
    model_version: str
    client_order_ids: list[str]


class TradesResponse(BaseModel):
    """Trades matching the filters, newest entry first."""

    trades: list[TradeModel]


class EquityPointModel(BaseModel):
    """One point of the equity curve."""

    time: dt.datetime
    equity: float
    drawdown: float


class EquityResponse(BaseModel):
    """The run's equity curve (sum over the workers) and its drawdown."""

    points: list[EquityPointModel]
    peak_equity: float
    current_drawdown: float | None
    max_drawdown: float


class LimitsModel(BaseModel):
    """The limits of one risk mode (see ``domain.policy.ModeLimits``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_leverage: float = Field(ge=1, le=125)
    max_risk_per_trade: float = Field(ge=0, le=1)
    max_position_notional: float = Field(ge=0, le=1e12)
    max_open_positions: int = Field(ge=0, le=10_000)
    max_symbol_exposure: float = Field(ge=0, le=100)
    max_gross_exposure: float = Field(ge=0, le=1000)
    max_daily_loss: float = Field(ge=0, le=1)
    max_drawdown: float = Field(ge=0, le=1)
    min_confidence: float = Field(ge=0, le=1)
    size_scale: float = Field(ge=0, le=10)


class LimitsPatch(BaseModel):
    """Some limits of one risk mode; the others keep their values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_leverage: float | None = Field(default=None, ge=1, le=125)
    max_risk_per_trade: float | None = Field(default=None, ge=0, le=1)
    max_position_notional: float | None = Field(default=None, ge=0, le=1e12)
    max_open_positions: int | None = Field(default=None, ge=0, le=10_000)
    max_symbol_exposure: float | None = Field(default=None, ge=0, le=100)
    max_gross_exposure: float | None = Field(default=None, ge=0, le=1000)
    max_daily_loss: float | None = Field(default=None, ge=0, le=1)
    max_drawdown: float | None = Field(default=None, ge=0, le=1)
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    size_scale: float | None = Field(default=None, ge=0, le=10)


class PolicyModel(BaseModel):
    """A version of the policy document."""

    version: int
    mode: RiskMode
    state: TradingState
    effective_state: TradingState
    limits: dict[RiskMode, LimitsModel]
    allowed_symbols: list[str]
    max_orders_per_window: int
    order_window_secs: float
    max_price_age_secs: float
    max_price_deviation: float
    updated_at: dt.datetime | None
    updated_by: str
    reason: str


class PolicySettings(_Request):
    """Every setting of the policy (PUT replaces them all)."""

    mode: RiskMode
    state: TradingState
    limits: dict[RiskMode, LimitsModel] = Field(
        description="The limits of every risk mode: aggressive, normal, safe and critical."
    )
    allowed_symbols: list[Symbol] = Field(default_factory=list, max_length=1000)
    max_orders_per_window: int = Field(ge=1, le=1_000_000)
    order_window_secs: float = Field(gt=0, le=86_400)
    max_price_age_secs: float = Field(gt=0, le=86_400)
    max_price_deviation: float = Field(gt=0, le=1)


class PolicyReplace(_Request):
    """PUT /policy: the whole document, compare-and-set on ``expected_version``."""

    expected_version: int = Field(ge=1, le=2**53, description="The version you read.")
    actor: Text
    reason: Text
    policy: PolicySettings


class PolicyPatch(_Request):
    """PATCH /policy: the settings to change, compare-and-set on ``expected_version``."""

    expected_version: int = Field(ge=1, le=2**53, description="The version you read.")
    actor: Text
    reason: Text
    mode: RiskMode | None = None
    state: TradingState | None = None
    allowed_symbols: list[Symbol] | None = Field(default=None, max_length=1000)
    max_orders_per_window: int | None = Field(default=None, ge=1, le=1_000_000)
    order_window_secs: float | None = Field(default=None, gt=0, le=86_400)
    max_price_age_secs: float | None = Field(default=None, gt=0, le=86_400)
    max_price_deviation: float | None = Field(default=None, gt=0, le=1)
    limits: dict[RiskMode, LimitsPatch] | None = None


class RiskModeResponse(BaseModel):
    """The active risk mode and trading state."""

    mode: RiskMode
    trading_state: TradingState
    effective_trading_state: TradingState
    version: int
    updated_at: dt.datetime | None
    updated_by: str
    reason: str


class RiskModeChange(_Request):
    """POST /risk-mode: switch the risk mode."""

    mode: RiskMode
    actor: Text
    reason: Text
    expected_version: int | None = Field(
        default=None, ge=1, le=2**53, description="Compare-and-set on this version if given."
    )


class RiskModeHistoryItem(BaseModel):
    """One stored policy version, as the risk mode's history shows it."""

    version: int
    mode: RiskMode
    trading_state: TradingState
    effective_trading_state: TradingState
    mode_changed: bool
    updated_at: dt.datetime | None
    updated_by: str
    reason: str


class RiskModeHistory(BaseModel):
    """Policy versions, newest first."""

    items: list[RiskModeHistoryItem]


class EssTriggerRequest(_Request):
    """POST /ess/trigger: latch the emergency stop."""

    actor: Text
    reason: Text


class EssResetRequest(_Request):
    """POST /ess/reset: clear the latch (a person's decision)."""

    actor: Text
    reason: Text
    resume: Literal["reducing", "active"] = "reducing"


class EssActionResponse(BaseModel):
    """What a trigger or reset did, and the latch after it."""

    done: bool
    message: str
    ess: EssStateModel


class AuditRecordModel(BaseModel):
    """One audit record (the hash chain fields left out; ``qtrader audit verify`` checks it)."""

    seq: int
    ts: str
    event_type: AuditEventType
    actor: str
    action: str
    target: str
    reason: str
    outcome: str
    metadata: dict[str, Any]
    trace_id: str


class AuditResponse(BaseModel):
    """Audit records matching the query, newest first."""

    records: list[AuditRecordModel]
    damaged_lines: int
