"""Builders of small model artifacts in the registry's shape, for tests and examples.

An artifact is a folder with ``manifest.json`` and ``oos_predictions.parquet``; these builders
write one whose out-of-sample predictions have a chosen skill, from a seeded generator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantum_trader.ai.registry import ModelRegistry
from quantum_trader.domain.clock import ManualClock

START_NS = 1_700_000_000_000_000_000
MINUTE_NS = 60_000_000_000


def oos_labels(n: int, *, symbols: tuple[str, ...] = ("BTCUSDT",), seed: int = 0) -> pd.DataFrame:
    """Return ``n`` rows of ``ts_ns``, ``symbol``, ``label`` (balanced coin flips, seeded)."""
    rng = np.random.default_rng(seed)
    per_symbol = -(-n // len(symbols))
    ts = START_NS + MINUTE_NS * np.arange(per_symbol, dtype=np.int64)
    frame = pd.DataFrame(
        {
            "ts_ns": np.tile(ts, len(symbols))[:n],
            "symbol": np.repeat(symbols, per_symbol)[:n],
        }
    )
    frame["label"] = rng.integers(0, 2, size=n)
    return frame


def predictions_with_skill(
    labels: pd.DataFrame, skill: float, *, seed: int = 1, noise: float = 0.0
) -> pd.DataFrame:
    """Return ``labels`` with ``prob_up`` leaning towards the true label by ``skill`` (0..0.5).

    ``skill`` 0 predicts 0.5 everywhere (no information); 0.2 puts 0.7 on the right side.
    ``noise`` adds seeded uniform jitter (clipped to 0.01..0.99) so two models with the same
    skill still differ sample by sample.
    """
    rng = np.random.default_rng(seed)
    sign = np.where(labels["label"].to_numpy() == 1, 1.0, -1.0)
    prob = 0.5 + skill * sign + rng.uniform(-noise, noise, size=len(labels))
    out = labels.copy()
    out["prob_up"] = np.clip(prob, 0.01, 0.99)
    return out.loc[:, ["ts_ns", "symbol", "prob_up", "label"]]


def write_model_artifact(
    directory: Path,
    version: str,
    oos: pd.DataFrame,
    *,
    horizon: int = 1,
    features: tuple[str, ...] = ("ret_1", "vol_20"),
    metrics: dict[str, Any] | None = None,
    created_ns: int = START_NS,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write an artifact folder ``directory/version`` and return it."""
    folder = directory / version
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "version": version,
        "created_ns": created_ns,
        "horizon": horizon,
        "features": list(features),
        "metrics": metrics or {"oos_rows": len(oos)},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    oos.to_parquet(folder / "oos_predictions.parquet", index=False)
    for name, data in (extra_files or {}).items():
        (folder / name).write_bytes(data)
    return folder


def register_artifacts(root: str, sources: list[str], start_ns: int = START_NS) -> None:
    """Register each artifact folder in ``sources`` into the registry at ``root``.

    An entry point for tests that race several processes on one registry folder.
    """
    registry = ModelRegistry(Path(root), ManualClock(start_ns))
    for source in sources:
        registry.register(Path(source))
