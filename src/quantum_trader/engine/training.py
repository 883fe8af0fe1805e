"""A whole training job: load the market, train walk-forward, backtest, write the artifact.

The validation backtests run through the real ``BacktestEngine`` with the run's fees and
funding, over the out-of-sample span only (from the first test window's start to the end of the
data): the ensemble's saved out-of-sample predictions traded with ``ai_ensemble``'s rule
(``PredictionReplay``), the two naive baselines traded the same way, and ``sma_cross`` for
reference. No safety core: this measures the signal, not the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from quantum_trader.ai.artifact import save_artifact
from quantum_trader.ai.evaluation import classification_metrics
from quantum_trader.ai.health import FeatureReference
from quantum_trader.ai.models import EnsembleConfig
from quantum_trader.ai.report import render_validation_markdown
from quantum_trader.ai.training import (
    Dataset,
    SymbolSeries,
    TrainingResult,
    build_dataset,
    walk_forward_train,
)
from quantum_trader.ai.validation import Fold, time_split, walk_forward_folds
from quantum_trader.data.loaders import load_market
from quantum_trader.data.market import MarketData, SymbolData
from quantum_trader.data.timeframes import parse_timeframe
from quantum_trader.domain.clock import NANOS_PER_DAY, Clock, WallClock
from quantum_trader.domain.errors import ConfigError
from quantum_trader.engine.backtest import BacktestEngine
from quantum_trader.engine.settings import BacktestSettings
from quantum_trader.strategies.ai_ensemble import PredictionReplay
from quantum_trader.strategies.base import Strategy
from quantum_trader.strategies.sma_cross import SmaCross

ProgressFn = Callable[[str, float], None]
_SUMMARY_KEYS = (
    "trades",
    "final_equity",
    "total_return",
    "max_drawdown",
    "sharpe",
    "fees",
    "funding",
    "win_rate",
    "exposure",
)


class TrainSettings(BaseModel):
    """Everything ``qtrader train`` needs; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path = Field(description="Folder or file of market data.")
    symbols: tuple[str, ...] = Field(min_length=1, description="Symbols to pool for training.")
    timeframe: str = Field(default="1m", description="Bar size of the data.")
    horizon: int = Field(default=15, ge=1, le=10_000, description="Bars ahead to predict.")
    train_days: float = Field(default=20.0, gt=0, description="Training window per fold, days.")
    test_days: float = Field(default=10.0, gt=0, description="Test window per fold, days.")
    split: datetime | None = Field(
        default=None, description="One split instead of walk-forward: train before, test after."
    )
    embargo_bars: int | None = Field(
        default=None, ge=0, description="Embargo after each test window in bars (default: horizon)."
    )
    expanding: bool = Field(default=False, description="Train each fold on all of the past.")
    refit: bool = Field(
        default=False, description="Ship a model refitted on every row (its backtest is in-sample)."
    )
    seed: int = Field(default=7, description="Seed of every random choice.")
    threads: int = Field(default=2, ge=1, le=64, description="Threads for LightGBM.")
    fraction: float = Field(default=0.2, gt=0, le=10, description="Equity fraction per position.")
    min_confidence: float = Field(
        default=0.55, ge=0.5, le=1.0, description="Trade only at this confidence or above."
    )
    cash: float = Field(default=10_000.0, gt=0, description="Backtest starting wallet, USDT.")
    leverage: float = Field(default=10.0, ge=1, le=125, description="Backtest leverage.")
    fee_maker: float = Field(default=0.0002, ge=-0.01, le=0.01, description="Maker fee rate.")
    fee_taker: float = Field(default=0.0004, ge=-0.01, le=0.01, description="Taker fee rate.")
    slippage_bps: float = Field(default=0.0, ge=0, le=1000, description="Taker slippage, bps.")
    funding: bool = Field(default=True, description="Apply funding in the backtests.")
    out: Path = Field(description="Artifact folder.")

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.split(",")
        out = tuple(str(s).strip().upper() for s in v)
        if any(not s for s in out) or len(set(out)) != len(out):
            raise ValueError("symbols must be distinct, non-empty names")
        return out


@dataclass(frozen=True, slots=True)
class TrainRun:
    """A finished job: the artifact's folder and version, and the validation it wrote."""

    settings: TrainSettings
    version: str
    validation: dict[str, Any]


