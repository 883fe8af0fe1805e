"""The TradeStateStore contract, run against every backend (see ``conftest.OPENERS``).

"Exactly" means bit for bit: ``identical`` tells ``-0.0`` from ``0.0``, ``1`` from ``1.0`` and
``True`` from ``1``, which ``==`` does not.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from quantum_trader.domain.errors import ConfigError, ConflictError
from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.trading import TradeStatus
from quantum_trader.engine.stores import StateStores
from quantum_trader.stores.trades import (
    INT64_MAX,
    TradeConflictError,
    TradeRecord,
    TradeRecordError,
    TradeStateStore,
)

TS = 1_700_000_000_000_000_000
OPEN, CLOSED, LIQUIDATED = TradeStatus.OPEN, TradeStatus.CLOSED, TradeStatus.LIQUIDATED


@pytest.fixture
def trade_store(state_stores: StateStores) -> TradeStateStore:
    """The backend's TradeStateStore, fresh and empty."""
    return state_stores.trades


def trade(trade_id: str = "T-1", **changes: Any) -> TradeRecord:
    """An open BTC long entered at ``TS``, with ``changes`` applied."""
    values: dict[str, Any] = {
        "trade_id": trade_id,
        "symbol": "BTCUSDT",
        "side": OrderSide.BUY,
        "quantity": 0.5,
        "entry_price": 42_000.5,
        "entry_ts_ns": TS,
        "updated_ts_ns": TS,
    }
    values.update(changes)
    return TradeRecord(**values)


def closed(trade_id: str = "T-1", **changes: Any) -> TradeRecord:
    """A closed trade that exited one second after ``TS``, with ``changes`` applied."""
    values: dict[str, Any] = {
        "status": CLOSED,
        "exit_price": 43_000.25,
        "exit_ts_ns": TS + 1_000_000_000,
    }
    values.update(changes)
    return trade(trade_id, **values)


def _exact(value: object) -> object:
    # A form whose == is bit-exact: type tags, float hex (keeps -0.0), sorted mapping items.
    if isinstance(value, bool | int | str) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, OrderSide | TradeStatus):
        return (type(value).__name__, value.value)
    if isinstance(value, Mapping):
        return ("mapping", sorted((key, _exact(item)) for key, item in value.items()))
    if isinstance(value, tuple):
        return ("tuple", [_exact(item) for item in value])
    raise AssertionError(f"unexpected value {value!r} of type {type(value).__name__}")


def identical(actual: object, expected: TradeRecord) -> bool:
    """True when ``actual`` is a TradeRecord equal to ``expected`` bit for bit in every field."""
    return isinstance(actual, TradeRecord) and all(
        _exact(getattr(actual, f.name)) == _exact(getattr(expected, f.name))
        for f in fields(TradeRecord)
    )


def assert_identical_lists(actual: Sequence[TradeRecord], expected: Sequence[TradeRecord]) -> None:
    """Assert same records, in the same order, each bit for bit."""
    assert [r.trade_id for r in actual] == [r.trade_id for r in expected]
    for got, want in zip(actual, expected, strict=True):
        assert identical(got, want), (got, want)


