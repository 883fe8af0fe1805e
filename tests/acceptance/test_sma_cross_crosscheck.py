"""Independent cross-check of the backtest engine on the sma_cross strategy.

The reference below recomputes sma_cross backtests from the written semantics with plain numpy
and pandas; it imports nothing from the engine but its public entry point, the settings, the
strategy, the market container and the instrument table (for the lot size):

- direction[t] = sign(SMA_fast - SMA_slow) of close, holding the previous value on ties and
  before the slow window fills; flat before the first signal.
- A target change decided at bar t's close (t < last bar) fills at bar t+1's open, taker fee
  ``|qty| * price * fee``; nothing is decided at the last bar.
- One-way net position; a reversal closes the old trade and opens a new one at the same fill,
  the fill's fee split pro rata by quantity.
- Funding at T: ``-q * mark * rate`` for the position after the fills at the open of the last
  bar opening <= T; mark = mark data at the latest date <= T if less than 60 s old, else that
  bar's open; funding after the last bar's close is ignored.
- Equity = cash + realized - fees + funding + unrealized at the close.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from quantum_trader.data.market import SymbolData
from quantum_trader.domain.instruments import BINANCE_USDM
from quantum_trader.engine.backtest import run_backtest
from quantum_trader.engine.settings import BacktestSettings
from quantum_trader.strategies.sma_cross import SmaCross

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

CASH = 10_000.0
FEE = 0.0004
BAR_NS = 60_000_000_000
MARK_MAX_AGE_NS = 60_000_000_000
REL = 1e-9


def _settings(*symbols: str) -> BacktestSettings:
    return BacktestSettings(
        symbols=symbols, cash=CASH, leverage=10, fee_taker=FEE, slippage_bps=0, funding=True
    )


# --------------------------------------------------------------------------- data


def _load_symbol(file: Callable[[str], Path], symbol: str) -> SymbolData:
    base = symbol.removesuffix("USDT")
    candles = pd.read_feather(file(f"{base}_USDT_USDT-1m-futures.feather"))
    candles = candles[["date", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
    fr = pd.read_feather(file(f"{base}_USDT_USDT-8h-funding_rate.feather"))
    mk = pd.read_feather(file(f"{base}_USDT_USDT-8h-mark.feather"))
    funding = pd.DataFrame({"date": fr["date"], "rate": fr["open"]})
    mark = pd.DataFrame({"date": mk["date"], "mark": mk["open"]})
    return SymbolData(symbol, "1m", candles, funding, mark, source=f"reference:{base}")


@pytest.fixture(scope="module")
def btc(reference_file: Callable[[str], Path]) -> SymbolData:
    return _load_symbol(reference_file, "BTCUSDT")


@pytest.fixture(scope="module")
def eth(reference_file: Callable[[str], Path]) -> SymbolData:
    return _load_symbol(reference_file, "ETHUSDT")


def _random_walk(symbol: str, n: int, seed: int, start_price: float) -> SymbolData:
    """Seeded synthetic 1m bars with 8h funding (slightly late stamps) and marks."""
    rng = np.random.default_rng(seed)
    close = np.round(start_price * np.exp(np.cumsum(rng.normal(0, 8e-4, n))), 1)
    open_ = np.round(np.concatenate([[start_price], close[:-1]]) + rng.normal(0, 2, n), 1)
    high = np.maximum(open_, close) + np.round(rng.uniform(0, 5, n), 1)
    low = np.minimum(open_, close) - np.round(rng.uniform(0, 5, n), 1)
    dates = pd.date_range("2024-03-01 05:00", periods=n, freq="1min", tz="UTC")
    candles = pd.DataFrame(
        {
            "date": dates,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(1, 10, n),
        }
    )
    f_dates = pd.date_range(pd.Timestamp("2024-03-01 08:00", tz="UTC"), dates[-1], freq="8h")
    m = len(f_dates)
    funding = pd.DataFrame(
        {"date": f_dates + pd.Timedelta(milliseconds=7), "rate": rng.normal(1e-4, 2e-4, m)}
    )
    mark = pd.DataFrame(
        {"date": f_dates, "mark": np.round(start_price * rng.uniform(0.9, 1.1, m), 1)}
    )
    return SymbolData(symbol, "1m", candles, funding, mark, source=f"synthetic:seed={seed}")


# --------------------------------------------------------------------------- reference model


def _sma(x: F64, n: int) -> F64:
    out = np.full(len(x), np.nan)
    out[n - 1 :] = sliding_window_view(x, n).mean(axis=1)
    return out


def _direction(close: F64, fast: int, slow: int) -> F64:
    """+1/-1 by the sign of SMA_fast - SMA_slow, holding the previous value on ties/NaN; 0 first."""
    f, s = _sma(close, fast), _sma(close, slow)
    raw = np.where(f > s, 1.0, np.where(f < s, -1.0, np.nan))
    return pd.Series(raw).ffill().fillna(0.0).to_numpy()


@dataclass(frozen=True)
class RefBook:
    """The reference outcome for one symbol on its own bars."""

    symbol: str
    ts: I64
    fills: pd.DataFrame  # time (ns), side, quantity, price, fee
    trades: pd.DataFrame  # side, quantity, entry/exit time (ns) and price, realized, fees, funding
    flow: F64  # wallet change at each bar (realized - fees + funding)
    unrealized: F64  # at each bar's close
    funding_total: float


def _funding_events(data: SymbolData, ts: I64) -> tuple[I64, F64, F64]:
    """(bar index, rate, price) of each funding time inside the data; price = mark or bar open."""
    if data.funding is None or data.funding.empty:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    f_ts = data.funding["date"].to_numpy("datetime64[ns]").astype(np.int64)
    rate = data.funding["rate"].to_numpy(np.float64)
    k = np.searchsorted(ts, f_ts, side="right") - 1
    keep = (k >= 0) & (f_ts < ts[-1] + BAR_NS)
    f_ts, rate, k = f_ts[keep], rate[keep], k[keep]
    price = data.candles["open"].to_numpy(np.float64)[k]
    if data.mark is not None and not data.mark.empty:
        m_ts = data.mark["date"].to_numpy("datetime64[ns]").astype(np.int64)
        m_px = data.mark["mark"].to_numpy(np.float64)
        j = np.searchsorted(m_ts, f_ts, side="right") - 1
        fresh = (j >= 0) & (f_ts - m_ts[np.maximum(j, 0)] < MARK_MAX_AGE_NS)
        price = np.where(fresh, m_px[np.maximum(j, 0)], price)
    return k, rate, price


def _book(data: SymbolData, pos: F64, fee_rate: float = FEE) -> RefBook:
    """Vectorized accounting of a per-bar position path (position held after each bar's open).

    Every fill either opens from flat or reverses the position (all sma_cross ever does).
    """
    ts = data.candles["date"].to_numpy("datetime64[ns]").astype(np.int64)
    open_ = data.candles["open"].to_numpy(np.float64)
    close = data.candles["close"].to_numpy(np.float64)
    n = len(ts)
    before = np.concatenate([[0.0], pos[:-1]])
    fb = np.flatnonzero(pos != before)
    old, new, px = before[fb], pos[fb], open_[fb]
    assert np.all((old == 0) | (np.sign(old) == -np.sign(new))), "reference handles reversals only"
    dq = new - old
    fee = np.abs(dq) * px * fee_rate
    close_fee = fee * np.abs(old) / np.abs(dq)
    open_fee = fee * np.abs(new) / np.abs(dq)

    # Trade i opens at fill i and is closed by fill i + 1 (a reversal), the last one stays open.
    side = np.sign(new)
    qty = np.abs(new)
    exit_px = np.concatenate([px[1:], [np.nan]])
    exit_ts = np.concatenate([ts[fb][1:], [np.iinfo(np.int64).min]])
    realized = np.concatenate([side[:-1] * qty[:-1] * (px[1:] - px[:-1]), [0.0]])
    fees = open_fee + np.concatenate([close_fee[1:], [0.0]])

    fk, rate, mark = _funding_events(data, ts)
    paid = -pos[fk] * mark * rate
    owner = np.searchsorted(fb, fk, side="right") - 1
    held = pos[fk] != 0
    funding = np.bincount(owner[held], weights=paid[held], minlength=len(fb))

    flow = np.zeros(n)
    np.add.at(flow, fb, np.concatenate([[0.0], realized[:-1]]) - fee)
    np.add.at(flow, fk, paid)
    last = np.searchsorted(fb, np.arange(n), side="right") - 1
    entry = np.where(last >= 0, px[np.maximum(last, 0)], 0.0)
    unrealized = np.where(pos != 0, pos * (close - entry), 0.0)

    fills = pd.DataFrame(
        {
            "time": ts[fb],
            "side": np.where(dq > 0, "buy", "sell"),
            "quantity": np.abs(dq),
            "price": px,
            "fee": fee,
        }
    )
    trades = pd.DataFrame(
        {
            "side": np.where(side > 0, "long", "short"),
            "quantity": qty,
            "entry_time": ts[fb],
            "entry_price": px,
            "exit_time": exit_ts,
            "exit_price": exit_px,
            "status": ["closed"] * (len(fb) - 1) + ["open"] * min(len(fb), 1),
            "realized_pnl": realized,
            "fees": fees,
            "funding": funding,
        }
    )
    return RefBook(data.symbol, ts, fills, trades, flow, unrealized, float(paid.sum()))


def _ref_qty(data: SymbolData, fast: int, slow: int, qty: float) -> RefBook:
    """Fixed-quantity sizing: fully vectorized, the position at bar t is the target at t - 1."""
    close = data.candles["close"].to_numpy(np.float64)
    target = _direction(close, fast, slow) * qty
    return _book(data, np.concatenate([[0.0], target[:-1]]))


def _ref_fraction(data: SymbolData, fast: int, slow: int, fraction: float) -> RefBook:
    """Equity-fraction sizing for one symbol: a loop over decision bars (sizing needs equity)."""
    ts = data.candles["date"].to_numpy("datetime64[ns]").astype(np.int64)
    open_ = data.candles["open"].to_numpy(np.float64)
    close = data.candles["close"].to_numpy(np.float64)
    lot = BINANCE_USDM[data.symbol].lot_size
    direction = _direction(close, fast, slow)
    decide = np.flatnonzero(np.diff(direction, prepend=0.0) != 0)
    decide = decide[decide < len(ts) - 1]
    fk, rate, mark = _funding_events(data, ts)

    wallet, q, entry, nf = CASH, 0.0, 0.0, 0
    fill_bars, fill_pos = [], []
    for d in decide.tolist():
        while nf < len(fk) and fk[nf] <= d:  # funding up to this bar, with the position held then
            wallet += -q * mark[nf] * rate[nf]
            nf += 1
        equity = wallet + q * (close[d] - entry)
        size = np.floor(fraction * equity / close[d] / lot + 1e-9) * lot
        target = direction[d] * size
        px = open_[d + 1]
        wallet += q * (px - entry) - abs(target - q) * px * FEE
        q, entry = target, px
        fill_bars.append(d + 1)
        fill_pos.append(target)
    pos = np.zeros(len(ts))
    if fill_bars:
        seg = np.searchsorted(np.asarray(fill_bars), np.arange(len(ts)), side="right") - 1
        pos = np.where(seg >= 0, np.asarray(fill_pos)[np.maximum(seg, 0)], 0.0)
    return _book(data, pos)


def _ref_equity(books: list[RefBook]) -> pd.Series:
    """Shared-wallet equity at each bar of the union timeline."""
    union = np.unique(np.concatenate([b.ts for b in books]))
    flow = np.zeros(len(union))
    unrealized = np.zeros(len(union))
    for b in books:
        at = np.searchsorted(union, b.ts)
        np.add.at(flow, at, b.flow)
        u = pd.Series(b.unrealized, index=at).reindex(np.arange(len(union))).ffill().fillna(0.0)
        unrealized += u.to_numpy()
    return pd.Series(CASH + np.cumsum(flow) + unrealized, index=pd.to_datetime(union, utc=True))


# --------------------------------------------------------------------------- comparisons


def _ns(col: pd.Series) -> I64:
    return col.to_numpy("datetime64[ns]").astype(np.int64)


def _first_difference(got: pd.DataFrame, ref: pd.DataFrame, symbol: str, rtol: float) -> None:
    """Fail naming the first trade whose times, side, quantity or prices differ."""

    def same_price(col: str) -> npt.NDArray[np.bool_]:
        a, b = got[col].to_numpy(np.float64), ref[col].to_numpy(np.float64)
        return (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= rtol * np.abs(b))

    bad = np.flatnonzero(
        (_ns(got["entry_time"]) != ref["entry_time"].to_numpy())
        | (_ns(got["exit_time"]) != ref["exit_time"].to_numpy())
        | (got["side"].to_numpy() != ref["side"].to_numpy())
        | ~np.isclose(got["quantity"].to_numpy(), ref["quantity"].to_numpy(), rtol=1e-12, atol=0)
        | ~same_price("entry_price")
        | ~same_price("exit_price")
    )
    assert not len(bad), (
        f"{symbol}: {len(bad)} trades differ (price rtol={rtol}), first #{bad[0]}:\n"
        f"engine\n{got.iloc[bad[0]].to_dict()}\nreference\n{ref.iloc[bad[0]].to_dict()}"
    )


ULPS = 1e-15  # relative: a few units in the last place of a price


def _symbol_trades(engine: pd.DataFrame, symbol: str) -> pd.DataFrame:
    got = engine[engine["symbol"] == symbol].sort_values("entry_time")
    return got.reset_index(drop=True)


def _assert_trades_match(engine: pd.DataFrame, ref: pd.DataFrame, symbol: str) -> None:
    got = _symbol_trades(engine, symbol)
    assert len(got) == len(ref), f"{symbol}: engine {len(got)} trades, reference {len(ref)}"
    _first_difference(got, ref, symbol, rtol=ULPS)
    assert got["status"].tolist() == ref["status"].tolist()
    for col in ("realized_pnl", "fees", "funding"):
        np.testing.assert_allclose(
            got[col].to_numpy(), ref[col].to_numpy(), rtol=REL, atol=REL, err_msg=f"{symbol} {col}"
        )
    np.testing.assert_allclose(
        got["net_pnl"].to_numpy(),
        (ref["realized_pnl"] - ref["fees"] + ref["funding"]).to_numpy(),
        rtol=REL,
        atol=REL,
        err_msg=f"{symbol} net_pnl",
    )


def _assert_fills_match(engine: pd.DataFrame, ref: pd.DataFrame, symbol: str) -> None:
    got = engine[engine["symbol"] == symbol].reset_index(drop=True)
    assert len(got) == len(ref), f"{symbol}: engine {len(got)} fills, reference {len(ref)}"
    assert (_ns(got["time"]) == ref["time"].to_numpy()).all()
    assert got["side"].tolist() == ref["side"].tolist()
    np.testing.assert_allclose(got["quantity"], ref["quantity"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(got["price"], ref["price"], rtol=ULPS, atol=0)
    np.testing.assert_allclose(got["fee"], ref["fee"], rtol=REL, atol=REL)
    assert not got["liquidation"].any()


def _assert_prices_exact(res: Any, books: list[RefBook]) -> None:
    """The spec's exactness: with 0 bps slippage every fill, entry and exit is the bar's open."""
    for b in books:
        fills = res.fills[res.fills["symbol"] == b.symbol]
        trades = _symbol_trades(res.trades, b.symbol)
        off = np.flatnonzero(fills["price"].to_numpy() != b.fills["price"].to_numpy())
        assert not len(off), (
            f"{b.symbol}: {len(off)} of {len(fills)} fills are not at exactly the bar's open; "
            f"first {fills.iloc[off[0]].to_dict()} vs open {b.fills['price'].iloc[off[0]]!r}"
        )
        _first_difference(trades, b.trades, b.symbol, rtol=0.0)


def _assert_run_matches(res: Any, books: list[RefBook]) -> None:
    trades, fills = res.trades, res.fills
    summary, equity = res.summary, res.equity
    for b in books:
        _assert_trades_match(trades, b.trades, b.symbol)
        _assert_fills_match(fills, b.fills, b.symbol)
    ref_eq = _ref_equity(books)
    assert (equity.index == ref_eq.index).all()
    np.testing.assert_allclose(equity["equity"].to_numpy(), ref_eq.to_numpy(), rtol=0, atol=1e-6)
    funding = sum(b.funding_total for b in books)
    fees = sum(float(b.fills["fee"].sum()) for b in books)
    assert summary["funding"] == pytest.approx(funding, rel=REL, abs=REL)
    assert summary["fees"] == pytest.approx(fees, rel=REL, abs=REL)
    assert summary["final_equity"] == pytest.approx(float(ref_eq.iloc[-1]), rel=REL)
    assert equity["equity"].iloc[-1] == pytest.approx(float(ref_eq.iloc[-1]), rel=REL)
    # Last, once everything else is known to agree: prices exactly, not just to an ulp.
    _assert_prices_exact(res, books)


# --------------------------------------------------------------------------- tests


@pytest.mark.reference_data
def test_sma_cross_when_real_btc_fixed_qty_matches_vectorized_reference(btc: SymbolData) -> None:
    ref = _ref_qty(btc, 10, 50, 0.05)
    assert len(btc.candles) == 43_199
    assert len(ref.trades) > 100  # a meaningful number of reversals
    assert ref.funding_total != 0.0
    res = run_backtest(_settings("BTCUSDT"), SmaCross(fast=10, slow=50, qty=0.05), {"BTCUSDT": btc})
    _assert_run_matches(res, [ref])


@pytest.mark.reference_data
def test_sma_cross_when_real_btc_and_eth_share_wallet_matches_reference(
    btc: SymbolData, eth: SymbolData
) -> None:
    books = [_ref_qty(btc, 10, 50, 0.05), _ref_qty(eth, 10, 50, 0.05)]
    res = run_backtest(
        _settings("BTCUSDT", "ETHUSDT"),
        SmaCross(fast=10, slow=50, qty=0.05),
        {"BTCUSDT": btc, "ETHUSDT": eth},
    )
    _assert_run_matches(res, books)


@pytest.mark.reference_data
def test_sma_cross_when_real_btc_fraction_sizing_matches_reference(btc: SymbolData) -> None:
    ref = _ref_fraction(btc, 10, 50, 0.2)
    assert ref.trades["quantity"].nunique() > 1  # sizing really follows equity
    res = run_backtest(_settings("BTCUSDT"), SmaCross(fast=10, slow=50), {"BTCUSDT": btc})
    _assert_run_matches(res, [ref])


def _hand_market() -> SymbolData:
    """200 bars: flat at 1000, +1/bar, -2/bar, +3/bar; each open is the previous close + 0.3."""
    t = np.arange(200)
    close = np.select(
        [t < 50, t < 100, t < 150],
        [1000.0 + 0 * t, 1000.0 + (t - 49), 1050.0 - 2 * (t - 99)],
        950.0 + 3 * (t - 149),
    ).astype(np.float64)
    open_ = np.round(np.concatenate([[1000.0], close[:-1] + 0.3]), 1)
    dates = pd.date_range("2024-01-01", periods=200, freq="1min", tz="UTC")
    candles = pd.DataFrame(
        {
            "date": dates,
            "open": open_,
            "high": np.maximum(open_, close) + 0.5,
            "low": np.minimum(open_, close) - 0.5,
            "close": close,
            "volume": 1.0,
        }
    )
    ms5, hour = pd.Timedelta(milliseconds=5), pd.Timedelta(hours=1)
    funding = pd.DataFrame(
        {
            "date": [dates[10] + ms5, dates[60] + ms5, dates[102] + ms5, dates[-1] + hour],
            "rate": [0.001, 0.0001, 0.0003, 0.01],
        }
    )
    # A fresh mark for the bar-60 funding; the one 2 minutes before bar 102 is too old to use.
    mark = pd.DataFrame({"date": [dates[60], dates[100]], "mark": [1234.5, 999.0]})
    return SymbolData("BTCUSDT", "1m", candles, funding, mark, source="hand-made")


def test_sma_cross_when_hand_made_series_matches_hand_arithmetic() -> None:
    data = _hand_market()
    ref = _ref_qty(data, 2, 4, 1.0)
    res = run_backtest(_settings("BTCUSDT"), SmaCross(fast=2, slow=4, qty=1.0), {"BTCUSDT": data})
    _assert_run_matches(res, [ref])

    d = data.candles["date"]
    # Bars 3..49: SMA2 == SMA4 == 1000, flat. Bar 50 (close 1001): SMA2 = 1000.5 > SMA4 = 1000.25
    # -> long 1, filled at bar 51's open 1001.3. Bar 101 (close 1046): SMA2 = (1048+1046)/2 = 1047
    # < SMA4 = (1049+1050+1048+1046)/4 = 1048.25 -> reverse, filled at bar 102's open 1046.3.
    # Bar 151 (close 956): SMA2 = 954.5 > SMA4 = 952.75 -> long again at bar 152's open 956.3.
    # Trade 1 (long 1): realized = 1046.3 - 1001.3 = 45;
    #   fees = 1*1001.3*0.0004 + (2*1046.3*0.0004)/2 = 0.40052 + 0.41852 = 0.81904;
    #   funding at bar 60 (mark 1234.5 is 5 ms old): -1*1234.5*0.0001 = -0.12345
    #   (the bar-10 funding finds the account flat); net = 45 - 0.81904 - 0.12345 = 44.05751.
    # Trade 2 (short 1): realized = 1046.3 - 956.3 = 90; fees = 0.41852 + 0.38252 = 0.80104;
    #   funding at bar 102 sees the short filled at that open, mark too old -> open 1046.3:
    #   -(-1)*1046.3*0.0003 = +0.31389.
    # Trade 3 (long 1) stays open; the funding after the last bar is ignored.
    # Final equity = 10000 + 45 + 90 - (0.40052 + 0.83704 + 0.76504) + (-0.12345 + 0.31389)
    #   + (1100 - 956.3) = 10276.88784.
    t = res.trades.sort_values("entry_time").reset_index(drop=True)
    assert t["side"].tolist() == ["long", "short", "long"]
    assert t["entry_time"].tolist() == [d[51], d[102], d[152]]
    assert t["entry_price"].tolist() == [1001.3, 1046.3, 956.3]
    assert t["exit_price"].iloc[:2].tolist() == [1046.3, 956.3]
    assert t["quantity"].tolist() == [1.0, 1.0, 1.0]
    assert t["realized_pnl"].iloc[:2].tolist() == pytest.approx([45.0, 90.0], rel=1e-12)
    assert t["fees"].iloc[:2].tolist() == pytest.approx([0.81904, 0.80104], rel=1e-12)
    assert t["funding"].tolist() == pytest.approx([-0.12345, 0.31389, 0.0], rel=1e-12, abs=1e-15)
    assert t["net_pnl"].iloc[0] == pytest.approx(44.05751, rel=1e-12)
    assert res.summary["final_equity"] == pytest.approx(10276.88784, rel=1e-12)
    assert res.summary["funding"] == pytest.approx(0.19044, rel=1e-12)


def _perturb_after(data: SymbolData, k: int, seed: int) -> SymbolData:
    c = data.candles.copy()
    factor = np.random.default_rng(seed).uniform(0.9, 1.1, len(c) - k - 1)
    for col in ("open", "high", "low", "close"):
        c.loc[k + 1 :, col] = np.round(c.loc[k + 1 :, col].to_numpy() * factor, 1)
    return SymbolData(data.symbol, data.timeframe, c, data.funding, data.mark, source="perturbed")


@pytest.mark.parametrize("sizing", [{"qty": 0.02}, {}], ids=["qty", "fraction"])
@pytest.mark.parametrize("k", [700, 2_000, 3_555])
def test_backtest_when_future_bars_change_past_fills_and_equity_unchanged(
    k: int, sizing: dict[str, float]
) -> None:
    base = _random_walk("BTCUSDT", 4_000, seed=11, start_price=30_000.0)
    moved = _perturb_after(base, k, seed=k)
    strat = SmaCross(fast=5, slow=20, **sizing)
    a = run_backtest(_settings("BTCUSDT"), strat, {"BTCUSDT": base})
    b = run_backtest(_settings("BTCUSDT"), strat, {"BTCUSDT": moved})
    cutoff = base.candles["date"].iloc[k]
    fa, fb = a.fills[a.fills["time"] <= cutoff], b.fills[b.fills["time"] <= cutoff]
    assert len(fa) > 20
    pd.testing.assert_frame_equal(fa, fb)
    pd.testing.assert_frame_equal(a.equity.iloc[: k + 1], b.equity.iloc[: k + 1])
    # The perturbation does reach the run after k (the check is not vacuous).
    assert not a.equity.iloc[k + 1 :].equals(b.equity.iloc[k + 1 :])


def test_backtest_when_run_twice_results_identical() -> None:
    market = {
        "BTCUSDT": _random_walk("BTCUSDT", 5_000, seed=3, start_price=30_000.0),
        "ETHUSDT": _random_walk("ETHUSDT", 5_000, seed=4, start_price=2_000.0),
    }
    runs = [
        run_backtest(_settings("BTCUSDT", "ETHUSDT"), SmaCross(fast=7, slow=30), market)
        for _ in range(2)
    ]
    assert len(runs[0].trades) > 20
    for attr in ("trades", "fills", "equity"):
        a, b = getattr(runs[0], attr), getattr(runs[1], attr)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert runs[0].summary["final_equity"] == runs[1].summary["final_equity"]


def test_reference_when_synthetic_fraction_sizing_matches_engine() -> None:
    """Fraction sizing and funding on synthetic data: runs without the reference data."""
    data = _random_walk("BTCUSDT", 4_000, seed=21, start_price=30_000.0)
    res = run_backtest(_settings("BTCUSDT"), SmaCross(fast=5, slow=20), {"BTCUSDT": data})
    _assert_run_matches(res, [_ref_fraction(data, 5, 20, 0.2)])


def test_fills_when_zero_slippage_price_is_exactly_the_bar_open() -> None:
    data = _random_walk("BTCUSDT", 4_000, seed=5, start_price=30_000.0)
    res = run_backtest(_settings("BTCUSDT"), SmaCross(fast=5, slow=20, qty=0.02), {"BTCUSDT": data})
    opens = data.candles.set_index("date")["open"].loc[res.fills["time"]].to_numpy()
    off = np.flatnonzero(res.fills["price"].to_numpy() != opens)
    assert len(res.fills) > 50
    assert not len(off), (
        f"{len(off)} of {len(res.fills)} fills are not at the bar's open; first: "
        f"{res.fills['price'].iloc[off[0]]!r} vs open {opens[off[0]]!r}"
    )


def test_trades_when_closed_by_one_fill_exit_price_is_exactly_that_fill_price() -> None:
    data = _random_walk("BTCUSDT", 4_000, seed=5, start_price=30_000.0)
    res = run_backtest(_settings("BTCUSDT"), SmaCross(fast=5, slow=20, qty=0.02), {"BTCUSDT": data})
    price_at = dict(zip(res.fills["time"], res.fills["price"], strict=True))
    closed = res.trades.dropna(subset=["exit_price"])
    entry = np.array([price_at[t] for t in res.trades["entry_time"]])
    exit_ = np.array([price_at[t] for t in closed["exit_time"]])
    assert (res.trades["entry_price"].to_numpy() == entry).all()
    off = np.flatnonzero(closed["exit_price"].to_numpy() != exit_)
    assert not len(off), (
        f"{len(off)} of {len(closed)} trades have an exit price other than their closing fill's; "
        f"first: {closed['exit_price'].iloc[off[0]]!r} vs fill {exit_[off[0]]!r}"
    )
