"""Property: a random limit change is either a valid policy that the SQLite store gives back
identically, or a ConfigError that leaves the store exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from quantum_trader.domain.clock import ManualClock
from quantum_trader.domain.errors import ConfigError
from quantum_trader.domain.policy import MODE_ORDER, Policy, RiskMode
from quantum_trader.risk.policy_service import LIMIT_FIELDS, PolicyService
from quantum_trader.stores.sqlite import SqlitePolicyStore


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlitePolicyStore]:
    path: Path = tmp_path_factory.mktemp("property") / "state.db"
    store = SqlitePolicyStore(path)
    yield store
    store.close()


def _draw_value(data: st.DataObject, policy: Policy, mode: RiskMode, field: str) -> Any:
    # Mostly a nudge of the stored value (often valid, sometimes past a neighbouring mode's
    # limit), sometimes anything at all (out of range, negative, NaN, infinite).
    current = getattr(policy.limits[mode], field)
    if field == "max_open_positions":
        nudged = st.integers(min_value=-3, max_value=3).map(lambda d: current + d)
        return data.draw(st.one_of(nudged, nudged, st.integers(-10, 20_000)))
    nudged_float = st.floats(min_value=0.8, max_value=1.25).map(lambda f: current * f)
    return data.draw(st.one_of(nudged_float, nudged_float, nudged_float, st.floats()))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.data())
def test_update_when_limits_change_randomly_round_trips_or_writes_nothing(
    store: SqlitePolicyStore, data: st.DataObject
) -> None:
    service = PolicyService(store, ManualClock(1_700_000_000_000_000_000))
    before = store.get()
    history_before = list(store.history(limit=1_000))
    keys = data.draw(
        st.lists(
            st.tuples(st.sampled_from(MODE_ORDER), st.sampled_from(LIMIT_FIELDS)),
            min_size=1,
            max_size=3,
        )
    )
    limit_changes: dict[RiskMode | str, dict[str, Any]] = {}
    for mode, field in keys:
        limit_changes.setdefault(mode, {})[field] = _draw_value(data, before, mode, field)
    try:
        new = service.update(actor="property", reason="random", limit_changes=limit_changes)
    except ConfigError:
        event("rejected with ConfigError")
        assert store.get() == before
        assert list(store.history(limit=1_000)) == history_before
        return
    event("accepted and stored")
    for mode_name, fields in limit_changes.items():
        for field, value in fields.items():
            assert getattr(new.limits[RiskMode(mode_name)], field) == value
    reread = store.get()
    assert reread == new
    assert reread.to_dict() == new.to_dict()
    assert Policy.from_dict(reread.to_dict()) == new
    if new.version != before.version:  # a change to the same values writes nothing
        assert new.version == before.version + 1
        assert store.history(limit=1)[0] == new
