"""The Binance USDT-M live venue, with ccxt as the real client, against a local fake exchange.

Every request goes over HTTP to ``FakeBinanceUsdm`` on 127.0.0.1, signed by ccxt with HMAC and
checked by the fake. Waits go to a recording sleep (nothing really sleeps) except the client's
own HTTP timeout (0.3 s) in the timeout tests, where the fake stalls for real.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from quantum_trader.cli.app import app
from quantum_trader.domain.clock import ManualClock, WallClock
from quantum_trader.domain.errors import (
    ConfigError,
    ExchangePayloadError,
    InsufficientMarginError,
    InvalidOrderError,
    RateLimitedError,
    RejectedError,
    TransientError,
)
from quantum_trader.domain.orders import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from quantum_trader.domain.trading import MarginMode
from quantum_trader.execution.live.config import (
    BinanceCredentials,
    BinanceEnvironment,
    BinanceUsdmSettings,
)
from quantum_trader.execution.live.venue import BinanceUsdmVenue
from quantum_trader.testing.fake_binance import FakeBinanceUsdm, Fault

pytestmark = pytest.mark.timeout(30)

KEY, SECRET = "test-key", "test-secret"
ORDER = ("POST", "/fapi/v1/order")


class OffsetClock:
    """The wall clock moved by ``offset_ms`` (an exchange whose clock differs from ours)."""

    def __init__(self, offset_ms: int) -> None:
        self.offset_ns = offset_ms * 1_000_000

    def now_ns(self) -> int:
        return WallClock().now_ns() + self.offset_ns


class RecordingSleep:
    """A sleep that writes down how long it was asked to wait and moves ``clock`` if given."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.waits: list[float] = []
        self.clock = clock

    def __call__(self, secs: float) -> None:
        self.waits.append(secs)
        if self.clock is not None:
            self.clock.advance(round(secs * 1e9))


@pytest.fixture
def fake() -> Iterator[FakeBinanceUsdm]:
    with FakeBinanceUsdm(api_key=KEY, api_secret=SECRET) as server:
        yield server


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


def make_venue(
    fake: FakeBinanceUsdm,
    sleep: RecordingSleep,
    *,
    credentials: BinanceCredentials | None = None,
    clock: ManualClock | None = None,
    **settings: object,
) -> BinanceUsdmVenue:
    options: dict[str, object] = {"api_url": fake.base_url, "rate_limit_ms": 0, "timeout_secs": 0.3}
    options.update(settings)
    venue = BinanceUsdmVenue(
        credentials or BinanceCredentials(KEY, SECRET),
        BinanceUsdmSettings(**options),  # type: ignore[arg-type]
        clock=clock or ManualClock(1_800_000_000_000_000_000),
        sleep=sleep,
        rng=random.Random(7),
    )
    return venue


@pytest.fixture
def venue(fake: FakeBinanceUsdm, sleep: RecordingSleep) -> Iterator[BinanceUsdmVenue]:
    v = make_venue(fake, sleep)
    v.load_instruments()
    yield v
    v.close()


def market(cid: str, qty: float = 0.01, side: OrderSide = OrderSide.BUY, **kw: object) -> Order:
    return Order(cid, "BTCUSDT", side, OrderType.MARKET, qty, 0, **kw)  # type: ignore[arg-type]


def limit(cid: str, price: float, symbol: str = "BTCUSDT", qty: float = 0.01) -> Order:
    return Order(cid, symbol, OrderSide.BUY, OrderType.LIMIT, qty, 0, price=price)


# --------------------------------------------------------------------- instruments, data
def test_load_instruments_when_signed_reads_filters_and_first_bracket(
    venue: BinanceUsdmVenue,
) -> None:
    btc, eth = venue.instruments["BTCUSDT"], venue.instruments["ETHUSDT"]
    assert (btc.tick_size, btc.lot_size, btc.min_qty, btc.min_notional) == (0.1, 0.001, 0.001, 100)
    assert (eth.tick_size, eth.min_notional) == (0.01, 20.0)
    assert (btc.base, btc.quote) == ("BTC", "USDT")
    assert (btc.maintenance_margin_rate, btc.max_leverage) == (0.004, 125.0)


