"""The files of the model registry: artifact checks and hashes, atomic index writes.

An artifact is a folder with ``manifest.json`` (at least ``version``, ``created_ns``,
``horizon``, ``features``, ``metrics``) and ``oos_predictions.parquet`` (``ts_ns``, ``symbol``,
``prob_up``, ``label``). ``read_manifest``/``read_oos`` check them and raise ArtifactError (a
ConfigError: fix the artifact) naming the file and the fault.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from quantum_trader.ai.gate import validate_oos
from quantum_trader.domain.errors import ConfigError

MANIFEST_FILE = "manifest.json"
OOS_FILE = "oos_predictions.parquet"
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_REQUIRED_MANIFEST = {
    "version": str,
    "created_ns": int,
    "horizon": int,
    "features": list,
    "metrics": dict,
}


class ArtifactError(ConfigError):
    """A model artifact folder is missing a file or holds invalid content."""


def artifact_digest(directory: Path) -> str:
    """Return the SHA-256 of an artifact folder: every file's relative path and bytes, sorted."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    """Read and check an artifact's ``manifest.json``; ArtifactError names what is wrong."""
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise ArtifactError(f"{directory} is not a model artifact folder")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} must hold a JSON object")
    for key, kind in _REQUIRED_MANIFEST.items():
        value = manifest.get(key)
        if value is None:
            raise ArtifactError(f"{path}: missing {key!r}")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ArtifactError(f"{path}: {key!r} must be a {kind.__name__}, got {value!r}")
    if not _VERSION.fullmatch(manifest["version"]):
        raise ArtifactError(
            f"{path}: version {manifest['version']!r} must be letters, digits, '.', '_' or '-'"
        )
    if manifest["horizon"] < 1:
        raise ArtifactError(f"{path}: horizon must be >= 1, got {manifest['horizon']}")
    if not all(isinstance(f, str) for f in manifest["features"]):
        raise ArtifactError(f"{path}: features must be a list of names")
    return manifest


def read_oos(directory: Path) -> pd.DataFrame:
    """Read and check an artifact's out-of-sample predictions; ArtifactError when invalid."""
    path = directory / OOS_FILE
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} cannot be read: {exc}") from None
    try:
        oos = validate_oos(frame, str(path))
    except ConfigError as exc:
        raise ArtifactError(str(exc)) from None
    if oos.empty:
        raise ArtifactError(f"{path} holds no predictions")
    return oos


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename or a new file) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: temp file, fsync, os.replace, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
