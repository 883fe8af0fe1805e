"""What only the SQLite backend promises: processes share it, restarts keep it, corruption is
reported (never a raw traceback), and its schema is versioned and migrated."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from dataclasses import fields
from pathlib import Path

import pytest

from quantum_trader.domain.errors import ConfigError, IntegrityError
from quantum_trader.domain.policy import Policy, RiskMode, TradingState
from quantum_trader.engine.stores import open_state_stores
from quantum_trader.stores.ports import EquityMarks, EssState
from quantum_trader.stores.sqlite import (
    MIGRATIONS,
    SqliteEquityMarksStore,
    SqliteEssStateStore,
    SqlitePolicyStore,
    connect,
    schema_version,
)

TS = 1_700_000_000_000_000_000

# Runs in each spawned process (``exec`` is picklable by name; a function of this test module
# would not be importable there under pytest's importlib mode). Every round, all processes read
# the same version (first barrier), then all try to write over it (second barrier).
RACE_WORKER = """
from quantum_trader.domain.errors import ConflictError
from quantum_trader.stores.sqlite import SqlitePolicyStore

store = SqlitePolicyStore(db_path, busy_timeout_ms=30_000)
for round_number in range(rounds):
    barrier.wait()
    current = store.get()
    barrier.wait()
    new = current.changed(
        actor=f"worker-{worker}", reason=f"round {round_number}", ts_ns=1,
        max_orders_per_window=worker + 1,
    )
    try:
        store.compare_and_set(current.version, new)
    except ConflictError as exc:
        results.put((round_number, worker, "conflict", current.version, str(exc)))
    else:
        results.put((round_number, worker, "won", current.version, ""))
