"""The TradeStateStore port: one durable record per round-trip trade.

On start the engine loads the open trades from here and reconciles them with the exchange (the
exchange is the truth); closed trades are kept until ``purge_closed`` drops them per the retention
setting. Backends live in ``stores/memory`` and ``stores/sqlite`` (Redis joins later) and share the
rules defined here, so they cannot drift apart:

- ``TradeRecord`` validates itself on construction, so a malformed record never exists;
- ``TradeQuery`` checks and applies the filters of ``TradeStateStore.list``; results are ordered
  by ``trade_sort_key`` (entry time, then trade id);
- ``closed_trade`` is the one read-modify-write rule of ``close``;
- ``purgeable`` is the one retention rule of ``purge_closed``.

Money here is float64 as the portfolio computes it; the store keeps every value bit for bit
(``-0.0`` stays ``-0.0``, ``1`` in metadata stays an int, ``1.0`` a float).

Errors, by what the caller does next::

    ConfigError
    └─ TradeRecordError     a field is invalid (``trade_id``, ``field``): fix the caller
    ConflictError
    └─ TradeConflictError   close of an unknown or already-closed trade (``trade_id``, ``status``)
    IntegrityError          a stored trade cannot be read back (the message names the trade id)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Final, Protocol

from quantum_trader.domain.errors import ConfigError, ConflictError
from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.trading import Trade, TradeStatus

MetadataValue = str | float | int | bool
"""What a trade's metadata may hold: flat JSON scalars, never None, NaN or nested values."""

INT64_MAX: Final = 2**63 - 1
"""The largest timestamp or metadata integer a record may hold (SQLite's INTEGER range)."""

_INT64_MIN: Final = -(2**63)
_EMPTY_METADATA: Final[Mapping[str, MetadataValue]] = MappingProxyType({})


class TradeRecordError(ConfigError):
    """A trade record field is invalid; nothing was built or stored."""

    def __init__(self, trade_id: str, field_name: str, problem: str) -> None:
        """Name the trade and the field in the message and as attributes."""
        super().__init__(f"trade {trade_id!r}: {field_name} {problem}")
        self.trade_id = trade_id
        self.field = field_name


