"""RiskGuard: every reason code from a hand-built case, fixed check order, fail closed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.policy import DEFAULT_LIMITS, Policy, RiskMode, TradingState
from quantum_trader.risk.guard import AccountView, OrderIntent, RiskDecision, RiskGuard, RiskReason

NOW = 1_000 * 1_000_000_000
MARKS = {"BTCUSDT": 100_000.0, "ETHUSDT": 2_500.0}


def account(
    positions: dict[str, float] | None = None, equity: float = 10_000.0, **kw: object
) -> AccountView:
    base: dict[str, object] = {
        "equity": equity,
        "day_start_equity": equity,
        "positions": positions if positions is not None else {},
        "marks": MARKS,
        "mark_ts_ns": {s: NOW for s in MARKS},
    }
    base.update(kw)
    return AccountView(**base)  # type: ignore[arg-type]


def intent(
    qty: float = 0.01, side: OrderSide = OrderSide.BUY, symbol: str = "BTCUSDT", **kw: object
) -> OrderIntent:
    base: dict[str, object] = {
        "symbol": symbol,
        "side": side,
        "quantity": qty,
        "price": MARKS[symbol],
        "ts_ns": NOW,
        "leverage": 5.0,
        "confidence": 0.9,
    }
    base.update(kw)
    return OrderIntent(**base)  # type: ignore[arg-type]


def guard(policy: Policy | None = None) -> RiskGuard:
    p = policy or Policy()
    return RiskGuard(lambda: p)


def test_check_when_everything_within_limits_approves() -> None:
    # 0.01 BTC = 1,000 notional: 0.1x equity; risk = margin 200 = 2% of equity (NORMAL allows 2%)
    assert guard().check(intent(), account()) == RiskDecision(True, RiskReason.APPROVED)


CASES = [
    (RiskReason.TRADING_HALTED, Policy(state=TradingState.HALTED), {}, {}),
    (RiskReason.REDUCE_ONLY, Policy(state=TradingState.REDUCING), {}, {}),
    (RiskReason.REDUCE_ONLY, Policy(mode=RiskMode.CRITICAL), {}, {}),
    (RiskReason.SYMBOL_NOT_ALLOWED, Policy(allowed_symbols=frozenset({"ETHUSDT"})), {}, {}),
    (RiskReason.PRICE_INVALID, None, {"price": float("nan")}, {}),
    (RiskReason.PRICE_INVALID, None, {"price": 120_000.0}, {}),  # 20% away from the mark
    (RiskReason.PRICE_STALE, None, {"ts_ns": NOW + 121 * 1_000_000_000}, {}),
    (RiskReason.LOW_CONFIDENCE, None, {"confidence": 0.5}, {}),
    (RiskReason.LEVERAGE, None, {"leverage": 11.0}, {}),
    (RiskReason.RISK_PER_TRADE, None, {"qty": 0.02}, {}),  # margin 400 = 4% of equity
    (RiskReason.RISK_PER_TRADE, None, {"stop_price": 70_000.0}, {}),  # 0.01 * 30,000 = 3%
    (RiskReason.POSITION_NOTIONAL, None, {"qty": 6.0, "leverage": 10.0}, {"equity": 1e9}),
    (
        RiskReason.OPEN_POSITIONS,
        None,
        {"symbol": "ETHUSDT", "qty": 0.1},
        {"positions": {f"S{i}USDT": 1.0 for i in range(10)}},
    ),
    (RiskReason.SYMBOL_EXPOSURE, None, {"qty": 0.11, "leverage": 10.0, "stop_price": 99_900.0}, {}),
    (
        RiskReason.GROSS_EXPOSURE,
        None,
        {"qty": 0.05, "leverage": 10.0, "stop_price": 99_900.0},
        {"positions": {"ETHUSDT": 11.0}},
    ),  # 5,000 + 27,500 = 3.25x equity
    (RiskReason.DAILY_LOSS, None, {}, {"day_start_equity": 10_600.0}),  # down 5.7% today
]


@pytest.mark.parametrize(("reason", "policy", "intent_kw", "account_kw"), CASES)
def test_check_when_a_limit_is_broken_denies_with_its_reason(
    reason: RiskReason,
    policy: Policy | None,
    intent_kw: dict[str, object],
    account_kw: dict[str, object],
) -> None:
    decision = guard(policy).check(intent(**intent_kw), account(**account_kw))
    assert not decision.approved
    assert decision.reason is reason, decision.detail


def test_check_when_orders_exceed_rate_window_denies_then_recovers() -> None:
    g = guard(Policy(max_orders_per_window=3, order_window_secs=10))
    acct = account()
    decisions = [g.check(intent(qty=0.001, ts_ns=NOW + i), acct).reason for i in range(4)]
    assert decisions == [RiskReason.APPROVED] * 3 + [RiskReason.ORDER_RATE]
    assert g.check(intent(qty=0.001, ts_ns=NOW + 10 * 1_000_000_000), acct).approved


def test_check_when_a_check_raises_denies_with_guard_error() -> None:
    class Exploding(dict[str, float]):
        def get(self, *args: object, **kwargs: object) -> float:  # type: ignore[override]
            raise RuntimeError("corrupt positions")

    decision = guard().check(intent(), account(positions=Exploding(BTCUSDT=1.0)))
    assert decision.reason is RiskReason.GUARD_ERROR
    assert "corrupt positions" in decision.detail


def test_check_when_reducing_in_reducing_state_approves_and_skips_limits() -> None:
    g = guard(Policy(state=TradingState.REDUCING))
    d = g.check(
        intent(qty=0.5, side=OrderSide.SELL, confidence=0.0, leverage=100.0),
        account({"BTCUSDT": 1.0}),
    )
    assert d.approved


def test_check_when_halted_only_emergency_reducing_close_passes() -> None:
    g = guard(Policy(state=TradingState.HALTED))
    held = account({"BTCUSDT": 1.0})
    assert g.check(intent(qty=1.0, side=OrderSide.SELL), held).reason is RiskReason.TRADING_HALTED
    assert g.check(intent(qty=1.0, side=OrderSide.SELL, emergency=True), held).approved
    assert not g.check(
        intent(qty=2.0, side=OrderSide.SELL, emergency=True), held
    ).approved  # a flip


def test_check_when_policy_changes_between_intents_uses_the_new_one() -> None:
    current = [Policy()]
    g = RiskGuard(lambda: current[0])
    assert g.check(intent(), account()).approved
    current[0] = current[0].changed(
        actor="ops", reason="test", ts_ns=NOW, state=TradingState.HALTED
    )
    assert g.check(intent(), account()).reason is RiskReason.TRADING_HALTED


def test_check_when_denied_calls_hook_and_counts_by_reason() -> None:
    seen: list[RiskReason] = []
    limits = dict(DEFAULT_LIMITS)
    g = RiskGuard(lambda: Policy(limits=limits), on_denied=lambda i, d: seen.append(d.reason))
    g.check(intent(leverage=50.0), account())
    g.check(intent(leverage=50.0), account())
    assert seen == [RiskReason.LEVERAGE, RiskReason.LEVERAGE]
    assert g.denials == {RiskReason.LEVERAGE: 2}
    assert replace(limits[RiskMode.NORMAL]).max_leverage == 10.0


def test_every_reason_code_is_produced_by_some_test() -> None:
    produced = {c[0] for c in CASES} | {
        RiskReason.APPROVED,
        RiskReason.ORDER_RATE,
        RiskReason.GUARD_ERROR,
    }
    assert produced == set(RiskReason)


def test_check_when_emergency_close_with_stale_price_still_approves() -> None:
    g = guard(Policy(state=TradingState.HALTED, allowed_symbols=frozenset({"ETHUSDT"})))
    stale = account({"BTCUSDT": 1.0}, mark_ts_ns={"BTCUSDT": 0, "ETHUSDT": 0})
    late = intent(qty=1.0, side=OrderSide.SELL, emergency=True, ts_ns=NOW + 3_600 * 1_000_000_000)
    assert g.check(late, stale).approved
    assert not g.check(replace(late, emergency=False), stale).approved
