"""TradeRecord validation, its dict form, and the shared rules every trade store applies."""

from __future__ import annotations

import copy
import pickle
from dataclasses import replace
from typing import Any

import pytest

from quantum_trader.domain.errors import ConfigError, ConflictError
from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.trading import TradeStatus
from quantum_trader.stores.trades import (
    INT64_MAX,
    TradeConflictError,
    TradeQuery,
    TradeRecord,
    TradeRecordError,
    closed_trade,
    purgeable,
    trade_sort_key,
)

TS = 1_700_000_000_000_000_000


def _values(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "trade_id": "T-1",
        "symbol": "BTCUSDT",
        "side": OrderSide.BUY,
        "quantity": 1.0,
        "entry_price": 100.0,
        "entry_ts_ns": TS,
        "updated_ts_ns": TS,
    }
    values.update(changes)
    return values


def _closed(**changes: Any) -> dict[str, Any]:
    exit_values: dict[str, Any] = {
        "status": TradeStatus.CLOSED,
        "exit_price": 101.0,
        "exit_ts_ns": TS + 1,
    }
    return _values(**{**exit_values, **changes})


@pytest.mark.parametrize(
    ("values", "field"),
    [
        (_values(trade_id=""), "trade_id"),
        (_values(trade_id=7), "trade_id"),
        (_values(trade_id="bad\ud800"), "trade_id"),
        (_values(symbol=""), "symbol"),
        (_values(symbol=None), "symbol"),
        (_values(side="buy"), "side"),
        (_values(quantity=0.0), "quantity"),
        (_values(quantity=-1.0), "quantity"),
        (_values(quantity=float("nan")), "quantity"),
        (_values(quantity=float("inf")), "quantity"),
        (_values(quantity=True), "quantity"),
        (_values(quantity="1"), "quantity"),
        (_values(quantity=10**400), "quantity"),
        (_values(entry_price=0.0), "entry_price"),
        (_values(entry_price=-0.0), "entry_price"),
        (_values(entry_ts_ns=-1), "entry_ts_ns"),
        (_values(entry_ts_ns=2**63), "entry_ts_ns"),
        (_values(entry_ts_ns=float(TS)), "entry_ts_ns"),
        (_values(entry_ts_ns=True), "entry_ts_ns"),
        (_values(status="open"), "status"),
        (_values(exit_price=101.0), "exit_price"),
        (_values(exit_ts_ns=TS), "exit_ts_ns"),
        (_values(status=TradeStatus.CLOSED, exit_ts_ns=TS), "exit_price"),
        (_values(status=TradeStatus.LIQUIDATED, exit_price=1.0), "exit_ts_ns"),
        (_closed(exit_price=0.0), "exit_price"),
        (_closed(exit_ts_ns=TS - 1), "exit_ts_ns"),
        (_closed(exit_ts_ns=float(TS + 1)), "exit_ts_ns"),
        (_values(realized_pnl=float("nan")), "realized_pnl"),
        (_values(fees=float("-inf")), "fees"),
        (_values(funding=None), "funding"),
        (_values(client_order_ids=["a"]), "client_order_ids"),
        (_values(client_order_ids=("a", "")), "client_order_ids"),
        (_values(client_order_ids=("a", 5)), "client_order_ids"),
        (_values(strategy=None), "strategy"),
        (_values(model_version=b"v1"), "model_version"),
        (_values(metadata=None), "metadata"),
        (_values(metadata=[("k", 1)]), "metadata"),
        (_values(metadata={1: "v"}), "metadata"),
        (_values(metadata={"k": None}), "metadata['k']"),
        (_values(metadata={"k": float("nan")}), "metadata['k']"),
        (_values(metadata={"k": [1]}), "metadata['k']"),
        (_values(metadata={"k": 2**63}), "metadata['k']"),
        (_values(metadata={"k": "\udfff"}), "metadata['k']"),
        (_values(updated_ts_ns=-5), "updated_ts_ns"),
    ],
)
def test_trade_record_when_field_invalid_raises_trade_record_error_naming_it(
    values: dict[str, Any], field: str
) -> None:
    with pytest.raises(TradeRecordError) as info:
        TradeRecord(**values)
    assert isinstance(info.value, ConfigError)
    assert info.value.field == field
    assert f": {field} " in str(info.value)


def test_trade_record_when_numbers_given_as_ints_stores_floats() -> None:
    record = TradeRecord(**_closed(quantity=2, entry_price=3, exit_price=4, fees=0, funding=-1))
    for name in ("quantity", "entry_price", "exit_price", "fees", "funding"):
        assert type(getattr(record, name)) is float, name
    assert record == TradeRecord(
        **_closed(quantity=2.0, entry_price=3.0, exit_price=4.0, fees=0.0, funding=-1.0)
    )


