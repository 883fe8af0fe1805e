"""Fixtures every test folder shares: where the real reference market data lives.

The folder is ``$QT_REFERENCE_DATA`` (default ``<repo>/../shared/data``; a relative value is
taken from the repository root). Tests that need it skip with the reason when it is missing,
unless ``QT_REQUIRE_REFERENCE_DATA=1`` (CI) turns the skip into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def missing_reference(reason: str) -> None:
    """Skip, or fail when the reference data is required."""
    if os.environ.get("QT_REQUIRE_REFERENCE_DATA") == "1":
        pytest.fail(f"{reason} (QT_REQUIRE_REFERENCE_DATA=1 makes this a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """The reference data root folder, or skip when it is not there."""
    root = Path(os.environ.get("QT_REFERENCE_DATA", "../shared/data"))
    if not root.is_absolute():
        root = (REPO / root).resolve()
    if not (root / "marketswarm_binance_usdm_futures").is_dir():
        missing_reference(f"reference data not found at {root}; set QT_REFERENCE_DATA")
    return root


@pytest.fixture(scope="session")
def perps(reference_data: Path) -> Path:
    """The folder of real Binance USDT-M perpetuals (1m, 5m, funding, mark)."""
    return reference_data / "marketswarm_binance_usdm_futures"
