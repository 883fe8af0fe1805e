"""Summary figures, each checked against a value worked out by hand."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from quantum_trader.observability.reports.summary import (
    compute_summary,
    daily_equity_returns,
    max_drawdown,
    max_drawdown_duration_bars,
    sharpe_ratio,
    sortino_ratio,
)

START = pd.Timestamp("2024-01-01", tz="UTC")
NO_TRADES = pd.DataFrame()
NO_FILLS = pd.DataFrame()


def equity_frame(values: Sequence[float] | np.ndarray, freq: str = "1min") -> pd.DataFrame:
    index = pd.date_range(START, periods=len(values), freq=freq, tz="UTC")
    return pd.DataFrame({"equity": np.asarray(values, dtype=np.float64)}, index=index)


def summarize(
    equity: pd.DataFrame,
    trades: pd.DataFrame = NO_TRADES,
    fills: pd.DataFrame = NO_FILLS,
    *,
    initial_cash: float = 100.0,
    elapsed_s: float = 2.0,
) -> dict[str, object]:
    return compute_summary(
        equity,
        trades,
        fills,
        initial_cash=initial_cash,
        bars=len(equity),
        elapsed_s=elapsed_s,
        funding_total=-1.5,
        rejected_orders=3,
    )


def trades_frame(net_pnl: Sequence[float], status: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"net_pnl": list(net_pnl), "status": list(status)})


def test_max_drawdown_when_equity_dips_then_recovers_is_fall_from_peak() -> None:
    summary = summarize(equity_frame([100, 110, 99, 121]))

    # Peak 110, trough 99: (110 - 99) / 110.
    assert summary["max_drawdown"] == pytest.approx(0.1, rel=1e-12)
    assert summary["final_equity"] == 121.0
    assert summary["total_return"] == pytest.approx(0.21, rel=1e-12)
    assert summary["total_pnl"] == pytest.approx(21.0, rel=1e-12)


def test_max_drawdown_when_equity_starts_below_initial_cash_counts_from_initial_cash() -> None:
    values = np.array([90.0, 95.0, 100.0, 80.0])

    assert max_drawdown(values, 100.0) == pytest.approx(0.2, rel=1e-12)
    # Below the 100 peak at bars 0, 1 and 3; bar 2 touches it.
    assert max_drawdown_duration_bars(values, 100.0) == 2


def test_max_drawdown_when_equity_only_rises_is_zero() -> None:
    summary = summarize(equity_frame([100, 101, 102]))

    assert summary["max_drawdown"] == 0.0
    assert summary["max_drawdown_duration_bars"] == 0


def test_max_drawdown_duration_when_two_dips_is_longest_underwater_run() -> None:
    # Peaks 100,110,110,110,110,111,111: underwater at bars 2-4 (3 bars) and bar 6 (1 bar).
    values = np.array([100, 110, 99, 100, 105, 111, 90], dtype=np.float64)

    assert max_drawdown_duration_bars(values, 100.0) == 3


def daily_equity(day_closes: Sequence[float]) -> pd.DataFrame:
    # Two bars a day; the 12:00 bar is noise that the last-of-day resampling must ignore.
    index = pd.date_range(START, periods=2 * len(day_closes), freq="12h", tz="UTC")
    values = np.repeat(np.asarray(day_closes, dtype=np.float64), 2)
    values[0::2] = 50.0
    return pd.DataFrame({"equity": values}, index=index)


def test_daily_returns_when_intraday_noise_uses_last_value_per_day() -> None:
    returns = daily_equity_returns(daily_equity([102.0, 99.96, 103.9584]), 100.0)

    np.testing.assert_allclose(returns, [0.02, -0.02, 0.04], rtol=1e-12)


def test_sharpe_when_known_daily_returns_matches_hand_computation() -> None:
    summary = summarize(daily_equity([102.0, 99.96, 103.9584]))

    # Daily returns 0.02, -0.02, 0.04 (the initial 100 is the value before day one).
    mean = 0.04 / 3
    variance = ((0.02 - mean) ** 2 + (-0.02 - mean) ** 2 + (0.04 - mean) ** 2) / 2
    assert summary["sharpe"] == pytest.approx(mean / math.sqrt(variance) * math.sqrt(365), rel=1e-9)
    # Downside deviation: sqrt((0 + 0.02**2 + 0) / 3).
    downside = math.sqrt(0.02**2 / 3)
    assert summary["sortino"] == pytest.approx(mean / downside * math.sqrt(365), rel=1e-9)


def test_sharpe_when_day_has_no_bars_counts_it_as_flat_day() -> None:
    index = pd.DatetimeIndex(
        ["2024-01-01 23:00", "2024-01-03 23:00"], tz="UTC"
    )  # nothing on 2024-01-02
    equity = pd.DataFrame({"equity": [110.0, 121.0]}, index=index)

    np.testing.assert_allclose(daily_equity_returns(equity, 100.0), [0.1, 0.0, 0.1], rtol=1e-12)


def test_sharpe_when_fewer_than_two_daily_returns_is_zero() -> None:
    summary = summarize(equity_frame([100, 101, 105]))  # three minutes: one day

    assert summary["sharpe"] == 0.0
    assert summary["sortino"] == 0.0


def test_sharpe_when_daily_returns_are_equal_is_zero() -> None:
    assert sharpe_ratio(np.array([0.1, 0.1, 0.1])) == 0.0
    # 110/100 and 121/110 differ from 1.1 only by rounding.
    assert summarize(daily_equity([110.0, 121.0]))["sharpe"] == 0.0


def test_sortino_when_no_losing_day_is_none() -> None:
    assert sortino_ratio(np.array([0.01, 0.02, 0.0])) is None


def test_cagr_when_run_is_shorter_than_30_days_is_none() -> None:
    summary = summarize(equity_frame([100.0] * 28 + [110.0], freq="1D"))  # 29 daily bars: 29 days

    assert summary["cagr"] is None


def test_cagr_when_run_spans_30_days_annualises_total_return() -> None:
    values = np.full(30 * 24, 100.0)
    values[-1] = 110.0
    summary = summarize(equity_frame(values, freq="1h"))  # 720 hourly bars = 30 days

    assert summary["cagr"] == pytest.approx(1.1 ** (365 / 30) - 1, rel=1e-12)


def test_trade_figures_when_closed_and_open_trades_score_closed_ones() -> None:
    trades = trades_frame([10.0, -5.0, 20.0, 7.0], ["closed", "closed", "liquidated", "open"])
    summary = summarize(equity_frame([100, 101]), trades)

    assert summary["trades"] == 4
    assert summary["closed_trades"] == 3
    assert summary["open_trades"] == 1
    assert summary["win_rate"] == pytest.approx(2 / 3, rel=1e-12)
    assert summary["profit_factor"] == pytest.approx(30 / 5, rel=1e-12)
    assert summary["avg_trade_pnl"] == pytest.approx(25 / 3, rel=1e-12)
    assert summary["best_trade_pnl"] == 20.0
    assert summary["worst_trade_pnl"] == -5.0


def test_profit_factor_when_no_losing_trade_is_none() -> None:
    summary = summarize(equity_frame([100, 101]), trades_frame([1.0, 2.0], ["closed"] * 2))

    assert summary["profit_factor"] is None
    assert summary["win_rate"] == 1.0


def test_trade_figures_when_no_trades_are_none() -> None:
    summary = summarize(equity_frame([100, 101]))

    assert summary["trades"] == 0
    assert summary["win_rate"] is None
    assert summary["avg_trade_pnl"] is None


def test_costs_when_fills_have_fees_sums_fees_and_passes_funding_through() -> None:
    fills = pd.DataFrame({"fee": [0.25, 0.5, 1.25]})
    summary = summarize(equity_frame([100, 101]), fills=fills)

    assert summary["fees"] == pytest.approx(2.0, rel=1e-12)
    assert summary["funding"] == -1.5
    assert summary["rejected_orders"] == 3


def test_speed_when_elapsed_is_positive_is_bars_per_second() -> None:
    summary = summarize(equity_frame([100.0] * 10), elapsed_s=4.0)

    assert summary["bars_per_s"] == 2.5
    assert summary["elapsed_s"] == 4.0


def test_speed_when_elapsed_is_zero_is_none() -> None:
    assert summarize(equity_frame([100, 101]), elapsed_s=0.0)["bars_per_s"] is None


def test_exposure_when_trades_cover_some_bars_is_covered_fraction() -> None:
    equity = equity_frame([100.0] * 10)
    times = equity.index
    trades = pd.DataFrame(
        {
            "entry_time": [times[2], times[3], times[8]],
            "exit_time": [times[5], times[4], pd.NaT],  # the 2nd overlaps the 1st; the 3rd is open
            "status": ["closed", "closed", "open"],
            "net_pnl": [1.0, 1.0, 0.0],
        }
    )
    trades["exit_time"] = pd.to_datetime(trades["exit_time"], utc=True)

    # Bars 2, 3, 4 (first trade) and 8, 9 (open trade): 5 of 10.
    assert summarize(equity, trades)["exposure"] == pytest.approx(0.5, rel=1e-12)


def test_summary_when_equity_is_empty_reports_initial_cash() -> None:
    summary = summarize(equity_frame([]))

    assert summary["final_equity"] == 100.0
    assert summary["total_return"] == 0.0
    assert summary["max_drawdown"] == 0.0
    assert summary["start"] is None


def test_summary_when_computed_is_plain_json() -> None:
    trades = trades_frame([np.float64(1.0)], ["closed"])
    summary = summarize(equity_frame([100, 99, 101]), trades)

    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == summary
    assert all(isinstance(value, (int, float, str, type(None))) for value in summary.values())
    assert summary["start"] == "2024-01-01T00:00:00Z"


def test_summary_when_initial_cash_is_not_positive_raises() -> None:
    with pytest.raises(ValueError, match="initial_cash"):
        summarize(equity_frame([100, 101]), initial_cash=0.0)
