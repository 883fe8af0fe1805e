"""Single-row tables that hold one frozen dataclass (the ESS latch, the equity marks).

Columns are named after the dataclass fields, one per field, plus ``id`` fixed at 1. Values are
checked both ways: a record whose fields have the wrong type, or a non-finite float (SQLite
would silently store NaN as NULL), is refused before anything is written; a stored row whose
values do not fit the fields raises IntegrityError naming the table and column.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from quantum_trader.domain.errors import IntegrityError
from quantum_trader.stores.sqlite.connection import connect, transaction, translating

_R = TypeVar("_R")


def field_types(kind: type[Any]) -> dict[str, type]:
    """Map each field of dataclass ``kind`` to its type (bool, int, float or str)."""
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in fields(kind)}


def check_record(table: str, record: object, types: dict[str, type]) -> None:
    """Raise IntegrityError unless every field of ``record`` has its declared type."""
    for name, kind in types.items():
        value = getattr(record, name)
        if not _fits(value, kind):
            raise IntegrityError(
                f"refusing to store {table}: {name}={value!r} is not a {_describe(kind)}"
            )


def _describe(kind: type) -> str:
    return "finite float" if kind is float else kind.__name__


def _fits(value: object, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    return isinstance(value, kind)


class SingleRowTable(Generic[_R]):
    """Load and save one record of dataclass ``kind`` in ``table`` (row ``id = 1``)."""

    def __init__(self, path: Path, table: str, kind: type[_R], *, busy_timeout_ms: int) -> None:
        """Open the state database at ``path``; ``table`` must have one column per field."""
        self.path = Path(path)
        self.table = table
        self._kind = kind
        self._types = field_types(kind)
        self._what = f"{table} in {self.path}"
        self._conn = connect(self.path, busy_timeout_ms=busy_timeout_ms)
        self._lock = threading.Lock()
        columns = ", ".join(self._types)
        placeholders = ", ".join("?" for _ in self._types)
        # Table and column names are ours (the dataclass fields), never user input.
        self._select = f"SELECT {columns} FROM {table} WHERE id = 1"  # noqa: S608
        self._upsert = f"INSERT OR REPLACE INTO {table} (id, {columns}) "
        self._upsert += f"VALUES (1, {placeholders})"

    def load(self) -> _R | None:
        """Return the stored record, or None when none was saved."""
        with self._lock, translating(self._what):
            row = self._conn.execute(self._select).fetchone()
        return None if row is None else self._decode(row)

    def save(self, record: _R) -> None:
        """Replace the stored record with ``record`` in one transaction."""
        if not isinstance(record, self._kind):
            raise IntegrityError(f"refusing to store {self.table}: got {type(record).__name__}")
        check_record(self.table, record, self._types)
        values = tuple(_encode(getattr(record, name)) for name in self._types)
        with self._lock, translating(self._what), transaction(self._conn):
            self._conn.execute(self._upsert, values)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def _decode(self, row: sqlite3.Row | tuple[Any, ...]) -> _R:
        values: dict[str, Any] = {}
        for (name, kind), raw in zip(self._types.items(), row, strict=True):
            value: Any = raw
            if kind is bool and type(raw) is int and raw in (0, 1):
                value = bool(raw)
            elif kind is float and type(raw) is int:
                value = float(raw)  # REAL affinity stores whole floats as REAL; be lenient
            if not _fits(value, kind):
                raise IntegrityError(
                    f"{self.table} row is corrupt: column {name} holds {raw!r}, "
                    f"not a {_describe(kind)}"
                )
            values[name] = value
        return self._kind(**values)


def _encode(value: object) -> object:
    return int(value) if isinstance(value, bool) else value
