"""What only the SQLite trade store promises: restarts keep the trades, processes racing to close
a trade get exactly one winner, a corrupt row is reported naming the trade, and the table arrives
by migration on an existing state database."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quantum_trader.domain.errors import IntegrityError
from quantum_trader.domain.orders import OrderSide
from quantum_trader.domain.trading import TradeStatus
from quantum_trader.engine.stores import open_state_stores
from quantum_trader.stores.ports import EssState
from quantum_trader.stores.sqlite import (
    MIGRATIONS,
    SqliteEssStateStore,
    SqliteTradeStateStore,
    connect,
    schema_version,
)
from quantum_trader.stores.trades import TradeRecord

TS = 1_700_000_000_000_000_000


def _trade(trade_id: str, **changes: Any) -> TradeRecord:
    values: dict[str, Any] = {
        "trade_id": trade_id,
        "symbol": "BTCUSDT",
        "side": OrderSide.SELL,
        "quantity": 0.25,
        "entry_price": 30_000.5,
        "entry_ts_ns": TS,
        "client_order_ids": ("qt-1",),
        "metadata": {"signal": -0.0, "bars": 3, "flag": True},
        "updated_ts_ns": TS,
    }
    values.update(changes)
    return TradeRecord(**values)


def test_open_state_stores_when_reopened_returns_the_same_trades(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with open_state_stores(db) as stores:
        for number in range(20):
            stores.trades.save(_trade(f"t{number:02}", entry_ts_ns=TS + number, fees=-0.0))
        stores.trades.close(
            "t03",
            exit_price=29_000.0,
            exit_ts_ns=TS + 100,
            status=TradeStatus.LIQUIDATED,
            realized_pnl=250.0,
            fees=0.0,
            funding=-1.5,
        )
        stores.trades.save(
            _trade(
                "gone",
                status=TradeStatus.CLOSED,
                exit_price=1.0,
                exit_ts_ns=TS + 1,
            )
        )
        assert stores.trades.purge_closed(TS + 50) == 1
        before = list(stores.trades.list())
        open_before = list(stores.trades.list_open())
    with open_state_stores(db) as reopened:
        after = list(reopened.trades.list())
        assert after == before
        assert [repr(r) for r in after] == [repr(r) for r in before]  # -0.0 and types too
        assert list(reopened.trades.list_open()) == open_before
        assert reopened.trades.count_open() == 19
        assert reopened.trades.get("gone") is None


# Runs in each spawned process (``exec`` is picklable by name; a function of this test module
# would not be importable there under pytest's importlib mode). Every round, all processes
# wait at the barrier, then all try to close the same trade.
CLOSE_RACE_WORKER = """
from quantum_trader.domain.errors import ConflictError
from quantum_trader.domain.trading import TradeStatus
from quantum_trader.stores.sqlite import SqliteTradeStateStore

store = SqliteTradeStateStore(db_path, busy_timeout_ms=30_000)
for round_number in range(rounds):
    barrier.wait()
    try:
        store.close(
            f"race-{round_number}",
            exit_price=100.0 + worker,
            exit_ts_ns=2_000_000_000_000_000_000,
            status=TradeStatus.CLOSED,
            realized_pnl=float(worker),
            fees=0.0,
            funding=0.0,
        )
    except ConflictError as exc:
        results.put((round_number, worker, "conflict", str(exc)))
    else:
        results.put((round_number, worker, "won", ""))
