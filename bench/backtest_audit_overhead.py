"""Cost of the audit trail (and metrics) in a backtest: the same run with them on and off.

    QT_REFERENCE_DATA=../shared/data .venv/bin/python bench/backtest_audit_overhead.py [--repeat 5]

Two figures, medians over the repeats, nine 1m symbols with sma_cross 10/50 (~33,000 audit
records: a decision, an execution and a close per reversal):

* the job as ``qtrader backtest`` runs it: load the data, run, write the outputs;
* the engine run alone (signals, loop, result frames), the stricter comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from quantum_trader.domain.clock import ManualClock
from quantum_trader.engine.backtest import BacktestEngine
from quantum_trader.engine.runs import load_backtest_market, run_backtest_job
from quantum_trader.engine.settings import BacktestSettings
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.records import Durability
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


def _median_time(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


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
    with tempfile.TemporaryDirectory() as tmp:
        base = BacktestSettings(data=folder, symbols=SYMBOLS, out=Path(tmp) / "run")
        on = base.model_copy(update={"audit": True})
        off = base.model_copy(update={"audit": False})
        job_off = _median_time(lambda: run_backtest_job(off), args.repeat)
        job_on = _median_time(lambda: run_backtest_job(on), args.repeat)
        print(
            f"job (load, run, write outputs): off {job_off:.3f} s, on {job_on:.3f} s, "
            f"overhead {job_on / job_off - 1:+.1%}"
        )

        market = load_backtest_market(base)

        def engine(audited: bool) -> None:
            clock = ManualClock()
            audit = None
            if audited:
                audit = AuditLogger(
                    Path(tmp) / f"a{time.perf_counter_ns()}",
                    clock,
                    durability=Durability.BUFFERED,
                    retention_days=None,
                )
            BacktestEngine(base, SmaCross(), market, audit=audit, clock=clock).run()
            if audit is not None:
                audit.close()

        eng_off = _median_time(lambda: engine(False), args.repeat)
        eng_on = _median_time(lambda: engine(True), args.repeat)
        print(
            f"engine run alone:               off {eng_off:.3f} s, on {eng_on:.3f} s, "
            f"overhead {eng_on / eng_off - 1:+.1%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
