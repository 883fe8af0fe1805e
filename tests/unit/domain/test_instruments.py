"""Instrument grids: rounding never moves a price already on the grid and never adds quantity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_trader.domain.errors import InvalidOrderError
from quantum_trader.domain.instruments import BINANCE_USDM, generic_instrument, resolve_instrument

GRIDS = sorted(BINANCE_USDM)


@given(sym=st.sampled_from(GRIDS), n=st.integers(1, 10**9))
def test_round_price_when_price_is_decimal_on_grid_returns_it_exactly(sym: str, n: int) -> None:
    inst = BINANCE_USDM[sym]
    price = float(f"{n * 10**-inst.price_decimals:.{inst.price_decimals}f}")
    assert inst.round_price(price, up=True) == price
    assert inst.round_price(price, up=False) == price


@given(sym=st.sampled_from(GRIDS), qty=st.floats(0, 1e6, allow_nan=False))
def test_round_qty_down_when_any_quantity_never_exceeds_it_and_is_on_grid(
    sym: str, qty: float
) -> None:
    inst = BINANCE_USDM[sym]
    q = inst.round_qty_down(qty)
    assert q <= qty + 1e-9
    assert qty - q < inst.lot_size + 1e-9
    assert abs(q / inst.lot_size - round(q / inst.lot_size)) < 1e-6


def test_round_price_when_off_grid_rounds_in_the_asked_direction() -> None:
    btc = BINANCE_USDM["BTCUSDT"]
    assert btc.round_price(100.04, up=True) == 100.1
    assert btc.round_price(100.06, up=False) == 100.0
    assert btc.round_price(107348.7, up=False) == 107348.7


def test_check_order_when_reduce_only_skips_min_notional() -> None:
    btc = BINANCE_USDM["BTCUSDT"]
    with pytest.raises(InvalidOrderError, match="notional"):
        btc.check_order(0.001, 50_000.0, reduce_only=False)
    btc.check_order(0.001, 50_000.0, reduce_only=True)


def test_generic_instrument_when_unknown_symbol_gets_a_fine_grid_for_its_price() -> None:
    inst = resolve_instrument("FOOUSDT", 0.05)
    assert inst.tick_size == pytest.approx(1e-7)
    assert inst.lot_size == pytest.approx(10.0)
    assert resolve_instrument("BTCUSDT", 1.0) is BINANCE_USDM["BTCUSDT"]
    with pytest.raises(ValueError, match="reference price"):
        generic_instrument("X", 0.0)
