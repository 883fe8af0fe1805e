"""The versioned model artifact: a folder that holds a fitted ensemble and how it was validated.

Layout::

    manifest.json            version, created_ns, horizon, timeframe, symbols, features,
                             training range, config, library versions, metrics, file hashes
    model_lgbm.txt           the LightGBM model in LightGBM's own text format
    model_linear.json        the logistic regression and the calibration map (plain numbers)
    oos_predictions.parquet  ts_ns, symbol, prob_up, label (+ baselines, fold): every
                             out-of-sample prediction, for promotion tests
    validation.json          folds, metrics, calibration table, backtests
    validation.md            the same for people

No pickle: loading an artifact runs no code from it. The version is
``<UTC time of creation>-<first 12 hex of a SHA-256>`` over the model files and what defines
the model (horizon, timeframe, symbols, features, training range, config), so two artifacts
with the same version hold the same model. ``load_artifact`` checks every file
against the manifest's hashes: a missing folder or manifest is a ConfigError (wrong path), a
missing, edited or unreadable file an IntegrityError naming it.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantum_trader.ai.health import FeatureReference
from quantum_trader.ai.models import DirectionEnsemble, LinearModel, PlattCalibration
from quantum_trader.domain.errors import ConfigError, IntegrityError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LGBM_FILE = "model_lgbm.txt"
LINEAR_FILE = "model_linear.json"
OOS_FILE = "oos_predictions.parquet"
VALIDATION_JSON = "validation.json"
VALIDATION_MD = "validation.md"
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "format": int,
    "version": str,
    "created_ns": int,
    "horizon": int,
    "timeframe": str,
    "symbols": list,
    "features": list,
    "metrics": dict,
    "files": dict,
}
_OOS_REQUIRED = ("ts_ns", "symbol", "prob_up", "label")
_LIBRARIES = ("lightgbm", "scikit-learn", "numpy", "pandas")
# What defines the model besides its files: these enter the version's hash.
_MODEL_KEYS = ("horizon", "timeframe", "symbols", "features", "training_range", "config")


@dataclass(frozen=True, slots=True)
class ModelArtifact:
    """A loaded, verified artifact: its manifest and the ready-to-use ensemble."""

    path: Path
    manifest: dict[str, Any]
    model: DirectionEnsemble

    @property
    def version(self) -> str:
        """The artifact's version id."""
        return str(self.manifest["version"])

    @property
    def horizon(self) -> int:
        """Bars ahead the model predicts."""
        return int(self.manifest["horizon"])

    def oos_predictions(self) -> pd.DataFrame:
        """The out-of-sample predictions saved with the model."""
        return read_oos_predictions(self.path)

    def feature_references(self) -> dict[str, FeatureReference]:
        """Each feature's training distribution (empty for an artifact made without them)."""
        raw = self.manifest.get("feature_reference") or {}
        if not isinstance(raw, dict):
            raise IntegrityError(f"{self.path / MANIFEST}: feature_reference is not an object")
        try:
            return {str(k): FeatureReference.from_dict(v) for k, v in raw.items()}
        except ConfigError as exc:
            raise IntegrityError(f"{self.path / MANIFEST}: {exc}") from exc

    def validation_accuracy(self) -> float | None:
        """The ensemble's out-of-sample accuracy from validation, when recorded."""
        metrics = self.manifest.get("metrics", {})
        value = metrics.get("ensemble", {}).get("accuracy") if isinstance(metrics, dict) else None
        return float(value) if isinstance(value, int | float) else None


