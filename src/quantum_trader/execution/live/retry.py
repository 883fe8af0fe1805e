"""Bounded exponential backoff with jitter, on an injected RNG and sleep.

``Backoff.delay(attempt)`` is ``min(cap, base * 2**attempt)``, half of it fixed and half drawn
from the RNG ("equal jitter": never zero, never above the cap). A wait the exchange asked for
(``retry_after_secs``) is honoured when longer. Tests seed the RNG and pass a sleep that only
records, so they never really wait.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays: ``base_secs`` doubling per attempt up to ``max_secs``, equal jitter."""

    base_secs: float
    max_secs: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        ceiling = min(self.max_secs, self.base_secs * 2.0 ** min(attempt, 30))
        return ceiling / 2.0 + rng.uniform(0.0, ceiling / 2.0)
