"""InMemoryEssStateStore and InMemoryEquityMarksStore: one frozen record under a lock.

They refuse what the SQLite stores refuse (a field of the wrong type, a non-finite float) with
IntegrityError, so a test on the fake fails where production would.
"""

from __future__ import annotations

import math
import threading
import typing
from dataclasses import fields

from quantum_trader.domain.errors import IntegrityError
from quantum_trader.stores.ports import EquityMarks, EssState


def _fits(value: object, expected: type) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, expected)


def _describe(kind: type) -> str:
    return "finite float" if kind is float else kind.__name__


def _check(table: str, record: object, kind: type) -> None:
    if not isinstance(record, kind):
        raise IntegrityError(f"refusing to store {table}: got {type(record).__name__}")
    hints = typing.get_type_hints(kind)
    for f in fields(kind):
        value = getattr(record, f.name)
        if not _fits(value, hints[f.name]):
            raise IntegrityError(
                f"refusing to store {table}: {f.name}={value!r} is not a {_describe(hints[f.name])}"
            )


class InMemoryEssStateStore:
    """A thread-safe EssStateStore held in memory."""

    def __init__(self) -> None:
        """Start inactive."""
        self._state = EssState()
        self._lock = threading.Lock()

    def load(self) -> EssState:
        """Return the stored latch (inactive if none was stored)."""
        with self._lock:
            return self._state

    def save(self, state: EssState) -> None:
        """Store ``state``; IntegrityError (nothing stored) if a field is malformed."""
        _check("ess_state", state, EssState)
        with self._lock:
            self._state = state


class InMemoryEquityMarksStore:
    """A thread-safe EquityMarksStore held in memory."""

    def __init__(self) -> None:
        """Start with zero marks."""
        self._marks = EquityMarks()
        self._lock = threading.Lock()

    def load(self) -> EquityMarks:
        """Return the stored marks (zeros if none were stored)."""
        with self._lock:
            return self._marks

    def save(self, marks: EquityMarks) -> None:
        """Store ``marks``; IntegrityError (nothing stored) if a value is malformed."""
        _check("equity_marks", marks, EquityMarks)
        with self._lock:
            self._marks = marks
