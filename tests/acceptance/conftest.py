"""Fixtures for acceptance tests: where the real reference market data lives.

The data folder is ``$QT_REFERENCE_DATA`` (default ``<repo>/../shared/data``). Tests that need it
skip with the reason when it is missing, unless ``QT_REQUIRE_REFERENCE_DATA=1``, which turns the
skip into a failure (for CI machines that must have the data).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
_DATASET = "marketswarm_binance_usdm_futures"


def _missing(reason: str) -> None:
    if os.environ.get("QT_REQUIRE_REFERENCE_DATA") == "1":
        pytest.fail(f"{reason} (QT_REQUIRE_REFERENCE_DATA=1 makes this a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def reference_data_dir() -> Path:
    """The folder of real Binance USD-M futures data (1m candles, 8h funding and mark)."""
    root = Path(os.environ.get("QT_REFERENCE_DATA", str(_REPO.parent / "shared" / "data")))
    folder = root / _DATASET
    if not folder.is_dir():
        _missing(f"reference data folder {folder} not found; set QT_REFERENCE_DATA")
    return folder


@pytest.fixture(scope="session")
def reference_file(reference_data_dir: Path) -> Callable[[str], Path]:
    """``reference_file(name)`` gives the path of one file of the data set, or skips/fails."""

    def get(name: str) -> Path:
        path = reference_data_dir / name
        if not path.is_file():
            _missing(f"reference data file {path} not found")
        return path

    return get
