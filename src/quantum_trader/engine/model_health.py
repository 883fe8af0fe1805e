"""Model health into the coordinator: the ``models`` subsystem's report.

``ai`` and ``risk`` are sibling layers that must not import each other, so the conversion from
``ai.health.ModelHealth`` to ``risk.health.SubsystemHealth`` lives here, where both are wired.
The score carries over unchanged (``ai.health`` scores on the coordinator's scale), so a
drifting or inaccurate model is DEGRADED or CRITICAL there and lowers the system's health.
"""

from __future__ import annotations

from quantum_trader.ai.health import ModelHealth
from quantum_trader.risk.health import Subsystem, SubsystemHealth


def models_subsystem_health(health: ModelHealth) -> SubsystemHealth:
    """Return the coordinator's report for the ``models`` subsystem from ``health``."""
    score = min(max(health.score, 0.0), 1.0)
    return SubsystemHealth(Subsystem.MODELS, score, detail=health.detail)
