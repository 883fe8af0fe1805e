"""Accounting rules, each pinned to a case computed by hand in the comments."""

from __future__ import annotations

import pytest

from quantum_trader.domain.errors import ConfigError, InsufficientMarginError
from quantum_trader.domain.instruments import Instrument
from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.trading import Fill, Liquidity, MarginMode, TradeStatus
from quantum_trader.portfolio.account import Account

INST = Instrument(
    "TESTUSDT",
    "TEST",
    "USDT",
    0.1,
    0.001,
    0.001,
    5.0,
    maintenance_margin_rate=0.005,
    max_leverage=100,
)
OTHER = Instrument(
    "OTHRUSDT", "OTHR", "USDT", 0.01, 0.01, 0.01, 5.0, maintenance_margin_rate=0.01, max_leverage=50
)
REL = 1e-9


def fill(
    side: OrderSide,
    qty: float,
    price: float,
    fee_rate: float = 0.0004,
    sym: str = "TESTUSDT",
    ts: int = 0,
) -> Fill:
    return Fill(f"c{ts}", sym, side, qty, price, qty * price * fee_rate, Liquidity.TAKER, ts)


def account(cash: float = 10_000.0, **kw: object) -> Account:
    return Account(cash, {"TESTUSDT": INST, "OTHRUSDT": OTHER}, **kw)  # type: ignore[arg-type]


def test_apply_fill_when_opening_long_charges_taker_fee_and_sets_entry() -> None:
    acct = account()
    acct.apply_fill(fill(OrderSide.BUY, 1.0, 100.0))
    # fee = 1 * 100 * 0.0004 = 0.04
    assert acct.wallet == pytest.approx(9_999.96, rel=REL)
    assert acct.positions["TESTUSDT"].quantity == 1.0
    assert acct.positions["TESTUSDT"].entry_price == 100.0
    assert acct.fees_total == pytest.approx(0.04, rel=REL)


def test_apply_fill_when_adding_averages_entry_and_when_reducing_realizes_pnl() -> None:
    acct = account()
    acct.apply_fill(fill(OrderSide.BUY, 1.0, 100.0, ts=1))
    acct.apply_fill(fill(OrderSide.BUY, 1.0, 110.0, ts=2))
    pos = acct.positions["TESTUSDT"]
    assert pos.entry_price == pytest.approx(105.0, rel=REL)  # (100 + 110) / 2
    realized = acct.apply_fill(fill(OrderSide.SELL, 1.0, 120.0, ts=3))
    assert realized == pytest.approx(15.0, rel=REL)  # (120 - 105) * 1
    assert pos.quantity == pytest.approx(1.0)
    assert pos.entry_price == pytest.approx(105.0, rel=REL)
    # wallet = 10000 + 15 - (0.04 + 0.044 + 0.048)
    assert acct.wallet == pytest.approx(10_000 + 15 - 0.132, rel=REL)


def test_apply_fill_when_crossing_zero_closes_trade_and_opens_reverse_at_fill_price() -> None:
    acct = account()
    acct.apply_fill(fill(OrderSide.BUY, 1.0, 100.0, ts=1))
    realized = acct.apply_fill(fill(OrderSide.SELL, 3.0, 90.0, ts=2))
    assert realized == pytest.approx(-10.0, rel=REL)  # (90 - 100) * 1
    pos = acct.positions["TESTUSDT"]
    assert pos.quantity == pytest.approx(-2.0)
    assert pos.entry_price == 90.0
    (closed,) = acct.closed_trades
    assert closed.status is TradeStatus.CLOSED
    assert closed.side is OrderSide.BUY
    assert closed.exit_price == 90.0
    # The reversal fill's fee (3 * 90 * 0.0004 = 0.108) splits 1/3 to the closed trade.
    assert closed.fees == pytest.approx(0.04 + 0.036, rel=REL)
    assert closed.net_pnl == pytest.approx(-10.0 - 0.076, rel=REL)
    opened = acct.open_trades["TESTUSDT"]
    assert opened.side is OrderSide.SELL
    assert opened.quantity == pytest.approx(2.0)
    assert opened.fees == pytest.approx(0.072, rel=REL)


