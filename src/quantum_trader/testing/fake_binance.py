"""A local fake of the Binance USDT-M futures REST API, for testing the live adapter with ccxt.

``FakeBinanceUsdm`` is a real HTTP server on 127.0.0.1 (stdlib ``http.server``, one thread per
request) that answers the ``fapi`` endpoints the live adapter uses, the way Binance does: the
same paths, parameters, JSON shapes (numbers as strings), HTTP statuses and ``{"code", "msg"}``
error bodies. Point a ccxt ``binanceusdm`` at it by replacing its URLs
(``quantum_trader.execution.live.venue.fapi_urls``, or ``BinanceUsdmSettings(api_url=...)``).

What it keeps (``fake_binance_book.FakeUsdmBook``, which also writes the answers): the
symbols' filters, a mark price per symbol, one USDT wallet, one-way
positions, and every order it accepted (by ``orderId`` and ``clientOrderId``). Market orders
fill at the mark; limit orders that cross the mark fill there, others rest until
``set_mark`` moves the price through them (then they fill at their limit). A new order is
checked like Binance checks it: precision (-1111), tick (-4014), lot (-1013 LOT_SIZE), minimum
notional unless reduce-only (-4164), reduce-only direction (-2022), a client order id it has
seen (-4116), post-only that would take (-5022) and initial margin (-2019).

Signed endpoints check the ``X-MBX-APIKEY`` header (-2015, HTTP 401), the ``timestamp`` and its
``recvWindow`` against the server's clock (-1102, -1021) and the HMAC-SHA256 ``signature`` of
the query and body with the test secret (-1022), so the adapter's signing is exercised for real.

Faults are injected per endpoint (``inject("POST", "/fapi/v1/order", Fault.rate_limited(2))``)
and consumed in order, one per request: 429 with ``Retry-After`` and -1003, 418 (IP ban), -2019,
-1111, -4164, 5xx, a malformed body, and a stall longer than the client's timeout that processes
the request before the stall, after it, or never (the request is dropped).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import parse_qsl, urlsplit

from quantum_trader.domain.clock import Clock, WallClock
from quantum_trader.testing.fake_binance_book import (
    DEFAULT_SYMBOLS,
    ROUTES,
    BinanceFailure,
    FakeSymbol,
    FakeUsdmBook,
)

_NS_PER_MS: Final = 1_000_000

Answer = tuple[int, Any, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected answer. Build it with the class methods."""

    status: int = 0
    code: int = 0
    msg: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    raw_body: str | None = None
    stall_secs: float = 0.0
    process: Literal["before", "after", "never"] = "never"

    @classmethod
    def passthrough(cls) -> Fault:
        """Answer normally (holds a place in the queue, so a later fault hits a later request)."""
        return cls()

    @classmethod
    def rate_limited(cls, retry_after_secs: int = 1) -> Fault:
        """HTTP 429, ``Retry-After`` and Binance -1003 (request weight exceeded)."""
        return cls(
            429,
            -1003,
            "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute.",
            {"Retry-After": str(retry_after_secs)},
        )

    @classmethod
    def banned(cls, until_ms: int, retry_after_secs: int = 120) -> Fault:
        """HTTP 418: the IP is banned until ``until_ms`` for ignoring 429s."""
        return cls(
            418,
            -1003,
            f"Way too many requests; IP(127.0.0.1) banned until {until_ms}.",
            {"Retry-After": str(retry_after_secs)},
        )

    @classmethod
    def error(cls, status: int, code: int, msg: str) -> Fault:
        """Any Binance error answer."""
        return cls(status, code, msg)

    @classmethod
    def insufficient_margin(cls) -> Fault:
        """Binance -2019."""
        return cls(400, -2019, "Margin is insufficient.")

    @classmethod
    def precision(cls) -> Fault:
        """Binance -1111."""
        return cls(400, -1111, "Precision is over the maximum defined for this asset.")

    @classmethod
    def min_notional(cls, notional: str = "100") -> Fault:
        """Binance -4164."""
        return cls(
            400,
            -4164,
            f"Order's notional must be no smaller than {notional} (unless you choose reduce only).",
        )

    @classmethod
    def server_error(cls, status: int = 503) -> Fault:
        """A 5xx answer with an unknown execution status."""
        return cls(status, -1001, "Internal error; unable to process your request.")

    @classmethod
    def malformed(cls, body: str, status: int = 200) -> Fault:
        """Answer ``body`` as it is (not JSON, or JSON of the wrong shape)."""
        return cls(status, raw_body=body)

    @classmethod
    def stall(cls, secs: float, process: Literal["before", "after", "never"] = "before") -> Fault:
        """Answer after ``secs``; process the request before the stall, after it, or never."""
        return cls(stall_secs=secs, process=process)


