"""The synthetic market: deterministic, valid, fast, and shaped like a real one."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from quantum_trader.data.market import CANDLE_COLUMNS, SymbolData
from quantum_trader.data.synthetic import FUNDING_CAP, generate_market
from quantum_trader.data.validate import validate_candles, validate_funding, validate_mark
from quantum_trader.domain.errors import DataError


def _frame_bytes(df: pd.DataFrame) -> bytes:
    dates = df["date"].to_numpy(dtype="datetime64[ns]").tobytes()
    return dates + b"".join(df[c].to_numpy(dtype=np.float64).tobytes() for c in df.columns[1:])


@pytest.fixture(scope="module")
def market() -> dict[str, SymbolData]:
    return generate_market()


def test_generate_market_when_defaults_gives_two_valid_symbols(
    market: dict[str, SymbolData],
) -> None:
    assert list(market) == ["BTCUSDT", "ETHUSDT"]
    for symbol, data in market.items():
        assert data.symbol == symbol
        assert data.timeframe == "1m"
        assert data.synthetic
        assert data.source == "synthetic:seed=7"
        assert list(data.candles.columns) == list(CANDLE_COLUMNS)
        assert data.candles["date"].dtype == "datetime64[ns, UTC]"
        assert len(data.candles) == 43_200
        assert validate_candles(data.candles, source=symbol, timeframe="1m").clean
        assert data.funding is not None
        assert validate_funding(data.funding, source=symbol).clean
        assert data.mark is not None
        assert validate_mark(data.mark, source=symbol).clean


def test_generate_market_when_same_seed_gives_byte_identical_frames() -> None:
    first, second = generate_market(seed=3, bars=5_000), generate_market(seed=3, bars=5_000)
    for symbol in first:
        for name in ("candles", "funding", "mark"):
            a, b = getattr(first[symbol], name), getattr(second[symbol], name)
            pd.testing.assert_frame_equal(a, b)
            assert _frame_bytes(a) == _frame_bytes(b)


def test_generate_market_when_symbols_is_one_string_treats_it_as_one_symbol() -> None:
    assert list(generate_market("SOLUSDT", bars=10)) == ["SOLUSDT"]


def test_generate_market_when_seed_differs_gives_different_prices() -> None:
    a = generate_market(seed=1, bars=1_000)["BTCUSDT"].candles["close"]
    b = generate_market(seed=2, bars=1_000)["BTCUSDT"].candles["close"]
    assert not np.array_equal(a.to_numpy(), b.to_numpy())


def test_generate_market_when_symbol_added_keeps_others_unchanged() -> None:
    alone = generate_market(("BTCUSDT",), bars=2_000)["BTCUSDT"].candles
    together = generate_market(("SOLUSDT", "BTCUSDT"), bars=2_000)["BTCUSDT"].candles
    pd.testing.assert_frame_equal(alone, together)


def test_generate_market_when_known_symbols_starts_near_real_levels() -> None:
    market = generate_market(("BTCUSDT", "ETHUSDT", "FOOUSDT"), bars=10)
    assert market["BTCUSDT"].candles["open"].iloc[0] == 60_000.0
    assert market["ETHUSDT"].candles["open"].iloc[0] == 3_000.0
    assert market["FOOUSDT"].candles["open"].iloc[0] == 100.0


def test_generate_market_when_symbols_share_a_factor_they_correlate(
    market: dict[str, SymbolData],
) -> None:
    btc = np.diff(np.log(market["BTCUSDT"].candles["close"].to_numpy()))
    eth = np.diff(np.log(market["ETHUSDT"].candles["close"].to_numpy()))
    assert 0.5 < np.corrcoef(btc, eth)[0, 1] < 0.95


def test_generate_market_when_returns_examined_shows_volatility_clustering() -> None:
    close = generate_market(("BTCUSDT",), bars=43_200)["BTCUSDT"].candles["close"].to_numpy()
    r = np.abs(np.diff(np.log(close)))
    lagged = np.corrcoef(r[:-10], r[10:])[0, 1]
    assert lagged > 0.05


def test_generate_market_when_funding_generated_stays_within_cap_every_8h() -> None:
    data = generate_market(bars=43_200)["BTCUSDT"]
    assert data.funding is not None
    assert data.mark is not None
    rate = data.funding["rate"].to_numpy()
    assert np.all(np.abs(rate) <= FUNDING_CAP)
    steps = np.diff(data.funding["date"].to_numpy(dtype="datetime64[ns]").view(np.int64))
    assert set(steps.tolist()) == {8 * 3600 * 10**9}
    assert len(data.funding) == 90
    assert (data.funding["date"].dt.hour % 8 == 0).all()
    assert data.mark["date"].equals(data.funding["date"])


def test_generate_market_when_other_timeframe_bars_follow_it() -> None:
    data = generate_market(("BTCUSDT",), bars=500, timeframe="1h", start="2024-06-01")["BTCUSDT"]
    assert data.candles["date"].iloc[1] - data.candles["date"].iloc[0] == pd.Timedelta("1h")
    assert validate_candles(data.candles, source="x", timeframe="1h").clean


def test_generate_market_when_defaults_runs_well_under_a_second() -> None:
    generate_market(bars=1_000)
    start = time.perf_counter()
    generate_market()
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bars": 0}, "bars must be at least 1"),
        ({"seed": -1}, "seed must be non-negative"),
        ({"start": "2025-01-01 00:00:30"}, "not on the UTC 1m grid"),
        ({"start": "not a date"}, "bad start"),
        ({"timeframe": "1x"}, "bad timeframe"),
    ],
)
def test_generate_market_when_bad_argument_raises(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        generate_market(**kwargs)  # type: ignore[arg-type]
