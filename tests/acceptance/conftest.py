"""Fixtures for acceptance tests (the data folder fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def reference_file(perps: Path) -> Callable[[str], Path]:
    """``reference_file(name)`` gives the path of one file of the perpetuals data set."""

    def get(name: str) -> Path:
        path = perps / name
        if not path.is_file():
            pytest.fail(f"reference data file {path} is missing: the data folder is incomplete")
        return path

    return get