store.close()
"""


def test_compare_and_set_when_processes_race_exactly_one_wins_each_round(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SqlitePolicyStore(db).close()  # create and migrate the file before the race
    processes_count, rounds = 3, 8
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes_count, timeout=60)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=exec,
            args=(
                RACE_WORKER,
                {
                    "db_path": db,
                    "rounds": rounds,
                    "worker": worker,
                    "barrier": barrier,
                    "results": results,
                },
            ),
        )
        for worker in range(processes_count)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in range(processes_count * rounds)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    for round_number in range(rounds):
        this_round = [o for o in outcomes if o[0] == round_number]
        assert sorted(o[2] for o in this_round) == ["conflict", "conflict", "won"], this_round
        read_version = round_number + 1
        assert {o[3] for o in this_round} == {read_version}
        for conflict in (o for o in this_round if o[2] == "conflict"):
            assert conflict[4] == (
                f"policy changed since you read it: expected version {read_version}, "
                f"store has {read_version + 1}"
            )
    store = SqlitePolicyStore(db)
    history = store.history(limit=100)
    assert [p.version for p in history] == list(range(rounds + 1, 0, -1))
    assert history[0] == store.get()
    store.close()


def test_open_state_stores_when_reopened_returns_the_same_state(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    latched = EssState(active=True, reason="manual", activated_at_ns=TS, activations=1)
    marks = EquityMarks(peak_equity=1_000.5, peak_ts_ns=TS, day_start_equity=0.0, day="")
    with open_state_stores(db) as stores:
        first = stores.policy.get()
        changed = first.changed(
            actor="alice", reason="restart test", ts_ns=TS, mode=RiskMode.SAFE, state="halted"
        )
        stores.policy.compare_and_set(first.version, changed)
        stores.ess.save(latched)
        stores.equity_marks.save(marks)
    with open_state_stores(db) as reopened:
        assert reopened.policy.get() == changed
        assert reopened.policy.get().state is TradingState.HALTED
        assert list(reopened.policy.history()) == [changed, Policy()]
        assert reopened.ess.load() == latched
        assert reopened.equity_marks.load() == marks


def _insert_policy_row(db: Path, version: int, document: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT INTO policy_versions VALUES (?, ?, 0, 'vandal', 'corrupt')",
            (version, document),
        )
    conn.close()


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "JSON list"),
        ('{"version": 2}', "limits"),
        ("BROKEN", "Expecting value"),
    ],
    ids=["garbled", "not-an-object", "missing-limits", "not-json"],
)
def test_get_when_document_corrupt_raises_integrity_error_naming_table_and_version(
    tmp_path: Path, document: str, detail: str
) -> None:
    db = tmp_path / "state.db"
    store = SqlitePolicyStore(db)
    store.get()
    _insert_policy_row(db, 2, document)
    for read in (store.get, store.history):
        with pytest.raises(IntegrityError, match="policy_versions version 2 is corrupt") as info:
            read()
        assert detail in str(info.value)
    store.close()


def test_get_when_document_fails_validation_raises_integrity_error(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SqlitePolicyStore(db)
    document = Policy().to_dict()
    document["version"] = 2
    document["limits"]["safe"]["max_leverage"] = 50.0  # looser than normal: breaks the rule
    _insert_policy_row(db, 2, json.dumps(document))
    with pytest.raises(IntegrityError, match=r"policy_versions version 2 is corrupt: limits must"):
        store.get()
    store.close()


def test_get_when_document_version_differs_from_row_raises_integrity_error(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    store = SqlitePolicyStore(db)
    _insert_policy_row(db, 1, json.dumps(Policy(version=4).to_dict()))
    with pytest.raises(IntegrityError, match="version 1 is corrupt: its document says version 4"):
        store.get()
    store.close()


def test_load_when_ess_row_corrupt_raises_integrity_error_naming_column(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SqliteEssStateStore(db)
    store.save(EssState(active=True, activations=2))
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE ess_state SET activations = 'many'")
    conn.close()
    with pytest.raises(IntegrityError, match="ess_state row is corrupt: column activations"):
        store.load()
    store.close()


def test_load_when_equity_row_corrupt_raises_integrity_error_naming_column(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    store = SqliteEquityMarksStore(db)
    store.save(EquityMarks(peak_equity=5.0))
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE equity_marks SET peak_equity = 'lots'")
    conn.close()
    with pytest.raises(IntegrityError, match="equity_marks row is corrupt: column peak_equity"):
        store.load()
    store.close()


def test_open_state_stores_when_file_not_a_database_raises_integrity_error(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    with pytest.raises(IntegrityError, match=r"state\.db is corrupt or not a SQLite database"):
        open_state_stores(db)


def test_open_state_stores_when_path_is_a_folder_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open state database"):
        open_state_stores(tmp_path)


def test_connect_when_new_file_sets_wal_and_latest_schema(tmp_path: Path) -> None:
    conn = connect(tmp_path / "nested" / "state.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert schema_version(conn) == len(MIGRATIONS)
    conn.close()


def test_connect_when_schema_newer_than_program_raises_config_error(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    connect(db).close()
    raw = sqlite3.connect(db)
    with raw:
        raw.execute("UPDATE schema_version SET version = 99")
    raw.close()
    with pytest.raises(ConfigError, match="schema version 99, newer than this program"):
        open_state_stores(db)


def test_connect_when_migration_added_applies_it_once(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    connect(db).close()
    calls: list[int] = []

    def add_notes(conn: sqlite3.Connection) -> None:
        calls.append(1)
        conn.execute("CREATE TABLE notes (text TEXT NOT NULL)")

    migrations = (*MIGRATIONS, add_notes)
    for _ in range(2):
        conn = connect(db, migrations=migrations)
        assert schema_version(conn) == len(MIGRATIONS) + 1
        conn.close()
    assert calls == [1]


def test_migration_when_it_fails_rolls_back_and_keeps_version(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    connect(db).close()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        conn.execute("THIS IS NOT SQL")

    with pytest.raises(
        IntegrityError, match=f"migration to schema version {len(MIGRATIONS) + 1} failed"
    ):
        connect(db, migrations=(*MIGRATIONS, broken))
    conn = connect(db)
    assert schema_version(conn) == len(MIGRATIONS)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in tables
    conn.close()


@pytest.mark.parametrize(
    ("table", "record"), [("ess_state", EssState), ("equity_marks", EquityMarks)]
)
def test_schema_when_created_has_one_column_per_record_field(
    tmp_path: Path, table: str, record: type
) -> None:
    conn = connect(tmp_path / "state.db")
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    conn.close()
    assert columns == ["id", *(f.name for f in fields(record))]
