"""The EssStateStore contract, run against every backend (see ``conftest.OPENERS``)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest

from quantum_trader.domain.errors import IntegrityError
from quantum_trader.stores.ports import EssState, EssStateStore

LATCHED = EssState(
    active=True,
    reason="drawdown 21% > 20%",
    severity="critical",
    activated_at_ns=1_700_000_000_123_456_789,
    activated_by="ess",
    reset_at_ns=1_699_999_000_000_000_001,
    reset_by='Zoë "ops"',
    reset_reason="line one\nline two ✓",
    activations=3,
    ignored_triggers=9_007_199_254_740_993,  # above 2**53: must not pass through a float
)


def test_load_when_nothing_saved_returns_inactive_state(ess_store: EssStateStore) -> None:
    assert ess_store.load() == EssState()


def test_save_when_every_field_set_round_trips_exactly(ess_store: EssStateStore) -> None:
    ess_store.save(LATCHED)
    loaded = ess_store.load()
    assert loaded == LATCHED
    for f in fields(EssState):
        assert type(getattr(loaded, f.name)) is type(getattr(LATCHED, f.name)), f.name


def test_save_when_strings_empty_and_numbers_zero_keeps_them(ess_store: EssStateStore) -> None:
    ess_store.save(LATCHED)
    ess_store.save(EssState())
    loaded = ess_store.load()
    assert loaded == EssState()
    assert loaded.reason == ""
    assert loaded.active is False
    assert loaded.activations == 0


def test_save_when_called_again_replaces_the_state(ess_store: EssStateStore) -> None:
    ess_store.save(LATCHED)
    reset = replace(LATCHED, active=False, reset_by="alice", reset_reason="checked")
    ess_store.save(reset)
    assert ess_store.load() == reset


@pytest.mark.parametrize(
    ("field", "value"),
    [("active", "yes"), ("activations", 1.5), ("reason", None), ("activated_at_ns", True)],
)
def test_save_when_field_malformed_raises_integrity_error_and_keeps_previous(
    ess_store: EssStateStore, field: str, value: Any
) -> None:
    ess_store.save(LATCHED)
    with pytest.raises(IntegrityError, match=field):
        ess_store.save(replace(LATCHED, **{field: value}))
    assert ess_store.load() == LATCHED