ADVERSARIAL = [
    pytest.param(
        closed(
            "trade/Ω-𝔘ñíçødé \"quoted\" 'single' \\ back\nnewline\x00nul",
            symbol="1000PEPE/USDT:USDT",
            side=OrderSide.SELL,
            quantity=5e-324,  # the smallest subnormal
            entry_price=1.7976931348623157e308,
            entry_ts_ns=0,
            exit_price=0.1 + 0.2,
            exit_ts_ns=INT64_MAX,
            status=LIQUIDATED,
            realized_pnl=-0.0,
            fees=-1.25e-9,  # a maker rebate
            funding=-123_456.789_012_345_67,
            client_order_ids=("qt-1", "qt-2-✓", "x" * 200),
            strategy="s" * 10_000,
            model_version="ρ-v1.0.0+build.7",
            metadata={
                "int": 7,
                "float_whole": 7.0,
                "bool": True,
                "zero_int": 0,
                "zero_float": 0.0,
                "negative_zero": -0.0,
                "false": False,
                "empty": "",
                "": "empty key",
                "big": INT64_MAX,
                "small": -(2**63),
                "unicode ключ": "значение 🚀",
                "tiny": 5e-324,
            },
            updated_ts_ns=INT64_MAX,
        ),
        id="adversarial-liquidated",
    ),
    pytest.param(
        trade(
            "zeros",
            realized_pnl=0.0,
            fees=0.0,
            funding=0.0,
            entry_ts_ns=0,
            updated_ts_ns=0,
            client_order_ids=(),
            strategy="",
            model_version="",
            metadata={},
        ),
        id="open-zeros-and-empties",
    ),
    pytest.param(
        closed("partial", realized_pnl=12.5, fees=0.0, funding=-0.0, metadata={"n": 1}),
        id="closed-signed-zero-funding",
    ),
    pytest.param(
        closed("same-instant", exit_ts_ns=TS, quantity=3, entry_price=2, exit_price=1),
        id="exit-at-entry-with-int-inputs",
    ),
]


def test_store_when_empty_has_no_trades(trade_store: TradeStateStore) -> None:
    assert trade_store.get("T-1") is None
    assert list(trade_store.list_open()) == []
    assert list(trade_store.list()) == []
    assert trade_store.count_open() == 0
    assert trade_store.purge_closed(INT64_MAX) == 0


@pytest.mark.parametrize("record", ADVERSARIAL)
def test_save_when_every_field_set_round_trips_exactly(
    trade_store: TradeStateStore, record: TradeRecord
) -> None:
    trade_store.save(record)
    loaded = trade_store.get(record.trade_id)
    assert loaded == record
    assert identical(loaded, record)
    assert_identical_lists(trade_store.list(), [record])
    assert_identical_lists(trade_store.list_open(), [record] if record.is_open else [])


def test_save_when_values_zero_or_empty_keeps_them_not_none(
    trade_store: TradeStateStore,
) -> None:
    trade_store.save(closed(realized_pnl=0.0, fees=0.0, funding=0.0, metadata={"z": 0.0}))
    loaded = trade_store.get("T-1")
    assert loaded is not None
    for name in ("realized_pnl", "fees", "funding"):
        value = getattr(loaded, name)
        assert type(value) is float, name
        assert value == 0.0, name
    assert type(loaded.client_order_ids) is tuple
    assert loaded.client_order_ids == ()
    assert loaded.strategy == ""
    assert loaded.model_version == ""
    assert type(loaded.metadata["z"]) is float
    assert dict(loaded.metadata) == {"z": 0.0}


def test_get_when_record_returned_cannot_change_the_stored_one(
    trade_store: TradeStateStore,
) -> None:
    metadata: dict[str, str | float | int | bool] = {"reason": "breakout"}
    trade_store.save(trade(metadata=metadata))
    metadata["reason"] = "mutated after save"
    loaded = trade_store.get("T-1")
    assert loaded is not None
    with pytest.raises(TypeError):
        loaded.metadata["reason"] = "mutated after load"  # type: ignore[index]
    assert trade_store.get("T-1") == trade(metadata={"reason": "breakout"})