def series_of(data: SymbolData) -> SymbolSeries:
    """The symbol's candles and funding as the arrays the AI package takes."""
    c = data.candles
    funding = data.funding if data.funding is not None and not data.funding.empty else None
    return SymbolSeries(
        symbol=data.symbol,
        ts=c["date"].to_numpy("datetime64[ns]").astype(np.int64),
        open=c["open"].to_numpy(np.float64),
        high=c["high"].to_numpy(np.float64),
        low=c["low"].to_numpy(np.float64),
        close=c["close"].to_numpy(np.float64),
        volume=c["volume"].to_numpy(np.float64),
        funding_ts=(
            funding["date"].to_numpy("datetime64[ns]").astype(np.int64)
            if funding is not None
            else None
        ),
        funding_rate=funding["rate"].to_numpy(np.float64) if funding is not None else None,
    )


def make_folds(settings: TrainSettings, data: Dataset, tf_ns: int) -> list[Fold]:
    """The folds the settings ask for: one split at ``split``, or walk-forward windows."""
    embargo = (settings.horizon if settings.embargo_bars is None else settings.embargo_bars) * tf_ns
    if settings.split is not None:
        at = pd.Timestamp(settings.split)
        split_ns = int((at.tz_localize("UTC") if at.tzinfo is None else at).value)
        return [time_split(data.ts, data.label_end, split_ns, embargo_ns=embargo)]
    return walk_forward_folds(
        data.ts,
        data.label_end,
        train_ns=round(settings.train_days * NANOS_PER_DAY),
        test_ns=round(settings.test_days * NANOS_PER_DAY),
        embargo_ns=embargo,
        expanding=settings.expanding,
    )


def run_training_job(
    settings: TrainSettings,
    *,
    clock: Clock | None = None,
    progress: ProgressFn | None = None,
    market: MarketData | None = None,
) -> TrainRun:
    """Train, validate and write the artifact to ``settings.out``; return its version.

    ``market`` replaces loading ``settings.data`` (tests pass a synthetic market). ``clock``
    stamps the artifact (default: the wall clock).
    """
    tf_ns = parse_timeframe(settings.timeframe)
    if market is None:
        market = load_market(settings.data, settings.symbols, settings.timeframe)
    missing = [s for s in settings.symbols if s not in market]
    if missing:
        raise ConfigError(f"no market data for {', '.join(missing)}")
    data = build_dataset([series_of(market[s]) for s in settings.symbols], settings.horizon)
    folds = make_folds(settings, data, tf_ns)
    config = EnsembleConfig(seed=settings.seed, threads=settings.threads)

    def step(stage: str) -> Callable[[float], None] | None:
        return None if progress is None else (lambda f: progress(stage, f))

    result = walk_forward_train(data, folds, config, refit=settings.refit, progress=step("train"))
    backtests = _validation_backtests(settings, market, result, folds[0].test_start_ns, step)
    validation = _validation(settings, data, result, backtests)
    validation["synthetic"] = any(market[s].synthetic for s in settings.symbols)
    manifest = {
        "horizon": settings.horizon,
        "timeframe": settings.timeframe,
        "symbols": list(settings.symbols),
        "training_range": {
            "start_ns": result.training_start_ns,
            "end_ns": result.training_end_ns,
            "start": _iso(result.training_start_ns),
            "end": _iso(result.training_end_ns),
            "refit_on_all_rows": settings.refit,
        },
        "config": {
            "seed": config.seed,
            "calibration_fraction": config.calibration_fraction,
            "lightgbm": {k: v for k, v in config.lgbm_params().items() if k != "num_threads"},
            "n_estimators": config.n_estimators,
            "linear_c": config.linear_c,
            "min_confidence": settings.min_confidence,
            "fraction": settings.fraction,
        },
        "metrics": {
            **validation["metrics"],
            "backtest": {k: v["summary"] for k, v in backtests.items()},
        },
        "feature_reference": _feature_reference(data, result),
    }
    created_ns = (clock or WallClock()).now_ns()
    version = save_artifact(
        settings.out,
        result.model,
        manifest,
        result.oos[
            ["ts_ns", "symbol", "prob_up", "label", "prob_majority", "prob_momentum", "fold"]
        ],
        validation,
        render_validation_markdown(validation),
        created_ns=created_ns,
    )
    return TrainRun(settings, version, validation)


def _feature_reference(data: Dataset, result: TrainingResult) -> dict[str, Any]:
    """Each feature's distribution over the rows the shipped model was fitted on (deciles).

    A running engine compares its live features with these (PSI, ``ai.health``) without the
    training set.
    """
    rows = (data.ts >= result.training_start_ns) & (data.ts <= result.training_end_ns)
    return {
        name: FeatureReference.from_values(data.x[rows, j]).to_dict()
        for j, name in enumerate(data.features)
        if np.isfinite(data.x[rows, j]).any()
    }


