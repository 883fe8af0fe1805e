"""SMA crossover: long while the fast SMA of close is above the slow one, short while below."""

from __future__ import annotations

import numpy as np

from quantum_trader.domain.errors import ConfigError
from quantum_trader.strategies.base import Bars, Signals, TargetUnit
from quantum_trader.strategies.indicators import sma


class SmaCross:
    """Reverse on every cross of SMA(fast) and SMA(slow) of close.

    Sized as ``fraction`` of equity (notional) by default, or a fixed ``qty`` of the base asset
    when ``qty`` is given. Equal averages keep the current position.
    """

    name = "sma_cross"

    def __init__(
        self, fast: int = 10, slow: int = 50, fraction: float = 0.2, qty: float | None = None
    ) -> None:
        if not (isinstance(fast, int) and isinstance(slow, int)) or fast < 1 or slow <= fast:
            raise ConfigError(
                f"sma_cross: need integers 1 <= fast < slow, got fast={fast}, slow={slow}"
            )
        if not 0 < fraction <= 10:
            raise ConfigError(f"sma_cross: fraction must be in (0, 10], got {fraction}")
        if qty is not None and not qty > 0:
            raise ConfigError(f"sma_cross: qty must be > 0, got {qty}")
        self.fast = fast
        self.slow = slow
        self.fraction = fraction
        self.qty = qty

    @property
    def warmup_bars(self) -> int:
        """The slow window."""
        return self.slow

    def params(self) -> dict[str, float | int | str]:
        """Parameters as given."""
        p: dict[str, float | int | str] = {"fast": self.fast, "slow": self.slow}
        if self.qty is not None:
            p["qty"] = self.qty
        else:
            p["fraction"] = self.fraction
        return p

    def signals(self, bars: Bars) -> Signals:
        """+size while fast > slow, -size while fast < slow, NaN otherwise."""
        diff = sma(bars.close, self.fast) - sma(bars.close, self.slow)
        direction = np.where(diff > 0, 1.0, np.where(diff < 0, -1.0, np.nan))
        if self.qty is not None:
            return Signals(direction * self.qty, TargetUnit.QUANTITY)
        return Signals(direction * self.fraction, TargetUnit.EQUITY_FRACTION)