def test_save_when_same_id_saved_again_replaces_the_trade(trade_store: TradeStateStore) -> None:
    trade_store.save(trade(quantity=0.5, client_order_ids=("a",)))
    grown = trade(quantity=1.5, client_order_ids=("a", "b"), updated_ts_ns=TS + 5)
    trade_store.save(grown)
    assert identical(trade_store.get("T-1"), grown)
    assert trade_store.count_open() == 1
    replaced_by_closed = closed(symbol="ETHUSDT")
    trade_store.save(replaced_by_closed)
    assert identical(trade_store.get("T-1"), replaced_by_closed)
    assert trade_store.count_open() == 0
    assert list(trade_store.list_open()) == []
    assert_identical_lists(trade_store.list(symbol="ETHUSDT"), [replaced_by_closed])
    assert list(trade_store.list(symbol="BTCUSDT")) == []
    reopened = trade(symbol="ETHUSDT", entry_ts_ns=TS - 1)
    trade_store.save(reopened)
    assert_identical_lists(trade_store.list_open(), [reopened])


def test_save_when_not_a_trade_record_raises_config_error(trade_store: TradeStateStore) -> None:
    with pytest.raises(ConfigError, match="TradeRecord, got dict"):
        trade_store.save(trade().to_dict())  # type: ignore[arg-type]
    assert trade_store.count_open() == 0


def _population() -> list[TradeRecord]:
    # Saved out of order; ties on entry time are broken by trade id.
    return [
        trade("e", symbol="ETHUSDT", entry_ts_ns=TS + 30),
        closed("d", symbol="BTCUSDT", entry_ts_ns=TS + 20, exit_ts_ns=TS + 50),
        trade("c", symbol="BTCUSDT", entry_ts_ns=TS + 20),
        trade("b", symbol="ETHUSDT", entry_ts_ns=TS + 10),
        closed("a", symbol="ETHUSDT", entry_ts_ns=TS + 10, exit_ts_ns=TS + 40, status=LIQUIDATED),
        trade("z", symbol="BTCUSDT", entry_ts_ns=TS),
    ]


def _ids(records: Sequence[TradeRecord]) -> list[str]:
    return [r.trade_id for r in records]


