"""Reads of the book: ``/status``, ``/positions``, ``/orders``, ``/trades``, ``/equity``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from quantum_trader.api.convert import order_model, position_model, status_model, trade_model
from quantum_trader.api.deps import Service
from quantum_trader.api.schemas import (
    EquityPointModel,
    EquityResponse,
    ErrorResponse,
    OrdersResponse,
    PositionsResponse,
    StatusResponse,
    TradesResponse,
)
from quantum_trader.api.service import from_ns, to_ns
from quantum_trader.domain.trading import TradeStatus

router = APIRouter(tags=["trading"])

SymbolQuery = Annotated[
    str | None, Query(pattern=r"^[A-Z0-9]{2,20}$", description="Only this symbol.")
]
WorkerQuery = Annotated[
    str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Only this worker.")
]
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "The state stores are unreachable."}
}


@router.get("/status", response_model=StatusResponse)
async def get_status(service: Service) -> StatusResponse:
    """Risk mode, trading state, ESS, workers and their heartbeats, total equity and PnL.

    Policy and latch are as of the last refresh (at most half a second old); workers and
    equity as last heard on the bus. (Memory only, so it runs on the event loop.)
    """
    return status_model(service.snapshot())


@router.get("/positions", response_model=PositionsResponse)
async def get_positions(service: Service, symbol: SymbolQuery = None) -> PositionsResponse:
    """Open positions per symbol and worker: quantity, entry, mark, unrealized PnL."""
    positions = [p for p in service.positions() if symbol is None or p.symbol == symbol]
    return PositionsResponse(
        as_of=from_ns(service.clock.now_ns()) or dt.datetime.now(dt.UTC),
        positions=[position_model(p) for p in positions],
        total_unrealized_pnl=sum(p.unrealized_pnl for p in positions),
    )


@router.get("/orders", response_model=OrdersResponse)
async def get_orders(
    service: Service,
    symbol: SymbolQuery = None,
    worker: WorkerQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OrdersResponse:
    """Recent orders the workers sent (from the ``orders`` topic), newest first."""
    orders = service.orders(limit=limit, symbol=symbol, worker=worker)
    return OrdersResponse(orders=[order_model(o) for o in orders])


@router.get("/trades", response_model=TradesResponse, responses=_UNAVAILABLE)
def get_trades(
    service: Service,
    symbol: SymbolQuery = None,
    status: Annotated[
        Literal["open", "closed", "liquidated"] | None, Query(description="Trade status.")
    ] = None,
    worker: WorkerQuery = None,
    since: Annotated[dt.datetime | None, Query(description="Entered at or after (UTC).")] = None,
    until: Annotated[dt.datetime | None, Query(description="Entered before (UTC).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TradesResponse:
    """Trades from the trade store, filtered, newest entry first."""
    records = service.trades(
        symbol=symbol,
        status=TradeStatus(status) if status is not None else None,
        since_ns=to_ns(since) if since is not None else None,
        until_ns=to_ns(until) if until is not None else None,
        worker=worker,
        limit=limit,
    )
    return TradesResponse(trades=[trade_model(r) for r in records])


@router.get("/equity", response_model=EquityResponse)
async def get_equity(
    service: Service,
    max_points: Annotated[int, Query(ge=2, le=20_000, description="Thin to this many.")] = 2000,
) -> EquityResponse:
    """The run's equity curve (sum over the workers, by market time) and its drawdown."""
    points = service.equity(max_points)
    peak, max_drawdown = service.read.peak()
    return EquityResponse(
        points=[
            EquityPointModel(
                time=from_ns(p.market_ts_ns) or dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
                equity=p.equity,
                drawdown=p.drawdown,
            )
            for p in points
        ],
        peak_equity=peak,
        current_drawdown=points[-1].drawdown if points else None,
        max_drawdown=max_drawdown,
    )
