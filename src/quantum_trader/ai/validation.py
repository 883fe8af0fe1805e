"""Purged, embargoed walk-forward splits over pooled rows (several symbols, one timeline).

Every row ``i`` has a time ``ts[i]`` (its bar's open) and a label window that ends at
``label_end[i]``. A training row is *purged* when its span ``[ts, label_end]`` overlaps the test
window extended by the embargo, ``[test_start, test_end + embargo]``: then no training label
was computed from prices inside the test window (the leak of naive time splits, where the last
training rows' labels look into the first test bars). Walk-forward folds train only on the past,
so the embargo matters when the same splitter is used the other way round (a calibration fold
inside a training window, or k-fold); it is applied in every case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quantum_trader.domain.errors import ConfigError

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Fold:
    """One train/test split: row indices and the time ranges they cover (ns, inclusive)."""

    index: int
    train: IntArray
    test: IntArray
    train_start_ns: int
    train_end_ns: int
    test_start_ns: int
    test_end_ns: int
    purged: int


def purge(
    candidates: IntArray,
    ts: IntArray,
    label_end: IntArray,
    test_start_ns: int,
    test_end_ns: int,
    embargo_ns: int = 0,
) -> tuple[IntArray, int]:
    """Return the candidate rows whose span misses the (embargoed) test window, and how many not.

    A row is dropped when ``ts <= test_end + embargo`` and ``label_end >= test_start``.
    """
    overlaps = (ts[candidates] <= test_end_ns + embargo_ns) & (
        label_end[candidates] >= test_start_ns
    )
    return candidates[~overlaps], int(overlaps.sum())


def walk_forward_folds(
    ts: IntArray,
    label_end: IntArray,
    *,
    train_ns: int,
    test_ns: int,
    embargo_ns: int = 0,
    expanding: bool = False,
) -> list[Fold]:
    """Split rows into consecutive test windows of ``test_ns``, each trained on the past.

    The first test window starts ``train_ns`` after the first row; each fold trains on the
    ``train_ns`` before its test window (all of the past with ``expanding``), purged. The last
    window ends with the data and may be shorter.
    """
    if train_ns <= 0 or test_ns <= 0:
        raise ConfigError("walk-forward: train and test windows must be positive")
    if len(ts) == 0:
        raise ConfigError("walk-forward: no rows to split")
    t = np.asarray(ts, dtype=np.int64)
    first, last = int(t.min()), int(t.max())
    folds: list[Fold] = []
    start = first + train_ns
    while start <= last:
        end = min(start + test_ns, last + 1) - 1
        lo = first if expanding else start - train_ns
        fold = _fold(len(folds), t, label_end, lo, start, end, embargo_ns)
        if fold is not None:
            folds.append(fold)
        start += test_ns
    if not folds:
        span_days = (last - first) / 86_400e9
        raise ConfigError(
            f"walk-forward: the data spans {span_days:.1f} days, too short for a "
            f"{train_ns / 86_400e9:g}-day training window and a test window after it"
        )
    return folds


def time_split(ts: IntArray, label_end: IntArray, split_ns: int, *, embargo_ns: int = 0) -> Fold:
    """Return one fold: train on rows before ``split_ns`` (purged), test on the rest."""
    t = np.asarray(ts, dtype=np.int64)
    if len(t) == 0:
        raise ConfigError("split: no rows to split")
    fold = _fold(0, t, label_end, int(t.min()), split_ns, int(t.max()), embargo_ns)
    if fold is None:
        raise ConfigError("split: the split time leaves no training or no test rows")
    return fold


def _fold(
    index: int,
    t: IntArray,
    label_end: IntArray,
    train_lo: int,
    test_start: int,
    test_end: int,
    embargo_ns: int,
) -> Fold | None:
    test = np.flatnonzero((t >= test_start) & (t <= test_end))
    candidates = np.flatnonzero((t >= train_lo) & (t < test_start))
    train, purged = purge(candidates, t, label_end, test_start, test_end, embargo_ns)
    if len(test) == 0 or len(train) == 0:
        return None
    return Fold(
        index=index,
        train=train.astype(np.int64),
        test=test.astype(np.int64),
        train_start_ns=int(t[train].min()),
        train_end_ns=int(t[train].max()),
        test_start_ns=int(t[test].min()),
        test_end_ns=int(t[test].max()),
        purged=purged,
    )