def test_list_open_when_trades_saved_out_of_order_returns_open_ones_by_entry_time(
    trade_store: TradeStateStore,
) -> None:
    for record in _population():
        trade_store.save(record)
    assert _ids(trade_store.list_open()) == ["z", "b", "c", "e"]
    assert _ids(trade_store.list_open("BTCUSDT")) == ["z", "c"]
    assert _ids(trade_store.list_open("ETHUSDT")) == ["b", "e"]
    assert _ids(trade_store.list_open(symbol="SOLUSDT")) == []
    assert trade_store.count_open() == 4


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["z", "a", "b", "c", "d", "e"]),
        ({"symbol": "ETHUSDT"}, ["a", "b", "e"]),
        ({"status": OPEN}, ["z", "b", "c", "e"]),
        ({"status": CLOSED}, ["d"]),
        ({"status": LIQUIDATED}, ["a"]),
        ({"since_ns": TS + 10}, ["a", "b", "c", "d", "e"]),
        ({"until_ns": TS + 20}, ["z", "a", "b"]),
        ({"since_ns": TS + 10, "until_ns": TS + 21}, ["a", "b", "c", "d"]),
        ({"since_ns": TS + 20, "until_ns": TS + 20}, []),
        ({"limit": 2}, ["z", "a"]),
        ({"limit": 100}, ["z", "a", "b", "c", "d", "e"]),
        ({"symbol": "BTCUSDT", "status": OPEN, "since_ns": TS + 1}, ["c"]),
        ({"symbol": "ETHUSDT", "limit": 1, "since_ns": TS + 11}, ["e"]),
        ({"since_ns": -5, "until_ns": 2**64}, ["z", "a", "b", "c", "d", "e"]),
        ({"since_ns": 2**64}, []),
        ({"until_ns": -1}, []),
        ({"limit": 2**70}, ["z", "a", "b", "c", "d", "e"]),
    ],
)
def test_list_when_filtered_returns_matches_by_entry_time(
    trade_store: TradeStateStore, filters: dict[str, Any], expected: list[str]
) -> None:
    population = _population()
    for record in population:
        trade_store.save(record)
    by_id = {r.trade_id: r for r in population}
    assert_identical_lists(trade_store.list(**filters), [by_id[i] for i in expected])


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"limit": 0}, "limit must be >= 1"),
        ({"limit": -3}, "limit must be >= 1"),
        ({"limit": 1.5}, "limit must be an integer"),
        ({"since_ns": True}, "since_ns must be an integer"),
        ({"until_ns": "soon"}, "until_ns must be an integer"),
        ({"status": "open"}, "status must be a TradeStatus"),
        ({"symbol": 7}, "symbol must be text"),
    ],
)
def test_list_when_filter_invalid_raises_config_error(
    trade_store: TradeStateStore, filters: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        trade_store.list(**filters)


def _close_args(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "exit_price": 41_000.0,
        "exit_ts_ns": TS + 60_000_000_000,
        "status": CLOSED,
        "realized_pnl": -500.25,
        "fees": 0.0,
        "funding": -0.0,
    }
    values.update(changes)
    return values


def test_close_when_trade_open_closes_it_and_returns_the_stored_record(
    trade_store: TradeStateStore,
) -> None:
    opened = trade(client_order_ids=("qt-1",), metadata={"k": 1}, strategy="momentum")
    trade_store.save(opened)
    trade_store.save(trade("other", entry_ts_ns=TS + 1))
    result = trade_store.close("T-1", **_close_args())
    expected = replace(
        opened,
        exit_price=41_000.0,
        exit_ts_ns=TS + 60_000_000_000,
        status=CLOSED,
        realized_pnl=-500.25,
        fees=0.0,
        funding=-0.0,
        updated_ts_ns=TS + 60_000_000_000,
    )
    assert identical(result, expected)
    assert identical(trade_store.get("T-1"), expected)
    assert _ids(trade_store.list_open()) == ["other"]
    assert trade_store.count_open() == 1


def test_close_when_liquidated_with_updated_time_keeps_both(trade_store: TradeStateStore) -> None:
    trade_store.save(trade())
    result = trade_store.close(
        "T-1", **_close_args(status=LIQUIDATED, exit_ts_ns=TS), updated_ts_ns=TS + 7
    )
    assert result.status is LIQUIDATED
    assert result.exit_ts_ns == TS
    assert result.updated_ts_ns == TS + 7
    assert identical(trade_store.get("T-1"), result)


def test_close_when_trade_unknown_raises_conflict_error_naming_it(
    trade_store: TradeStateStore,
) -> None:
    with pytest.raises(ConflictError, match="cannot close trade 'ghost': no such trade") as info:
        trade_store.close("ghost", **_close_args())
    assert isinstance(info.value, TradeConflictError)
    assert info.value.trade_id == "ghost"
    assert info.value.status is None
    assert trade_store.get("ghost") is None


@pytest.mark.parametrize("first_status", [CLOSED, LIQUIDATED])
def test_close_when_already_closed_raises_conflict_error_and_keeps_first_close(
    trade_store: TradeStateStore, first_status: TradeStatus
) -> None:
    trade_store.save(trade())
    first = trade_store.close("T-1", **_close_args(status=first_status))
    with pytest.raises(
        TradeConflictError, match=f"cannot close trade 'T-1': it is already {first_status.value}"
    ) as info:
        trade_store.close("T-1", **_close_args(exit_price=1.0, realized_pnl=99.0))
    assert info.value.status is first_status
    assert identical(trade_store.get("T-1"), first)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"status": OPEN}, "status"),
        ({"exit_ts_ns": TS - 1}, "exit_ts_ns"),
        ({"exit_price": float("nan")}, "exit_price"),
        ({"exit_price": 0.0}, "exit_price"),
        ({"realized_pnl": float("inf")}, "realized_pnl"),
        ({"fees": None}, "fees"),
        ({"exit_ts_ns": 2**63}, "exit_ts_ns"),
    ],
)
def test_close_when_value_invalid_raises_trade_record_error_and_changes_nothing(
    trade_store: TradeStateStore, changes: dict[str, Any], field: str
) -> None:
    opened = trade()
    trade_store.save(opened)
    with pytest.raises(TradeRecordError, match=f"trade 'T-1': {field}") as info:
        trade_store.close("T-1", **_close_args(**changes))
    assert isinstance(info.value, ConfigError)
    assert info.value.field == field
    assert identical(trade_store.get("T-1"), opened)
    assert trade_store.count_open() == 1