def test_apply_funding_when_long_and_rate_positive_long_pays() -> None:
    acct = account()
    acct.apply_fill(fill(OrderSide.BUY, 2.0, 100.0, fee_rate=0.0))
    payment = acct.apply_funding("TESTUSDT", 0.0001, 105.0, 8)
    assert payment is not None
    assert payment.amount == pytest.approx(-0.021, rel=REL)  # -2 * 105 * 0.0001
    assert acct.wallet == pytest.approx(10_000 - 0.021, rel=REL)
    assert acct.open_trades["TESTUSDT"].funding == pytest.approx(-0.021, rel=REL)


def test_apply_funding_when_short_and_rate_positive_short_receives() -> None:
    acct = account()
    acct.apply_fill(fill(OrderSide.SELL, 2.0, 100.0, fee_rate=0.0))
    payment = acct.apply_funding("TESTUSDT", 0.0001, 95.0, 8)
    assert payment is not None
    assert payment.amount == pytest.approx(0.019, rel=REL)  # -(-2) * 95 * 0.0001


def test_apply_funding_when_flat_pays_nothing() -> None:
    acct = account()
    assert acct.apply_funding("TESTUSDT", 0.01, 100.0, 8) is None
    assert acct.wallet == 10_000.0


def test_equity_is_wallet_plus_unrealized() -> None:
    acct = account()
    acct.apply_fill(fill(OrderSide.BUY, 1.0, 100.0, fee_rate=0.0))
    acct.apply_fill(fill(OrderSide.SELL, 10.0, 50.0, fee_rate=0.0, sym="OTHRUSDT"))
    marks = {"TESTUSDT": 110.0, "OTHRUSDT": 45.0}
    # unrealized = 1 * (110 - 100) + (-10) * (45 - 50) = 10 + 50
    assert acct.equity(marks) == pytest.approx(10_060.0, rel=REL)
    snap = acct.snapshot(marks, 0)
    # initial margin at 1x: 110 + 450; maintenance: 110 * 0.005 + 450 * 0.01
    assert snap.initial_margin == pytest.approx(560.0, rel=REL)
    assert snap.maintenance_margin == pytest.approx(0.55 + 4.5, rel=REL)


def test_check_margin_when_cross_order_exceeds_equity_rejects_with_figures() -> None:
    acct = account(cash=100.0, leverage=10.0)
    # 10 @ 100 at 10x needs 100 of margin, but the fee (0.4) leaves 99.6 of equity.
    with pytest.raises(InsufficientMarginError) as info:
        acct.check_margin("TESTUSDT", 10.0, 100.0, 0.4, {"TESTUSDT": 100.0, "OTHRUSDT": 1.0})
    assert info.value.required == pytest.approx(100.0)
    assert info.value.available == pytest.approx(99.6)
    acct.check_margin("TESTUSDT", 9.9, 100.0, 0.396, {"TESTUSDT": 100.0, "OTHRUSDT": 1.0})


def test_check_margin_when_order_only_reduces_always_passes() -> None:
    acct = account(cash=100.0, leverage=10.0)
    acct.apply_fill(fill(OrderSide.BUY, 9.0, 100.0, fee_rate=0.0))
    # Price collapsed: equity = 100 + 9 * (50 - 100) = -350, yet closing must be allowed.
    acct.check_margin("TESTUSDT", -9.0, 50.0, 0.18, {"TESTUSDT": 50.0, "OTHRUSDT": 1.0})


def test_check_margin_when_isolated_needs_free_wallet_for_margin_and_fee() -> None:
    acct = account(cash=100.0, leverage=5.0, margin_mode=MarginMode.ISOLATED)
    acct.apply_fill(fill(OrderSide.BUY, 2.0, 100.0, fee_rate=0.0))  # locks 200 / 5 = 40
    marks = {"TESTUSDT": 100.0, "OTHRUSDT": 1.0}
    with pytest.raises(InsufficientMarginError):
        acct.check_margin("OTHRUSDT", 300.0, 1.0, 0.12, marks)  # needs 60 + 0.12 > 60 free
    acct.check_margin("OTHRUSDT", 299.0, 1.0, 0.0, marks)