@dataclass(slots=True)
class RecordedRequest:
    """One request as the fake received it; ``status`` is 0 until it is answered."""

    method: str
    path: str
    params: dict[str, str]
    signed: bool
    status: int = 0


class FakeBinanceUsdm:
    """The fake exchange and its HTTP server (module docstring). Use it as a context manager."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        api_secret: str = "test-secret",  # noqa: S107 - a test secret for a local fake
        symbols: tuple[FakeSymbol, ...] = DEFAULT_SYMBOLS,
        wallet: str = "10000",
        leverage: int = 20,
        clock: Clock | None = None,
    ) -> None:
        """Set up the account; the server starts with ``start`` (or ``with``)."""
        self.api_key = api_key
        self.api_secret = api_secret
        self.clock = clock or WallClock()
        self.book = FakeUsdmBook(symbols, wallet, leverage, self.clock)
        self.requests: list[RecordedRequest] = []
        self.lock = threading.RLock()
        self._faults: dict[tuple[str, str], deque[Fault]] = {}
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- server
    def start(self) -> None:
        """Listen on a free port of 127.0.0.1 in a background thread."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

            def do_DELETE(self) -> None:
                fake._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # stop() joins the request threads (server_close), so a stalled request released by it
        # has finished, and recorded its answer, when stop() returns.
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Release stalled requests and stop the server."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ----------------------------------------------------------------- control
    def inject(self, method: str, path: str, *faults: Fault) -> None:
        """Answer the next requests to ``method path`` with ``faults``, one each, in order."""
        with self.lock:
            self._faults.setdefault((method.upper(), path), deque()).extend(faults)

    def set_mark(self, symbol: str, price: str) -> None:
        """Move the mark price; resting limit orders it crosses fill at their limit price."""
        with self.lock:
            self.book.set_mark(symbol, price)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """The requests received for ``method path``, oldest first."""
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def orders_with_client_id(self, client_order_id: str) -> list[dict[str, Any]]:
        """Every order the fake holds with this client order id (at most one, if all is well)."""
        with self.lock:
            return self.book.orders_with_client_id(client_order_id)

    # ----------------------------------------------------------------- HTTP
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        method, path = handler.command, split.path
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        with self.lock:
            queue = self._faults.get((method, path))
            fault = queue.popleft() if queue else None
        route = ROUTES.get((method, path))
        signed = route is not None and route[1]

        def run() -> Answer:
            if route is None:
                return 404, {"code": -1000, "msg": f"no route {method} {path}"}, {}
            try:
                if signed:
                    self._check_signature(handler, split.query, body, params)
                with self.lock:
                    return 200, route[0](self.book, params), {}
            except BinanceFailure as failure:
                return failure.status, {"code": failure.code, "msg": failure.msg}, {}

        record = self._record(method, path, params, signed)
        if fault is not None and fault.stall_secs:
            answer = run() if fault.process == "before" else (504, {}, {})
            record.status = answer[0] if fault.process == "before" else 0
            self._release.wait(fault.stall_secs)
            if fault.process == "after":
                answer = run()
                record.status = answer[0]
            self._write(handler, answer)
            return
        if fault is not None and fault.status:
            payload: Any = (
                fault.raw_body
                if fault.raw_body is not None
                else json.dumps({"code": fault.code, "msg": fault.msg})
            )
            record.status = fault.status
            self._write(handler, (fault.status, _Raw(payload), dict(fault.headers)))
            return
        answer = run()
        record.status = answer[0]
        self._write(handler, answer)

    def _record(
        self, method: str, path: str, params: dict[str, str], signed: bool
    ) -> RecordedRequest:
        record = RecordedRequest(method, path, params, signed)
        with self.lock:
            self.requests.append(record)
        return record

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
        status, payload, headers = answer
        data = (payload.text if isinstance(payload, _Raw) else json.dumps(payload)).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): what a real server sees too

    def _check_signature(
        self, handler: BaseHTTPRequestHandler, query: str, body: str, params: dict[str, str]
    ) -> None:
        if handler.headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceFailure(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if "timestamp" not in params:
            raise BinanceFailure(400, -1102, "Mandatory parameter 'timestamp' was not sent.")
        now_ms = self.clock.now_ns() // _NS_PER_MS
        window = int(params.get("recvWindow", "5000"))
        if abs(now_ms - int(params["timestamp"])) > window:
            raise BinanceFailure(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        total = "&".join(
            part
            for part in (query + ("&" if query and body else "") + body).split("&")
            if part and not part.startswith("signature=")
        )
        expected = hmac.new(self.api_secret.encode(), total.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params.get("signature", "")):
            raise BinanceFailure(400, -1022, "Signature for this request is not valid.")


@dataclass(frozen=True, slots=True)
class _Raw:
    text: str