def test_load_instruments_when_public_only_uses_exchange_info_margin(
    fake: FakeBinanceUsdm, sleep: RecordingSleep
) -> None:
    public = BinanceUsdmVenue(
        None,
        BinanceUsdmSettings(api_url=fake.base_url, rate_limit_ms=0),
        clock=ManualClock(0),
        sleep=sleep,
    )
    found = public.load_instruments(["ETHUSDT"])
    assert list(found) == ["ETHUSDT"]
    assert found["ETHUSDT"].maintenance_margin_rate == pytest.approx(0.025)
    assert fake.requests_to("GET", "/fapi/v1/leverageBracket") == []
    with pytest.raises(InvalidOrderError, match="DOGEUSDT"):
        public.load_instruments(["DOGEUSDT"])


def test_market_data_when_served_parses_klines_funding_and_time(venue: BinanceUsdmVenue) -> None:
    bars = venue.klines("BTCUSDT", "1m", limit=5)
    assert len(bars) == 5
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
    assert [b.ts_event for b in bars] == sorted(b.ts_event for b in bars)
    assert bars[1].ts_event - bars[0].ts_event == 60_000_000_000
    rate = venue.funding_rate("BTCUSDT")
    assert (rate.symbol, rate.rate, rate.mark_price) == ("BTCUSDT", 0.0001, 60000.0)
    history = venue.funding_history("BTCUSDT", limit=3)
    assert len(history) == 3
    assert history[1].ts_event - history[0].ts_event == 8 * 3600 * 10**9
    assert venue.server_time_ns() > 0


