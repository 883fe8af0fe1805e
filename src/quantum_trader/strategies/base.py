"""The Strategy protocol: one vectorized, causal signal function for every mode.

A strategy turns a symbol's bars into a *target position* per bar. The contract is causality:
``signals(bars).target[t]`` may depend on bars ``0..t`` only, never on a later bar. Then the
backtest can compute all targets at once (fast), and paper/live can call the same function on a
trailing window and take the last value (same code, same decisions). Tests perturb the future
and assert that past targets do not move.

``target[t]`` is read at bar ``t``'s close and acted on at the next bar's open. NaN means "no
opinion: keep what you hold". The unit says what the number means: a signed fraction of equity
to hold as notional, or a signed quantity of the base asset.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class TargetUnit(StrEnum):
    """What a target number means."""

    EQUITY_FRACTION = "equity_fraction"
    QUANTITY = "quantity"


@dataclass(frozen=True, slots=True)
class Bars:
    """One symbol's bars as arrays (time in integer nanoseconds, bar open time).

    ``funding_ts``/``funding_rate`` are the symbol's funding stamps and rates when known; a
    causal strategy uses a rate only from bars at or after its stamp.
    """

    symbol: str
    ts: npt.NDArray[np.int64]
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    funding_ts: npt.NDArray[np.int64] | None = None
    funding_rate: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def head(self, n: int) -> Bars:
        """The first ``n`` bars (a view, no copy)."""
        return Bars(
            self.symbol,
            self.ts[:n],
            self.open[:n],
            self.high[:n],
            self.low[:n],
            self.close[:n],
            self.volume[:n],
            self.funding_ts,
            self.funding_rate,
        )


@dataclass(frozen=True, slots=True)
class Signals:
    """A strategy's output for one symbol: a target per bar, in ``unit``.

    A model-driven strategy also gives its ``confidence`` per bar (in [0, 1]; the RiskGuard
    compares it with the policy's minimum) and the ``model_version`` that produced it; both go
    into the ``trade.decision`` audit record. Rule-based strategies leave them None.
    """

    target: FloatArray
    unit: TargetUnit
    confidence: FloatArray | None = None
    model_version: str | None = None


class Strategy(Protocol):
    """Anything that maps bars to causal target positions."""

    name: str

    @property
    def warmup_bars(self) -> int:
        """Bars needed before the first target can be non-NaN."""
        ...

    def params(self) -> dict[str, float | int | str]:
        """The strategy's parameters, for reports and the audit trail."""
        ...

    def signals(self, bars: Bars) -> Signals:
        """Return one target per bar; ``target[t]`` uses bars ``0..t`` only."""
        ...
