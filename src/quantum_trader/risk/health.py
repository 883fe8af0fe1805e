"""Subsystem and system health: one five-level scale and the rule that combines the levels.

Every subsystem (market data, execution, models, risk, stores, bus) reports a score in 0..1,
or raises its emergency flag. The score maps to a level:

==============  ==================================================
score >= 0.95   OPTIMAL
score >= 0.75   HEALTHY
score >= 0.40   DEGRADED
score <  0.40   CRITICAL
emergency flag  EMERGENCY (whatever the score)
==============  ==================================================

The system's level is the worst rule that applies, checked in this order:

1. any subsystem EMERGENCY                                   → EMERGENCY
2. two or more subsystems CRITICAL, or ``execution`` or
   ``stores`` CRITICAL (cannot trade or cannot remember)     → CRITICAL
3. any subsystem CRITICAL or DEGRADED                        → DEGRADED
4. every subsystem OPTIMAL (and at least one reported)       → OPTIMAL
5. otherwise                                                 → HEALTHY

A subsystem that is expected but sent no report counts as CRITICAL (fail closed: silence is
not health). Pure logic, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Subsystem(StrEnum):
    """A part of the running system whose health the coordinator scores."""

    MARKET_DATA = "market_data"
    EXECUTION = "execution"
    MODELS = "models"
    RISK = "risk"
    STORES = "stores"
    BUS = "bus"


class SystemHealth(StrEnum):
    """A health level, for one subsystem or the whole system, from best to worst."""

    OPTIMAL = "optimal"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"
    EMERGENCY = "emergency"


# From best to worst; ``severity`` is the index.
HEALTH_ORDER = (
    SystemHealth.OPTIMAL,
    SystemHealth.HEALTHY,
    SystemHealth.DEGRADED,
    SystemHealth.CRITICAL,
    SystemHealth.EMERGENCY,
)
_SEVERITY = {level: index for index, level in enumerate(HEALTH_ORDER)}

OPTIMAL_SCORE = 0.95
HEALTHY_SCORE = 0.75
DEGRADED_SCORE = 0.40

# Without these two the system can neither trade safely nor remember what it did.
ESSENTIAL_SUBSYSTEMS = frozenset({Subsystem.EXECUTION, Subsystem.STORES})

# A representative score per level, for reports built from a level (``SubsystemHealth.at``).
_LEVEL_SCORE = {
    SystemHealth.OPTIMAL: 1.0,
    SystemHealth.HEALTHY: 0.85,
    SystemHealth.DEGRADED: 0.6,
    SystemHealth.CRITICAL: 0.2,
    SystemHealth.EMERGENCY: 0.0,
}


def severity(level: SystemHealth) -> int:
    """Return how bad ``level`` is: 0 for OPTIMAL up to 4 for EMERGENCY."""
    return _SEVERITY[level]


def at_least(level: SystemHealth, threshold: SystemHealth) -> bool:
    """Return True when ``level`` is as bad as ``threshold`` or worse."""
    return _SEVERITY[level] >= _SEVERITY[threshold]


@dataclass(frozen=True, slots=True)
class SubsystemHealth:
    """One subsystem's health report: a score in 0..1, or an emergency.

    Raises ValueError for a score outside 0..1 (NaN included): a broken probe must be fixed,
    not read as some level.
    """

    subsystem: Subsystem
    score: float
    emergency: bool = False
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "subsystem", Subsystem(self.subsystem))
        if not (isinstance(self.score, int | float) and math.isfinite(self.score)):
            raise ValueError(f"{self.subsystem} health score must be a number, got {self.score!r}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"{self.subsystem} health score must be within 0..1, got {self.score}")

    @classmethod
    def at(cls, subsystem: Subsystem, level: SystemHealth, detail: str = "") -> SubsystemHealth:
        """Build a report for ``subsystem`` at ``level`` (with a representative score)."""
        return cls(
            subsystem,
            _LEVEL_SCORE[level],
            emergency=level is SystemHealth.EMERGENCY,
            detail=detail,
        )

    @property
    def status(self) -> SystemHealth:
        """The level this report maps to (see the module docstring)."""
        if self.emergency:
            return SystemHealth.EMERGENCY
        if self.score >= OPTIMAL_SCORE:
            return SystemHealth.OPTIMAL
        if self.score >= HEALTHY_SCORE:
            return SystemHealth.HEALTHY
        if self.score >= DEGRADED_SCORE:
            return SystemHealth.DEGRADED
        return SystemHealth.CRITICAL


@dataclass(frozen=True, slots=True)
class HealthAssessment:
    """The levels of every expected subsystem and the system level they add up to."""

    system: SystemHealth
    subsystems: Mapping[Subsystem, SystemHealth]
    details: Mapping[Subsystem, str]

    @property
    def critical(self) -> tuple[Subsystem, ...]:
        """Subsystems at CRITICAL or worse (EMERGENCY counts here too)."""
        return tuple(
            s for s, lvl in self.subsystems.items() if at_least(lvl, SystemHealth.CRITICAL)
        )

    def describe_critical(self) -> str:
        """Name the subsystems at CRITICAL or worse with their level and detail, for humans."""
        return ", ".join(
            f"{s.value}={self.subsystems[s].value}"
            + (f" ({self.details[s]})" if self.details.get(s) else "")
            for s in self.critical
        )

    @property
    def degraded(self) -> tuple[Subsystem, ...]:
        """Subsystems at exactly DEGRADED."""
        return tuple(s for s, lvl in self.subsystems.items() if lvl is SystemHealth.DEGRADED)


def system_health(levels: Mapping[Subsystem, SystemHealth]) -> SystemHealth:
    """Combine subsystem levels into the system level by the rule in the module docstring."""
    values = list(levels.values())
    if SystemHealth.EMERGENCY in values:
        return SystemHealth.EMERGENCY
    critical = [s for s, lvl in levels.items() if lvl is SystemHealth.CRITICAL]
    if len(critical) >= 2 or ESSENTIAL_SUBSYSTEMS.intersection(critical):
        return SystemHealth.CRITICAL
    if critical or SystemHealth.DEGRADED in values:
        return SystemHealth.DEGRADED
    if values and all(lvl is SystemHealth.OPTIMAL for lvl in values):
        return SystemHealth.OPTIMAL
    return SystemHealth.HEALTHY


def assess(
    reports: Iterable[SubsystemHealth], expected: Iterable[Subsystem] = tuple(Subsystem)
) -> HealthAssessment:
    """Score ``reports`` against the ``expected`` subsystems; a missing report is CRITICAL.

    When one subsystem reports more than once, the worst report counts. Reports of subsystems
    not expected are still scored (a report is never ignored).
    """
    levels: dict[Subsystem, SystemHealth] = {}
    details: dict[Subsystem, str] = {}
    for report in reports:
        level = report.status
        known = levels.get(report.subsystem)
        if known is None or _SEVERITY[level] > _SEVERITY[known]:
            levels[report.subsystem] = level
            details[report.subsystem] = report.detail
    for subsystem in expected:
        if subsystem not in levels:
            levels[subsystem] = SystemHealth.CRITICAL
            details[subsystem] = "no health report"
    return HealthAssessment(system_health(levels), levels, details)