# --------------------------------------------------------------------- orders
def test_submit_when_market_order_sends_our_client_order_id_and_fetches_it(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    done = venue.submit(market("w1-BTCUSDT-1"))
    assert (done.client_order_id, done.status) == ("w1-BTCUSDT-1", OrderStatus.FILLED)
    assert (done.filled_qty, done.avg_fill_price) == (0.01, 60000.0)
    (sent,) = fake.requests_to(*ORDER)
    assert sent.signed
    assert sent.params["newClientOrderId"] == "w1-BTCUSDT-1"
    assert (sent.params["quantity"], sent.params["type"]) == ("0.010", "MARKET")
    assert "signature" in sent.params
    assert "timestamp" in sent.params
    again = venue.order("w1-BTCUSDT-1")
    assert again is not None
    assert again.status is OrderStatus.FILLED
    assert venue.has_order("w1-BTCUSDT-1")
    assert not venue.has_order("w1-BTCUSDT-404", "BTCUSDT")


def test_submit_when_limit_order_rests_then_fills_when_the_price_comes(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    order = Order(
        "w1-BTCUSDT-L", "BTCUSDT", OrderSide.BUY, OrderType.LIMIT, 0.01, 0, price=59000.0,
        time_in_force=TimeInForce.GTX,
    )  # fmt: skip
    resting = venue.submit(order)
    assert resting.status is OrderStatus.ACCEPTED
    assert fake.requests_to(*ORDER)[0].params["price"] == "59000.0"
    assert fake.requests_to(*ORDER)[0].params["timeInForce"] == "GTX"
    assert [o.client_order_id for o in venue.open_orders()] == ["w1-BTCUSDT-L"]
    fake.set_mark("BTCUSDT", "58900")
    filled = venue.order("w1-BTCUSDT-L")
    assert filled is not None
    assert (filled.status, filled.avg_fill_price) == (OrderStatus.FILLED, 59000.0)
    assert venue.open_orders() == []


def test_submit_when_id_already_at_exchange_returns_it_and_sends_nothing(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    first = venue.submit(market("w1-BTCUSDT-2"))
    second = venue.submit(market("w1-BTCUSDT-2"))
    assert second.status is first.status is OrderStatus.FILLED
    assert len(fake.requests_to(*ORDER)) == 1
    assert venue.positions() == {"BTCUSDT": 0.01}


def test_submit_when_id_is_used_by_a_different_order_refuses_it(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    venue.submit(market("w1-reused"))
    with pytest.raises(RejectedError, match="different order") as raised:
        venue.submit(market("w1-reused", qty=0.02))
    assert raised.value.reason == "client_order_id_reused"
    assert len(fake.requests_to(*ORDER)) == 1


def test_signed_call_when_local_clock_drifted_resyncs_and_succeeds(
    sleep: RecordingSleep,
) -> None:
    with FakeBinanceUsdm(api_key=KEY, api_secret=SECRET, clock=OffsetClock(90_000)) as ahead:
        venue = make_venue(ahead, sleep)
        assert venue.positions() == {}
        statuses = [r.status for r in ahead.requests_to("GET", "/fapi/v3/positionRisk")]
        assert statuses == [400, 200]  # -1021 once, then signed with the exchange's time
        assert len(sleep.waits) == 1


def test_submit_when_create_times_out_but_went_through_finds_it_and_does_not_resend(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm, sleep: RecordingSleep
) -> None:
    fake.inject(*ORDER, Fault.stall(1.0, process="before"))
    done = venue.submit(market("w1-BTCUSDT-3"))
    assert done.status is OrderStatus.FILLED
    assert len(fake.requests_to(*ORDER)) == 1
    assert len(fake.orders_with_client_id("w1-BTCUSDT-3")) == 1
    ((what, _attempt, wait, error),) = venue.retries
    assert what == "create order w1-BTCUSDT-3"
    assert isinstance(error, TransientError)
    assert sleep.waits == [wait]
    assert venue.positions() == {"BTCUSDT": 0.01}


def test_submit_when_create_times_out_and_was_dropped_sends_it_once_more(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    fake.inject(*ORDER, Fault.stall(1.0, process="never"))
    done = venue.submit(market("w1-BTCUSDT-4"))
    assert done.status is OrderStatus.FILLED
    assert len(fake.requests_to(*ORDER)) == 2
    assert len(fake.orders_with_client_id("w1-BTCUSDT-4")) == 1
    assert venue.positions() == {"BTCUSDT": 0.01}


def test_submit_when_timed_out_create_lands_after_the_resend_still_one_order(
    fake: FakeBinanceUsdm, sleep: RecordingSleep
) -> None:
    venue = make_venue(fake, sleep)
    venue.load_instruments()
    fake.inject(*ORDER, Fault.stall(0.8, process="after"))
    done = venue.submit(market("w1-BTCUSDT-5"))
    assert done.status is OrderStatus.FILLED
    fake.stop()  # lets the stalled first request land now: the exchange refuses the id (-4116)
    assert len(fake.orders_with_client_id("w1-BTCUSDT-5")) == 1
    # In arrival order: the stalled first create was refused when it landed, the resend took.
    assert [r.status for r in fake.requests_to(*ORDER)] == [400, 200]


def test_submit_when_create_answer_is_unreadable_looks_up_before_resending(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    fake.inject(*ORDER, Fault.malformed("<html>gateway</html>", status=200))
    done = venue.submit(market("w1-BTCUSDT-6"))
    assert done.status is OrderStatus.FILLED
    lookups = fake.requests_to("GET", "/fapi/v1/order")
    assert len(lookups) == 2  # before the first send, and after the unreadable answer
    assert len(fake.orders_with_client_id("w1-BTCUSDT-6")) == 1


def test_submit_when_rate_limited_waits_retry_after_then_succeeds(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm, sleep: RecordingSleep
) -> None:
    fake.inject(*ORDER, Fault.rate_limited(3), Fault.rate_limited(3))
    done = venue.submit(market("w1-BTCUSDT-7"))
    assert done.status is OrderStatus.FILLED
    assert [r.status for r in fake.requests_to(*ORDER)] == [429, 429, 200]
    assert len(sleep.waits) == 2
    assert all(w >= 3.0 for w in sleep.waits)
    errors = [e for _w, _a, _s, e in venue.retries]
    assert all(isinstance(e, RateLimitedError) and e.retry_after_secs == 3.0 for e in errors)
    assert "-1003" in str(errors[0])


def test_read_when_rate_limited_every_time_raises_transient_error_with_retry_after(
    fake: FakeBinanceUsdm, sleep: RecordingSleep
) -> None:
    venue = make_venue(fake, sleep, max_attempts=3)
    fake.inject("GET", "/fapi/v3/account", *[Fault.rate_limited(2)] * 3)
    with pytest.raises(RateLimitedError) as raised:
        venue.equity()
    assert isinstance(raised.value, TransientError)
    assert raised.value.retry_after_secs == 2.0
    assert len(sleep.waits) == 2
    assert min(sleep.waits) >= 2.0


def test_read_when_ip_banned_for_longer_than_allowed_raises_without_waiting(
    fake: FakeBinanceUsdm, sleep: RecordingSleep
) -> None:
    clock = ManualClock(1_800_000_000_000_000_000)
    venue = make_venue(fake, sleep, clock=clock)
    until_ms = clock.now_ns() // 1_000_000 + 600_000
    fake.inject("GET", "/fapi/v3/positionRisk", Fault.banned(until_ms, retry_after_secs=600))
    with pytest.raises(RateLimitedError, match="600") as raised:
        venue.positions()
    assert raised.value.retry_after_secs == 600.0
    assert sleep.waits == []


def test_read_when_server_errors_then_recovers_backs_off_with_bounded_jitter(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm, sleep: RecordingSleep
) -> None:
    fake.inject("GET", "/fapi/v3/positionRisk", Fault.server_error(503), Fault.server_error(502))
    assert venue.positions() == {}
    assert len(sleep.waits) == 2
    assert 0.25 <= sleep.waits[0] <= 0.5
    assert 0.5 <= sleep.waits[1] <= 1.0


def test_requests_when_paced_wait_on_the_injected_clock(
    fake: FakeBinanceUsdm, sleep: RecordingSleep
) -> None:
    clock = ManualClock(1_800_000_000_000_000_000)
    sleep.clock = clock
    venue = make_venue(fake, sleep, clock=clock, rate_limit_ms=50)
    venue.server_time_ns()
    venue.server_time_ns()
    venue.server_time_ns()
    assert sleep.waits == [pytest.approx(0.05), pytest.approx(0.05)]


def test_submit_when_margin_insufficient_raises_with_the_figures(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    venue.set_leverage("BTCUSDT", 20)
    with pytest.raises(InsufficientMarginError, match="-2019") as raised:
        venue.submit(market("w1-BTCUSDT-8", qty=5.0))
    assert raised.value.available == 10_000.0
    assert raised.value.required == pytest.approx(5.0 * 60_000 / 20)
    assert "notional 300000.00" in str(raised.value)
    assert len(fake.requests_to(*ORDER)) == 1  # never retried


def test_submit_when_exchange_refuses_precision_or_notional_raises_invalid_order(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    fake.inject(*ORDER, Fault.precision(), Fault.min_notional("150"))
    with pytest.raises(InvalidOrderError) as precision:
        venue.submit(market("w1-BTCUSDT-9"))
    assert precision.value.reason == "binance_-1111"
    with pytest.raises(InvalidOrderError, match="no smaller than 150") as notional:
        venue.submit(market("w1-BTCUSDT-10"))
    assert notional.value.reason == "binance_-4164"
    assert len(fake.requests_to(*ORDER)) == 2


def test_submit_when_order_breaks_known_filters_refuses_before_sending(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    with pytest.raises(InvalidOrderError, match="lot size"):
        venue.submit(market("w1-a", qty=0.0015))
    with pytest.raises(InvalidOrderError, match="minimum"):
        venue.submit(limit("w1-b", price=50_000.0, qty=0.001))  # 50 USDT < 100
    with pytest.raises(InvalidOrderError, match="tick"):
        venue.submit(limit("w1-c", price=60_000.05))
    with pytest.raises(InvalidOrderError, match="client order ids"):
        venue.submit(market("x" * 37))
    assert fake.requests_to(*ORDER) == []


def test_submit_when_reduce_only_against_no_position_is_refused_by_the_exchange(
    venue: BinanceUsdmVenue,
) -> None:
    with pytest.raises(InvalidOrderError) as raised:
        venue.submit(market("w1-r", side=OrderSide.SELL, reduce_only=True))
    assert raised.value.reason == "binance_-2022"


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [("wrong-key", SECRET, "-2015"), (KEY, "wrong-secret", "-1022")],
)
def test_signed_call_when_credentials_are_wrong_raises_config_error(
    fake: FakeBinanceUsdm, sleep: RecordingSleep, key: str, secret: str, code: str
) -> None:
    venue = make_venue(fake, sleep, credentials=BinanceCredentials(key, secret))
    with pytest.raises(ConfigError, match=code) as raised:
        venue.balances()
    assert "wrong-secret" not in str(raised.value)
    assert "wrong-secret" not in repr(venue)
    assert sleep.waits == []


# --------------------------------------------------------------------- account
def test_positions_and_balances_when_holding_parse_the_exchange_figures(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    venue.submit(market("w1-p1", qty=0.02))
    venue.submit(market("w1-p2", qty=0.01, side=OrderSide.SELL))
    fake.set_mark("BTCUSDT", "61000")
    assert venue.positions() == {"BTCUSDT": 0.01}
    (pos,) = venue.position_details()
    assert (pos.entry_price, pos.mark_price, pos.unrealized_pnl) == (60000.0, 61000.0, 10.0)
    assert pos.margin_mode is MarginMode.CROSS
    fees = 0.03 * 60000 * 0.0004
    snapshot, balances = venue.account_snapshot()
    assert snapshot.wallet_balance == pytest.approx(10_000 - fees)
    assert snapshot.equity == pytest.approx(10_000 - fees + 10.0)
    assert balances["USDT"].wallet_balance == pytest.approx(10_000 - fees)
    assert venue.equity() == pytest.approx(snapshot.equity)


def test_cancel_all_when_orders_rest_cancels_per_symbol_and_returns_them(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    venue.submit(limit("w1-c1", 55_000.0))
    venue.submit(limit("w1-c2", 54_000.0))
    venue.submit(limit("w1-c3", 2_500.0, symbol="ETHUSDT"))
    canceled = venue.cancel_all(0, "BTCUSDT")
    assert sorted(o.client_order_id for o in canceled) == ["w1-c1", "w1-c2"]
    assert all(o.status is OrderStatus.CANCELED for o in canceled)
    assert [o.client_order_id for o in venue.open_orders()] == ["w1-c3"]
    assert [o.client_order_id for o in venue.cancel_all()] == ["w1-c3"]
    assert venue.open_orders() == []
    gone = venue.order("w1-c3")
    assert gone is not None
    assert gone.status is OrderStatus.CANCELED


def test_cancel_when_order_rests_cancels_it_and_when_filled_returns_none(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    venue.submit(limit("w1-k1", 55_000.0))
    canceled = venue.cancel("w1-k1")
    assert canceled is not None
    assert canceled.status is OrderStatus.CANCELED
    again = venue.cancel("w1-k1")  # a retried cancel whose first answer was lost
    assert again is not None
    assert again.status is OrderStatus.CANCELED
    venue.submit(market("w1-k2"))
    assert venue.cancel("w1-k2") is None  # filled
    fake.inject("DELETE", "/fapi/v1/order", Fault.stall(1.0, process="before"))
    venue.submit(limit("w1-k3", 55_000.0))
    lost = venue.cancel("w1-k3")
    assert lost is not None
    assert lost.status is OrderStatus.CANCELED


def test_submit_when_look_up_after_a_timeout_keeps_failing_says_outcome_unknown(
    fake: FakeBinanceUsdm, sleep: RecordingSleep
) -> None:
    venue = make_venue(fake, sleep, max_attempts=2)
    venue.load_instruments()
    fake.inject(*ORDER, Fault.stall(1.0, process="before"))
    fake.inject(
        "GET", "/fapi/v1/order", Fault.passthrough(), Fault.server_error(), Fault.server_error()
    )
    with pytest.raises(TransientError, match="outcome unknown"):
        venue.submit(market("w1-u1"))
    assert len(fake.requests_to(*ORDER)) == 1
    again = venue.submit(market("w1-u1"))  # a later try looks first and finds it
    assert again.status is OrderStatus.FILLED
    assert len(fake.requests_to(*ORDER)) == 1


def test_read_when_answer_is_malformed_raises_payload_error_naming_the_field(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm
) -> None:
    fake.inject(
        "GET",
        "/fapi/v3/positionRisk",
        Fault.malformed('[{"symbol": "BTCUSDT", "positionAmt": "NaN"}]'),
    )
    with pytest.raises(ExchangePayloadError) as raised:
        venue.positions()
    assert raised.value.field == "positionRisk[0].positionAmt"
    fake.inject("GET", "/fapi/v3/account", Fault.malformed("<html>502 Bad Gateway</html>"))
    with pytest.raises(ExchangePayloadError, match="expected an object"):
        venue.equity()


# --------------------------------------------------------------------- configuration
def test_environment_when_testnet_or_demo_points_ccxt_at_their_urls() -> None:
    for env, host in (
        (BinanceEnvironment.TESTNET, "https://testnet.binancefuture.com/fapi/v1"),
        (BinanceEnvironment.DEMO, "https://demo-fapi.binance.com/fapi/v1"),
        (BinanceEnvironment.MAINNET, "https://fapi.binance.com/fapi/v1"),
    ):
        v = BinanceUsdmVenue(None, BinanceUsdmSettings(environment=env), clock=WallClock())
        assert v.api_urls["fapiPrivate"] == host
        assert v.api_urls["fapiPublic"] == host
    # Signing for the testnet does not trip ccxt's "sandbox is deprecated" refusal.
    testnet = BinanceUsdmVenue(
        BinanceCredentials("k", "s"),
        BinanceUsdmSettings(environment=BinanceEnvironment.TESTNET),
        clock=WallClock(),
    )
    signed = testnet._exchange.sign("account", ["fapiPrivateV3"], "GET", {})
    assert signed["url"].startswith("https://testnet.binancefuture.com/fapi/v3/account?")


def test_credentials_when_printed_or_missing_never_show_the_secret() -> None:
    creds = BinanceCredentials("my-key-123", "my-secret-456")
    assert "my-key-123" not in repr(creds)
    assert "my-secret-456" not in repr(creds)
    venue = BinanceUsdmVenue(creds, clock=WallClock())
    assert "my-secret-456" not in repr(venue)
    assert "my-key-123" not in repr(venue)
    with pytest.raises(ConfigError, match="QT_BINANCE_SECRET"):
        BinanceCredentials.from_env({"QT_BINANCE_KEY": "k"})
    assert BinanceCredentials.from_env(
        {"QT_BINANCE_KEY": "k", "QT_BINANCE_SECRET": "s"}
    ) == BinanceCredentials("k", "s")


# --------------------------------------------------------------------- qtrader exchange check
def test_exchange_check_when_keys_work_prints_balances_positions_and_orders(
    venue: BinanceUsdmVenue, fake: FakeBinanceUsdm, monkeypatch: pytest.MonkeyPatch
) -> None:
    venue.submit(market("w1-cli-1"))
    venue.submit(limit("w1-cli-2", 55_000.0))
    monkeypatch.setenv("QT_BINANCE_KEY", KEY)
    monkeypatch.setenv("QT_BINANCE_SECRET", SECRET)
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["exchange", "check", "--api-url", fake.base_url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["balances"]["USDT"]["wallet_balance"] == pytest.approx(10_000 - 0.24)
    assert [p["symbol"] for p in report["positions"]] == ["BTCUSDT"]
    assert [o["client_order_id"] for o in report["open_orders"]] == ["w1-cli-2"]
    assert SECRET not in result.output
    table = CliRunner().invoke(app, ["exchange", "check", "--api-url", fake.base_url])
    assert table.exit_code == 0, table.output
    assert "BTCUSDT" in table.output
    assert "w1-cli-2" in table.output


def test_exchange_check_when_keys_missing_or_wrong_exits_2(
    fake: FakeBinanceUsdm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QT_BINANCE_KEY", raising=False)
    monkeypatch.delenv("QT_BINANCE_SECRET", raising=False)
    missing = CliRunner().invoke(app, ["exchange", "check", "--api-url", fake.base_url])
    assert missing.exit_code == 2
    monkeypatch.setenv("QT_BINANCE_KEY", KEY)
    monkeypatch.setenv("QT_BINANCE_SECRET", "not-the-secret")
    wrong = CliRunner().invoke(app, ["exchange", "check", "--api-url", fake.base_url])
    assert wrong.exit_code == 2
    assert "not-the-secret" not in wrong.output


def test_wire_log_when_debugging_never_shows_the_key_the_secret_or_a_signature(
    venue: BinanceUsdmVenue, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="quantum_trader.execution.live.wire"):
        venue.positions()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/fapi/v3/positionRisk" in text
    assert KEY not in text
    assert SECRET not in text
    assert "signature=***" in text
