"""A seeded synthetic USDT-M perpetuals market for demos, tests and benchmarks.

The model, per bar of length ``dt``:

* a market regime (range, trend up, trend down) follows a Markov chain with regimes lasting a
  couple of days; trends add a drift of about ±1.5% a day and down-trends are more volatile;
* one market factor drives every symbol (``beta`` per symbol), plus an idiosyncratic part, so
  symbols are correlated (BTC/ETH about 0.8);
* both parts have GARCH(1,1) volatility on fat-tailed (Student-t, 5 dof) shocks, so volatility
  clusters, with persistence scaled to the timeframe (a memory of about a day);
* jumps: rare market-wide ones and rarer single-symbol ones;
* bars: open = previous close; high and low reach beyond the body by a random share of the bar's
  volatility; prices rounded to a tick of about 1e-5 of the starting price; volume follows a
  daily cycle and rises with the size of the move;
* funding every 8 h (00, 08, 16 UTC): 0.01% plus a premium that follows the last 8 h return,
  with noise, clipped to ±0.75%; mark price at each funding time: the last price plus a tiny
  basis noise.

Everything comes from ``numpy.random.default_rng`` streams seeded by ``seed`` (and, per symbol,
by the symbol's name, so adding a symbol does not change the others): the same arguments give
byte-identical frames.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantum_trader.data.catalog import split_symbol
from quantum_trader.data.market import SymbolData
from quantum_trader.data.readers import utc_dates
from quantum_trader.data.timeframes import bin_start, parse_timeframe
from quantum_trader.domain.errors import DataError

_Floats = npt.NDArray[np.float64]
_DAY_NS = 86_400 * 1_000_000_000
_FUNDING_NS = 8 * 3600 * 1_000_000_000

_LEVELS = {
    "BTC": 60_000.0,
    "ETH": 3_000.0,
    "BNB": 600.0,
    "SOL": 150.0,
    "LTC": 80.0,
    "DOT": 7.0,
    "XRP": 0.6,
    "ADA": 0.5,
    "DOGE": 0.15,
}
DEFAULT_LEVEL = 100.0
_ANNUAL_VOL = {"BTC": 0.55, "ETH": 0.70}
_BETA = {"BTC": 1.0, "ETH": 1.1}
_NOTIONAL_PER_MINUTE = {"BTC": 2.5e6, "ETH": 1.2e6}

_FACTOR_ANNUAL_VOL = 0.45
_REGIME_DRIFT_PER_DAY = np.array([0.0, 0.015, -0.015])  # range, up, down
_REGIME_VOL = np.array([0.8, 1.0, 1.3])
_REGIME_MEAN_DAYS = np.array([3.0, 2.0, 1.5])
# Where a regime goes when it ends: rows are from-states, columns to-states.
_REGIME_NEXT = np.array([[0.0, 0.5, 0.5], [0.7, 0.0, 0.3], [0.7, 0.3, 0.0]])
_MARKET_JUMPS_PER_DAY = 0.5
_MARKET_JUMP_SIZE = 0.004
_OWN_JUMPS_PER_DAY = 0.2
_OWN_JUMP_SIZE = 0.006
_VOL_MEMORY_DAYS = 1.0
_T_DOF = 5.0
FUNDING_CAP = 0.0075


@dataclass(frozen=True, slots=True)
class _Market:
    """The shared part: factor returns, its per-bar volatility, and the regime of each bar."""

    returns: _Floats
    sigma: _Floats
    regime: npt.NDArray[np.int64]


def _shocks(rng: np.random.Generator, n: int) -> _Floats:
    # Student-t scaled to unit variance: fat tails like real returns.
    shocks: _Floats = rng.standard_t(_T_DOF, n) / math.sqrt(_T_DOF / (_T_DOF - 2.0))
    return shocks


def _garch_scale(z: _Floats, dt_days: float) -> _Floats:
    """Return sqrt(h_t) of a unit-variance GARCH(1,1) driven by shocks ``z``."""
    persistence = min(0.9995, max(0.8, math.exp(-dt_days / _VOL_MEMORY_DAYS)))
    alpha = min(0.1, max(0.03, 0.3 * (1.0 - persistence)))
    beta = persistence - alpha
    omega = 1.0 - persistence
    h = 1.0
    out = [0.0] * z.size
    # A plain loop on Python floats: the recursion cannot be vectorised, and this runs
    # about 15 ms per 43,200 bars.
    for i, zi in enumerate(z.tolist()):
        out[i] = h
        h = omega + alpha * zi * zi * h + beta * h
    return np.sqrt(np.asarray(out, dtype=np.float64))


def _regimes(rng: np.random.Generator, n: int, dt_days: float) -> npt.NDArray[np.int64]:
    out = np.empty(n, dtype=np.int64)
    state = int(rng.integers(3))
    filled = 0
    while filled < n:
        mean_bars = max(1.0, _REGIME_MEAN_DAYS[state] / dt_days)
        length = int(rng.geometric(1.0 / mean_bars))
        out[filled : filled + length] = state
        filled += length
        state = int(rng.choice(3, p=_REGIME_NEXT[state]))
    return out


def _market(seed: int, n: int, dt_days: float) -> _Market:
    rng = np.random.default_rng([seed, 0])
    regime = _regimes(rng, n, dt_days)
    sigma_bar = _FACTOR_ANNUAL_VOL / math.sqrt(365.0) * math.sqrt(dt_days)
    z = _shocks(rng, n)
    sigma = sigma_bar * _REGIME_VOL[regime] * _garch_scale(z, dt_days)
    drift = (_REGIME_DRIFT_PER_DAY[regime] * dt_days) - 0.5 * sigma**2
    jumps = (rng.random(n) < _MARKET_JUMPS_PER_DAY * dt_days) * rng.normal(
        0.0, _MARKET_JUMP_SIZE, n
    )
    return _Market(drift + sigma * z + jumps, sigma, regime)


def _base(symbol: str) -> str:
    try:
        return split_symbol(symbol)[0]
    except DataError:
        return symbol.upper()


def _decimals(level: float) -> int:
    """Price decimals: a tick of about 1e-5 of the level (BTC 0.1, ETH 0.01, 100 → 0.001)."""
    return 5 - math.floor(math.log10(level))


def _on_tick(values: _Floats, decimals: int) -> _Floats:
    return np.round(values, decimals)


def _symbol_candles(
    symbol: str, seed: int, market: _Market, ts: npt.NDArray[np.int64], dt_days: float
) -> pd.DataFrame:
    n = ts.size
    base = _base(symbol)
    rng = np.random.default_rng([seed, zlib.crc32(symbol.encode())])
    level = _LEVELS.get(base, DEFAULT_LEVEL)
    vol = _ANNUAL_VOL.get(base, 0.85)
    beta = _BETA.get(base, 1.2)
    factor_vol = beta * _FACTOR_ANNUAL_VOL
    own_vol = math.sqrt(max(vol**2 - factor_vol**2, (0.3 * vol) ** 2))
    z = _shocks(rng, n)
    own_sigma = own_vol / math.sqrt(365.0) * math.sqrt(dt_days) * _garch_scale(z, dt_days)
    jumps = (rng.random(n) < _OWN_JUMPS_PER_DAY * dt_days) * rng.normal(0.0, _OWN_JUMP_SIZE, n)
    returns = beta * market.returns + own_sigma * z - 0.5 * own_sigma**2 + jumps
    bar_sigma = np.sqrt((beta * market.sigma) ** 2 + own_sigma**2)
    decimals = _decimals(level)
    tick = 10.0**-decimals
    close = np.maximum(_on_tick(level * np.exp(np.cumsum(returns)), decimals), tick)
    open_ = np.concatenate([[_on_tick(np.array([level]), decimals)[0]], close[:-1]])
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = np.maximum(
        _on_tick(top * np.exp(np.abs(rng.normal(0.0, 0.6, n)) * bar_sigma), decimals), top
    )
    # Never below one tick; close and open are at least a tick, so low stays <= the body.
    low_raw = _on_tick(bottom * np.exp(-np.abs(rng.normal(0.0, 0.6, n)) * bar_sigma), decimals)
    low = np.minimum(np.maximum(low_raw, tick), bottom)
    hour = (ts % _DAY_NS) / 3.6e12
    season = 1.0 + 0.4 * np.sin(2.0 * np.pi * (hour - 8.0) / 24.0)
    move = np.abs(np.log(close / open_)) / np.maximum(bar_sigma, 1e-12)
    notional = _NOTIONAL_PER_MINUTE.get(base, 2e5) * dt_days * 1440.0
    volume = notional / close * season * (0.5 + 0.5 * move) * rng.lognormal(0.0, 0.5, n)
    return pd.DataFrame(
        {
            "date": utc_dates(ts),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": np.round(volume, 3),
        }
    )


def _funding_and_mark(
    symbol: str, seed: int, frame: pd.DataFrame, ts: npt.NDArray[np.int64], tf_ns: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng([seed, zlib.crc32(symbol.encode()), 8])
    first = -(-int(ts[0]) // _FUNDING_NS) * _FUNDING_NS
    times = np.arange(first, int(ts[-1]) + tf_ns, _FUNDING_NS, dtype=np.int64)
    open_ = frame["open"].to_numpy()
    close = frame["close"].to_numpy()

    def price_at(t: npt.NDArray[np.int64]) -> _Floats:
        # The last traded price at time t: the open of the bar starting then, else the close before.
        i = np.searchsorted(ts, t, side="left")
        at_open = (i < ts.size) & (ts[np.minimum(i, ts.size - 1)] == t)
        return np.where(at_open, open_[np.minimum(i, ts.size - 1)], close[np.maximum(i - 1, 0)])

    now = price_at(times)
    before = price_at(np.maximum(times - _FUNDING_NS, ts[0]))
    premium = 0.01 * np.log(now / before)
    rate = np.clip(0.0001 + premium + rng.normal(0.0, 5e-5, times.size), -FUNDING_CAP, FUNDING_CAP)
    dates = utc_dates(times)
    funding = pd.DataFrame({"date": dates, "rate": np.round(rate, 8)})
    decimals = _decimals(float(open_[0]))
    basis = 1.0 + rng.normal(0.0, 1e-4, times.size)
    mark = pd.DataFrame({"date": dates, "mark": _on_tick(now * basis, decimals)})
    return funding, mark


def generate_market(
    symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
    *,
    bars: int = 43_200,
    timeframe: str = "1m",
    seed: int = 7,
    start: str | pd.Timestamp = "2025-01-01",
) -> dict[str, SymbolData]:
    """Generate a seeded synthetic perpetuals market: candles, 8h funding and mark per symbol.

    Args:
        symbols: Exchange-style symbols; BTC, ETH, BNB, SOL, LTC, DOT, XRP, ADA and DOGE start
            near real price levels, others at 100.
        bars: Candles per symbol.
        timeframe: Bar size, e.g. ``"1m"``.
        seed: Non-negative seed; the same arguments give byte-identical frames.
        start: Open time of the first bar (UTC; naive times are read as UTC), on the
            timeframe's grid.

    Returns:
        One :class:`SymbolData` per symbol with ``source="synthetic:seed=N"`` and
        ``synthetic=True``; the candles pass :func:`validate_candles` with no issues.
    """
    tf_ns = parse_timeframe(timeframe)
    if bars < 1:
        raise DataError(f"synthetic market: bars must be at least 1, got {bars}")
    if seed < 0:
        raise DataError(f"synthetic market: seed must be non-negative, got {seed}")
    # A bare string is one symbol, not a sequence of one-letter symbols.
    unique = [symbols] if isinstance(symbols, str) else list(dict.fromkeys(symbols))
    if not unique:
        raise DataError("synthetic market: no symbols asked for")
    try:
        first = pd.Timestamp(start)
    except ValueError as exc:
        raise DataError(f"synthetic market: bad start {start!r}: {exc}") from exc
    first = first.tz_localize("UTC") if first.tzinfo is None else first.tz_convert("UTC")
    start_ns = int(first.as_unit("ns").value)
    if int(bin_start(np.array([start_ns]), tf_ns)[0]) != start_ns:
        raise DataError(f"synthetic market: start {first} is not on the UTC {timeframe} grid")
    ts = start_ns + np.arange(bars, dtype=np.int64) * tf_ns
    dt_days = tf_ns / _DAY_NS
    market = _market(seed, bars, dt_days)
    out: dict[str, SymbolData] = {}
    for symbol in unique:
        candles = _symbol_candles(symbol, seed, market, ts, dt_days)
        funding, mark = _funding_and_mark(symbol, seed, candles, ts, tf_ns)
        out[symbol] = SymbolData(
            symbol,
            timeframe,
            candles,
            funding,
            mark,
            source=f"synthetic:seed={seed}",
            synthetic=True,
        )
    return out