store.close_connection()
"""


def test_close_when_processes_race_exactly_one_wins_each_round(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    processes_count, rounds = 3, 6
    setup = SqliteTradeStateStore(db)
    for round_number in range(rounds):
        setup.save(_trade(f"race-{round_number}"))
    setup.close_connection()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes_count, timeout=60)
    results = ctx.Queue()
    arguments = {"db_path": db, "rounds": rounds, "barrier": barrier, "results": results}
    processes = [
        ctx.Process(target=exec, args=(CLOSE_RACE_WORKER, {**arguments, "worker": worker}))
        for worker in range(processes_count)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in range(processes_count * rounds)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    store = SqliteTradeStateStore(db)
    for round_number in range(rounds):
        this_round = [o for o in outcomes if o[0] == round_number]
        assert sorted(o[2] for o in this_round) == ["conflict", "conflict", "won"], this_round
        winner = next(o[1] for o in this_round if o[2] == "won")
        for conflict in (o for o in this_round if o[2] == "conflict"):
            assert conflict[3] == f"cannot close trade 'race-{round_number}': it is already closed"
        stored = store.get(f"race-{round_number}")
        assert stored is not None
        assert stored.exit_price == 100.0 + winner
        assert stored.realized_pnl == float(winner)
    assert store.count_open() == 0
    store.close_connection()


def _tamper(db: Path, sql: str, *parameters: object) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(sql, parameters)
    conn.close()


CORRUPTIONS = [
    pytest.param("UPDATE trades SET record = '{not json'", "line 1 column 2", id="garbled"),
    pytest.param(
        "UPDATE trades SET record = CAST(X'7B22FF' AS TEXT)", "not valid UTF-8", id="not-utf8"
    ),
    pytest.param(
        "UPDATE trades SET record = json_set(record, '$.fees', json('null'))",
        "fees must be a finite number, got None",
        id="null-number",
    ),
    pytest.param(
        "UPDATE trades SET record = replace(record, '\"bars\":3', '\"bars\":1e999')",
        "number is infinity",
        id="overflowing-number",
    ),
    pytest.param("UPDATE trades SET record = '[1, 2]'", "JSON list", id="not-an-object"),
    pytest.param(
        "UPDATE trades SET record = json_remove(record, '$.fees')",
        "fields do not match: missing ['fees']",
        id="missing-field",
    ),
    pytest.param(
        "UPDATE trades SET record = json_set(record, '$.extra', 1)",
        "unknown ['extra']",
        id="unknown-field",
    ),
    pytest.param(
        "UPDATE trades SET record = json_set(record, '$.quantity', -1.0)",
        "quantity must be > 0",
        id="invalid-value",
    ),
    pytest.param(
        "UPDATE trades SET record = json_set(record, '$.side', 'sideways')",
        "side has no value 'sideways'",
        id="unknown-side",
    ),
    pytest.param(
        "UPDATE trades SET symbol = 'ETHUSDT'",
        "columns ('victim', 'ETHUSDT', 'open'",
        id="column-differs-from-document",
    ),
    pytest.param(
        "UPDATE trades SET record = json_set(record, '$.trade_id', 'other')",
        "do not match its document ('other'",
        id="document-of-another-trade",
    ),
]


@pytest.mark.parametrize(("sql", "detail"), CORRUPTIONS)
def test_read_when_row_corrupt_raises_integrity_error_naming_the_trade(
    tmp_path: Path, sql: str, detail: str
) -> None:
    db = tmp_path / "state.db"
    store = SqliteTradeStateStore(db)
    store.save(_trade("victim"))
    _tamper(db, sql)
    reads: list[Callable[[], object]] = [
        lambda: store.get("victim"),
        store.list_open,
        store.list,
        lambda: store.close(
            "victim",
            exit_price=1.0,
            exit_ts_ns=TS,
            status=TradeStatus.CLOSED,
            realized_pnl=0.0,
            fees=0.0,
            funding=0.0,
        ),
    ]
    for read in reads:
        with pytest.raises(
            IntegrityError, match="trades row for trade 'victim' is corrupt"
        ) as info:
            read()
        assert detail in str(info.value)
    store.save(_trade("victim"))  # a save replaces the corrupt row
    assert store.get("victim") == _trade("victim")
    store.close_connection()


def test_connect_when_database_predates_trades_adds_the_table_and_keeps_data(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    latched = EssState(active=True, reason="before upgrade", activations=1)
    old = connect(db, migrations=MIGRATIONS[:1])  # a file as the previous release left it
    assert schema_version(old) == 1
    old.execute("INSERT INTO ess_state VALUES (1, 1, 'before upgrade', '', 0, '', 0, '', '', 1, 0)")
    old.close()

    store = SqliteTradeStateStore(db)
    store.save(_trade("after-upgrade"))
    assert store.count_open() == 1
    store.close_connection()
    conn = connect(db)
    assert schema_version(conn) == len(MIGRATIONS)
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert {
        "trades_by_status_entry",
        "trades_by_symbol_entry",
        "trades_by_entry",
        "trades_by_exit",
    } <= indexes
    ess = SqliteEssStateStore(db)
    assert ess.load() == latched
    ess.close()


def test_schema_when_row_breaks_open_exit_rule_refuses_it(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SqliteTradeStateStore(db).close_connection()
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        conn.execute("INSERT INTO trades VALUES ('x', 'BTCUSDT', 'open', 0, 5, '{}')")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        conn.execute("INSERT INTO trades VALUES ('x', 'BTCUSDT', 'pending', 0, NULL, '{}')")
    conn.close()
