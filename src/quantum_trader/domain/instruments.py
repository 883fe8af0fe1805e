"""Instruments: the exchange rules an order must obey.

Prices and quantities are floats here; rounding to tick and lot happens once, when an order is
made, so what reaches an exchange is always on its grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from quantum_trader.domain.errors import InvalidOrderError

# Guards float rounding: 0.3 / 0.1 is 2.9999999999999996, which must count as 3 lots.
_GRID_EPS = 1e-9


class ContractType(StrEnum):
    """What kind of contract an instrument is."""

    PERPETUAL = "perpetual"
    SPOT = "spot"


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable contract and its exchange filters.

    ``maintenance_margin_rate`` is the first tier of the venue's margin brackets; higher tiers for
    very large positions are not modelled.
    """

    symbol: str
    base: str
    quote: str
    tick_size: float
    lot_size: float
    min_qty: float
    min_notional: float
    contract_type: ContractType = ContractType.PERPETUAL
    maintenance_margin_rate: float = 0.01
    max_leverage: float = 20.0
    price_decimals: int = field(init=False, repr=False, compare=False)
    qty_decimals: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size", "min_qty", "maintenance_margin_rate", "max_leverage"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"instrument {self.symbol}: {name} must be > 0, got {value!r}")
        if not (math.isfinite(self.min_notional) and self.min_notional >= 0):
            raise ValueError(f"instrument {self.symbol}: min_notional must be >= 0")
        # n * 0.1 is not always the float nearest to the decimal price (1073487 * 0.1 is
        # 107348.70000000001), so grid values are rounded to the grid's decimals.
        object.__setattr__(self, "price_decimals", _decimals(self.tick_size))
        object.__setattr__(self, "qty_decimals", _decimals(self.lot_size))

    def round_qty_down(self, qty: float) -> float:
        """Round an absolute quantity down to the lot size (never trade more than asked)."""
        lots_f = abs(qty) / self.lot_size
        lots = math.floor(lots_f + _grid_tolerance(lots_f))
        return round(lots * self.lot_size, self.qty_decimals)

    def snap_qty(self, qty: float) -> float:
        """Snap a signed sum of lot multiples back onto the lot grid (float sums drift by ulps)."""
        n = round(qty / self.lot_size)
        return 0.0 if n == 0 else round(n * self.lot_size, self.qty_decimals)

    def round_price(self, price: float, *, up: bool) -> float:
        """Round a price to the tick, up or down (callers choose the side that hurts them)."""
        ticks = price / self.tick_size
        nearest = round(ticks)
        # A price on the grid divides to within float error of an integer, and that error grows
        # with the number of ticks: compare relative to it.
        if abs(ticks - nearest) <= _grid_tolerance(ticks):
            n = nearest
        else:
            n = math.ceil(ticks) if up else math.floor(ticks)
        return round(n * self.tick_size, self.price_decimals)

    def check_order(self, qty: float, price: float, *, reduce_only: bool) -> None:
        """Raise InvalidOrderError when ``qty`` at ``price`` breaks a filter.

        Reduce-only orders skip the minimum notional, as on Binance, so a small remainder can
        always be closed.
        """
        if not (math.isfinite(qty) and qty > 0):
            raise InvalidOrderError(f"{self.symbol}: quantity must be > 0, got {qty}", reason="qty")
        if abs(qty / self.lot_size - round(qty / self.lot_size)) > 1e-6:
            raise InvalidOrderError(
                f"{self.symbol}: quantity {qty} is not a multiple of the lot size {self.lot_size}",
                reason="lot_size",
            )
        if qty < self.min_qty - _GRID_EPS:
            raise InvalidOrderError(
                f"{self.symbol}: quantity {qty} is below the minimum {self.min_qty}",
                reason="min_qty",
            )
        if not reduce_only and qty * price < self.min_notional - _GRID_EPS:
            raise InvalidOrderError(
                f"{self.symbol}: notional {qty * price:.4f} is below the minimum "
                f"{self.min_notional}",
                reason="min_notional",
            )


def _grid_tolerance(steps: float) -> float:
    """How far from an integer a count of grid steps may be and still be on the grid."""
    return _GRID_EPS + 1e-12 * abs(steps)


def _decimals(step: float) -> int:
    """Decimal places of a grid step as written: 0.1 -> 1, 1e-05 -> 5, 0.25 -> 2, 10 -> 0."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def _usdm(
    symbol: str, tick: float, lot: float, notional: float, mmr: float, lev: float
) -> Instrument:
    return Instrument(
        symbol=symbol,
        base=symbol.removesuffix("USDT"),
        quote="USDT",
        tick_size=tick,
        lot_size=lot,
        min_qty=lot,
        min_notional=notional,
        maintenance_margin_rate=mmr,
        max_leverage=lev,
    )


# Binance USDT-M filters (PRICE_FILTER tickSize, LOT_SIZE stepSize, MIN_NOTIONAL) and the first
# maintenance-margin bracket, as published for these perpetuals in 2025. Override per run in the
# configuration when the venue changes them.
BINANCE_USDM: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        _usdm("BTCUSDT", 0.1, 0.001, 100.0, 0.004, 125.0),
        _usdm("ETHUSDT", 0.01, 0.001, 20.0, 0.004, 125.0),
        _usdm("BNBUSDT", 0.01, 0.01, 5.0, 0.005, 75.0),
        _usdm("SOLUSDT", 0.01, 0.01, 5.0, 0.005, 100.0),
        _usdm("XRPUSDT", 0.0001, 0.1, 5.0, 0.005, 75.0),
        _usdm("ADAUSDT", 0.0001, 1.0, 5.0, 0.005, 75.0),
        _usdm("DOGEUSDT", 0.00001, 1.0, 5.0, 0.005, 75.0),
        _usdm("DOTUSDT", 0.001, 0.1, 5.0, 0.005, 75.0),
        _usdm("LTCUSDT", 0.01, 0.001, 20.0, 0.005, 75.0),
    )
}


def generic_instrument(symbol: str, reference_price: float) -> Instrument:
    """Make an instrument for a symbol with no known filters, with a grid fine for its price.

    The tick is about a millionth of the price and the lot about a millionth of a thousand
    quote units, so rounding never dominates a backtest of synthetic or unknown markets.
    """
    if not (math.isfinite(reference_price) and reference_price > 0):
        raise ValueError(f"{symbol}: reference price must be > 0, got {reference_price!r}")
    tick = 10.0 ** math.floor(math.log10(reference_price) - 5)
    lot = 10.0 ** math.floor(math.log10(1000.0 / reference_price) - 3)
    quote = "USDT" if symbol.endswith("USDT") else "USD"
    return Instrument(
        symbol=symbol,
        base=symbol.removesuffix(quote),
        quote=quote,
        tick_size=tick,
        lot_size=lot,
        min_qty=lot,
        min_notional=0.0,
        maintenance_margin_rate=0.005,
        max_leverage=100.0,
    )


def resolve_instrument(symbol: str, reference_price: float) -> Instrument:
    """Return Binance's filters for a known symbol, else a generic instrument."""
    return BINANCE_USDM.get(symbol) or generic_instrument(symbol, reference_price)