def test_close_when_threads_race_exactly_one_succeeds(trade_store: TradeStateStore) -> None:
    trade_store.save(trade())
    workers = 8
    barrier = threading.Barrier(workers, timeout=30)
    outcomes: list[tuple[str, int, TradeStatus | None]] = []
    guard = threading.Lock()

    def close(worker: int) -> None:
        barrier.wait()
        try:
            trade_store.close("T-1", **_close_args(exit_price=100.0 + worker))
        except TradeConflictError as exc:
            with guard:
                outcomes.append(("conflict", worker, exc.status))
        else:
            with guard:
                outcomes.append(("won", worker, None))

    threads = [threading.Thread(target=close, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [o for o in outcomes if o[0] == "won"]
    assert len(outcomes) == workers, outcomes
    assert len(winners) == 1, outcomes
    assert {o[2] for o in outcomes if o[0] == "conflict"} == {CLOSED}
    stored = trade_store.get("T-1")
    assert stored is not None
    assert stored.exit_price == 100.0 + winners[0][1]


def test_purge_closed_when_retention_passes_drops_closed_by_exit_time_only(
    trade_store: TradeStateStore,
) -> None:
    old_open = trade("old-open", entry_ts_ns=0, updated_ts_ns=0)
    early = closed("early", entry_ts_ns=10, exit_ts_ns=100)
    liquidated = closed("liquidated", entry_ts_ns=0, exit_ts_ns=150, status=LIQUIDATED)
    boundary = closed("boundary", entry_ts_ns=0, exit_ts_ns=200)
    late = closed("late", entry_ts_ns=0, exit_ts_ns=300)
    for record in (old_open, early, liquidated, boundary, late):
        trade_store.save(record)
    assert trade_store.purge_closed(100) == 0  # strictly before: exit 100 is kept
    assert trade_store.purge_closed(200) == 2
    assert _ids(trade_store.list()) == ["boundary", "late", "old-open"]  # entry ties: by id
    assert trade_store.purge_closed(200) == 0
    assert trade_store.purge_closed(-1) == 0
    assert trade_store.purge_closed(2**64) == 2  # beyond every timestamp: all closed trades
    assert_identical_lists(trade_store.list(), [old_open])
    assert trade_store.count_open() == 1


def test_purge_closed_when_exit_at_int64_max_purges_only_past_it(
    trade_store: TradeStateStore,
) -> None:
    trade_store.save(closed("edge", exit_ts_ns=INT64_MAX))
    assert trade_store.purge_closed(INT64_MAX) == 0
    assert trade_store.purge_closed(INT64_MAX + 1) == 1


def test_purge_closed_when_cutoff_not_an_integer_raises_config_error(
    trade_store: TradeStateStore,
) -> None:
    trade_store.save(closed())
    with pytest.raises(ConfigError, match="before_ns must be an integer"):
        trade_store.purge_closed(1.5e18)  # type: ignore[arg-type]
    assert trade_store.get("T-1") is not None


def test_count_open_when_trades_open_close_and_purge_follows(
    trade_store: TradeStateStore,
) -> None:
    for number in range(5):
        trade_store.save(trade(f"t{number}", entry_ts_ns=TS + number))
    trade_store.save(closed("done"))
    assert trade_store.count_open() == 5
    trade_store.close("t3", **_close_args())
    assert trade_store.count_open() == 4
    trade_store.purge_closed(INT64_MAX)
    assert trade_store.count_open() == 4
    assert _ids(trade_store.list_open()) == ["t0", "t1", "t2", "t4"]


# --- Property: random save/close/purge/list sequences against a dict model --------------------

IDS = ("t0", "t1", "t2", "t3", "Ω4")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "ünï")
# Edge values often, any finite float otherwise.
FINITE = st.sampled_from((0.0, -0.0, 5e-324, -1.5)) | st.floats(
    allow_nan=False, allow_infinity=False
)
POSITIVE = st.sampled_from((5e-324, 1.0, 0.1 + 0.2)) | st.floats(
    min_value=0.0, exclude_min=True, allow_infinity=False
)
SMALL_TS = st.integers(min_value=0, max_value=30)
METADATA = st.dictionaries(
    st.text(max_size=4),
    st.one_of(
        st.text(max_size=6),
        FINITE,
        st.integers(min_value=-(2**63), max_value=INT64_MAX),
        st.booleans(),
    ),
    max_size=3,
)


@st.composite
def trade_records(draw: st.DrawFn) -> TradeRecord:
    """Any valid record over a few ids, symbols and close-together timestamps."""
    status = draw(st.sampled_from(TradeStatus))
    entry_ts_ns = draw(SMALL_TS)
    exit_price, exit_ts_ns = None, None
    if status is not OPEN:
        exit_price = draw(POSITIVE)
        exit_ts_ns = entry_ts_ns + draw(st.integers(min_value=0, max_value=10))
    return TradeRecord(
        trade_id=draw(st.sampled_from(IDS)),
        symbol=draw(st.sampled_from(SYMBOLS)),
        side=draw(st.sampled_from(OrderSide)),
        quantity=draw(POSITIVE),
        entry_price=draw(POSITIVE),
        entry_ts_ns=entry_ts_ns,
        exit_price=exit_price,
        exit_ts_ns=exit_ts_ns,
        status=status,
        realized_pnl=draw(FINITE),
        fees=draw(FINITE),
        funding=draw(FINITE),
        client_order_ids=tuple(draw(st.lists(st.text(min_size=1, max_size=5), max_size=2))),
        strategy=draw(st.text(max_size=8)),
        model_version=draw(st.text(max_size=4)),
        metadata=draw(METADATA),
        updated_ts_ns=draw(st.integers(min_value=0, max_value=INT64_MAX)),
    )


class TradeStoreMachine(RuleBasedStateMachine):
    """Drive one store and a plain dict with the same operations; their views must agree."""

    def __init__(self, store: TradeStateStore) -> None:
        super().__init__()
        self.store = store
        # The fixture's store outlives one example: empty it through the port itself.
        for record in store.list_open():
            store.close(record.trade_id, **_close_args(exit_ts_ns=INT64_MAX))
        store.purge_closed(INT64_MAX + 1)
        assert list(store.list()) == []
        self.model: dict[str, TradeRecord] = {}

    @initialize(records=st.lists(trade_records(), min_size=2, max_size=6))
    def populate(self, records: list[TradeRecord]) -> None:
        for record in records:
            self.save(record)

    @rule(record=trade_records())
    def save(self, record: TradeRecord) -> None:
        self.store.save(record)
        self.model[record.trade_id] = record

    @rule(
        data=st.data(),
        exit_price=POSITIVE,
        status=st.sampled_from((CLOSED, LIQUIDATED, CLOSED, LIQUIDATED, OPEN)),
        totals=st.tuples(FINITE, FINITE, FINITE),
    )
    def close(
        self,
        data: st.DataObject,
        exit_price: float,
        status: TradeStatus,
        totals: tuple[float, float, float],
    ) -> None:
        # Mostly an open trade (the interesting case), sometimes any id, known or not.
        open_ids = sorted(k for k, r in self.model.items() if r.status is OPEN)
        any_id = st.sampled_from((*IDS, "unknown"))
        trade_id = data.draw(st.sampled_from(open_ids) | any_id if open_ids else any_id)
        current = self.model.get(trade_id)
        entry = 0 if current is None else current.entry_ts_ns
        exit_ts_ns = data.draw(st.integers(min_value=max(0, entry - 2), max_value=entry + 10))
        realized_pnl, fees, funding = totals
        args = _close_args(
            exit_price=exit_price,
            exit_ts_ns=exit_ts_ns,
            status=status,
            realized_pnl=realized_pnl,
            fees=fees,
            funding=funding,
        )
        if current is None or current.status is not OPEN:
            with pytest.raises(TradeConflictError):
                self.store.close(trade_id, **args)
            return
        if status is OPEN or exit_ts_ns < current.entry_ts_ns:
            with pytest.raises(TradeRecordError):
                self.store.close(trade_id, **args)
            return
        expected = replace(current, **args, updated_ts_ns=exit_ts_ns)
        assert identical(self.store.close(trade_id, **args), expected)
        self.model[trade_id] = expected

    @rule(data=st.data())
    def purge(self, data: st.DataObject) -> None:
        # Often exactly at, or just past, a stored exit time: the retention boundary.
        exits = sorted({r.exit_ts_ns for r in self.model.values() if r.exit_ts_ns is not None})
        near_exit = st.sampled_from(exits).flatmap(lambda t: st.sampled_from((t, t + 1)))
        anywhere = st.integers(min_value=-1, max_value=45)
        before_ns = data.draw(near_exit | anywhere if exits else anywhere)
        doomed = [
            key
            for key, record in self.model.items()
            if record.status is not OPEN
            and record.exit_ts_ns is not None
            and record.exit_ts_ns < before_ns
        ]
        assert self.store.purge_closed(before_ns) == len(doomed)
        for key in doomed:
            del self.model[key]

    @rule(
        symbol=st.none() | st.sampled_from(SYMBOLS),
        status=st.none() | st.sampled_from(TradeStatus),
        since_ns=st.none() | SMALL_TS,
        until_ns=st.none() | SMALL_TS,
        limit=st.none() | st.integers(min_value=1, max_value=3),
    )
    def query(
        self,
        symbol: str | None,
        status: TradeStatus | None,
        since_ns: int | None,
        until_ns: int | None,
        limit: int | None,
    ) -> None:
        expected = [
            r
            for r in self._sorted()
            if (symbol is None or r.symbol == symbol)
            and (status is None or r.status is status)
            and (since_ns is None or r.entry_ts_ns >= since_ns)
            and (until_ns is None or r.entry_ts_ns < until_ns)
        ][:limit]
        found = self.store.list(
            symbol=symbol, status=status, since_ns=since_ns, until_ns=until_ns, limit=limit
        )
        assert_identical_lists(found, expected)

    @invariant()
    def views_agree(self) -> None:
        for trade_id in IDS:
            stored = self.store.get(trade_id)
            if trade_id in self.model:
                assert identical(stored, self.model[trade_id])
            else:
                assert stored is None
        opened = [r for r in self._sorted() if r.status is OPEN]
        assert_identical_lists(self.store.list_open(), opened)
        for symbol in SYMBOLS:
            expected = [r for r in opened if r.symbol == symbol]
            assert_identical_lists(self.store.list_open(symbol), expected)
        assert self.store.count_open() == len(opened)
        assert_identical_lists(self.store.list(), self._sorted())

    def _sorted(self) -> list[TradeRecord]:
        return sorted(self.model.values(), key=lambda r: (r.entry_ts_ns, r.trade_id))


def test_store_when_operations_random_matches_a_dict_model(trade_store: TradeStateStore) -> None:
    run_state_machine_as_test(
        lambda: TradeStoreMachine(trade_store),
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            derandomize=True,
            deadline=None,
            database=None,
        ),
    )
