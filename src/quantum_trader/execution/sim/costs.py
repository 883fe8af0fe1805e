"""Fee and slippage models of the simulated exchange."""

from __future__ import annotations

import math
from dataclasses import dataclass

from quantum_trader.domain.errors import ConfigError
from quantum_trader.domain.instruments import Instrument
from quantum_trader.domain.trading import Liquidity


@dataclass(frozen=True, slots=True)
class FeeModel:
    """Fees as a fraction of notional: maker for resting limit fills, taker for the rest."""

    maker: float = 0.0002
    taker: float = 0.0004

    def __post_init__(self) -> None:
        for name in ("maker", "taker"):
            v = getattr(self, name)
            if not math.isfinite(v) or not -0.01 <= v <= 0.01:
                raise ConfigError(f"fee_{name} must be a fraction between -0.01 and 0.01, got {v}")

    def fee(self, quantity: float, price: float, liquidity: Liquidity) -> float:
        """Fee for a fill of ``quantity`` at ``price`` (negative for a maker rebate)."""
        rate = self.maker if liquidity is Liquidity.MAKER else self.taker
        return quantity * price * rate


@dataclass(frozen=True, slots=True)
class SlippageModel:
    """Taker fills pay ``bps`` basis points away from the reference price, then the adverse tick.

    Buys fill at ``price * (1 + bps/1e4)`` rounded up to the tick, sells at
    ``price * (1 - bps/1e4)`` rounded down. With 0 bps a price already on the grid is unchanged.
    """

    bps: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.bps) or not 0 <= self.bps <= 1000:
            raise ConfigError(f"slippage_bps must be between 0 and 1000, got {self.bps}")

    def apply(self, instrument: Instrument, price: float, *, buy: bool) -> float:
        """Return the taker fill price for a reference ``price``."""
        if buy:
            return instrument.round_price(price * (1.0 + self.bps * 1e-4), up=True)
        return instrument.round_price(price * (1.0 - self.bps * 1e-4), up=False)
