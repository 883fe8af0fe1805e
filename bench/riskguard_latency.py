"""RiskGuard decision latency: p50 and p99 over 1,000,000 order intents with every check on.

    .venv/bin/python bench/riskguard_latency.py [--intents 1000000]

Intents rotate over four symbols with open positions on three, so every check runs to the end
(symbol, price sanity and freshness, confidence, leverage, risk per trade, notional, open
positions, per-symbol and gross exposure, daily loss, order rate) and is approved. Each decision
is timed on its own with perf_counter_ns; the figure includes the guard's policy read.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.policy import Policy
from quantum_trader.risk.guard import AccountView, OrderIntent, RiskGuard

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
MARKS = {"BTCUSDT": 100_000.0, "ETHUSDT": 2_500.0, "SOLUSDT": 150.0, "XRPUSDT": 2.0}
QTY = {"BTCUSDT": 0.001, "ETHUSDT": 0.01, "SOLUSDT": 0.1, "XRPUSDT": 10.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=1_000_000)
    args = parser.parse_args()
    policy = Policy(max_orders_per_window=10**9)
    guard = RiskGuard(lambda: policy)
    account = AccountView(
        equity=10_000.0,
        day_start_equity=10_050.0,
        positions={"BTCUSDT": 0.01, "ETHUSDT": -0.2, "SOLUSDT": 0.0, "XRPUSDT": 10.0},
        marks=MARKS,
        mark_ts_ns=dict.fromkeys(SYMBOLS, 0),
    )
    intents = [
        OrderIntent(
            SYMBOLS[i % 4],
            OrderSide.BUY,
            QTY[SYMBOLS[i % 4]],
            MARKS[SYMBOLS[i % 4]],
            ts_ns=i * 1_000,
            leverage=5.0,
            confidence=0.9,
        )
        for i in range(args.intents)
    ]
    latencies = np.empty(len(intents), dtype=np.int64)
    clock = time.perf_counter_ns
    check = guard.check
    approved = 0
    for i, intent in enumerate(intents):
        started = clock()
        decision = check(intent, account)
        latencies[i] = clock() - started
        approved += decision.approved
    p50, p99, p999 = np.percentile(latencies, [50, 99, 99.9]) / 1_000
    print(f"{len(intents):,} intents, {approved:,} approved (every check ran)")
    print(
        f"  p50 {p50:.2f} µs   p99 {p99:.2f} µs   p99.9 {p999:.2f} µs   "
        f"mean {latencies.mean() / 1000:.2f} µs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
