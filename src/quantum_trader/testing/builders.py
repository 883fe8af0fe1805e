"""Build small, exact market data and strategies for tests and examples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from quantum_trader.data.market import SymbolData
from quantum_trader.strategies.base import Bars, Signals, TargetUnit

START = pd.Timestamp("2025-01-01T00:00:00Z")


def candles(
    opens: Sequence[float],
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
    closes: Sequence[float] | None = None,
    *,
    start: pd.Timestamp = START,
    freq: str = "1min",
) -> pd.DataFrame:
    """A canonical candle frame; missing highs/lows/closes default to the opens."""
    o = np.asarray(opens, dtype=np.float64)
    c = np.asarray(closes if closes is not None else opens, dtype=np.float64)
    h = np.asarray(highs, dtype=np.float64) if highs is not None else np.maximum(o, c)
    lo = np.asarray(lows, dtype=np.float64) if lows is not None else np.minimum(o, c)
    return pd.DataFrame(
        {
            "date": pd.date_range(start, periods=len(o), freq=freq),
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": np.ones(len(o)),
        }
    )


def symbol_data(
    symbol: str, frame: pd.DataFrame, funding: pd.DataFrame | None = None
) -> SymbolData:
    """Wrap a candle frame (and optional funding) as SymbolData from a named test source."""
    return SymbolData(symbol, "1m", frame, funding, None, source=f"test:{symbol}")


class ScriptedStrategy:
    """A strategy that returns a fixed target array: scenarios say exactly what it wants."""

    name = "scripted"

    def __init__(
        self, targets: dict[str, Sequence[float]], unit: TargetUnit = TargetUnit.QUANTITY
    ) -> None:
        self.targets = {s: np.asarray(t, dtype=np.float64) for s, t in targets.items()}
        self.unit = unit

    @property
    def warmup_bars(self) -> int:
        """No warm-up: the script starts at bar 0."""
        return 0

    def params(self) -> dict[str, float | int | str]:
        """No parameters."""
        return {}

    def signals(self, bars: Bars) -> Signals:
        """The scripted targets for ``bars.symbol`` (NaN past the script's end)."""
        t = self.targets[bars.symbol]
        out = np.full(len(bars), np.nan)
        out[: min(len(t), len(bars))] = t[: len(bars)]
        return Signals(out, self.unit)