class TradeConflictError(ConflictError):
    """``close`` found no open trade under the id: it is unknown (``status`` None) or closed."""

    def __init__(self, trade_id: str, status: TradeStatus | None) -> None:
        """Name the trade and the status it was found in."""
        if status is None:
            message = f"cannot close trade {trade_id!r}: no such trade"
        else:
            message = f"cannot close trade {trade_id!r}: it is already {status.value}"
        super().__init__(message)
        self.trade_id = trade_id
        self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeRecord:
    """One trade as stored: validated on construction, immutable, and exactly round-tripped.

    Rules (a break raises TradeRecordError naming the field): ids and symbol are non-empty text;
    ``quantity`` and the prices are finite and > 0 (an int is taken as the equal float); PnL, fees
    and funding are finite, of either sign; timestamps are integer nanoseconds in
    ``[0, INT64_MAX]``; an open trade has no exit price or time, a closed or liquidated one has
    both, and exits no earlier than it entered. ``metadata`` is copied into a read-only mapping.

    Attributes:
        trade_id: Unique id of the trade; the store's key.
        symbol: Instrument symbol.
        side: Side of the entry (BUY is long).
        quantity: Largest absolute size the trade reached.
        entry_price: Average entry price.
        entry_ts_ns: Entry time; lists are ordered by it.
        exit_price: Average exit price; None while open.
        exit_ts_ns: Exit time; None while open. Retention counts from it.
        status: Open, closed or liquidated.
        realized_pnl: PnL realized so far, gross of fees and funding.
        fees: Fees paid (negative for a net rebate).
        funding: Funding received (negative when paid).
        client_order_ids: The trade's orders, in the order they were sent.
        strategy: Name of the strategy that opened it.
        model_version: Version of the model behind the decision ("" when none).
        metadata: Flat extra facts (str, float, int or bool values).
        updated_ts_ns: When the record was last written by its owner.
    """

    trade_id: str
    symbol: str
    side: OrderSide
    quantity: float
    entry_price: float
    entry_ts_ns: int
    exit_price: float | None = None
    exit_ts_ns: int | None = None
    status: TradeStatus = TradeStatus.OPEN
    realized_pnl: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    client_order_ids: tuple[str, ...] = ()
    strategy: str = ""
    model_version: str = ""
    metadata: Mapping[str, MetadataValue] = field(
        default_factory=lambda: _EMPTY_METADATA, hash=False
    )
    updated_ts_ns: int

    def __post_init__(self) -> None:
        """Check every field and normalise ints to floats and metadata to a read-only copy."""
        if not isinstance(self.trade_id, str) or not self.trade_id:
            raise TradeRecordError(str(self.trade_id), "trade_id", "must be non-empty text")
        # In field order, status before the exit fields it governs: the first fault is named.
        _check_text(self, "trade_id", allow_empty=False)
        _check_text(self, "symbol", allow_empty=False)
        _check_enum(self, "side", OrderSide)
        _check_float(self, "quantity", positive=True)
        _check_float(self, "entry_price", positive=True)
        _check_timestamp(self, "entry_ts_ns")
        _check_enum(self, "status", TradeStatus)
        _check_exit(self)
        for name in ("realized_pnl", "fees", "funding"):
            _check_float(self, name, positive=False)
        _check_client_order_ids(self)
        _check_text(self, "strategy", allow_empty=True)
        _check_text(self, "model_version", allow_empty=True)
        _check_metadata(self)
        _check_timestamp(self, "updated_ts_ns")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle and copy through ``to_dict`` (the read-only metadata mapping cannot pickle)."""
        return (TradeRecord.from_dict, (self.to_dict(),))

    @property
    def is_open(self) -> bool:
        """True while the trade is open."""
        return self.status is TradeStatus.OPEN

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-ready plain values (enums as their values, lists, dicts)."""
        return {
            "trade_id": self.trade_id,
            "symbol": self.symbol,
            "side": self.side.value,
            "quantity": self.quantity,
            "entry_price": self.entry_price,
            "entry_ts_ns": self.entry_ts_ns,
            "exit_price": self.exit_price,
            "exit_ts_ns": self.exit_ts_ns,
            "status": self.status.value,
            "realized_pnl": self.realized_pnl,
            "fees": self.fees,
            "funding": self.funding,
            "client_order_ids": list(self.client_order_ids),
            "strategy": self.strategy,
            "model_version": self.model_version,
            "metadata": dict(self.metadata),
            "updated_ts_ns": self.updated_ts_ns,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TradeRecord:
        """Build a record from ``to_dict`` output; TradeRecordError if anything is off.

        Every field must be present and no other key; values are validated as on construction.
        """
        trade_id = str(data.get("trade_id", "?"))
        keys = set(data)
        if keys != _FIELD_NAMES:
            missing = sorted(_FIELD_NAMES - keys)
            unknown = sorted(keys - _FIELD_NAMES)
            raise TradeRecordError(
                trade_id, "fields", f"do not match: missing {missing}, unknown {unknown}"
            )
        values = dict(data)
        values["side"] = _enum_value(trade_id, "side", OrderSide, data["side"])
        values["status"] = _enum_value(trade_id, "status", TradeStatus, data["status"])
        ids = data["client_order_ids"]
        if not isinstance(ids, list | tuple):
            raise TradeRecordError(trade_id, "client_order_ids", f"must be a list, got {ids!r}")
        values["client_order_ids"] = tuple(ids)
        if not isinstance(data["metadata"], Mapping):
            raise TradeRecordError(
                trade_id, "metadata", f"must be a mapping, got {data['metadata']!r}"
            )
        return cls(**values)


_FIELD_NAMES: Final = frozenset(f.name for f in fields(TradeRecord))


def record_of(
    trade: Trade,
    *,
    trade_id: str | None = None,
    updated_ts_ns: int = 0,
    metadata: Mapping[str, MetadataValue] | None = None,
) -> TradeRecord:
    """The record of an accounting ``Trade`` (stored under ``trade_id``, its own id if None).

    An open trade has no exit; a closed one keeps its exit price and time. ``metadata`` is
    added to the trade's own.
    """
    done = trade.status is not TradeStatus.OPEN
    return TradeRecord(
        trade_id=trade.trade_id if trade_id is None else trade_id,
        symbol=trade.symbol,
        side=trade.side,
        quantity=trade.quantity,
        entry_price=trade.entry_price,
        entry_ts_ns=trade.entry_ts,
        exit_price=trade.exit_price if done else None,
        exit_ts_ns=trade.exit_ts if done else None,
        status=trade.status,
        realized_pnl=trade.realized_pnl,
        fees=trade.fees,
        funding=trade.funding,
        client_order_ids=tuple(trade.client_order_ids),
        strategy=trade.strategy,
        model_version=trade.model_version,
        metadata={**trade.metadata, **(metadata or {})},
        updated_ts_ns=updated_ts_ns,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeQuery:
    """The filters of ``TradeStateStore.list``, checked on construction (ConfigError).

    A trade matches when every given filter holds: same ``symbol``, same ``status``, and an entry
    time in the half-open window ``since_ns <= entry_ts_ns < until_ns``. ``limit`` (>= 1) keeps
    the first matches in ``trade_sort_key`` order.
    """

    symbol: str | None = None
    status: TradeStatus | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        """Refuse filters of the wrong type and a limit below 1."""
        if self.symbol is not None and not isinstance(self.symbol, str):
            raise ConfigError(f"trade list symbol must be text, got {self.symbol!r}")
        if self.status is not None and not isinstance(self.status, TradeStatus):
            raise ConfigError(f"trade list status must be a TradeStatus, got {self.status!r}")
        for name in ("since_ns", "until_ns", "limit"):
            value = getattr(self, name)
            if value is not None and not _is_int(value):
                raise ConfigError(f"trade list {name} must be an integer, got {value!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"trade list limit must be >= 1, got {self.limit}")

    def matches(self, record: TradeRecord) -> bool:
        """True when ``record`` passes every filter (``limit`` aside)."""
        return (
            (self.symbol is None or record.symbol == self.symbol)
            and (self.status is None or record.status is self.status)
            and (self.since_ns is None or record.entry_ts_ns >= self.since_ns)
            and (self.until_ns is None or record.entry_ts_ns < self.until_ns)
        )


def trade_sort_key(record: TradeRecord) -> tuple[int, str]:
    """The order every listing uses: entry time, then trade id (code point order)."""
    return (record.entry_ts_ns, record.trade_id)


def closed_trade(
    current: TradeRecord | None,
    trade_id: str,
    *,
    exit_price: float,
    exit_ts_ns: int,
    status: TradeStatus,
    realized_pnl: float,
    fees: float,
    funding: float,
    updated_ts_ns: int | None = None,
) -> TradeRecord:
    """Return ``current`` closed with the given exit; the rule every backend's ``close`` applies.

    Raises TradeConflictError when ``current`` is None or not open, TradeRecordError when
    ``status`` is OPEN or a value is invalid. ``updated_ts_ns`` defaults to ``exit_ts_ns``.
    """
    if current is None:
        raise TradeConflictError(trade_id, None)
    if not current.is_open:
        raise TradeConflictError(trade_id, current.status)
    if status is TradeStatus.OPEN or not isinstance(status, TradeStatus):
        raise TradeRecordError(
            trade_id, "status", f"of a close must be closed or liquidated, got {status!r}"
        )
    return replace(
        current,
        exit_price=exit_price,
        exit_ts_ns=exit_ts_ns,
        status=status,
        realized_pnl=realized_pnl,
        fees=fees,
        funding=funding,
        updated_ts_ns=exit_ts_ns if updated_ts_ns is None else updated_ts_ns,
    )


def purgeable(record: TradeRecord, before_ns: int) -> bool:
    """True when retention drops ``record``: it is closed or liquidated and exited before."""
    return record.exit_ts_ns is not None and not record.is_open and record.exit_ts_ns < before_ns


def check_purge_cutoff(before_ns: int) -> None:
    """Raise ConfigError unless ``before_ns`` is an integer timestamp."""
    if not _is_int(before_ns):
        raise ConfigError(f"purge_closed before_ns must be an integer, got {before_ns!r}")


def check_trade_record(record: object) -> TradeRecord:
    """Return ``record`` if it is a TradeRecord; ConfigError (naming the type) otherwise."""
    if not isinstance(record, TradeRecord):
        raise ConfigError(f"a trade store saves TradeRecord, got {type(record).__name__}")
    return record


class TradeStateStore(Protocol):
    """Durable trade records: the open ones survive restarts, closed ones are kept for a while.

    Every write is atomic; a failed write changes nothing. Listings are ordered by
    ``trade_sort_key`` (entry time, then trade id).
    """

    def save(self, record: TradeRecord) -> None:
        """Insert ``record``, or replace the stored trade with the same id, atomically."""
        ...

    def get(self, trade_id: str) -> TradeRecord | None:
        """Return the trade stored under ``trade_id``, or None."""
        ...

    def list_open(self, symbol: str | None = None) -> Sequence[TradeRecord]:
        """Return the open trades (of ``symbol`` only, if given), by entry time."""
        ...

    def list(
        self,
        *,
        symbol: str | None = None,
        status: TradeStatus | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int | None = None,
    ) -> Sequence[TradeRecord]:
        """Return the trades matching every given filter, by entry time (see ``TradeQuery``)."""
        ...

    def close(
        self,
        trade_id: str,
        *,
        exit_price: float,
        exit_ts_ns: int,
        status: TradeStatus,
        realized_pnl: float,
        fees: float,
        funding: float,
        updated_ts_ns: int | None = None,
    ) -> TradeRecord:
        """Close the open trade ``trade_id`` in one atomic read-modify-write; return it.

        ``realized_pnl``, ``fees`` and ``funding`` are the trade's final totals (they replace the
        stored values). Raises TradeConflictError (a ConflictError) when the trade is unknown or
        no longer open, so of two concurrent closers exactly one succeeds; TradeRecordError when
        ``status`` is OPEN or a value is invalid. See ``closed_trade``.
        """
        ...

    def purge_closed(self, before_ns: int) -> int:
        """Delete closed and liquidated trades that exited before ``before_ns``; return how many.

        Open trades are never purged, however old.
        """
        ...

    def count_open(self) -> int:
        """Return the number of open trades."""
        ...


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fail(record: TradeRecord, name: str, problem: str) -> TradeRecordError:
    return TradeRecordError(record.trade_id, name, problem)


def _encodable(text: str) -> bool:
    # Lone surrogates cannot be written as UTF-8 (SQLite, JSON over the wire).
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(record: TradeRecord, name: str, *, allow_empty: bool) -> None:
    value = getattr(record, name)
    if type(value) is str and value.isascii() and (value or allow_empty):
        return  # the common case, checked cheaply: a restart validates every open trade
    if not isinstance(value, str):
        raise _fail(record, name, f"must be text, got {value!r}")
    if not value and not allow_empty:
        raise _fail(record, name, "must not be empty")
    if not _encodable(value):
        raise _fail(record, name, "holds characters that cannot be encoded as UTF-8")


def _check_enum(record: TradeRecord, name: str, kind: type[OrderSide | TradeStatus]) -> None:
    value = getattr(record, name)
    if not isinstance(value, kind):
        raise _fail(record, name, f"must be a {kind.__name__}, got {value!r}")


def _as_int(value: object) -> int | None:
    # Any integer (numpy's too, through __index__), as a plain int; never a bool or a float.
    if isinstance(value, bool | float):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _as_finite(value: object) -> float | None:
    # Any finite real (numpy's too), as a plain float; never a bool.
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    integer = _as_int(value)
    if integer is None:
        return None
    try:
        return float(integer)
    except OverflowError:
        return None


def _check_float(record: TradeRecord, name: str, *, positive: bool) -> None:
    raw = getattr(record, name)
    if type(raw) is float and math.isfinite(raw) and (raw > 0.0 or not positive):
        return
    value = _as_finite(raw)
    if value is None:
        raise _fail(record, name, f"must be a finite number, got {raw!r}")
    if positive and not value > 0.0:
        raise _fail(record, name, f"must be > 0, got {raw!r}")
    if raw is not value:
        object.__setattr__(record, name, value)


def _check_timestamp(record: TradeRecord, name: str) -> None:
    raw = getattr(record, name)
    if type(raw) is int and 0 <= raw <= INT64_MAX:
        return
    value = _as_int(raw)
    if value is None or not 0 <= value <= INT64_MAX:
        raise _fail(record, name, f"must be integer nanoseconds in [0, 2**63 - 1], got {raw!r}")
    object.__setattr__(record, name, value)


def _check_exit(record: TradeRecord) -> None:
    if record.status is TradeStatus.OPEN:
        for name in ("exit_price", "exit_ts_ns"):
            if getattr(record, name) is not None:
                raise _fail(
                    record,
                    name,
                    f"must be None while the trade is open, got {getattr(record, name)!r}",
                )
        return
    for name in ("exit_price", "exit_ts_ns"):
        if getattr(record, name) is None:
            raise _fail(record, name, f"must be set when the trade is {record.status.value}")
    _check_float(record, "exit_price", positive=True)
    _check_timestamp(record, "exit_ts_ns")
    assert record.exit_ts_ns is not None
    if record.exit_ts_ns < record.entry_ts_ns:
        raise _fail(
            record,
            "exit_ts_ns",
            f"must not be before entry_ts_ns ({record.exit_ts_ns} < {record.entry_ts_ns})",
        )


def _check_client_order_ids(record: TradeRecord) -> None:
    ids = record.client_order_ids
    if not isinstance(ids, tuple):
        raise _fail(record, "client_order_ids", f"must be a tuple, got {type(ids).__name__}")
    for index, value in enumerate(ids):
        if type(value) is str and value.isascii() and value:
            continue
        if not isinstance(value, str) or not value or not _encodable(value):
            raise _fail(
                record, "client_order_ids", f"[{index}] must be non-empty text, got {value!r}"
            )


def _metadata_value(record: TradeRecord, key: str, value: object) -> MetadataValue:
    # The value as a plain bool, str, int or float; a TradeRecordError if it is none of them.
    if isinstance(value, bool):
        return value  # bool has no subclasses
    if isinstance(value, str):
        if type(value) is str and value.isascii():
            return value
        if not _encodable(value):
            raise _fail(record, f"metadata[{key!r}]", "holds characters not encodable as UTF-8")
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
    else:
        integer = _as_int(value)
        if integer is not None:
            if not _INT64_MIN <= integer <= INT64_MAX:
                raise _fail(record, f"metadata[{key!r}]", f"int {integer} is outside 64 bits")
            return integer
    raise _fail(
        record, f"metadata[{key!r}]", f"must be str, finite float, int or bool, got {value!r}"
    )


def _check_metadata(record: TradeRecord) -> None:
    metadata = record.metadata
    if metadata is _EMPTY_METADATA:
        return
    if not isinstance(metadata, Mapping):
        raise _fail(record, "metadata", f"must be a mapping, got {type(metadata).__name__}")
    copied: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if type(key) is not str or not _encodable(key):
            raise _fail(record, "metadata", f"keys must be text, got {key!r}")
        copied[key] = _metadata_value(record, key, value)
    object.__setattr__(record, "metadata", MappingProxyType(copied) if copied else _EMPTY_METADATA)


def _enum_value(
    trade_id: str, name: str, kind: type[OrderSide] | type[TradeStatus], raw: object
) -> OrderSide | TradeStatus:
    if not isinstance(raw, str):
        raise TradeRecordError(trade_id, name, f"must be text, got {raw!r}")
    try:
        return kind(raw)
    except ValueError as exc:
        raise TradeRecordError(trade_id, name, f"has no value {raw!r}") from exc
