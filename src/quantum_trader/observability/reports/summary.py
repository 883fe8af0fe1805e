"""Summary figures of a backtest, computed from its equity, trade and fill frames.

Everything here is float64 arithmetic on whole columns (no Python loop over rows), so a
400,000-bar equity curve takes milliseconds. Money figures are floats: they are for reading, not
for accounting, and tests compare them with hand-computed values to ``1e-12`` relative.

Conventions:

* Drawdown is ``(peak - equity) / peak`` as a positive fraction; the running peak starts at the
  initial cash, so a run that only loses still shows its drawdown.
* Sharpe and Sortino use DAILY returns: the equity is resampled to UTC calendar days (last value
  of each day, carried forward over days without bars), the initial cash is the value before the
  first day, and the ratios are annualised with ``sqrt(365)`` (crypto trades every day). The risk
  free rate is zero. Both are ``0.0`` with fewer than two daily returns; Sharpe is ``0.0`` when
  the returns have zero standard deviation; Sortino is ``None`` when no day lost money (the
  ratio is unbounded).
* CAGR is reported only for runs that span at least 30 days (else ``None``): annualising a week
  produces absurd numbers.
* Trade figures (win rate, profit factor, average) use closed trades and their ``net_pnl``
  (realized PnL after fees and funding); open trades are counted but not scored.

Every value returned is a plain ``int``, ``float``, ``str`` or ``None``, so the dict can go
straight to ``json.dumps``; non-finite floats become ``None``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

TRADING_DAYS_PER_YEAR = 365
MIN_CAGR_DAYS = 30.0
_DAY_NS = 86_400 * 10**9
_NAT = np.iinfo(np.int64).min
_ZERO_STD = 1e-12


def compute_summary(
    equity: pd.DataFrame,
    trades: pd.DataFrame,
    fills: pd.DataFrame,
    *,
    initial_cash: float,
    bars: int,
    elapsed_s: float,
    funding_total: float,
    rejected_orders: int,
) -> dict[str, Any]:
    """Compute the summary figures of a backtest run.

    Args:
        equity: Indexed by bar open time (UTC), with an ``equity`` column.
        trades: One row per round trip (``status``, ``net_pnl``, ``entry_time``, ``exit_time``).
        fills: One row per fill, with a ``fee`` column.
        initial_cash: The account's starting equity; must be positive.
        bars: Number of bars the run processed.
        elapsed_s: Wall-clock seconds the run took.
        funding_total: Net funding, positive when received, negative when paid.
        rejected_orders: Number of orders the venue or risk layer refused.

    Returns:
        JSON-able figures keyed by name; see the module docstring for definitions.

    Raises:
        ValueError: If ``initial_cash`` is not positive.
    """
    if not initial_cash > 0:
        raise ValueError(f"initial_cash must be positive, got {initial_cash!r}")
    values = _equity_values(equity)
    final_equity = float(values[-1]) if values.size else float(initial_cash)
    daily_returns = daily_equity_returns(equity, initial_cash)
    closed_pnl, open_count = _closed_trade_pnl(trades)
    summary: dict[str, Any] = {
        "bars": int(bars),
        "start": _iso(equity.index[0]) if len(equity) else None,
        "end": _iso(equity.index[-1]) if len(equity) else None,
        "initial_cash": float(initial_cash),
        "final_equity": final_equity,
        "total_pnl": final_equity - float(initial_cash),
        "total_return": final_equity / float(initial_cash) - 1.0,
        "max_drawdown": max_drawdown(values, initial_cash),
        "max_drawdown_duration_bars": max_drawdown_duration_bars(values, initial_cash),
        "sharpe": sharpe_ratio(daily_returns),
        "sortino": sortino_ratio(daily_returns),
        "cagr": _cagr(equity, initial_cash, final_equity),
        "trades": int(closed_pnl.size + open_count),
        "closed_trades": int(closed_pnl.size),
        "open_trades": int(open_count),
        "fees": _column_sum(fills, "fee"),
        "funding": float(funding_total),
        "exposure": _exposure(equity, trades),
        "rejected_orders": int(rejected_orders),
        "elapsed_s": float(elapsed_s),
        "bars_per_s": float(bars) / float(elapsed_s) if elapsed_s > 0 else None,
        **_trade_figures(closed_pnl),
    }
    return {key: _plain(value) for key, value in summary.items()}


def max_drawdown(values: np.ndarray, initial_cash: float) -> float:
    """Return the largest peak-to-trough fall of an equity series as a positive fraction.

    Args:
        values: Equity per bar, in time order.
        initial_cash: Starting equity; the running peak starts here.

    Returns:
        ``max((peak - equity) / peak)``, ``0.0`` for an empty or never-falling series.
    """
    if values.size == 0:
        return 0.0
    peak = np.maximum.accumulate(np.maximum(values, initial_cash))
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0, (peak - values) / peak, 0.0)
    return float(max(drawdown.max(), 0.0))


def max_drawdown_duration_bars(values: np.ndarray, initial_cash: float) -> int:
    """Return the longest run of consecutive bars spent below the running peak.

    Args:
        values: Equity per bar, in time order.
        initial_cash: Starting equity; the running peak starts here.

    Returns:
        The number of bars in the longest underwater stretch (``0`` if never underwater).
    """
    if values.size == 0:
        return 0
    peak = np.maximum.accumulate(np.maximum(values, initial_cash))
    underwater = values < peak
    if not underwater.any():
        return 0
    # Run lengths of True: the index of each bar minus the index of the last dry bar before it.
    positions = np.arange(values.size)
    last_dry = np.maximum.accumulate(np.where(underwater, -1, positions))
    return int((positions - last_dry).max())


def sharpe_ratio(daily_returns: np.ndarray) -> float:
    """Return the annualised Sharpe ratio of daily returns (risk-free rate zero).

    Args:
        daily_returns: Simple daily returns.

    Returns:
        ``mean / std(ddof=1) * sqrt(365)``; ``0.0`` with fewer than two returns or a std
        below 1e-12 (zero up to rounding).
    """
    if daily_returns.size < 2:
        return 0.0
    std = float(np.std(daily_returns, ddof=1))
    # Equal returns leave rounding noise (~1e-17) in the std; treat it as zero, not as skill.
    if not std > _ZERO_STD or not math.isfinite(std):
        return 0.0
    return float(np.mean(daily_returns)) / std * math.sqrt(TRADING_DAYS_PER_YEAR)


def sortino_ratio(daily_returns: np.ndarray) -> float | None:
    """Return the annualised Sortino ratio of daily returns (target return zero).

    The downside deviation is ``sqrt(mean(min(r, 0)^2))`` over all days.

    Args:
        daily_returns: Simple daily returns.

    Returns:
        ``mean / downside_deviation * sqrt(365)``; ``0.0`` with fewer than two returns; ``None``
        when no day lost money.
    """
    if daily_returns.size < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(daily_returns, 0.0) ** 2)))
    if not downside > _ZERO_STD:
        return None
    return float(np.mean(daily_returns)) / downside * math.sqrt(TRADING_DAYS_PER_YEAR)


def daily_equity_returns(equity: pd.DataFrame, initial_cash: float) -> np.ndarray:
    """Return simple daily returns of the equity, resampled to UTC days by last value.

    Args:
        equity: Indexed by bar time (UTC), with an ``equity`` column.
        initial_cash: The value before the first day.

    Returns:
        One return per UTC calendar day the run touched (days without bars carry the previous
        day's equity, so they return zero).
    """
    values = _equity_values(equity)
    if values.size == 0:
        return np.empty(0, dtype=np.float64)
    series = pd.Series(values, index=_utc_index(equity))
    daily = series.resample("1D").last().ffill().to_numpy(dtype=np.float64)
    levels = np.concatenate(([float(initial_cash)], daily))
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = levels[1:] / levels[:-1] - 1.0
    return returns[np.isfinite(returns)]


def _equity_values(equity: pd.DataFrame) -> np.ndarray:
    if "equity" not in equity.columns:
        return np.empty(0, dtype=np.float64)
    return equity["equity"].to_numpy(dtype=np.float64, na_value=np.nan)


def _utc_index(equity: pd.DataFrame) -> pd.DatetimeIndex:
    # Nanoseconds whatever the input's unit, so ``asi8`` compares with ``_to_utc_ns``.
    index = pd.DatetimeIndex(equity.index).as_unit("ns")
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def _cagr(equity: pd.DataFrame, initial_cash: float, final_equity: float) -> float | None:
    if len(equity) < 2:
        return None
    index = _utc_index(equity)
    steps = np.diff(index.asi8)
    # The last bar covers one more bar interval: 43,200 one-minute bars span exactly 30 days.
    span_days = float(index.asi8[-1] - index.asi8[0] + np.median(steps)) / _DAY_NS
    if span_days < MIN_CAGR_DAYS:
        return None
    if final_equity <= 0:
        return -1.0
    return float((final_equity / initial_cash) ** (365.0 / span_days) - 1.0)


def _closed_trade_pnl(trades: pd.DataFrame) -> tuple[np.ndarray, int]:
    if trades.empty:
        return np.empty(0, dtype=np.float64), 0
    if "status" in trades.columns:
        is_open = (trades["status"].astype(str).str.lower() == "open").to_numpy()
    elif "exit_time" in trades.columns:
        is_open = trades["exit_time"].isna().to_numpy()
    else:
        is_open = np.zeros(len(trades), dtype=bool)
    column = "net_pnl" if "net_pnl" in trades.columns else "realized_pnl"
    pnl = trades[column].to_numpy(dtype=np.float64, na_value=np.nan)[~is_open]
    return pnl[np.isfinite(pnl)], int(is_open.sum())


def _trade_figures(closed_pnl: np.ndarray) -> dict[str, Any]:
    if closed_pnl.size == 0:
        return {
            "win_rate": None,
            "profit_factor": None,
            "avg_trade_pnl": None,
            "best_trade_pnl": None,
            "worst_trade_pnl": None,
        }
    gross_profit = float(closed_pnl[closed_pnl > 0].sum())
    gross_loss = float(-closed_pnl[closed_pnl < 0].sum())
    return {
        "win_rate": float(np.count_nonzero(closed_pnl > 0)) / closed_pnl.size,
        "profit_factor": gross_profit / gross_loss if gross_loss > 0 else None,
        "avg_trade_pnl": float(closed_pnl.mean()),
        "best_trade_pnl": float(closed_pnl.max()),
        "worst_trade_pnl": float(closed_pnl.min()),
    }


def _exposure(equity: pd.DataFrame, trades: pd.DataFrame) -> float | None:
    # Fraction of bars with at least one open position: a trade covers bars in
    # [entry_time, exit_time); an open trade runs to the end.
    if len(equity) == 0:
        return None
    if trades.empty or "entry_time" not in trades.columns:
        return 0.0
    index = _utc_index(equity).asi8
    entries = _to_utc_ns(trades["entry_time"])
    exits = (
        _to_utc_ns(trades["exit_time"])
        if "exit_time" in trades.columns
        else np.full(entries.size, np.iinfo(np.int64).max)
    )
    valid = entries != _NAT
    exits = np.where(exits == _NAT, np.iinfo(np.int64).max, exits)
    start = np.searchsorted(index, entries[valid], side="left")
    stop = np.searchsorted(index, exits[valid], side="left")
    stop = np.maximum(stop, start)
    depth = np.zeros(index.size + 1, dtype=np.int64)
    np.add.at(depth, start, 1)
    np.add.at(depth, stop, -1)
    return float(np.count_nonzero(np.cumsum(depth[:-1]) > 0)) / index.size


def _to_utc_ns(column: pd.Series) -> np.ndarray:
    times = pd.to_datetime(column, utc=True).dt.as_unit("ns")
    return times.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _column_sum(frame: pd.DataFrame, column: str) -> float:
    if column not in frame.columns or frame.empty:
        return 0.0
    return float(np.nansum(frame[column].to_numpy(dtype=np.float64, na_value=np.nan)))


def _iso(value: Any) -> str:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value
