"""What a promotion attempt decided: the gate's figures and the shadow period's, as values.

``PromotionResult.to_dict`` is what the registry stores with the version and puts in the
``model.promoted`` audit record's metadata: the out-of-sample comparison (delta, confidence
interval, p-value, n), the shadow check and the gate's settings. Figures that could not be
computed (NaN) become None, so the record is plain JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from quantum_trader.ai.gate import Comparison, GateConfig
from quantum_trader.ai.shadow import ShadowSummary


@dataclass(frozen=True, slots=True)
class ShadowCheck:
    """The shadow-period part of a gate decision, with its figures."""

    passed: bool
    reason: str
    elapsed_secs: float
    min_secs: float
    predictions: int
    min_predictions: int
    summary: ShadowSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able figures."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "elapsed_secs": self.elapsed_secs,
            "min_secs": self.min_secs,
            "predictions": self.predictions,
            "min_predictions": self.min_predictions,
            "summary": None if self.summary is None else self.summary.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class PromotionResult:
    """What a promotion attempt decided, with every figure it decided on."""

    version: str
    promoted: bool
    forced: bool
    reason: str
    previous_active: str | None
    comparison: Comparison | None
    shadow: ShadowCheck | None
    ts_ns: int
    gate: GateConfig = field(default_factory=GateConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (stored with the version and put in the audit metadata).

        Figures that could not be computed (NaN) become None.
        """
        data: dict[str, Any] = {
            "version": self.version,
            "promoted": self.promoted,
            "forced": self.forced,
            "reason": self.reason,
            "previous_active": self.previous_active,
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "shadow": None if self.shadow is None else self.shadow.to_dict(),
            "ts_ns": self.ts_ns,
            "gate": {**asdict(self.gate), "metric": self.gate.metric.value},
        }
        return {key: _json_safe(value) for key, value in data.items()}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
