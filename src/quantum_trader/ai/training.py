"""Build the pooled dataset and train the ensemble walk-forward, collecting out-of-sample output.

Rows from several symbols share one timeline: a fold's test window is a time range, and every
symbol's rows in it are tested together, so nothing learned on one symbol's future leaks into
another's past. Each fold fits a fresh ensemble on its purged training rows only; baselines are
fitted on the same rows. The out-of-sample frame holds one row per tested sample: ``ts_ns``,
``symbol``, ``prob_up``, ``label``, the baselines' probabilities and the fold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantum_trader.ai.evaluation import (
    classification_metrics,
    majority_baseline,
    momentum_baseline,
    reliability_table,
)
from quantum_trader.ai.features import FEATURE_NAMES, compute_features
from quantum_trader.ai.labels import direction_labels, label_end_times
from quantum_trader.ai.models import DirectionEnsemble, EnsembleConfig, FitReport
from quantum_trader.ai.validation import Fold
from quantum_trader.domain.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ProgressFn = Callable[[float], None]

OOS_COLUMNS = ("ts_ns", "symbol", "prob_up", "label", "prob_majority", "prob_momentum", "fold")
"""Columns of the out-of-sample predictions frame."""


@dataclass(frozen=True, slots=True)
class SymbolSeries:
    """One symbol's candles as arrays (bar open time in ns), and its funding if known."""

    symbol: str
    ts: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    funding_ts: IntArray | None = None
    funding_rate: FloatArray | None = None

    def features(self) -> pd.DataFrame:
        """The symbol's causal features, one row per bar."""
        return compute_features(
            self.ts,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            funding_ts=self.funding_ts,
            funding_rate=self.funding_rate,
        )


@dataclass(frozen=True, slots=True)
class Dataset:
    """Rows with every feature and a complete label, sorted by time then symbol."""

    symbol: npt.NDArray[np.str_]
    ts: IntArray
    label_end: IntArray
    x: FloatArray
    y: FloatArray
    past_return: FloatArray
    horizon: int
    features: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)


def build_dataset(series: Sequence[SymbolSeries], horizon: int) -> Dataset:
    """Pool the symbols' labelled rows; rows without all features or a label are dropped."""
    parts = []
    for s in series:
        feats = s.features()
        label = direction_labels(s.close, horizon)
        log_c = np.log(s.close)
        past = np.full(len(log_c), np.nan)
        past[horizon:] = log_c[horizon:] - log_c[:-horizon]
        keep = feats.notna().all(axis=1).to_numpy() & ~np.isnan(label)
        frame = feats[keep].copy()
        frame["_symbol"] = s.symbol
        frame["_ts"] = s.ts[keep]
        frame["_label_end"] = label_end_times(s.ts, horizon)[keep]
        frame["_y"] = label[keep]
        frame["_past"] = past[keep]
        parts.append(frame)
    if not parts or sum(len(p) for p in parts) == 0:
        raise ConfigError(f"no labelled rows: the data is shorter than the warm-up + {horizon}")
    data = pd.concat(parts, ignore_index=True).sort_values(["_ts", "_symbol"], kind="stable")
    return Dataset(
        symbol=data["_symbol"].to_numpy(dtype=np.str_),
        ts=data["_ts"].to_numpy(np.int64),
        label_end=data["_label_end"].to_numpy(np.int64),
        x=data[list(FEATURE_NAMES)].to_numpy(np.float64),
        y=data["_y"].to_numpy(np.float64),
        past_return=np.nan_to_num(data["_past"].to_numpy(np.float64)),
        horizon=horizon,
        features=FEATURE_NAMES,
    )


@dataclass(frozen=True, slots=True)
class FoldResult:
    """One fold's ranges, fit report and out-of-sample scores."""

    fold: Fold
    fit: FitReport
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class TrainingResult:
    """Walk-forward output: per-fold scores, pooled out-of-sample rows, the model to ship."""

    folds: list[FoldResult]
    oos: pd.DataFrame
    model: DirectionEnsemble
    model_fit: FitReport
    training_start_ns: int
    training_end_ns: int
    refit: bool

    def metrics(self) -> dict[str, dict[str, float]]:
        """Pooled out-of-sample metrics of the ensemble and the two baselines."""
        y = self.oos["label"].to_numpy(np.float64)
        return {
            name: classification_metrics(self.oos[column].to_numpy(np.float64), y)
            for name, column in (
                ("ensemble", "prob_up"),
                ("majority", "prob_majority"),
                ("momentum", "prob_momentum"),
            )
        }

    def calibration(self, bins: int = 10) -> list[dict[str, float]]:
        """The ensemble's out-of-sample reliability table."""
        return reliability_table(
            self.oos["prob_up"].to_numpy(np.float64), self.oos["label"].to_numpy(np.float64), bins
        )


def walk_forward_train(
    data: Dataset,
    folds: Sequence[Fold],
    config: EnsembleConfig,
    *,
    refit: bool = False,
    progress: ProgressFn | None = None,
) -> TrainingResult:
    """Fit one ensemble per fold on its training rows and score it on its test rows.

    The model returned is the last fold's (it has not seen the last test window), or with
    ``refit`` one fitted on every row (for deployment; its own backtest would be in-sample).
    """
    if not folds:
        raise ConfigError("no walk-forward folds to train")
    results: list[FoldResult] = []
    frames = []
    model: DirectionEnsemble | None = None
    fit: FitReport | None = None
    steps = len(folds) + (1 if refit else 0)
    for i, fold in enumerate(folds):
        tr, te = fold.train, fold.test
        model, fit = DirectionEnsemble.fit(
            data.x[tr], data.y[tr], data.ts[tr], data.label_end[tr], data.features, config
        )
        prob = model.predict_proba(data.x[te])
        frame = pd.DataFrame(
            {
                "ts_ns": data.ts[te],
                "symbol": data.symbol[te].astype(object),
                "prob_up": prob,
                "label": data.y[te],
                "prob_majority": majority_baseline(data.y[tr], len(te)),
                "prob_momentum": momentum_baseline(
                    data.past_return[tr], data.y[tr], data.past_return[te]
                ),
                "fold": np.full(len(te), fold.index, dtype=np.int64),
            }
        )
        frames.append(frame)
        results.append(FoldResult(fold, fit, classification_metrics(prob, data.y[te])))
        if progress is not None:
            progress((i + 1) / steps)
    assert model is not None
    assert fit is not None
    start, end = folds[-1].train_start_ns, folds[-1].train_end_ns
    if refit:
        model, fit = DirectionEnsemble.fit(
            data.x, data.y, data.ts, data.label_end, data.features, config
        )
        start, end = int(data.ts.min()), int(data.ts.max())
        if progress is not None:
            progress(1.0)
    oos = pd.concat(frames, ignore_index=True)
    return TrainingResult(results, oos, model, fit, start, end, refit)