def test_trade_record_when_metadata_given_keeps_a_read_only_copy() -> None:
    metadata: dict[str, str | float | int | bool] = {"k": 1}
    record = TradeRecord(**_values(metadata=metadata))
    metadata["k"] = 2
    assert record.metadata == {"k": 1}
    with pytest.raises(TypeError):
        record.metadata["k"] = 3  # type: ignore[index]
    assert hash(record) == hash(TradeRecord(**_values(metadata={"k": 1})))


@pytest.mark.parametrize("clone", [pickle.loads, copy.deepcopy, copy.copy], ids=str)
def test_trade_record_when_pickled_or_copied_stays_equal(clone: Any) -> None:
    record = TradeRecord(**_closed(metadata={"a": -0.0, "b": True}, client_order_ids=("x",)))
    copied = clone(pickle.dumps(record)) if clone is pickle.loads else clone(record)
    assert copied == record
    assert repr(copied) == repr(record)


def test_to_dict_when_read_back_with_from_dict_gives_the_same_record() -> None:
    record = TradeRecord(**_closed(metadata={"n": 1, "f": 1.0}, client_order_ids=("a", "b")))
    data = record.to_dict()
    assert data["side"] == "buy"
    assert data["status"] == "closed"
    assert data["client_order_ids"] == ["a", "b"]
    rebuilt = TradeRecord.from_dict(data)
    assert rebuilt == record
    assert repr(rebuilt) == repr(record)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, r"fields do not match: missing \[\], unknown \['extra'\]"),
        ({"side": 1}, "side must be text"),
        ({"status": "pending"}, "status has no value 'pending'"),
        ({"client_order_ids": "abc"}, "client_order_ids must be a list"),
        ({"metadata": [1]}, "metadata must be a mapping"),
    ],
)
def test_from_dict_when_data_malformed_raises_trade_record_error(
    change: dict[str, Any], message: str
) -> None:
    data = {**TradeRecord(**_values()).to_dict(), **change}
    with pytest.raises(TradeRecordError, match=message):
        TradeRecord.from_dict(data)


def test_from_dict_when_field_missing_names_it() -> None:
    data = TradeRecord(**_values()).to_dict()
    del data["fees"]
    with pytest.raises(TradeRecordError, match=r"missing \['fees'\]"):
        TradeRecord.from_dict(data)


def test_closed_trade_when_open_applies_the_exit_and_defaults_updated_time() -> None:
    current = TradeRecord(**_values(fees=1.0))
    result = closed_trade(
        current,
        "T-1",
        exit_price=99.0,
        exit_ts_ns=TS + 9,
        status=TradeStatus.CLOSED,
        realized_pnl=-1.0,
        fees=2.0,
        funding=0.5,
    )
    assert result == replace(
        current,
        status=TradeStatus.CLOSED,
        exit_price=99.0,
        exit_ts_ns=TS + 9,
        realized_pnl=-1.0,
        fees=2.0,
        funding=0.5,
        updated_ts_ns=TS + 9,
    )


@pytest.mark.parametrize(
    ("current", "status"),
    [(None, None), (TradeRecord(**_closed()), TradeStatus.CLOSED)],
    ids=["unknown", "closed"],
)
def test_closed_trade_when_not_open_raises_conflict_error(
    current: TradeRecord | None, status: TradeStatus | None
) -> None:
    with pytest.raises(ConflictError) as info:
        closed_trade(
            current,
            "T-1",
            exit_price=1.0,
            exit_ts_ns=TS,
            status=TradeStatus.CLOSED,
            realized_pnl=0.0,
            fees=0.0,
            funding=0.0,
        )
    assert isinstance(info.value, TradeConflictError)
    assert info.value.status is status


def test_purgeable_when_closed_before_cutoff_only() -> None:
    closed = TradeRecord(**_closed())
    assert purgeable(closed, TS + 2)
    assert not purgeable(closed, TS + 1)
    assert not purgeable(TradeRecord(**_values(entry_ts_ns=0)), INT64_MAX)


def test_trade_query_when_filters_given_matches_half_open_window() -> None:
    record = TradeRecord(**_values())
    assert TradeQuery().matches(record)
    assert TradeQuery(symbol="BTCUSDT", status=TradeStatus.OPEN, since_ns=TS).matches(record)
    assert not TradeQuery(until_ns=TS).matches(record)
    assert not TradeQuery(since_ns=TS + 1).matches(record)
    assert not TradeQuery(status=TradeStatus.CLOSED).matches(record)
    assert not TradeQuery(symbol="ETHUSDT").matches(record)
    assert trade_sort_key(record) == (TS, "T-1")
