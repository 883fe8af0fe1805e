"""Min/max decimation keeps a series' extremes."""

from __future__ import annotations

import numpy as np
import pytest

from quantum_trader.observability.reports.decimate import decimate_indices


def random_walk(size: int, seed: int = 11) -> np.ndarray:
    return 100.0 + np.cumsum(np.random.default_rng(seed).normal(0.0, 1.0, size))


def test_decimate_when_series_is_long_keeps_global_min_and_max() -> None:
    values = random_walk(400_000)
    values[123_457] = values.min() - 500.0  # a one-bar crash between any stride samples
    values[300_001] = values.max() + 500.0

    keep = decimate_indices(values, 4000)

    assert values[keep].min() == values.min()
    assert values[keep].max() == values.max()
    assert 123_457 in keep
    assert 300_001 in keep


def test_decimate_when_series_is_long_returns_sorted_unique_bounded_indices() -> None:
    values = random_walk(43_201)

    keep = decimate_indices(values, 4000)

    assert keep.size <= 4002
    assert keep.size > 3000
    assert np.all(np.diff(keep) > 0)
    assert keep[0] == 0
    assert keep[-1] == values.size - 1


@pytest.mark.parametrize("size", [4001, 4003, 7999, 10_007])
def test_decimate_when_size_does_not_divide_keeps_every_bucket_extreme(size: int) -> None:
    values = random_walk(size, seed=size)

    keep = decimate_indices(values, 4000)

    assert keep.max() == size - 1
    assert values[keep].min() == values.min()
    assert values[keep].max() == values.max()


def test_decimate_when_series_is_short_keeps_every_point() -> None:
    np.testing.assert_array_equal(decimate_indices(np.arange(10.0), 4000), np.arange(10))


def test_decimate_when_series_has_nan_picks_real_extremes() -> None:
    values = random_walk(10_000)
    values[::7] = np.nan

    keep = decimate_indices(values, 1000)

    assert np.nanmin(values[keep]) == np.nanmin(values)
    assert np.nanmax(values[keep]) == np.nanmax(values)


def test_decimate_when_max_points_is_too_small_raises() -> None:
    with pytest.raises(ValueError, match="max_points"):
        decimate_indices(np.arange(10.0), 3)
