"""Fixtures for the data-layer tests: small hand-made frames and the real reference data.

The real data fixtures (``reference_data``, ``perps``) live in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest

CandleMaker = Callable[..., pd.DataFrame]


def make_candles(
    closes: Sequence[float] | int = 10,
    *,
    start: str = "2025-01-01 00:00",
    freq: str = "1min",
    times: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return a clean canonical candle frame: a gentle zig-zag, or the given closes."""
    if isinstance(closes, int):
        closes = [100.0 + (i % 7) - 0.5 * (i % 3) for i in range(closes)]
    close = np.asarray(closes, dtype=np.float64)
    open_ = np.concatenate([[close[0]], close[:-1]])
    dates = (
        pd.DatetimeIndex(pd.to_datetime(list(times), utc=True)).as_unit("ns")
        if times is not None
        else pd.date_range(start, periods=close.size, freq=freq, tz="UTC", unit="ns")
    )
    return pd.DataFrame(
        {
            "date": dates,
            "open": open_,
            "high": np.maximum(open_, close) + 0.5,
            "low": np.minimum(open_, close) - 0.5,
            "close": close,
            "volume": np.linspace(1.0, 2.0, close.size),
        }
    )


_BINANCE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)


def binance_csv_text(df: pd.DataFrame, *, unit: str = "ms", header: bool = False) -> str:
    """Return ``df`` as a data.binance.vision kline CSV (12 columns), times in ms or µs."""
    factor = {"ms": 1_000_000, "us": 1_000}[unit]
    open_ns = df["date"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    lines = [_BINANCE_HEADER] if header else []
    for i, row in enumerate(df.itertuples(index=False)):
        t = int(open_ns[i]) // factor
        close_t = t + 60_000_000_000 // factor - 1
        lines.append(
            f"{t},{row.open!r},{row.high!r},{row.low!r},{row.close!r},{row.volume!r},"
            f"{close_t},{row.close * row.volume!r},42,{row.volume / 2!r},1.5,0"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def binance_csv() -> Callable[..., str]:
    """Return :func:`binance_csv_text`, which writes a frame as a Binance kline CSV."""
    return binance_csv_text


@pytest.fixture(scope="session")
def candles() -> CandleMaker:
    """Return :func:`make_candles`, the builder of clean hand-made candle frames."""
    return make_candles
