"""Model sync: a running engine serves the registry's active model and swaps it without restart.

Every worker process holds its own ``ModelWatcher`` on the shared registry folder. ``poll`` is
cheap enough to call before each decision: one ``stat`` of ``registry.json``; only when its
identity changed (the index is replaced atomically, so every write makes a new inode and
mtime) does it read the index. When the active version differs from the one served, it checks
the artifact's SHA-256, calls the ``loader`` and swaps the served model under a lock, so a
reader never sees a half-made swap. A failed load keeps the old model serving, is reported in
the ``SyncResult`` and ``last_error``, and is retried only after the registry changes again (a
broken artifact is not reloaded on every call). ``stale`` tells whether the served model is not
the active one, which ``ai.health`` turns into a model-health penalty.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from quantum_trader.ai.registry import ModelRecord, ModelRegistry
from quantum_trader.domain.errors import QuantumTraderError

M = TypeVar("M")
Loader = Callable[[Path, ModelRecord], M]
"""Builds a servable model from an artifact folder and its record."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one poll did: ``swapped`` when a new model now serves; ``error`` when a load failed."""

    checked: bool
    swapped: bool
    version: str | None
    active: str | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class ServedModel(Generic[M]):
    """The model a watcher serves, with its version."""

    version: str
    model: M


class ModelWatcher(Generic[M]):
    """Serve the registry's active model; pick up promotions and rollbacks on ``poll``."""

    def __init__(self, registry: ModelRegistry, loader: Loader[M]) -> None:
        """Watch ``registry``; ``loader(artifact_folder, record)`` builds a servable model."""
        self._registry = registry
        self._loader = loader
        self._lock = threading.Lock()
        self._served: ServedModel[M] | None = None
        self._signature: tuple[int, int, int] | None = None
        self._active: str | None = None
        self.last_error = ""
        self.failed_version: str | None = None

    @property
    def served(self) -> ServedModel[M] | None:
        """The model serving now (None before the first successful load)."""
        return self._served

    @property
    def stale(self) -> bool:
        """True when the registry's active version (as last seen) is not the one served."""
        served = self._served
        return self._active is not None and (served is None or served.version != self._active)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._registry.index_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def poll(self) -> SyncResult:
        """Check the registry and swap in its active model if it changed; never raises."""
        with self._lock:
            signature = self._stat()
            served = self._served
            version = served.version if served else None
            if signature == self._signature:
                return SyncResult(False, False, version, self._active)
            try:
                active = self._registry.active_version()
            except QuantumTraderError as exc:
                # A corrupt index: keep serving what we have, report, retry on the next change.
                self._signature = signature
                self.last_error = str(exc)
                return SyncResult(True, False, version, self._active, self.last_error)
            self._signature = signature
            self._active = active
            if active is None or active == version:
                return SyncResult(True, False, version, active)
            try:
                path = self._registry.verify(active)
                model = self._loader(path, self._registry.get(active))
            except Exception as exc:
                self.failed_version = active
                self.last_error = f"loading model {active} failed: {type(exc).__name__}: {exc}"
                return SyncResult(True, False, version, active, self.last_error)
            self._served = ServedModel(active, model)
            self.failed_version = None
            self.last_error = ""
            return SyncResult(True, True, active, active)
