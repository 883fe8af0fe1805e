"""Causal features per bar, computed vectorized from one symbol's candle arrays.

Feature ``f[t]`` uses bars ``0..t`` (bar ``t`` complete, i.e. known at its close) and funding
rates stamped at or before bar ``t``'s open time, never anything later: rolling windows and
exponential averages run forward only, and funding is looked up *as of* the bar. A property test
perturbs everything after ``t`` and requires the features up to ``t`` not to move.

Every feature is scale-free (log returns, ratios, z-scores, bounded oscillators), so one model
can be trained on several symbols pooled. The first ``WARMUP_BARS`` bars have NaN features (the
longest window is not full yet); callers drop or skip them, never fill them.

Float64 throughout; these are model inputs, not money.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantum_trader.domain.errors import DataError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_RETURN_LAGS = (1, 5, 15, 60, 240)
_VOL_WINDOWS = (15, 60, 240)
_RSI_PERIOD = 14
_ATR_PERIOD = 14
_VOLUME_WINDOWS = (60, 240)
_SMA_WINDOWS = (60, 240)
_NANOS_PER_DAY = 86_400_000_000_000

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{k}" for k in _RETURN_LAGS),
    *(f"vol_{w}" for w in _VOL_WINDOWS),
    "vol_ratio_15_240",
    f"rsi_{_RSI_PERIOD}",
    f"atr_{_ATR_PERIOD}",
    "range_1",
    "close_position",
    *(f"volume_z_{w}" for w in _VOLUME_WINDOWS),
    *(f"sma_distance_{w}" for w in _SMA_WINDOWS),
    "funding_rate",
    "time_of_day_sin",
    "time_of_day_cos",
)
"""The feature columns ``compute_features`` returns, in order."""

WARMUP_BARS = max(*_RETURN_LAGS, *_VOL_WINDOWS, *_VOLUME_WINDOWS, *_SMA_WINDOWS) + 1
"""Bars before every feature is defined (the longest window plus the return it needs)."""


def funding_as_of(
    ts: IntArray, funding_ts: IntArray | None, funding_rate: FloatArray | None
) -> FloatArray:
    """Return, for each bar open time in ``ts``, the last funding rate stamped at or before it.

    Bars before the first known rate, and every bar when no funding is given, get 0.0 (no
    funding known yet). A rate stamped after a bar's open is never used for that bar.
    """
    if funding_ts is None or funding_rate is None or len(funding_ts) == 0:
        return np.zeros(len(ts))
    f_ts = np.asarray(funding_ts, dtype=np.int64)
    rates = np.asarray(funding_rate, dtype=np.float64)
    if f_ts.shape != rates.shape:
        raise DataError(f"funding: {len(f_ts)} times but {len(rates)} rates")
    order = np.argsort(f_ts, kind="stable")
    f_ts, rates = f_ts[order], rates[order]
    idx = np.searchsorted(f_ts, ts, side="right") - 1
    out = np.where(idx >= 0, rates[np.maximum(idx, 0)], 0.0)
    return np.nan_to_num(out, nan=0.0)


def compute_features(
    ts: IntArray,
    open_: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    *,
    funding_ts: IntArray | None = None,
    funding_rate: FloatArray | None = None,
) -> pd.DataFrame:
    """Return one row of ``FEATURE_NAMES`` per bar; row ``t`` uses bars ``0..t`` only.

    ``ts`` is each bar's open time in integer nanoseconds (UTC). ``funding_ts``/``funding_rate``
    are the symbol's funding stamps and rates, looked up as of each bar's open time.
    """
    n = len(ts)
    arrays = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    for name, arr in arrays.items():
        if len(arr) != n:
            raise DataError(f"features: {name} has {len(arr)} values for {n} bars")
    c = pd.Series(np.asarray(close, dtype=np.float64))
    h = pd.Series(np.asarray(high, dtype=np.float64))
    lo = pd.Series(np.asarray(low, dtype=np.float64))
    v = pd.Series(np.asarray(volume, dtype=np.float64))
    if n and not (c > 0).all():
        raise DataError("features: close prices must be positive")
    log_c = pd.Series(np.log(c.to_numpy()))
    r1 = log_c.diff()
    cols: dict[str, pd.Series] = {}
    for k in _RETURN_LAGS:
        cols[f"ret_{k}"] = log_c - log_c.shift(k)
    for w in _VOL_WINDOWS:
        cols[f"vol_{w}"] = r1.rolling(w, min_periods=w).std()
    cols["vol_ratio_15_240"] = cols["vol_15"] / cols["vol_240"].replace(0.0, np.nan)
    cols[f"rsi_{_RSI_PERIOD}"] = _rsi(c, _RSI_PERIOD)
    prev_c = c.shift(1)
    true_range = pd.concat([h - lo, (h - prev_c).abs(), (lo - prev_c).abs()], axis=1).max(
        axis=1, skipna=False
    )
    atr = true_range.ewm(alpha=1.0 / _ATR_PERIOD, adjust=False, min_periods=_ATR_PERIOD).mean()
    cols[f"atr_{_ATR_PERIOD}"] = atr / c
    cols["range_1"] = (h - lo) / c
    span = h - lo
    cols["close_position"] = ((c - lo) / span.where(span > 0)).fillna(0.5)
    log_v = pd.Series(np.log1p(v.clip(lower=0.0).to_numpy()))
    for w in _VOLUME_WINDOWS:
        mean = log_v.rolling(w, min_periods=w).mean()
        std = log_v.rolling(w, min_periods=w).std()
        cols[f"volume_z_{w}"] = (
            ((log_v - mean) / std.where(std > 0)).fillna(0.0).where(mean.notna())
        )
    for w in _SMA_WINDOWS:
        cols[f"sma_distance_{w}"] = c / c.rolling(w, min_periods=w).mean() - 1.0
    ts_arr = np.asarray(ts, dtype=np.int64)
    cols["funding_rate"] = pd.Series(funding_as_of(ts_arr, funding_ts, funding_rate))
    angle = 2.0 * np.pi * (ts_arr % _NANOS_PER_DAY) / _NANOS_PER_DAY
    cols["time_of_day_sin"] = pd.Series(np.sin(angle))
    cols["time_of_day_cos"] = pd.Series(np.cos(angle))
    frame = pd.DataFrame({name: cols[name].to_numpy(np.float64) for name in FEATURE_NAMES})
    # No feature exists before the longest window is full, so every row is either whole or
    # entirely missing (the model never sees a partly warmed-up row).
    frame.iloc[: min(WARMUP_BARS - 1, n)] = np.nan
    return frame.replace([np.inf, -np.inf], np.nan)


def _rsi(close: pd.Series, period: int) -> pd.Series:
    """Wilder's RSI scaled to [-1, 1] ((RSI - 50) / 50); forward-only exponential averages."""
    delta = close.diff()
    gain = delta.clip(lower=0.0).ewm(alpha=1.0 / period, adjust=False, min_periods=period).mean()
    loss = (-delta.clip(upper=0.0)).ewm(alpha=1.0 / period, adjust=False, min_periods=period).mean()
    total = gain + loss
    rsi = (gain / total.where(total > 0)).fillna(0.5)
    return (rsi - 0.5) * 2.0
