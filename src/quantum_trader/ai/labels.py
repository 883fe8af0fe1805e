"""Direction labels over a horizon, and when each label's window ends.

Row ``t``'s label is the sign of the forward return ``close[t + h] / close[t] - 1``: 1.0 up,
0.0 down. A row whose horizon runs past the data, or whose price did not move, has no label
(NaN): it is dropped from training and scoring, never filled. The label window of row ``t`` is
bars ``t + 1 .. t + h``; ``label_end_ns[t]`` is bar ``t + h``'s open time, which purging compares
with test windows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from quantum_trader.domain.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NO_LABEL_END = np.iinfo(np.int64).max
"""``label_end_ns`` of a row without a complete horizon: later than any test window."""


def direction_labels(close: FloatArray, horizon: int) -> FloatArray:
    """Return 1.0 where close rises over ``horizon`` bars, 0.0 where it falls, NaN otherwise."""
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1 bar, got {horizon}")
    c = np.asarray(close, dtype=np.float64)
    out = np.full(len(c), np.nan)
    if len(c) > horizon:
        move = c[horizon:] - c[:-horizon]
        out[:-horizon] = np.where(move > 0, 1.0, np.where(move < 0, 0.0, np.nan))
    return out


def label_end_times(ts: IntArray, horizon: int) -> IntArray:
    """Return the open time of bar ``t + horizon`` for each row (``NO_LABEL_END`` past the data)."""
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1 bar, got {horizon}")
    t = np.asarray(ts, dtype=np.int64)
    out = np.full(len(t), NO_LABEL_END, dtype=np.int64)
    if len(t) > horizon:
        out[:-horizon] = t[horizon:]
    return out