def _validation_backtests(
    settings: TrainSettings,
    market: MarketData,
    result: TrainingResult,
    test_start_ns: int,
    step: Callable[[str], Callable[[float], None] | None],
) -> dict[str, dict[str, Any]]:
    start = pd.Timestamp(test_start_ns, tz="UTC")
    window = {s: _from(market[s], start) for s in settings.symbols}
    oos = result.oos

    def replay(column: str, min_confidence: float, name: str) -> PredictionReplay:
        preds = {
            str(sym): (
                g["ts_ns"].to_numpy(np.int64),
                g[column].to_numpy(np.float64),
            )
            for sym, g in oos.groupby("symbol", sort=False)
        }
        return PredictionReplay(
            preds, fraction=settings.fraction, min_confidence=min_confidence, name=name
        )

    strategies: list[tuple[str, Strategy, str]] = [
        (
            "ensemble",
            replay("prob_up", settings.min_confidence, "ai_ensemble"),
            f"ensemble out-of-sample, confidence >= {settings.min_confidence:g}",
        ),
        (
            "momentum",
            replay("prob_momentum", 0.5, "baseline_momentum"),
            f"sign of the last {settings.horizon}-bar return, always in the market",
        ),
        (
            "majority",
            replay("prob_majority", 0.5, "baseline_majority"),
            "the training window's majority direction, held throughout",
        ),
        ("sma_cross", SmaCross(10, 50, fraction=settings.fraction), "sma_cross 10/50"),
    ]
    out = {}
    for i, (key, strategy, label) in enumerate(strategies):
        bt = BacktestSettings(
            data=settings.data,
            symbols=settings.symbols,
            timeframe=settings.timeframe,
            strategy=strategy.name,
            cash=settings.cash,
            leverage=settings.leverage,
            fee_maker=settings.fee_maker,
            fee_taker=settings.fee_taker,
            slippage_bps=settings.slippage_bps,
            funding=settings.funding,
            audit=False,
            out=settings.out,
        )
        summary = BacktestEngine(bt, strategy, window).run().summary
        out[key] = {
            "strategy": label,
            "summary": {k: summary.get(k) for k in _SUMMARY_KEYS},
        }
        tick = step("backtest")
        if tick is not None:
            tick((i + 1) / len(strategies))
    return out


def _from(data: SymbolData, start: pd.Timestamp) -> SymbolData:
    candles = data.candles[data.candles["date"] >= start].reset_index(drop=True)
    if candles.empty:
        raise ConfigError(f"{data.symbol}: no bars in the test span from {start.isoformat()}")
    return SymbolData(
        data.symbol,
        data.timeframe,
        candles,
        data.funding,
        data.mark,
        data.source,
        data.synthetic,
    )


def _validation(
    settings: TrainSettings,
    data: Dataset,
    result: TrainingResult,
    backtests: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    oos = result.oos
    prob = oos["prob_up"].to_numpy(np.float64)
    label = oos["label"].to_numpy(np.float64)
    confident = np.maximum(prob, 1 - prob) >= settings.min_confidence
    per_symbol = {
        str(sym): classification_metrics(
            g["prob_up"].to_numpy(np.float64), g["label"].to_numpy(np.float64)
        )
        for sym, g in oos.groupby("symbol", sort=True)
    }
    importance = result.model.feature_importance()
    return {
        "settings": settings.model_dump(mode="json"),
        "rows": len(data),
        "folds": [
            {
                "fold": f.fold.index,
                "train": [_iso(f.fold.train_start_ns), _iso(f.fold.train_end_ns)],
                "test": [_iso(f.fold.test_start_ns), _iso(f.fold.test_end_ns)],
                "train_rows": len(f.fold.train),
                "test_rows": len(f.fold.test),
                "purged_rows": f.fold.purged,
                "fit_rows": f.fit.fit_rows,
                "calibration_rows": f.fit.calibration_rows,
                "calibration_purged_rows": f.fit.purged_rows,
                "metrics": f.metrics,
            }
            for f in result.folds
        ],
        "metrics": result.metrics(),
        "confident": {
            "min_confidence": settings.min_confidence,
            "coverage": float(confident.mean()) if len(confident) else 0.0,
            **classification_metrics(prob[confident], label[confident]),
        },
        "per_symbol": per_symbol,
        "calibration": result.calibration(),
        "feature_importance": importance,
        "backtests": backtests,
        "model_training_range": [_iso(result.training_start_ns), _iso(result.training_end_ns)],
        "refit": result.refit,
    }


def _iso(ts_ns: int) -> str:
    return pd.Timestamp(int(ts_ns), tz="UTC").isoformat().replace("+00:00", "Z")
