"""The ccxt client under the live venue: pacing on our clock, error answers kept, quiet logs.

``UsdmClient`` is ccxt's ``binanceusdm`` with three changes: its request pacing (ccxt's
``throttle``, which calls ``time.sleep`` on the real clock) runs on the injected clock and
sleep; every ccxt error raised for an HTTP answer carries that answer's status, headers and
body (``qt_http_status``, ``qt_headers``, ``qt_body``), so the venue can read Binance's code
and ``Retry-After``; and its wire log blanks the API key, secrets and signatures.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import ccxt

from quantum_trader.domain.clock import Clock

_NS_PER_MS: Final = 1_000_000
_LOG = logging.getLogger("quantum_trader.execution.live.wire")


def fapi_urls(base_url: str) -> dict[str, str]:
    """The ccxt ``urls['api']`` entries that carry every USDT-M request, pointed at ``base_url``."""
    base = base_url.rstrip("/")
    return {
        "fapiPublic": f"{base}/fapi/v1",
        "fapiPublicV2": f"{base}/fapi/v2",
        "fapiPublicV3": f"{base}/fapi/v3",
        "fapiPrivate": f"{base}/fapi/v1",
        "fapiPrivateV2": f"{base}/fapi/v2",
        "fapiPrivateV3": f"{base}/fapi/v3",
        "fapiData": f"{base}/futures/data",
    }


class WireLog:
    """ccxt's request/response debug log with the API key and signatures blanked out."""

    _SIGNATURE = re.compile(r"signature=[0-9a-fA-F]+")

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._secrets = tuple(s for s in secrets if s)

    def _clean(self, value: object) -> object:
        if isinstance(value, Mapping):
            return {
                k: "***" if str(k).lower() == "x-mbx-apikey" else self._clean(v)
                for k, v in value.items()
            }
        if isinstance(value, str):
            text = self._SIGNATURE.sub("signature=***", value)
            for secret in self._secrets:
                text = text.replace(secret, "***")
            return text
        return value

    def debug(self, msg: str, *args: object) -> None:
        if _LOG.isEnabledFor(logging.DEBUG):
            _LOG.debug(msg, *(self._clean(a) for a in args))

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


class UsdmClient(ccxt.binanceusdm):  # type: ignore[misc]  # ccxt ships no type information
    """ccxt's binanceusdm with pacing on our clock and error answers kept on the exception."""

    def __init__(self, config: dict[str, Any], clock: Clock, sleep: Callable[[float], None]):
        super().__init__(config)
        self.qt_clock = clock
        self.qt_sleep = sleep
        self.qt_next_ms = 0.0

    def throttle(self, cost: float | None = None) -> None:
        # ccxt's own throttle sleeps with time.sleep on the real clock: same rule, our clock.
        now_ms = self.qt_clock.now_ns() / _NS_PER_MS
        if now_ms < self.qt_next_ms:
            self.qt_sleep((self.qt_next_ms - now_ms) / 1000.0)
            now_ms = self.qt_next_ms
        self.qt_next_ms = now_ms + float(self.rateLimit) * (1.0 if cost is None else float(cost))

    def handle_errors(
        self,
        code: int,
        reason: str,
        url: str,
        method: str,
        headers: Any,
        body: Any,
        response: Any,
        request_headers: Any,
        request_body: Any,
    ) -> Any:
        try:
            return super().handle_errors(
                code, reason, url, method, headers, body, response, request_headers, request_body
            )
        except ccxt.BaseError as exc:
            exc.qt_http_status = code
            exc.qt_headers = dict(headers or {})
            exc.qt_body = body
            raise