def test_isolated_liquidation_price_when_long_and_short_match_hand_formula() -> None:
    acct = account(leverage=10.0, margin_mode=MarginMode.ISOLATED)
    acct.apply_fill(fill(OrderSide.BUY, 1.0, 100.0, fee_rate=0.0))
    # M = 10, mmr = 0.005: (100 - 10) / (1 - 0.005)
    assert acct.isolated_liquidation_price("TESTUSDT") == pytest.approx(90 / 0.995, rel=REL)
    acct2 = account(leverage=10.0, margin_mode=MarginMode.ISOLATED)
    acct2.apply_fill(fill(OrderSide.SELL, 1.0, 100.0, fee_rate=0.0))
    assert acct2.isolated_liquidation_price("TESTUSDT") == pytest.approx(110 / 1.005, rel=REL)


def test_liquidate_isolated_when_triggered_loses_exactly_the_margin() -> None:
    acct = account(leverage=10.0, margin_mode=MarginMode.ISOLATED)
    acct.apply_fill(fill(OrderSide.BUY, 1.0, 100.0, fee_rate=0.0))
    liq = acct.liquidate_isolated("TESTUSDT", 5)
    assert liq.liquidation
    assert acct.wallet == pytest.approx(10_000 - 10.0, rel=REL)
    # The clearance fee is the maintenance margin left at the liquidation price.
    assert liq.fee == pytest.approx(90 / 0.995 * 0.005, rel=1e-9)
    (trade,) = acct.closed_trades
    assert trade.status is TradeStatus.LIQUIDATED
    assert trade.net_pnl == pytest.approx(-10.0, rel=REL)
    assert acct.positions["TESTUSDT"].is_flat


def test_liquidate_cross_when_equity_positive_leaves_zero_wallet() -> None:
    acct = account(cash=100.0, leverage=10.0)
    acct.apply_fill(fill(OrderSide.BUY, 10.0, 100.0, fee_rate=0.0))
    # At 90: equity = 100 + 10 * (90 - 100) = 0 <= maintenance 4.5.
    fills = acct.liquidate_cross({"TESTUSDT": 90.5, "OTHRUSDT": 1.0}, 7)
    assert [f.symbol for f in fills] == ["TESTUSDT"]
    assert fills[0].fee == pytest.approx(5.0, rel=REL)  # equity left: 100 - 95
    assert acct.wallet == pytest.approx(0.0, abs=1e-9)
    assert acct.insurance_cover == 0.0


def test_liquidate_cross_when_gap_below_bankruptcy_insurance_covers_the_rest() -> None:
    acct = account(cash=100.0, leverage=10.0)
    acct.apply_fill(fill(OrderSide.BUY, 10.0, 100.0, fee_rate=0.0))
    acct.liquidate_cross({"TESTUSDT": 80.0, "OTHRUSDT": 1.0}, 7)
    assert acct.wallet == 0.0
    assert acct.insurance_cover == pytest.approx(100.0, rel=REL)  # equity was -100
    assert acct.wallet == pytest.approx(
        acct.starting_cash
        + acct.realized_total
        - acct.fees_total
        + acct.funding_total
        + acct.insurance_cover,
        abs=1e-9,
    )


def test_account_when_leverage_above_instrument_max_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="exceeds"):
        account(leverage=75.0)


def test_wallet_identity_holds_after_mixed_activity() -> None:
    acct = account()
    acct.apply_fill(fill(OrderSide.BUY, 1.5, 100.0, ts=1))
    acct.apply_funding("TESTUSDT", 0.0003, 101.0, 2)
    acct.apply_fill(fill(OrderSide.SELL, 4.0, 104.3, ts=3))
    acct.apply_fill(fill(OrderSide.SELL, 30.0, 2.5, sym="OTHRUSDT", ts=4))
    acct.apply_funding("OTHRUSDT", -0.0002, 2.4, 5)
    acct.apply_fill(fill(OrderSide.BUY, 2.5, 99.1, ts=6))
    expected = acct.starting_cash + acct.realized_total - acct.fees_total + acct.funding_total
    assert acct.wallet == pytest.approx(expected, rel=1e-12)
    trades = acct.all_trades()
    assert sum(t.realized_pnl for t in trades) == pytest.approx(acct.realized_total, rel=1e-12)
    assert sum(t.fees for t in trades) == pytest.approx(acct.fees_total, rel=1e-12)
    assert sum(t.funding for t in trades) == pytest.approx(acct.funding_total, rel=1e-12)
