"""The in-memory shape of market data that every loader produces and every runner consumes.

Candles are a DataFrame with a ``date`` column (``datetime64[ns, UTC]``, the bar's open time)
and float64 ``open``, ``high``, ``low``, ``close``, ``volume``, sorted by date with no
duplicates. Funding is ``date`` + ``rate``; mark prices are ``date`` + ``mark``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

CANDLE_COLUMNS = ("date", "open", "high", "low", "close", "volume")
FUNDING_COLUMNS = ("date", "rate")
MARK_COLUMNS = ("date", "mark")


@dataclass(frozen=True, slots=True)
class SymbolData:
    """Everything known about one symbol's market: candles, and funding and mark if given.

    ``source`` names where the candles came from (a path, or ``synthetic:seed=N``) so errors and
    reports can say it; ``synthetic`` is True for generated data, which reports say plainly.
    """

    symbol: str
    timeframe: str
    candles: pd.DataFrame
    funding: pd.DataFrame | None = None
    mark: pd.DataFrame | None = None
    source: str = ""
    synthetic: bool = False


MarketData = Mapping[str, SymbolData]
