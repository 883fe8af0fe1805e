"""The training job writes a verifiable artifact; the same seed and clock give the same artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trader.ai.artifact import load_artifact, read_oos_predictions
from quantum_trader.domain.errors import ConfigError, IntegrityError
from quantum_trader.engine.training import TrainRun

from .conftest import CREATED_NS, train_small


def test_training_when_run_writes_manifest_oos_and_report(trained: TrainRun) -> None:
    out = trained.settings.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == trained.version
    assert manifest["version"].startswith("20250615T")
    assert manifest["created_ns"] == CREATED_NS
    assert manifest["horizon"] == 10
    assert manifest["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert {"ensemble", "majority", "momentum", "backtest"} <= manifest["metrics"].keys()
    assert set(manifest["libraries"]) >= {"lightgbm", "scikit-learn", "python"}
    oos = read_oos_predictions(out)
    assert {"ts_ns", "symbol", "prob_up", "label"} <= set(oos.columns)
    assert oos["label"].isin([0.0, 1.0]).all()
    assert oos["prob_up"].between(0, 1).all()
    # Every out-of-sample row lies after the shipped model's (last fold's) training rows... of
    # its own fold: each fold's test rows come after that fold's training labels end.
    for fold in trained.validation["folds"]:
        assert fold["train"][1] < fold["test"][0]
    assert manifest["training_range"]["end"] < trained.validation["folds"][-1]["test"][0]
    report = (out / "validation.md").read_text()
    assert "SYNTHETIC DATA" in report
    assert "sma_cross 10/50" in report
    assert set(trained.validation["backtests"]) == {"ensemble", "momentum", "majority", "sma_cross"}


def test_training_when_repeated_with_seed_and_clock_gives_the_same_artifact(
    trained: TrainRun, tmp_path: Path
) -> None:
    again = train_small(tmp_path / "again")
    assert again.version == trained.version
    assert again.validation["metrics"] == trained.validation["metrics"]
    a = pd.read_parquet(trained.settings.out / "oos_predictions.parquet")
    b = pd.read_parquet(tmp_path / "again" / "oos_predictions.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_artifact_when_loaded_predicts_like_the_trained_model(trained: TrainRun) -> None:
    artifact = load_artifact(trained.settings.out)
    assert artifact.version == trained.version
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.01, size=(50, len(artifact.model.features)))
    again = load_artifact(trained.settings.out)
    np.testing.assert_array_equal(artifact.model.predict_proba(x), again.model.predict_proba(x))


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_artifact_when_folder_or_manifest_missing_is_a_config_error(
    trained: TrainRun, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"not a folder"):
        load_artifact(tmp_path / "nothing")
    art = _copy(trained.settings.out, tmp_path / "a")
    (art / "manifest.json").unlink()
    with pytest.raises(ConfigError, match=r"no manifest\.json"):
        load_artifact(art)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda a: (a / "model_lgbm.txt").write_text("tree\n"), "model_lgbm.txt does not match"),
        (lambda a: (a / "model_linear.json").unlink(), "model_linear.json is missing"),
        (lambda a: (a / "manifest.json").write_text("{not json"), "not valid JSON"),
        (
            lambda a: (a / "manifest.json").write_text(
                json.dumps({**json.loads((a / "manifest.json").read_text()), "horizon": "15"})
            ),
            "'horizon' has the wrong type",
        ),
        (
            lambda a: (a / "manifest.json").write_text(
                json.dumps(
                    {
                        k: v
                        for k, v in json.loads((a / "manifest.json").read_text()).items()
                        if k != "features"
                    }
                )
            ),
            "missing key 'features'",
        ),
    ],
)
def test_artifact_when_corrupt_is_an_integrity_error_naming_the_file(
    trained: TrainRun, tmp_path: Path, damage: object, message: str
) -> None:
    art = _copy(trained.settings.out, tmp_path / "a")
    damage(art)  # type: ignore[operator]
    with pytest.raises(IntegrityError, match=message):
        load_artifact(art)


def test_artifact_when_oos_predictions_unreadable_is_an_integrity_error(
    trained: TrainRun, tmp_path: Path
) -> None:
    art = _copy(trained.settings.out, tmp_path / "a")
    (art / "oos_predictions.parquet").write_bytes(b"garbage")
    with pytest.raises(IntegrityError, match=r"oos_predictions\.parquet"):
        read_oos_predictions(art)
