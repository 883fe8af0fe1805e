"""Backtest throughput: sma_cross(10/50) over the nine 1m USDT-M perpetuals (~389,000 bars).

    QT_REFERENCE_DATA=../shared/data .venv/bin/python bench/backtest_throughput.py [--repeat 5]

Prints bars per second for the engine run alone (signals, event loop, equity at every bar,
result frames and summary) and for the whole job (loading and validating the files, and
writing summary.json, trades.csv, equity.csv and report.html), plus the BTC-only run that the
issue compares with other engines. One process, one core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from quantum_trader.data.loaders import load_market
from quantum_trader.engine.backtest import BacktestEngine, run_backtest
from quantum_trader.engine.settings import BacktestSettings, RiskSettings
from quantum_trader.observability.reports.files import write_run_outputs
from quantum_trader.strategies.sma_cross import SmaCross

SYMBOLS = (
    "ADAUSDT",
    "BNBUSDT",
    "BTCUSDT",
    "DOGEUSDT",
    "DOTUSDT",
    "ETHUSDT",
    "LTCUSDT",
    "SOLUSDT",
    "XRPUSDT",
)


def _engine_runs(settings: BacktestSettings, market: dict, repeat: int) -> tuple[list[float], dict]:  # type: ignore[type-arg]
    times = []
    summary: dict = {}  # type: ignore[type-arg]
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = run_backtest(settings, SmaCross(fast=10, slow=50), market)
        times.append(time.perf_counter() - t0)
        summary = res.summary
    return times, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Path(
        os.environ.get("QT_REFERENCE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    folder = root / "marketswarm_binance_usdm_futures"
    if not folder.is_dir():
        print(f"reference data not found at {folder}; set QT_REFERENCE_DATA", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    market = load_market(folder, SYMBOLS, "1m")
    load_s = time.perf_counter() - t0
    settings = BacktestSettings(data=folder, symbols=SYMBOLS, timeframe="1m")
    times, summary = _engine_runs(settings, market, args.repeat)
    bars = summary["bars"]
    best, median = min(times), statistics.median(times)
    print(
        f"nine symbols, sma_cross 10/50, {bars:,} bars, {summary['trades']:,} trades, "
        f"{args.repeat} runs"
    )
    print(
        f"  engine run : best {best:.3f} s = {bars / best:,.0f} bars/s; "
        f"median {median:.3f} s = {bars / median:,.0f} bars/s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        full_market = load_market(folder, SYMBOLS, "1m")
        res = run_backtest(settings, SmaCross(fast=10, slow=50), full_market)
        write_run_outputs(res, Path(tmp))
        whole = time.perf_counter() - t0
        size = (Path(tmp) / "report.html").stat().st_size
    print(f"  load + validate nine files: {load_s:.3f} s")
    print(
        f"  whole job (load, run, write the files): {whole:.3f} s = {bars / whole:,.0f} bars/s; "
        f"report.html {size / 1e6:.1f} MB"
    )

    # The same run with the full safety core in front of every order: RiskGuard, drawdown and
    # daily-loss tracking at every bar, ESS evaluators, coordinator cycles. Limits are wide so
    # the run trades to the end (a halt would make the comparison meaningless).
    loose = {
        mode: {"max_drawdown": 1.0, "max_daily_loss": 1.0}
        for mode in ("aggressive", "normal", "safe", "critical")
    }
    risk = RiskSettings(limits=loose)
    safe_times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = BacktestEngine(settings, SmaCross(fast=10, slow=50), market, risk=risk).run()
        safe_times.append(time.perf_counter() - t0)
    safe_best = min(safe_times)
    print(
        f"  with the safety core: best {safe_best:.3f} s = {bars / safe_best:,.0f} bars/s "
        f"({best / safe_best:.0%} of the throughput without it); "
        f"{res.summary['trades']:,} trades, {res.summary['risk_denials']:,} denials, "
        f"{res.summary['mode_changes']:,} mode changes"
    )

    btc = {"BTCUSDT": market["BTCUSDT"]}
    btc_settings = BacktestSettings(data=folder, symbols=("BTCUSDT",), timeframe="1m")
    btc_times, btc_summary = _engine_runs(btc_settings, btc, args.repeat)
    b = min(btc_times)
    print(
        f"BTCUSDT alone: {btc_summary['bars']:,} bars, {btc_summary['trades']:,} trades: "
        f"best {b:.3f} s = {btc_summary['bars'] / b:,.0f} bars/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
