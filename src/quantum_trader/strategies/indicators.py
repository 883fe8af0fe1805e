"""Causal vectorized indicators: value at t uses inputs 0..t only; NaN until the window fills."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from quantum_trader.strategies.base import FloatArray


def sma(values: FloatArray, window: int) -> FloatArray:
    """Simple moving average of the last ``window`` values."""
    out = np.full(len(values), np.nan)
    if window <= len(values):
        # Each window summed directly (not by differencing a cumulative sum), so the average
        # does not pick up rounding error from earlier prices and equals a plain rolling mean.
        out[window - 1 :] = sliding_window_view(values, window).mean(axis=1)
    return out


def rolling_max(values: FloatArray, window: int) -> FloatArray:
    """Maximum of the last ``window`` values."""
    out = np.full(len(values), np.nan)
    if window <= len(values):
        out[window - 1 :] = sliding_window_view(values, window).max(axis=1)
    return out


def rolling_min(values: FloatArray, window: int) -> FloatArray:
    """Minimum of the last ``window`` values."""
    out = np.full(len(values), np.nan)
    if window <= len(values):
        out[window - 1 :] = sliding_window_view(values, window).min(axis=1)
    return out


def shift(values: FloatArray, n: int = 1) -> FloatArray:
    """Values moved ``n`` bars later (the first ``n`` become NaN)."""
    out = np.full(len(values), np.nan)
    if n < len(values):
        out[n:] = values[: len(values) - n]
    return out
