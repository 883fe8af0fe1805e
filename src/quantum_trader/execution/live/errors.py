"""One mapping from ccxt and Binance errors onto the package's error tree.

No ``ccxt.*`` error leaves the live adapter: ``translate`` turns each into one of ours, with
``raise ... from`` keeping the original attached. The Binance ``code`` in the answer's body
decides first, because it is exact and the same whatever URL the request went to (ccxt picks
its USDT-M-specific code table by the URL's host, so it classifies the same answer differently
behind a proxy or a test server); ccxt's exception class decides when there is no code.

==============================================  ======================================
Binance code / HTTP status / ccxt class          raised as
==============================================  ======================================
HTTP 429, 418; -1003, -1015; RateLimitExceeded,  RateLimitedError with ``retry_after_secs``
DDoSProtection                                   from ``Retry-After`` or the ban's end
-2018, -2019; InsufficientFunds                  InsufficientMarginError
-1013, -1111, -1116, -1117, -1121, -4003,        InvalidOrderError (``reason`` is the
-4014, -4164, -2021, -2022, -4131, -5022, ...;   Binance code, e.g. ``binance_-4164``)
InvalidOrder, BadSymbol, BadRequest
-4116 (client order id already used)             DuplicateClientOrderId (the venue looks
                                                 the order up)
-2013; OrderNotFound                             OrderNotFound (internal)
-2011 (cancel of an order not open)              RejectedError reason ``not_open``
-1022, -2014, -2015; AuthenticationError,        ConfigError
PermissionDenied, AccountSuspended
-1000, -1001, -1007, -1008, -1021; HTTP 5xx,     TransientError (outcome of an order
RequestTimeout, NetworkError,                    unknown: the venue looks it up before
ExchangeNotAvailable, OnMaintenance              sending again)
BadResponse, NullResponse                        ExchangePayloadError
any other ccxt error                             RejectedError reason ``exchange_error``
==============================================  ======================================
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import ccxt

from quantum_trader.domain.errors import (
    ConfigError,
    ExchangePayloadError,
    InsufficientMarginError,
    InvalidOrderError,
    QuantumTraderError,
    RateLimitedError,
    RejectedError,
    TransientError,
)

_RATE_LIMIT_CODES: Final = frozenset({-1003, -1015})
_MARGIN_CODES: Final = frozenset({-2018, -2019})
_AUTH_CODES: Final = frozenset({-1022, -2014, -2015})
_TRANSIENT_CODES: Final = frozenset({-1000, -1001, -1006, -1007, -1008, -1021})
_INVALID_ORDER_CODES: Final = frozenset(
    {-1013, -1100, -1101, -1102, -1104, -1106, -1111, -1115, -1116, -1117, -1121, -2021, -2022,
     -4001, -4002, -4003, -4004, -4005, -4013, -4014, -4015, -4016, -4024, -4131, -4164, -5021,
     -5022}
)  # fmt: skip
_BANNED_UNTIL: Final = re.compile(r"banned until (\d{12,14})")


class DuplicateClientOrderId(RejectedError):
    """The exchange already has an order with this client order id (Binance -4116)."""


class OrderNotFound(QuantumTraderError):
    """The exchange has no order with this id (Binance -2013); internal to the adapter."""


def binance_code(body: object) -> tuple[int | None, str]:
    """The ``code`` and ``msg`` of a Binance error body, or (None, "") when it has none."""
    if not isinstance(body, str):
        return None, ""
    try:
        data = json.loads(body)
    except ValueError:
        return None, ""
    if not isinstance(data, dict):
        return None, ""
    code, msg = data.get("code"), data.get("msg")
    if isinstance(code, bool) or not isinstance(code, int):
        return None, ""
    return code, msg if isinstance(msg, str) else ""


def retry_after_secs(headers: Mapping[str, Any] | None, message: str, now_ms: int) -> float | None:
    """The wait the exchange asked for: ``Retry-After`` in seconds, or the end of an IP ban."""
    for key, value in (headers or {}).items():
        if str(key).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                break
    found = _BANNED_UNTIL.search(message)
    if found:
        return max(0.0, (int(found.group(1)) - now_ms) / 1000.0)
    return None


def translate(exc: Exception, what: str, *, now_ms: int) -> QuantumTraderError:
    """Our error for a ccxt error raised while doing ``what`` (``"create order X"``)."""
    status: int | None = getattr(exc, "qt_http_status", None)
    headers: Mapping[str, Any] | None = getattr(exc, "qt_headers", None)
    code, msg = binance_code(getattr(exc, "qt_body", None))
    detail = f"{what}: Binance {code}: {msg}" if code is not None else f"{what}: {exc}"
    if (
        status in (418, 429)
        or code in _RATE_LIMIT_CODES
        or isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection)
    ):
        wait = retry_after_secs(headers, msg or str(exc), now_ms)
        return RateLimitedError(
            f"{detail} (HTTP {status}; retry after {wait} s)", retry_after_secs=wait
        )
    if code is not None:
        found = _by_code(code, detail)
        if found is not None:
            return found
    return _by_class(exc, detail, status)


def _by_code(code: int, detail: str) -> QuantumTraderError | None:
    if code in _MARGIN_CODES:
        return InsufficientMarginError(detail, required=float("nan"), available=float("nan"))
    if code == -4116:
        return DuplicateClientOrderId(detail, reason="duplicate_client_order_id")
    if code == -2013:
        return OrderNotFound(detail)
    if code == -2011:
        return RejectedError(detail, reason="not_open")
    if code in _AUTH_CODES:
        return ConfigError(f"{detail} (check the API key, its secret and its permissions)")
    if code in _TRANSIENT_CODES:
        return TransientError(detail)
    if code in _INVALID_ORDER_CODES or -4999 <= code <= -4000:
        return InvalidOrderError(detail, reason=f"binance_{code}")
    return None


def _by_class(exc: Exception, detail: str, status: int | None) -> QuantumTraderError:
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientMarginError(detail, required=float("nan"), available=float("nan"))
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(detail)
    if isinstance(exc, ccxt.InvalidOrder | ccxt.BadSymbol | ccxt.BadRequest):
        return InvalidOrderError(detail, reason="invalid_order")
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return ConfigError(f"{detail} (check the API key, its secret and its permissions)")
    if isinstance(exc, ccxt.BadResponse | ccxt.NullResponse):
        return ExchangePayloadError(f"{detail} (unreadable answer)", field="")
    if isinstance(exc, ccxt.NetworkError | ccxt.OperationFailed) or (
        status is not None and status >= 500
    ):
        return TransientError(detail)
    return RejectedError(detail, reason="exchange_error")
