"""Fixtures of the API tests (the harness is ``quantum_trader.testing.api``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quantum_trader.testing.api import Api, make_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """A fresh API with workers w0 and w1 expected."""
    built = make_api(tmp_path)
    yield built
    built.audit.close()
