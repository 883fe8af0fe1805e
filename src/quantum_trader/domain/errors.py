"""The one exception tree of Quantum Trader.

Callers branch on what they do next, so the tree is drawn by that::

    QuantumTraderError
    ├─ ConfigError          fatal at start-up: fix the configuration
    ├─ DataError            market data is unusable: fix or repair the data
    │   ├─ DataValidationError   the validator found problems (carries them)
    │   └─ ExchangePayloadError  an exchange answered with JSON we cannot read (names the field)
    ├─ TransientError       retry with backoff (``retry_after_secs`` when the venue said when)
    │   └─ RateLimitedError      the venue throttled us (HTTP 429/418, Binance -1003)
    ├─ RejectedError        the venue refused; do not retry blindly
    │   ├─ InsufficientMarginError
    │   └─ InvalidOrderError
    ├─ IllegalTransitionError   an order state change the state table forbids (a bug)
    ├─ ConflictError        stale policy version
    ├─ IntegrityError       broken audit chain, corrupt spool record
    ├─ AuditUnavailableError   the audit log cannot be written: stop sending orders (fail closed)
    └─ StrategyError        a strategy raised or returned something malformed
"""

from __future__ import annotations


class QuantumTraderError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(QuantumTraderError):
    """The configuration is invalid; raised at start-up, before anything trades."""


class DataError(QuantumTraderError):
    """Market data cannot be read or used as given."""


class DataValidationError(DataError):
    """The data validator found problems; ``issues`` lists each with file and row."""

    def __init__(self, message: str, issues: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.issues = issues


class TransientError(QuantumTraderError):
    """A temporary failure: the caller may retry with backoff.

    ``retry_after_secs`` is how long the other side asked us to wait, when it said so.
    """

    def __init__(self, message: str, *, retry_after_secs: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_secs = retry_after_secs


class RateLimitedError(TransientError):
    """The venue refused the request for its rate limit; wait ``retry_after_secs`` if given."""


class ExchangePayloadError(DataError):
    """An exchange answer lacks a field or holds a value that cannot be what it claims.

    ``field`` names the offending field as a path (``positions[2].positionAmt``).
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class RejectedError(QuantumTraderError):
    """The venue refused the request; retrying the same request will not help."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class InsufficientMarginError(RejectedError):
    """The order needs more margin than the account has available."""

    def __init__(self, message: str, *, required: float, available: float) -> None:
        super().__init__(message, reason="insufficient_margin")
        self.required = required
        self.available = available


class InvalidOrderError(RejectedError):
    """The order breaks an instrument rule (size, price, notional) or an order rule."""


class IllegalTransitionError(QuantumTraderError):
    """An order was asked to change state in a way the state table forbids."""

    def __init__(self, client_order_id: str, status: str, trigger: str) -> None:
        super().__init__(f"order {client_order_id}: cannot apply {trigger!r} in status {status!r}")
        self.client_order_id = client_order_id
        self.status = status
        self.trigger = trigger


class ConflictError(QuantumTraderError):
    """A compare-and-set write found a newer version than the one it read."""


class IntegrityError(QuantumTraderError):
    """Stored data failed an integrity check (hash chain, checksum)."""


class AuditUnavailableError(QuantumTraderError):
    """The audit log cannot be written; no new order may be sent until it can."""


class StrategyError(QuantumTraderError):
    """A strategy raised or produced output that breaks its contract."""