def library_versions() -> dict[str, str]:
    """Versions of the libraries that fit and evaluate the model, and of Python."""
    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def save_artifact(
    out: Path,
    model: DirectionEnsemble,
    manifest: dict[str, Any],
    oos: pd.DataFrame,
    validation: dict[str, Any],
    validation_md: str,
    *,
    created_ns: int,
) -> str:
    """Write the artifact into folder ``out`` (created if needed); return its version.

    ``manifest`` supplies horizon, timeframe, symbols, training range, config and metrics; this
    function adds the format, features, library versions, file hashes, creation time and version.
    """
    missing = [c for c in _OOS_REQUIRED if c not in oos.columns]
    if missing:
        raise ConfigError(f"out-of-sample predictions lack columns {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    (out / LGBM_FILE).write_text(model.booster_text, encoding="utf-8")
    (out / LINEAR_FILE).write_text(_dump(_linear_payload(model)), encoding="utf-8")
    oos.to_parquet(out / OOS_FILE, index=False)
    (out / VALIDATION_JSON).write_text(_dump(validation), encoding="utf-8")
    (out / VALIDATION_MD).write_text(validation_md, encoding="utf-8")
    files = {
        name: _sha256(out / name)
        for name in (LGBM_FILE, LINEAR_FILE, OOS_FILE, VALIDATION_JSON, VALIDATION_MD)
    }
    body = {
        **manifest,
        "format": FORMAT_VERSION,
        "features": list(model.features),
        "libraries": library_versions(),
        "files": files,
        "created_ns": int(created_ns),
    }
    content = hashlib.sha256()
    content.update((out / LGBM_FILE).read_bytes())
    content.update((out / LINEAR_FILE).read_bytes())
    content.update(_dump({k: body.get(k) for k in _MODEL_KEYS}).encode())
    stamp = datetime.fromtimestamp(created_ns / 1e9, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    version = f"{stamp}-{content.hexdigest()[:12]}"
    body["version"] = version
    body["created"] = datetime.fromtimestamp(created_ns / 1e9, tz=UTC).isoformat()
    (out / MANIFEST).write_text(_dump(body), encoding="utf-8")
    return version


def read_manifest(path: Path) -> dict[str, Any]:
    """Read and check ``path/manifest.json``: present, JSON, every required key of its type."""
    if not path.is_dir():
        raise ConfigError(f"model artifact {path} is not a folder")
    file = path / MANIFEST
    if not file.is_file():
        raise ConfigError(f"model artifact {path} has no {MANIFEST}")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise IntegrityError(f"{file}: expected a JSON object")
    for key, kind in REQUIRED_KEYS.items():
        if key not in manifest:
            raise IntegrityError(f"{file}: missing key {key!r}")
        if not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            raise IntegrityError(f"{file}: key {key!r} has the wrong type")
    if manifest["format"] != FORMAT_VERSION:
        raise IntegrityError(
            f"{file}: artifact format {manifest['format']} is not {FORMAT_VERSION}"
        )
    return manifest


def load_artifact(path: Path | str, *, threads: int = 1) -> ModelArtifact:
    """Load and verify the artifact in folder ``path``; raise naming the first problem found."""
    folder = Path(path)
    manifest = read_manifest(folder)
    files = manifest["files"]
    for name in (LGBM_FILE, LINEAR_FILE, OOS_FILE):
        if name not in files:
            raise IntegrityError(f"{folder / MANIFEST}: no hash for {name}")
    for name, digest in files.items():
        file = folder / str(name)
        if not file.is_file():
            raise IntegrityError(f"model artifact {folder}: {name} is missing")
        if _sha256(file) != digest:
            raise IntegrityError(
                f"model artifact {folder}: {name} does not match its hash in {MANIFEST}"
            )
    features = tuple(str(f) for f in manifest["features"])
    try:
        linear = json.loads((folder / LINEAR_FILE).read_text(encoding="utf-8"))
        model = _model_from(
            linear, (folder / LGBM_FILE).read_text(encoding="utf-8"), features, threads
        )
    except IntegrityError:
        raise
    except Exception as exc:  # corrupt content behind a matching hash, or a library mismatch
        raise IntegrityError(f"model artifact {folder}: cannot load the model ({exc})") from exc
    return ModelArtifact(folder, manifest, model)


def read_oos_predictions(path: Path | str) -> pd.DataFrame:
    """Read an artifact's out-of-sample predictions; IntegrityError if unreadable or incomplete."""
    file = Path(path) / OOS_FILE
    try:
        frame = pd.read_parquet(file)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise IntegrityError(f"{file}: cannot read ({exc})") from exc
    missing = [c for c in _OOS_REQUIRED if c not in frame.columns]
    if missing:
        raise IntegrityError(f"{file}: missing columns {', '.join(missing)}")
    return frame


def _linear_payload(model: DirectionEnsemble) -> dict[str, Any]:
    lin = model.linear
    return {
        "features": list(model.features),
        "mean": lin.mean.tolist(),
        "scale": lin.scale.tolist(),
        "coef": lin.coef.tolist(),
        "intercept": lin.intercept,
        "calibration": {
            "slope": model.calibration.slope,
            "intercept": model.calibration.intercept,
        },
    }


def _model_from(
    payload: dict[str, Any], booster_text: str, features: tuple[str, ...], threads: int
) -> DirectionEnsemble:
    if tuple(payload["features"]) != features:
        raise IntegrityError(f"{LINEAR_FILE}: its feature list differs from {MANIFEST}'s")
    arrays = [np.asarray(payload[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
    if any(a.shape != (len(features),) for a in arrays):
        raise IntegrityError(f"{LINEAR_FILE}: arrays do not have {len(features)} values")
    linear = LinearModel(arrays[0], arrays[1], arrays[2], float(payload["intercept"]))
    cal = payload["calibration"]
    return DirectionEnsemble(
        features,
        booster_text,
        linear,
        PlattCalibration(float(cal["slope"]), float(cal["intercept"])),
        threads=threads,
    )


def _sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def _dump(obj: object) -> str:
    return (
        json.dumps(_finite(obj), indent=2, sort_keys=True, allow_nan=False, default=_json_default)
        + "\n"
    )


def _finite(obj: object) -> object:
    """NaN and infinities become null: JSON has no such numbers."""
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj: object) -> object:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")
