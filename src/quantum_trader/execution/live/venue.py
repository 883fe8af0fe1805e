"""BinanceUsdmVenue: Binance USDT-M perpetual futures through ccxt.

The venue uses ccxt (``ccxt.binanceusdm``, synchronous) for what ccxt is good at — signing,
URLs per environment, request pacing and error classes — and calls its raw endpoints, so every
answer is read by ``parsing`` (strict, field by field). Endpoints: ``exchangeInfo``,
``leverageBracket``, ``time``, ``klines``, ``premiumIndex``, ``fundingRate``, ``v3/account``,
``v3/positionRisk``, ``leverage``, ``order`` (POST, GET, DELETE), ``openOrders``,
``allOpenOrders`` (DELETE).

**Idempotent submission.** Our client order id travels as ``newClientOrderId``. Before sending,
the venue asks the exchange for that id; if it exists, that order is returned and nothing is
sent. When a create fails with an unknown outcome (a timeout, a 5xx, a dropped connection, an
unreadable answer), the order may have gone through: the venue waits (backoff), looks the id up
again, and sends again only when the exchange says it does not have it; Binance's -4116 (id
already used) is a second guard, answered by a look-up. An order is never sent twice.

**Rate limits and reconnects.** ccxt's request pacing stays on (``enableRateLimit``), driven by
the injected clock and sleep instead of ``time.sleep``. A 429/418 (or -1003) becomes a
RateLimitedError carrying ``Retry-After``; the venue waits at least that long, with bounded
exponential backoff and jitter from a seeded RNG, and retries up to ``max_attempts`` (a wait
longer than ``max_retry_after_secs``, an IP ban, is raised instead). Network failures are
retried the same way: requests' connection pool opens a new connection on the next attempt.
Rejections (insufficient margin, invalid orders, bad credentials) are never retried.

**Compared with PaperVenue** (what ``TradingWorker`` calls): ``submit``, ``has_order``,
``order``, ``positions``, ``open_orders``, ``cancel_all`` and ``equity`` behave the same, with
these differences: ``submit`` returns the exchange's order (a new object) and may raise
TransientError / RejectedError (PaperVenue records a rejection on the order instead);
``has_order`` and ``order`` need the symbol for an id this venue did not send itself (Binance
looks orders up per symbol); ``cancel_all`` takes the clock's time only for symmetry and
returns the orders that were open just before; there is no ``advance`` (the market moves by
itself), no ``account`` object (use ``account_snapshot``) and no journal (the exchange is the
truth). Stop orders (Binance's separate algo-order service) are not supported yet.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import ccxt

from quantum_trader.domain.clock import Clock
from quantum_trader.domain.errors import (
    ExchangePayloadError,
    InsufficientMarginError,
    InvalidOrderError,
    QuantumTraderError,
    RateLimitedError,
    RejectedError,
    TransientError,
)
from quantum_trader.domain.instruments import Instrument
from quantum_trader.domain.orders import Order, OrderStatus, OrderTrigger, OrderType, TimeInForce
from quantum_trader.domain.trading import AccountSnapshot
from quantum_trader.execution.live.client import UsdmClient, WireLog, fapi_urls
from quantum_trader.execution.live.config import (
    BinanceCredentials,
    BinanceEnvironment,
    BinanceUsdmSettings,
)
from quantum_trader.execution.live.errors import (
    DuplicateClientOrderId,
    OrderNotFound,
    binance_code,
    translate,
)
from quantum_trader.execution.live.parsing import (
    AssetBalance,
    FundingRate,
    FundingRecord,
    Kline,
    LivePosition,
    parse_account,
    parse_funding_history,
    parse_funding_rate,
    parse_instruments,
    parse_klines,
    parse_order,
    parse_orders,
    parse_positions,
    parse_server_time,
)
from quantum_trader.execution.live.retry import Backoff

T = TypeVar("T")

_NS_PER_MS: Final = 1_000_000
_CLIENT_ORDER_ID: Final = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_TIME_IN_FORCE: Final = {
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
    TimeInForce.GTX: "GTX",
}
_LOG = logging.getLogger(__name__)

RetryHook = Callable[[str, int, float, QuantumTraderError], None]


class BinanceUsdmVenue:
    """The live venue on Binance USDT-M (module docstring).

    Attributes:
        instruments: The symbols' filters, after ``load_instruments``.
        retries: Every wait before a retry: (what, attempt, seconds, error). Also sent to
            ``on_retry`` when given.
    """

    def __init__(
        self,
        credentials: BinanceCredentials | None,
        settings: BinanceUsdmSettings | None = None,
        *,
        clock: Clock,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        on_retry: RetryHook | None = None,
    ) -> None:
        """Build the ccxt client; nothing is sent until the first call.

        Args:
            credentials: API key and secret; None allows only public market data.
            settings: Environment, timeouts, retries, pacing, an alternative base URL.
            clock: Time for pacing, ban ends and order timestamps (WallClock live).
            sleep: How to wait (``time.sleep`` live; tests pass one that records).
            rng: Jitter of the backoff; seed it for reproducible waits.
            on_retry: Called before every wait before a retry (logging, metrics).
        """
        self.settings = settings or BinanceUsdmSettings()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._backoff = Backoff(self.settings.backoff_base_secs, self.settings.backoff_max_secs)
        self._on_retry = on_retry
        self.retries: list[tuple[str, int, float, QuantumTraderError]] = []
        self.instruments: dict[str, Instrument] = {}
        self._symbols: dict[str, str] = {}  # client order id -> symbol, for ids we sent
        self._leverage: dict[str, int] = {}  # as set through this venue
        self._has_credentials = credentials is not None
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": int(self.settings.timeout_secs * 1000),
            "options": {
                "defaultType": "swap",
                "fetchCurrencies": False,
                "recvWindow": self.settings.recv_window_ms,
                "disableFuturesSandboxWarning": True,
            },
        }
        if credentials is not None:
            config["apiKey"] = credentials.api_key
            config["secret"] = credentials.api_secret
        if self.settings.rate_limit_ms is not None:
            config["rateLimit"] = self.settings.rate_limit_ms
        secrets = () if credentials is None else (credentials.api_key, credentials.api_secret)
        config["logger"] = WireLog(secrets)
        self._exchange = UsdmClient(config, clock, sleep)
        if self.settings.environment is BinanceEnvironment.TESTNET:
            self._exchange.set_sandbox_mode(True)
        elif self.settings.environment is BinanceEnvironment.DEMO:
            self._exchange.enable_demo_trading(True)
        if self.settings.api_url is not None:
            self._exchange.urls["api"] = {
                **self._exchange.urls["api"],
                **fapi_urls(self.settings.api_url),
            }

    def __repr__(self) -> str:
        """Name the environment and URL, never the credentials."""
        where = self.settings.api_url or self.settings.environment.value
        return (
            f"BinanceUsdmVenue({where}, credentials={'set' if self._has_credentials else 'none'})"
        )

    @property
    def api_urls(self) -> dict[str, str]:
        """The USDT-M base URLs in use (after the environment and ``api_url`` applied)."""
        urls = self._exchange.urls["api"]
        return {k: str(urls[k]) for k in fapi_urls("") if k in urls}

    # ----------------------------------------------------------------- plumbing
    def _call(self, what: str, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """One request through ccxt's raw endpoint ``method``, errors translated."""
        try:
            return getattr(self._exchange, method)(dict(params or {}))
        except ccxt.BaseError as exc:
            error = translate(exc, what, now_ms=self._clock.now_ns() // _NS_PER_MS)
            if binance_code(getattr(exc, "qt_body", None))[0] == -1021:
                self._resync_clock()  # our timestamps drifted out of recvWindow: the retry works
            raise error from exc

    def _resync_clock(self) -> None:
        try:
            server_ms = self.server_time_ns() // _NS_PER_MS
        except QuantumTraderError:
            return
        # ccxt signs with its own milliseconds() minus this offset (Binance's nonce).
        offset = int(self._exchange.milliseconds()) - server_ms
        self._exchange.options["timeDifference"] = offset
        _LOG.warning("Binance clock offset %d ms: signed timestamps corrected", -offset)

    def _retrying(self, what: str, attempt_once: Callable[[], T]) -> T:
        """Run ``attempt_once`` until it succeeds, retrying TransientErrors with backoff."""
        for attempt in range(self.settings.max_attempts):
            try:
                return attempt_once()
            except TransientError as exc:
                if attempt + 1 >= self.settings.max_attempts:
                    raise
                self._wait(what, attempt, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, what: str, attempt: int, exc: QuantumTraderError) -> None:
        wait = self._backoff.delay(attempt, self._rng)
        asked = exc.retry_after_secs if isinstance(exc, TransientError) else None
        if asked is not None:
            if asked > self.settings.max_retry_after_secs:
                raise RateLimitedError(
                    f"{what}: the exchange asks to wait {asked:.0f} s, longer than "
                    f"max_retry_after_secs ({self.settings.max_retry_after_secs:.0f} s): {exc}",
                    retry_after_secs=asked,
                ) from exc
            wait = max(wait, asked)
        self.retries.append((what, attempt, wait, exc))
        if self._on_retry is not None:
            self._on_retry(what, attempt, wait, exc)
        _LOG.warning("%s; retry %d in %.2f s", exc, attempt + 1, wait)
        self._sleep(wait)

    def _get(self, what: str, method: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._retrying(what, lambda: self._call(what, method, params))

    # ----------------------------------------------------------------- market data
    def server_time_ns(self) -> int:
        """The exchange's clock."""
        return parse_server_time(self._get("server time", "fapiPublicGetTime"))

    def load_instruments(self, symbols: list[str] | None = None) -> dict[str, Instrument]:
        """Load every USDT perpetual's filters (or only ``symbols``) into ``instruments``.

        With credentials and ``settings.load_brackets``, the first leverage bracket gives each
        symbol's maintenance-margin rate and maximum leverage.
        """
        info = self._get("exchange info", "fapiPublicGetExchangeInfo")
        brackets = None
        if self._has_credentials and self.settings.load_brackets:
            brackets = self._get("leverage brackets", "fapiPrivateGetLeverageBracket")
        found = parse_instruments(info, brackets, quote=self.settings.quote_asset)
        if symbols is not None:
            missing = sorted(set(symbols) - set(found))
            if missing:
                raise InvalidOrderError(
                    f"not trading on Binance USDT-M: {', '.join(missing)}", reason="symbol"
                )
            found = {s: found[s] for s in symbols}
        self.instruments = found
        return found

    def klines(
        self, symbol: str, interval: str = "1m", *, start_ns: int | None = None, limit: int = 500
    ) -> list[Kline]:
        """Candles of ``symbol`` from ``start_ns`` (or the latest ``limit``), oldest first."""
        params: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": limit}
        if start_ns is not None:
            params["startTime"] = start_ns // _NS_PER_MS
        return parse_klines(self._get(f"klines {symbol}", "fapiPublicGetKlines", params))

    def funding_rate(self, symbol: str) -> FundingRate:
        """The current funding rate, mark price and next funding time of ``symbol``."""
        raw = self._get(f"funding rate {symbol}", "fapiPublicGetPremiumIndex", {"symbol": symbol})
        return parse_funding_rate(raw)

    def funding_history(
        self, symbol: str, *, start_ns: int | None = None, limit: int = 100
    ) -> list[FundingRecord]:
        """Past funding settlements of ``symbol``, oldest first."""
        params: dict[str, Any] = {"symbol": symbol, "limit": limit}
        if start_ns is not None:
            params["startTime"] = start_ns // _NS_PER_MS
        raw = self._get(f"funding history {symbol}", "fapiPublicGetFundingRate", params)
        return parse_funding_history(raw)

    # ----------------------------------------------------------------- account
    def account_snapshot(self) -> tuple[AccountSnapshot, dict[str, AssetBalance]]:
        """The account's totals and each asset's balance."""
        raw = self._get("account", "fapiPrivateV3GetAccount")
        return parse_account(raw, self._clock.now_ns())

    def balances(self) -> dict[str, AssetBalance]:
        """Each margin asset's balance."""
        return self.account_snapshot()[1]

    def equity(self) -> float:
        """Wallet plus unrealized PnL (``totalMarginBalance``)."""
        return self.account_snapshot()[0].equity

    def position_details(self) -> list[LivePosition]:
        """Every open position as the exchange reports it."""
        return parse_positions(self._get("positions", "fapiPrivateV3GetPositionRisk"))

    def positions(self) -> dict[str, float]:
        """Signed quantity of every open position."""
        return {p.symbol: p.quantity for p in self.position_details()}

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set the leverage of ``symbol``'s position (Binance keeps it per symbol)."""
        self._get(
            f"set leverage {symbol}",
            "fapiPrivatePostLeverage",
            {"symbol": symbol, "leverage": leverage},
        )
        self._leverage[symbol] = leverage

    # ----------------------------------------------------------------- orders
    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders that can still fill (of ``symbol``, or of every symbol), oldest first."""
        params = {} if symbol is None else {"symbol": symbol}
        orders = parse_orders(self._get("open orders", "fapiPrivateGetOpenOrders", params))
        for o in orders:
            self._symbols[o.client_order_id] = o.symbol
        return sorted(orders, key=lambda o: o.ts_init)

    def order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        """The order with this client order id as the exchange has it now, or None."""
        symbol = symbol or self._symbols.get(client_order_id)
        if symbol is None:
            raise ValueError(
                f"order {client_order_id}: this venue did not send it; pass its symbol "
                "(Binance looks orders up per symbol)"
            )
        return self._retrying(
            f"look up order {client_order_id}", lambda: self._lookup(symbol, client_order_id)
        )

    def has_order(self, client_order_id: str, symbol: str | None = None) -> bool:
        """True when the exchange has an order with this client order id (in any state)."""
        return self.order(client_order_id, symbol) is not None

    def _lookup(self, symbol: str, client_order_id: str) -> Order | None:
        what = f"look up order {client_order_id}"
        try:
            raw = self._call(
                what,
                "fapiPrivateGetOrder",
                {"symbol": symbol, "origClientOrderId": client_order_id},
            )
        except OrderNotFound:
            return None
        found = parse_order(raw)
        self._symbols[client_order_id] = found.symbol
        return found

    def submit(self, order: Order) -> Order:
        """Send ``order`` once and return the exchange's order (module docstring).

        Raises:
            InvalidOrderError: the order breaks the symbol's filters (checked before sending)
                or the exchange refused it as invalid.
            InsufficientMarginError: the exchange refused it for margin; ``available`` is the
                account's available balance read just after, ``required`` the order's initial
                margin at the leverage set through ``set_leverage`` (NaN when not set here).
            TransientError: the exchange could not be reached, or kept throttling, for
                ``max_attempts`` tries; the order was not sent, or a look-up found nothing.
        """
        request = self._order_request(order)
        cid, symbol = order.client_order_id, order.symbol
        known = self._retrying(f"look up order {cid}", lambda: self._lookup(symbol, cid))
        if known is not None:
            return _same_order(order, known)
        what = f"create order {cid}"
        for attempt in range(self.settings.max_attempts):
            try:
                raw = self._call(what, "fapiPrivatePostOrder", request)
                self._symbols[cid] = symbol
                return parse_order(raw)
            except DuplicateClientOrderId as exc:
                known = self._retrying(f"look up order {cid}", lambda: self._lookup(symbol, cid))
                if known is None:
                    raise RejectedError(
                        f"{what}: the exchange says the id is used but has no such order",
                        reason=exc.reason,
                    ) from exc
                return known
            except InsufficientMarginError as exc:
                raise self._margin_error(order, exc) from exc
            except (TransientError, ExchangePayloadError) as exc:
                if attempt + 1 >= self.settings.max_attempts:
                    raise TransientError(
                        f"{what}: not confirmed after {attempt + 1} attempts: {exc}"
                    ) from exc
                self._wait(what, attempt, exc)
                if isinstance(exc, RateLimitedError):
                    continue  # a throttled request was not processed: send again
                # The outcome is unknown: the order may be at the exchange. Ask first.
                known = self._look_up_after_unknown(what, symbol, cid)
                if known is not None:
                    self._symbols[cid] = symbol
                    return known
        raise AssertionError("unreachable")  # pragma: no cover

    def _look_up_after_unknown(self, what: str, symbol: str, cid: str) -> Order | None:
        try:
            return self._retrying(f"look up order {cid}", lambda: self._lookup(symbol, cid))
        except TransientError as exc:
            # Neither sent again nor known: say so, so nobody resends without looking first
            # (submit itself always looks first, and Binance refuses a used id: -4116).
            raise TransientError(
                f"{what}: outcome unknown (the order may be at the exchange) and the look-up "
                f"failed: {exc}",
                retry_after_secs=exc.retry_after_secs,
            ) from exc

    def _order_request(self, order: Order) -> dict[str, Any]:
        if not _CLIENT_ORDER_ID.match(order.client_order_id):
            raise InvalidOrderError(
                f"order {order.client_order_id!r}: Binance client order ids are 1-36 characters "
                "of letters, digits and . : / _ -",
                reason="client_order_id",
            )
        if order.type is OrderType.STOP_MARKET:
            raise InvalidOrderError(
                f"order {order.client_order_id}: stop orders are not supported by the live venue",
                reason="order_type",
            )
        inst = self.instruments.get(order.symbol)
        if inst is None:
            raise InvalidOrderError(
                f"order {order.client_order_id}: unknown symbol {order.symbol} "
                "(call load_instruments first)",
                reason="symbol",
            )
        price = order.price if order.type is OrderType.LIMIT else None
        inst.check_order(
            order.quantity, price or 0.0, reduce_only=order.reduce_only or price is None
        )
        request: dict[str, Any] = {
            "symbol": order.symbol,
            "side": order.side.value.upper(),
            "type": "LIMIT" if price is not None else "MARKET",
            "quantity": f"{order.quantity:.{inst.qty_decimals}f}",
            "newClientOrderId": order.client_order_id,
            "newOrderRespType": "RESULT",
        }
        if price is not None:
            if inst.round_price(price, up=False) != price:
                raise InvalidOrderError(
                    f"order {order.client_order_id}: price {price} is not a multiple of the tick "
                    f"{inst.tick_size}",
                    reason="tick_size",
                )
            request["price"] = f"{price:.{inst.price_decimals}f}"
            request["timeInForce"] = _TIME_IN_FORCE[order.time_in_force]
        if order.reduce_only:
            request["reduceOnly"] = "true"
        return request

    def _margin_error(self, order: Order, exc: InsufficientMarginError) -> InsufficientMarginError:
        try:
            available = self.account_snapshot()[0].available_balance
        except QuantumTraderError:
            available = float("nan")
        notional = order.quantity * (order.price or self._mark(order.symbol))
        leverage = self._leverage.get(order.symbol)
        required = notional / leverage if leverage else float("nan")
        return InsufficientMarginError(
            f"{exc} (order {order.client_order_id}: notional {notional:.2f}, initial margin "
            f"{required:.2f} at leverage {leverage or 'unknown'}, available balance "
            f"{available:.2f})",
            required=required,
            available=available,
        )

    def _mark(self, symbol: str) -> float:
        try:
            return self.funding_rate(symbol).mark_price
        except QuantumTraderError:
            return float("nan")

    def cancel(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        """Cancel one order; return it canceled, or None when it filled or is unknown.

        Canceling an order that is already canceled returns it (a retried cancel whose first
        answer was lost looks the same as a second cancel).
        """
        symbol = symbol or self._symbols.get(client_order_id)
        if symbol is None:
            raise ValueError(f"order {client_order_id}: pass its symbol")
        what = f"cancel order {client_order_id}"
        params = {"symbol": symbol, "origClientOrderId": client_order_id}
        try:
            return parse_order(self._get(what, "fapiPrivateDeleteOrder", params))
        except (OrderNotFound, RejectedError) as exc:
            if not (isinstance(exc, OrderNotFound) or exc.reason == "not_open"):
                raise
        # Not open: already filled or canceled, possibly by an earlier try of this very call
        # whose answer was lost. Report it canceled only if the exchange says so.
        known = self._retrying(
            f"look up order {client_order_id}", lambda: self._lookup(symbol, client_order_id)
        )
        return known if known is not None and known.status is OrderStatus.CANCELED else None

    def cancel_all(self, ts_ns: int | None = None, symbol: str | None = None) -> list[Order]:
        """Cancel every open order (of ``symbol``); return them, as canceled.

        ``ts_ns`` is accepted for PaperVenue's signature and unused: the exchange stamps the
        cancellations. Binance cancels per symbol, so without ``symbol`` this cancels on every
        symbol that has open orders.
        """
        del ts_ns
        before = self.open_orders(symbol)
        for sym in sorted({o.symbol for o in before} | ({symbol} if symbol else set())):
            self._get(f"cancel all {sym}", "fapiPrivateDeleteAllOpenOrders", {"symbol": sym})
        now = self._clock.now_ns()
        for o in before:
            o.apply(OrderTrigger.CANCEL, now)
        return before

    def close(self) -> None:
        """Close the HTTP session."""
        session = getattr(self._exchange, "session", None)
        if session is not None:
            session.close()


def _same_order(asked: Order, found: Order) -> Order:
    """``found`` when it is the order ``asked`` for; a different order under the id is refused."""
    if (found.side, found.type) != (asked.side, asked.type) or not math.isclose(
        found.quantity, asked.quantity, rel_tol=1e-9
    ):
        raise RejectedError(
            f"order {asked.client_order_id}: the exchange already has a different order under "
            f"this id ({found.side.value} {found.type.value} {found.quantity:g}, status "
            f"{found.status.value}); client order ids must not be reused",
            reason="client_order_id_reused",
        )
    return found
