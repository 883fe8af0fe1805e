"""The shadow log: a candidate's live predictions and their later outcomes, never traded.

One append-only JSON Lines file per version (``<registry>/shadow/<version>.jsonl``). Each line
is a prediction ``{"kind": "prediction", "ts_ns", "symbol", "prob_up"}`` or an outcome
``{"kind": "outcome", "ts_ns", "symbol", "label"}``; an outcome resolves the prediction with the
same ``(ts_ns, symbol)``. Appends from several processes take an exclusive ``flock`` on the file
and are flushed and fsynced per batch, so lines never interleave and survive a crash. A torn or
unreadable line (a crash mid-write) is skipped and counted, never fatal.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantum_trader.ai.gate import GateMetric, score
from quantum_trader.domain.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ShadowPrediction:
    """One prediction a shadow model made: probability that ``symbol`` goes up after ``ts_ns``."""

    ts_ns: int
    symbol: str
    prob_up: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.prob_up) and 0.0 <= self.prob_up <= 1.0):
            raise ConfigError(f"shadow prob_up must be within 0..1, got {self.prob_up!r}")


@dataclass(frozen=True, slots=True)
class ShadowOutcome:
    """What happened: ``label`` 1 when ``symbol`` went up over the horizon after ``ts_ns``."""

    ts_ns: int
    symbol: str
    label: int

    def __post_init__(self) -> None:
        if self.label not in (0, 1) or isinstance(self.label, bool):
            raise ConfigError(f"shadow outcome label must be 0 or 1, got {self.label!r}")


@dataclass(frozen=True, slots=True)
class ShadowSummary:
    """What the shadow log of one version holds.

    ``log_loss`` and ``accuracy`` are over resolved predictions (NaN when none is resolved).
    """

    predictions: int
    resolved: int
    log_loss: float
    accuracy: float
    first_ts_ns: int | None
    last_ts_ns: int | None
    skipped_lines: int

    def score(self, metric: GateMetric) -> float:
        """Return the summary's figure for ``metric``."""
        return self.log_loss if metric is GateMetric.LOG_LOSS else self.accuracy

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able figures."""
        return asdict(self)


class ShadowLog:
    """The shadow log of one model version in ``directory``."""

    def __init__(self, directory: Path, version: str) -> None:
        """Use ``directory/<version>.jsonl`` (created on the first append)."""
        self.path = directory / f"{version}.jsonl"

    def append(self, lines: Iterable[dict[str, Any]]) -> int:
        """Append ``lines`` as one locked, fsynced batch; return how many were written."""
        payload = b"".join(
            json.dumps(line, separators=(",", ":"), sort_keys=True).encode() + b"\n"
            for line in lines
        )
        if not payload:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        return payload.count(b"\n")

    def record_predictions(self, predictions: Iterable[ShadowPrediction]) -> int:
        """Log predictions (never traded); return how many were written."""
        return self.append({"kind": "prediction", **asdict(p)} for p in predictions)

    def record_outcomes(self, outcomes: Iterable[ShadowOutcome]) -> int:
        """Log outcomes that resolve earlier predictions; return how many were written."""
        return self.append({"kind": "outcome", **asdict(o)} for o in outcomes)

    def summary(self) -> ShadowSummary:
        """Read the log and score the resolved predictions."""
        predictions: dict[tuple[int, str], float] = {}
        outcomes: dict[tuple[int, str], int] = {}
        skipped = 0
        if self.path.exists():
            with self.path.open("rb") as handle:
                for raw in handle:
                    try:
                        line = json.loads(raw)
                        key = (int(line["ts_ns"]), str(line["symbol"]))
                        if line["kind"] == "prediction":
                            predictions[key] = float(line["prob_up"])
                        elif line["kind"] == "outcome":
                            outcomes[key] = int(line["label"])
                        else:
                            skipped += 1
                    except (ValueError, KeyError, TypeError):
                        skipped += 1
        resolved = [key for key in predictions if key in outcomes]
        prob = np.array([predictions[k] for k in resolved], dtype=np.float64)
        label = np.array([outcomes[k] for k in resolved], dtype=np.int64)
        times = [k[0] for k in predictions]
        return ShadowSummary(
            predictions=len(predictions),
            resolved=len(resolved),
            log_loss=score(prob, label, GateMetric.LOG_LOSS),
            accuracy=score(prob, label, GateMetric.ACCURACY),
            first_ts_ns=min(times) if times else None,
            last_ts_ns=max(times) if times else None,
            skipped_lines=skipped,
        )
