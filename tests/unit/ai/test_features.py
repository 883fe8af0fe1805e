"""Features are causal: changing anything after bar t never changes a feature at or before t."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from quantum_trader.ai.features import FEATURE_NAMES, WARMUP_BARS, compute_features, funding_as_of

MINUTE = 60_000_000_000
N = WARMUP_BARS + 120


def _market(rng: np.random.Generator, n: int = N) -> dict[str, np.ndarray]:
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.001, n)) * close
    return {
        "ts": 1_700_000_000 * 1_000_000_000 + np.arange(n, dtype=np.int64) * MINUTE,
        "open": open_,
        "high": np.maximum(open_, close) + spread,
        "low": np.minimum(open_, close) - spread,
        "close": close,
        "volume": rng.lognormal(3, 1, n),
        "funding_ts": 1_700_000_000 * 1_000_000_000 + np.arange(0, n, 60, dtype=np.int64) * MINUTE,
        "funding_rate": rng.normal(0, 1e-4, (n + 59) // 60),
    }


def _features(m: dict[str, np.ndarray]) -> pd.DataFrame:
    return compute_features(
        m["ts"],
        m["open"],
        m["high"],
        m["low"],
        m["close"],
        m["volume"],
        funding_ts=m["funding_ts"],
        funding_rate=m["funding_rate"],
    )


@seed(20250601)
@settings(max_examples=25, deadline=None)
@given(
    t=st.integers(min_value=0, max_value=N - 2),
    noise_seed=st.integers(min_value=0, max_value=2**31 - 1),
    scale=st.floats(min_value=0.5, max_value=3.0),
)
def test_features_when_bars_after_t_change_features_up_to_t_stay(
    t: int, noise_seed: int, scale: float
) -> None:
    base = _market(np.random.default_rng(5))
    before = _features(base)
    rng = np.random.default_rng(noise_seed)
    changed = {k: v.copy() for k, v in base.items()}
    after = slice(t + 1, None)
    for key in ("open", "high", "low", "close", "volume"):
        changed[key][after] = changed[key][after] * scale * rng.uniform(0.5, 1.5, N - t - 1)
    changed["high"][after] = np.maximum(changed["high"][after], changed["close"][after])
    # Funding stamped after bar t's open time is future information too.
    future_funding = changed["funding_ts"] > base["ts"][t]
    changed["funding_rate"][future_funding] = rng.normal(0, 1e-2, int(future_funding.sum()))
    moved = _features(changed)
    pd.testing.assert_frame_equal(before.iloc[: t + 1], moved.iloc[: t + 1], check_exact=True)


def test_features_when_warming_up_rows_are_missing_then_complete() -> None:
    frame = _features(_market(np.random.default_rng(1)))
    assert list(frame.columns) == list(FEATURE_NAMES)
    assert frame.iloc[: WARMUP_BARS - 1].isna().all(axis=None)
    assert frame.iloc[WARMUP_BARS - 1 :].notna().all(axis=None)


def test_funding_as_of_when_stamp_is_after_bar_open_uses_the_previous_rate() -> None:
    ts = np.array([0, 10, 20, 30], dtype=np.int64)
    rates = funding_as_of(ts, np.array([10, 21], dtype=np.int64), np.array([0.1, 0.2]))
    # Before any stamp: 0; at the stamp's own time: that rate; a stamp 1 ns after a bar's open
    # is not known at that bar.
    np.testing.assert_array_equal(rates, [0.0, 0.1, 0.1, 0.2])


def test_funding_as_of_when_no_funding_is_zero() -> None:
    np.testing.assert_array_equal(
        funding_as_of(np.arange(3, dtype=np.int64), None, None), [0, 0, 0]
    )
