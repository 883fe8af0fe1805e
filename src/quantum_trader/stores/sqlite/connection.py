"""One SQLite file for the safety core's state: connection settings, transactions, migrations.

Every SQLite store opens its connection through ``connect``, so they agree on the settings:

- WAL journal (readers never block the writer) and ``synchronous=FULL`` (a committed policy
  change survives a power loss; these writes are rare, so the fsync is cheap overall);
- ``busy_timeout``: a writer waits for another process's write lock instead of failing at once;
- ``isolation_level=None``: no implicit transactions; each write runs in ``transaction``, which
  starts with ``BEGIN IMMEDIATE`` so the write lock is taken before anything is read. That is what
  makes a read-check-write (compare-and-set) safe across processes.

Schema changes go through ``MIGRATIONS``: migration *n* (1-based position) brings the schema from
version *n - 1* to *n*; ``schema_version`` records where a file stands. A file written by a newer
program (a higher version than this one knows) is refused with ConfigError rather than guessed at.

SQLite errors never leave this package raw: ``translated`` maps them onto the package's error tree
(locked, busy or an I/O failure → TransientError; not a database, corrupt or a broken constraint
→ IntegrityError; cannot open → ConfigError).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from quantum_trader.domain.errors import (
    ConfigError,
    IntegrityError,
    QuantumTraderError,
    TransientError,
)

Migration = Callable[[sqlite3.Connection], None]
"""A schema step, run inside the migrating transaction."""

DEFAULT_BUSY_TIMEOUT_MS = 5_000


def _create_state_tables(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE policy_versions (
            version       INTEGER PRIMARY KEY,
            document      TEXT    NOT NULL,
            updated_at_ns INTEGER NOT NULL,
            updated_by    TEXT    NOT NULL,
            reason        TEXT    NOT NULL
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE ess_state (
            id               INTEGER PRIMARY KEY CHECK (id = 1),
            active           INTEGER NOT NULL,
            reason           TEXT    NOT NULL,
            severity         TEXT    NOT NULL,
            activated_at_ns  INTEGER NOT NULL,
            activated_by     TEXT    NOT NULL,
            reset_at_ns      INTEGER NOT NULL,
            reset_by         TEXT    NOT NULL,
            reset_reason     TEXT    NOT NULL,
            activations      INTEGER NOT NULL,
            ignored_triggers INTEGER NOT NULL
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE equity_marks (
            id               INTEGER PRIMARY KEY CHECK (id = 1),
            peak_equity      REAL    NOT NULL,
            peak_ts_ns       INTEGER NOT NULL,
            day_start_equity REAL    NOT NULL,
            day              TEXT    NOT NULL
        )
        """
    )


def _create_trades_table(conn: sqlite3.Connection) -> None:
    # The JSON document is the record (exact floats, -0.0, int vs float in metadata); the other
    # columns are copies for filtering and ordering, checked against it on every read.
    conn.execute(
        """
        CREATE TABLE trades (
            trade_id    TEXT    PRIMARY KEY,
            symbol      TEXT    NOT NULL,
            status      TEXT    NOT NULL CHECK (status IN ('open', 'closed', 'liquidated')),
            entry_ts_ns INTEGER NOT NULL,
            exit_ts_ns  INTEGER,
            record      TEXT    NOT NULL,
            CHECK ((status = 'open') = (exit_ts_ns IS NULL))
        )
        """
    )
    conn.execute("CREATE INDEX trades_by_status_entry ON trades (status, entry_ts_ns, trade_id)")
    conn.execute("CREATE INDEX trades_by_symbol_entry ON trades (symbol, entry_ts_ns, trade_id)")
    conn.execute("CREATE INDEX trades_by_entry ON trades (entry_ts_ns, trade_id)")
    conn.execute("CREATE INDEX trades_by_exit ON trades (exit_ts_ns) WHERE exit_ts_ns IS NOT NULL")


MIGRATIONS: tuple[Migration, ...] = (_create_state_tables, _create_trades_table)
"""The schema's history, oldest first; append a function to change the schema."""


def connect(
    path: Path,
    *,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> sqlite3.Connection:
    """Open (creating if needed) the state database at ``path`` and bring its schema up to date.

    Raises ConfigError when the file cannot be opened or was written by a newer schema, and
    IntegrityError when it is not a SQLite database.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the folder of state database {path}: {exc.strerror or exc}"
        ) from exc
    try:
        conn = sqlite3.connect(
            path,
            timeout=busy_timeout_ms / 1000.0,
            isolation_level=None,
            check_same_thread=False,  # each store guards its connection with a lock
        )
    except sqlite3.Error as exc:
        raise translated(exc, f"state database {path}") from exc
    try:
        with translating(f"state database {path}"):
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise ConfigError(f"state database {path} cannot use WAL journaling (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            migrate(conn, migrations, name=str(path))
    except BaseException:
        conn.close()
        raise
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in ``conn``'s database (0 for a new file)."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if has_table is None:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return 0 if row is None else int(row[0])


def migrate(
    conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS, *, name: str = ""
) -> int:
    """Apply the migrations ``conn``'s database lacks, in one transaction; return the version.

    Safe when several processes open a new file at once: the first takes the write lock and
    migrates, the others then find nothing left to do.
    """
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
        )
        current = schema_version(conn)
        target = len(migrations)
        if current > target:
            raise ConfigError(
                f"state database {name or '(connection)'} has schema version {current}, newer "
                f"than this program supports ({target}); upgrade Quantum Trader"
            )
        for number, step in enumerate(migrations[current:], start=current + 1):
            try:
                step(conn)
            except sqlite3.Error as exc:
                raise IntegrityError(
                    f"state database {name or '(connection)'}: migration to schema version "
                    f"{number} failed, nothing was changed: {exc}"
                ) from exc
        if target != current:
            conn.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (target,),
            )
    return target


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block as one write transaction (``BEGIN IMMEDIATE``): commit, or roll back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def translated(exc: sqlite3.Error, what: str) -> QuantumTraderError:
    """The package error for a SQLite error met while working on ``what`` (raise it ``from``)."""
    message = str(exc)
    lowered = message.lower()
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in lowered or "busy" in lowered):
        return TransientError(f"{what} is busy (another process holds the write lock): {message}")
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return IntegrityError(f"{what} is corrupt or not a SQLite database: {message}")
    if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
        return ConfigError(f"cannot open {what}: {message}")
    if isinstance(exc, sqlite3.OperationalError):
        # Disk I/O errors and a full disk: the data is fine, the write may succeed later.
        return TransientError(f"{what}: {message}")
    return IntegrityError(f"{what}: {message}")


@contextmanager
def translating(what: str) -> Iterator[None]:
    """Turn any SQLite error raised in the block into the package's error (see ``translated``)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translated(exc, what) from exc
