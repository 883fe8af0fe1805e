"""iter_records: filters combine, day files outside the window are skipped, damage is counted."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trader.domain.clock import NANOS_PER_SECOND, ManualClock
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.query import (
    AuditQuery,
    InvalidAuditQueryError,
    QueryStats,
    iter_record_lines,
    iter_records,
)
from quantum_trader.observability.audit.records import Durability, day_file, day_files

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
FIRST = dt.datetime(2025, 1, 1, 22, 0, tzinfo=UTC)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
REASONS = ("max_leverage", "daily_loss")


def ns(moment: dt.datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime."""
    return (moment - EPOCH) // dt.timedelta(microseconds=1) * 1000


def parse(ts: str) -> dt.datetime:
    """The aware datetime of a record's ``ts``."""
    return dt.datetime.fromisoformat(ts)


def _write(directory: Path) -> None:
    clock = ManualClock(ns(FIRST))
    with AuditLogger(
        directory, clock, durability=Durability.BUFFERED, retention_days=None
    ) as audit:
        for i in range(120):
            # Uneven steps (about 47 minutes, some microseconds) that land on both sides of
            # midnight over four days; one record sits exactly on a midnight.
            step = 47 * 60 * NANOS_PER_SECOND + (i % 7) * 1_000_003_000
            clock.advance(step)
            if i == 60:
                clock.set(ns(dt.datetime(2025, 1, 4, tzinfo=UTC)))
            symbol = SYMBOLS[i % 3]
            kind = i % 4
            if kind == 0:
                audit.risk_blocked(
                    actor="risk_guard", symbol=symbol, reason_code=REASONS[(i // 4) % 2]
                )
            elif kind == 1:
                audit.trade_decision(
                    actor="ema_cross", symbol=symbol, side="buy", quantity=1.0, price=100.0 + i
                )
            elif kind == 2:
                audit.policy_changed(
                    actor="alice" if i % 3 else "ai-hfos",
                    reason="health",
                    old={},
                    new={},
                    version=i,
                )
            else:
                audit.system_state_changed(
                    actor="supervisor",
                    component="worker-1",
                    old="up",
                    new="down",
                    metadata={"symbol": symbol},
                )
        # A decision whose metadata mimics another event type and actor: bytes match, record not.
        audit.trade_decision(
            actor="ema_cross",
            symbol="XRPUSDT",
            side="sell",
            quantity=1.0,
            price=1.0,
            metadata={"event_type": "risk.blocked", "actor": "alice"},
        )


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("audit")
    _write(directory)
    return directory


@pytest.fixture(scope="module")
def everything(trail: Path) -> list[dict[str, Any]]:
    """Every record, read without the query module."""
    return [
        json.loads(line)
        for path in day_files(trail)
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def _seqs(records: Any) -> list[int]:
    return [r["seq"] for r in records]


# ---------------------------------------------------------------------------- filters


def test_query_when_no_filter_returns_every_record_in_order(
    trail: Path, everything: list[dict[str, Any]]
) -> None:
    stats = QueryStats()
    got = list(iter_records(trail, AuditQuery(), stats=stats))
    assert got == everything
    assert _seqs(got) == list(range(1, 122))
    assert (stats.files_read, stats.files_skipped, stats.lines, stats.matched) == (5, 0, 121, 121)
    assert stats.damaged == 0


def test_query_when_type_symbol_and_since_combined_returns_their_intersection(
    trail: Path, everything: list[dict[str, Any]]
) -> None:
    since = dt.datetime(2025, 1, 3, 12, 0, tzinfo=UTC)
    query = AuditQuery(event_types=frozenset({"risk.blocked"}), symbol="ETHUSDT", since=since)
    expected = [
        r
        for r in everything
        if r["event_type"] == "risk.blocked"
        and r["target"] == "ETHUSDT"
        and parse(r["ts"]) >= since
    ]
    stats = QueryStats()
    got = list(iter_records(trail, query, stats=stats))
    assert got == expected
    # i % 4 == 0 (blocked) and i % 3 == 1 (ETHUSDT): i = 4, 16, ...; since 01-03 12:00: i >= 52.
    assert _seqs(got) == [53, 65, 77, 89, 101, 113]
    assert stats.files_skipped == 2  # 2025-01-01 and 2025-01-02 never opened


def test_query_when_symbol_only_in_metadata_matches_it(
    trail: Path, everything: list[dict[str, Any]]
) -> None:
    got = list(iter_records(trail, AuditQuery(symbol="SOLUSDT")))
    expected = [
        r
        for r in everything
        if r["target"] == "SOLUSDT" or r["metadata"].get("symbol") == "SOLUSDT"
    ]
    assert got == expected
    assert {r["event_type"] for r in got} == {
        "risk.blocked",
        "trade.decision",
        "system.state_changed",
    }


def test_query_when_metadata_mimics_a_field_does_not_match(trail: Path) -> None:
    blocked = list(iter_records(trail, AuditQuery(event_types=frozenset({"risk.blocked"}))))
    assert all(r["event_type"] == "risk.blocked" for r in blocked)
    assert "XRPUSDT" not in {r["target"] for r in blocked}
    assert all(r["actor"] == "alice" for r in iter_records(trail, AuditQuery(actor="alice")))
    (mimic,) = iter_records(trail, AuditQuery(symbol="XRPUSDT"))
    assert mimic["event_type"] == "trade.decision"


def test_query_when_actor_outcome_reason_given_matches_exactly(
    trail: Path, everything: list[dict[str, Any]]
) -> None:
    query = AuditQuery(actor="risk_guard", outcome="denied", reason="daily_loss")
    expected = [
        r
        for r in everything
        if r["actor"] == "risk_guard" and r["outcome"] == "denied" and r["reason"] == "daily_loss"
    ]
    assert list(iter_records(trail, query)) == expected
    assert len(expected) == 15
    assert list(iter_records(trail, AuditQuery(actor="risk"))) == []


def test_query_when_several_types_given_matches_any_of_them(
    trail: Path, everything: list[dict[str, Any]]
) -> None:
    types = frozenset({"risk.blocked", "policy.changed"})
    got = list(iter_records(trail, AuditQuery(event_types=types)))
    assert got == [r for r in everything if r["event_type"] in types]
    assert len(got) == 60


def test_query_when_text_given_matches_raw_line_substring(trail: Path) -> None:
    got = list(iter_records(trail, AuditQuery(text='"price":149.0')))
    assert [(r["event_type"], r["metadata"]["price"]) for r in got] == [("trade.decision", 149.0)]


def test_query_when_limit_given_stops_after_it(trail: Path) -> None:
    stats = QueryStats()
    got = list(iter_records(trail, AuditQuery(actor="alice", limit=4), stats=stats))
    assert len(got) == 4
    assert stats.matched == 4
    assert list(iter_records(trail, AuditQuery(limit=0))) == []


def test_query_when_lines_requested_yields_bytes_as_stored(trail: Path) -> None:
    stored = b"".join(p.read_bytes() for p in day_files(trail))
    assert b"".join(line for line, _ in iter_record_lines(trail)) == stored


def test_query_when_types_given_as_set_keeps_a_hashable_frozenset() -> None:
    query = AuditQuery(event_types={"risk.blocked", "trade.closed"})
    assert query.event_types == frozenset({"risk.blocked", "trade.closed"})
    assert hash(query) == hash(AuditQuery(event_types=frozenset({"trade.closed", "risk.blocked"})))


def test_query_when_folder_missing_yields_nothing(tmp_path: Path) -> None:
    assert list(iter_records(tmp_path / "nope")) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event_types": frozenset({"risk.blockd"})}, "unknown event type 'risk.blockd'"),
        ({"since": dt.datetime(2025, 1, 1)}, "no UTC offset"),  # noqa: DTZ001 - the point
        ({"limit": -1}, "limit must be >= 0"),
    ],
)
def test_query_when_option_invalid_raises_naming_it(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidAuditQueryError, match=message) as info:
        AuditQuery(**fields)
    if "event_types" in fields:
        assert "risk.blocked" in str(info.value)  # the valid types are listed


# ---------------------------------------------------------------------------- damage


def test_query_when_lines_damaged_skips_and_counts_them(tmp_path: Path) -> None:
    clock = ManualClock(ns(FIRST))
    with AuditLogger(tmp_path, clock, retention_days=None) as audit:
        for _ in range(3):
            audit.risk_blocked(actor="g", symbol="BTCUSDT", reason_code="max_leverage")
    path = day_file(tmp_path, "2025-01-01")
    good = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(
        good[0]
        + b"garbage\n"
        + b'{"seq":9,"ts":"2025-01-01T22:00:00.000000Z","event_type":"risk.blocked",oops"}\n'
        + good[1]
        + b"\n"
        + good[2][:40]  # torn last line, no newline
    )
    stats = QueryStats()
    got = list(
        iter_records(tmp_path, AuditQuery(event_types=frozenset({"risk.blocked"})), stats=stats)
    )
    assert _seqs(got) == [1, 2]
    assert stats.damaged == 3
    assert stats.damaged_at == [
        ("audit-2025-01-01.jsonl", 2),
        ("audit-2025-01-01.jsonl", 3),
        ("audit-2025-01-01.jsonl", 6),
    ]
    assert stats.lines == 6


# ---------------------------------------------------------------------------- time property

_OFFSETS = st.sampled_from(
    [UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))]
)
# st.datetimes takes naive bounds and attaches the drawn zone.
_ANY_TIME = st.datetimes(
    min_value=dt.datetime(2024, 12, 31),  # noqa: DTZ001
    max_value=dt.datetime(2025, 1, 7),  # noqa: DTZ001
    timezones=_OFFSETS,
)


def _near(everything: list[dict[str, Any]]) -> st.SearchStrategy[dt.datetime]:
    """A record's own time, or one microsecond either side: the boundaries that matter."""
    return st.builds(
        lambda r, d: parse(r["ts"]) + dt.timedelta(microseconds=d),
        st.sampled_from(everything),
        st.sampled_from([-1, 0, 1]),
    )


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_query_when_time_window_random_returns_exactly_records_inside(
    trail: Path, everything: list[dict[str, Any]], data: st.DataObject
) -> None:
    moment = st.one_of(st.none(), _ANY_TIME, _near(everything))
    since = data.draw(moment, label="since")
    until = data.draw(moment, label="until")
    expected = [
        r["seq"]
        for r in everything
        if (since is None or parse(r["ts"]) >= since) and (until is None or parse(r["ts"]) < until)
    ]
    assert _seqs(iter_records(trail, AuditQuery(since=since, until=until))) == expected
