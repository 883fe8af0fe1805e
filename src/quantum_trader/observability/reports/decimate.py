"""Shrink a long series for plotting without hiding its extremes.

Stride sampling (every k-th point) drops spikes and crashes that fall between samples. Min/max
decimation splits the series into equal buckets and keeps, per bucket, the points where it is
lowest and highest, in time order, so the drawn line has the same envelope as the full series.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MAX_POINTS = 4000


def decimate_indices(values: np.ndarray, max_points: int = DEFAULT_MAX_POINTS) -> np.ndarray:
    """Return the indices of the points to keep from ``values``, sorted ascending.

    A series of at most ``max_points`` keeps every point. A longer one is cut into
    ``max_points // 2`` buckets and keeps each bucket's minimum and maximum (first occurrence),
    plus the first and last points, so at most ``max_points + 2`` points remain and the global
    minimum and maximum always survive. NaN points are never chosen as extremes unless a whole
    bucket is NaN.

    Args:
        values: The series, one value per point, in time order.
        max_points: The target size; at least 4.

    Returns:
        An ``int64`` array of indices into ``values``.

    Raises:
        ValueError: If ``max_points`` is below 4.
    """
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    data = np.asarray(values, dtype=np.float64)
    size = data.size
    if size <= max_points:
        return np.arange(size, dtype=np.int64)
    width = -(-size // (max_points // 2))  # ceil: the last bucket is padded
    buckets = -(-size // width)
    padded_size = buckets * width
    nan = np.isnan(data)
    # Padding repeats the last value; argmin/argmax return the first occurrence, so a padded
    # slot is never picked over the real last point.
    low = np.pad(np.where(nan, np.inf, data), (0, padded_size - size), mode="edge")
    high = np.pad(np.where(nan, -np.inf, data), (0, padded_size - size), mode="edge")
    offsets = np.arange(buckets, dtype=np.int64) * width
    lows = offsets + low.reshape(buckets, width).argmin(axis=1)
    highs = offsets + high.reshape(buckets, width).argmax(axis=1)
    keep = np.concatenate(([0, size - 1], lows, highs))
    return np.unique(np.minimum(keep, size - 1))


def first_per_bucket(
    times: np.ndarray, keys: np.ndarray, max_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Thin point events (markers) to about ``max_points``, keeping each kind in each stretch.

    The time span is cut into equal buckets, ``max_points // kinds`` of them, and each bucket
    keeps the first event of each key (e.g. a risk denial's reason code), so a rare reason is
    never drowned by a frequent one.

    Args:
        times: Event times (any numeric unit), ascending.
        keys: Per event, an integer key (the kind); same length as ``times``.
        max_points: The target size; at most this many events remain.

    Returns:
        The kept indices (ascending) and, per kept event, how many events it stands for.
    """
    size = times.size
    if size <= max_points:
        return np.arange(size, dtype=np.int64), np.ones(size, dtype=np.int64)
    kinds = int(keys.max()) + 1 if keys.size else 1
    buckets = max(1, max_points // kinds)
    offsets = (times - times.min()).astype(np.float64)
    span = float(offsets.max()) or 1.0
    bucket = np.minimum((offsets / span * buckets).astype(np.int64), buckets - 1)
    _, first, counts = np.unique(bucket * kinds + keys, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    return first[order].astype(np.int64), counts[order].astype(np.int64)
