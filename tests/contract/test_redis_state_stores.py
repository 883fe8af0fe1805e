"""What only the Redis backend promises: processes race safely, every key of a deployment sits
in one Redis Cluster slot under its prefix, and a corrupt value is reported naming its key."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from quantum_trader.domain.errors import ConfigError, ConflictError, IntegrityError
from quantum_trader.domain.policy import Policy, RiskMode
from quantum_trader.stores.ports import EquityMarks, EssState
from quantum_trader.stores.redis import (
    DEFAULT_PREFIX,
    RedisEquityMarksStore,
    RedisEssStateStore,
    RedisKeys,
    RedisPolicyStore,
    connect,
)
from quantum_trader.testing.redis_server import RedisServer

TS = 1_700_000_000_000_000_000

# Runs in each spawned process (``exec`` is picklable by name; a function of this test module
# would not be importable there under pytest's importlib mode). Every round, all processes read
# the same version (first barrier), then all try to write over it (second barrier). Each
# worker's document differs from the others' in many fields, so a document stitched together
# from two writers would show; each outcome carries the whole document the worker tried.
RACE_WORKER = """
from quantum_trader.domain.errors import ConflictError
from quantum_trader.domain.policy import RiskMode
from quantum_trader.stores.redis import RedisPolicyStore

modes = (RiskMode.SAFE, RiskMode.AGGRESSIVE, RiskMode.CRITICAL)
store = RedisPolicyStore.from_url(url, prefix=prefix, timeout_secs=10.0)
try:
    for round_number in range(rounds):
        barrier.wait()
        current = store.get()
        barrier.wait()
        new = current.changed(
            actor=f"worker-{worker}", reason=f"round {round_number} by worker {worker}",
            ts_ns=1_000 * round_number + worker, max_orders_per_window=worker + 1,
            mode=modes[worker % len(modes)], allowed_symbols=frozenset({f"W{worker}USDT"}),
            order_window_secs=30.0 + worker,
        )
        try:
            store.compare_and_set(current.version, new)
        except ConflictError as exc:
            outcome = (round_number, worker, "conflict", current.version, str(exc))
        else:
            outcome = (round_number, worker, "won", current.version, "")
        results.put((*outcome, new.to_dict()))
finally:
    store.close()
"""


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A raw client on the session's server, to write what the stores never would."""
    raw = connect(redis_server.url)
    try:
        yield raw
    finally:
        raw.close()


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    """A key prefix of this test alone."""
    return redis_prefix


def _next(policy: Policy, **changes: object) -> Policy:
    return policy.changed(actor="tester", reason="redis", ts_ns=TS, **changes)


@pytest.mark.parametrize("processes_count", [2, 3])
def test_compare_and_set_when_processes_race_exactly_one_wins_each_round(
    redis_server: RedisServer, prefix: str, processes_count: int
) -> None:
    """Fault test 4 (issue 5): processes update the policy at once; exactly one wins, the
    others get ConflictError, and the stored version is the winner's whole document."""
    rounds = 6
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes_count, timeout=60)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=exec,
            args=(
                RACE_WORKER,
                {
                    "url": redis_server.url,
                    "prefix": prefix,
                    "rounds": rounds,
                    "worker": worker,
                    "barrier": barrier,
                    "results": results,
                },
            ),
        )
        for worker in range(processes_count)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=60) for _ in range(processes_count * rounds)]
    finally:
        for process in processes:
            process.join(timeout=60)
        results.close()
        results.join_thread()
    assert [process.exitcode for process in processes] == [0] * processes_count
    winners = []
    for round_number in range(rounds):
        this_round = [o for o in outcomes if o[0] == round_number]
        assert sorted(o[2] for o in this_round) == ["conflict"] * (processes_count - 1) + ["won"], (
            this_round
        )
        read_version = round_number + 1
        assert {o[3] for o in this_round} == {read_version}
        for conflict in (o for o in this_round if o[2] == "conflict"):
            assert conflict[4] == (
                f"policy changed since you read it: expected version {read_version}, "
                f"store has {read_version + 1}"
            )
        [winner] = [o for o in this_round if o[2] == "won"]
        winners.append(winner)
    store = RedisPolicyStore.from_url(redis_server.url, prefix=prefix)
    client = connect(redis_server.url)
    try:
        history = store.history(limit=100)
        assert [p.version for p in history] == list(range(rounds + 1, 0, -1))
        assert history[0] == store.get()
        # Nothing half-written: each version is exactly its round's winning document, and no
        # loser left a document behind.
        assert [p.to_dict() for p in reversed(history[:-1])] == [w[5] for w in winners]
        assert [p.updated_by for p in reversed(history[:-1])] == [f"worker-{w[1]}" for w in winners]
        assert client.hlen(store.keys.policy_versions) == rounds + 1
    finally:
        client.close()
        store.close()


def test_stores_when_used_write_only_their_keys_all_in_one_cluster_slot(
    client: redis.Redis, prefix: str
) -> None:
    policy = RedisPolicyStore(client, prefix=prefix)
    policy.compare_and_set(1, _next(policy.get(), mode=RiskMode.SAFE))
    RedisEssStateStore(client, prefix=prefix).save(EssState(active=True, reason="test"))
    RedisEquityMarksStore(client, prefix=prefix).save(EquityMarks(1.0, 1, 1.0, "2024-01-01"))

    written = sorted(key.decode() for key in client.scan_iter(match=f"{{{prefix}}}:*"))
    keys = RedisKeys(prefix)
    assert written == sorted(keys.all())
    assert written == sorted(
        f"{{{prefix}}}:{name}"
        for name in ("policy:versions", "policy:current", "ess:state", "equity:marks")
    )
    assert {key_slot(key.encode()) for key in written} == {key_slot(prefix.encode())}
    assert client.type(keys.policy_versions) == b"hash"
    assert sorted(client.hkeys(keys.policy_versions)) == [b"1", b"2"]
    assert client.get(keys.policy_current) == b"2"


def test_keys_when_prefix_default_are_tagged_qt_in_one_slot() -> None:
    keys = RedisKeys()
    assert DEFAULT_PREFIX == "qt"
    assert keys.all() == (
        "{qt}:policy:versions",
        "{qt}:policy:current",
        "{qt}:ess:state",
        "{qt}:equity:marks",
    )
    assert {key_slot(key.encode()) for key in keys.all()} == {key_slot(b"qt")}


@pytest.mark.parametrize("bad", ["", "a{b", "a}b", "with space", "x" * 65, "ünï"])
def test_store_when_prefix_invalid_raises_config_error(client: redis.Redis, bad: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        RedisPolicyStore(client, prefix=bad)
    with pytest.raises(ConfigError, match="prefix"):
        RedisEssStateStore(client, prefix=bad)


def test_stores_when_prefixes_differ_never_see_each_other(client: redis.Redis) -> None:
    first, second = RedisPolicyStore(client, prefix="one"), RedisPolicyStore(client, prefix="two")
    first.compare_and_set(1, _next(first.get(), mode=RiskMode.SAFE))
    assert second.get() == Policy()
    assert first.get().version == 2


def test_policy_when_written_by_one_client_is_read_by_another(
    redis_server: RedisServer, prefix: str
) -> None:
    writer = RedisPolicyStore.from_url(redis_server.url, prefix=prefix)
    reader = RedisPolicyStore.from_url(redis_server.url, prefix=prefix)
    try:
        read_by_both = reader.get()
        written = writer.compare_and_set(1, _next(writer.get(), mode=RiskMode.CRITICAL))
        assert reader.get() == written
        with pytest.raises(ConflictError, match="expected version 1, store has 2"):
            reader.compare_and_set(1, _next(read_by_both, mode=RiskMode.SAFE))
    finally:
        writer.close()
        reader.close()


@pytest.mark.parametrize(
    "document",
    [b"{not json", b"[1, 2]", b'{"version": 1}', b"\xff\xfe", b'{"version": 1, "limits": 5}'],
    ids=["bad-json", "json-array", "missing-fields", "not-utf8", "bad-limits"],
)
def test_policy_when_stored_document_corrupt_raises_integrity_error_naming_key(
    client: redis.Redis, prefix: str, document: bytes
) -> None:
    store = RedisPolicyStore(client, prefix=prefix)
    client.hset(store.keys.policy_versions, "1", document)
    client.set(store.keys.policy_current, "1")
    for read in (store.get, store.history):
        with pytest.raises(IntegrityError, match=rf"\{{{prefix}\}}:policy:versions version 1"):
            read()


def test_policy_when_document_version_differs_from_field_raises_integrity_error(
    client: redis.Redis, prefix: str
) -> None:
    store = RedisPolicyStore(client, prefix=prefix)
    store.get()
    client.hset(store.keys.policy_versions, "1", client.hget(store.keys.policy_versions, "1"))
    client.hset(store.keys.policy_versions, "2", client.hget(store.keys.policy_versions, "1"))
    client.set(store.keys.policy_current, "2")
    with pytest.raises(IntegrityError, match="version 2 is corrupt: its document says version 1"):
        store.get()


@pytest.mark.parametrize("current", [b"abc", b"0", b"02", b"-1", b"1.5"])
def test_policy_when_current_version_corrupt_raises_integrity_error_naming_key(
    client: redis.Redis, prefix: str, current: bytes
) -> None:
    store = RedisPolicyStore(client, prefix=prefix)
    store.get()
    client.set(store.keys.policy_current, current)
    with pytest.raises(IntegrityError, match=rf"\{{{prefix}\}}:policy:current is corrupt"):
        store.get()
    with pytest.raises(IntegrityError, match=rf"\{{{prefix}\}}:policy:current is corrupt"):
        store.history()
    with pytest.raises(IntegrityError, match=rf"\{{{prefix}\}}:policy:current is corrupt"):
        store.compare_and_set(1, _next(Policy(), mode=RiskMode.SAFE))


def test_policy_when_a_version_is_missing_raises_integrity_error_naming_it(
    client: redis.Redis, prefix: str
) -> None:
    store = RedisPolicyStore(client, prefix=prefix)
    store.compare_and_set(1, _next(store.get(), mode=RiskMode.SAFE))
    client.hdel(store.keys.policy_versions, "1")
    assert store.get().version == 2
    with pytest.raises(IntegrityError, match="policy:versions is corrupt: it has no version 1"):
        store.history()


def test_policy_when_key_has_wrong_redis_type_raises_integrity_error_naming_keys(
    client: redis.Redis, prefix: str
) -> None:
    store = RedisPolicyStore(client, prefix=prefix)
    client.rpush(store.keys.policy_versions, "oops")
    with pytest.raises(IntegrityError, match=rf"\{{{prefix}\}}:policy:versions.*WRONGTYPE"):
        store.get()


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b"{not json", "not JSON"),
        (b"42", "not an object"),
        (b"{}", "missing fields"),
        (b"\xff", "not JSON"),
    ],
)
@pytest.mark.parametrize("kind", [RedisEssStateStore, RedisEquityMarksStore])
def test_record_when_stored_value_corrupt_raises_integrity_error_naming_key(
    client: redis.Redis,
    prefix: str,
    kind: type[RedisEssStateStore | RedisEquityMarksStore],
    document: bytes,
    problem: str,
) -> None:
    store = kind(client, prefix=prefix)
    client.set(store.key, document)
    with pytest.raises(IntegrityError, match=rf"redis key \{{{prefix}\}}:.* is corrupt.*{problem}"):
        store.load()


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("active", '"yes"'),
        ("active", "1"),
        ("activations", "1.5"),
        ("activations", "true"),
        ("activations", str(2**63)),
        ("reason", "null"),
    ],
)
def test_ess_when_stored_field_has_wrong_type_raises_integrity_error_naming_key_and_field(
    client: redis.Redis, prefix: str, field: str, raw: str
) -> None:
    store = RedisEssStateStore(client, prefix=prefix)
    store.save(EssState(active=True, reason="x", activations=1))
    document = client.get(store.key)
    assert isinstance(document, bytes)
    data = json.loads(document)
    data[field] = json.loads(raw)
    client.set(store.key, json.dumps(data))
    with pytest.raises(
        IntegrityError, match=rf"\{{{prefix}\}}:ess:state is corrupt: field {field}"
    ):
        store.load()


@pytest.mark.parametrize("raw", ["NaN", "Infinity", '"1.0"'])
def test_equity_marks_when_stored_equity_not_finite_raises_integrity_error(
    client: redis.Redis, prefix: str, raw: str
) -> None:
    store = RedisEquityMarksStore(client, prefix=prefix)
    client.set(
        store.key,
        f'{{"peak_equity": {raw}, "peak_ts_ns": 1, "day_start_equity": 1.0, "day": ""}}',
    )
    with pytest.raises(IntegrityError, match=r"equity:marks is corrupt: field peak_equity"):
        store.load()


def test_equity_marks_when_saved_as_ints_come_back_as_floats(
    client: redis.Redis, prefix: str
) -> None:
    store = RedisEquityMarksStore(client, prefix=prefix)
    store.save(EquityMarks(peak_equity=10, peak_ts_ns=1, day_start_equity=-0.0, day="d"))  # type: ignore[arg-type]
    loaded = store.load()
    assert type(loaded.peak_equity) is float
    assert str(loaded.day_start_equity) == "-0.0"


def test_ess_when_integer_outside_64_bits_refuses_to_store(
    client: redis.Redis, prefix: str
) -> None:
    store = RedisEssStateStore(client, prefix=prefix)
    with pytest.raises(IntegrityError, match="activations"):
        store.save(EssState(activations=2**63))
    assert client.exists(store.key) == 0


def test_close_when_client_passed_in_leaves_it_open(client: redis.Redis, prefix: str) -> None:
    for store in (
        RedisPolicyStore(client, prefix=prefix),
        RedisEssStateStore(client, prefix=prefix),
        RedisEquityMarksStore(client, prefix=prefix),
    ):
        store.close()
    assert client.ping() is True


@pytest.mark.parametrize(
    ("url", "timeout_secs", "problem"),
    [
        ("http://127.0.0.1:1/0", 1.0, "invalid redis URL"),
        ("http://user:secret@127.0.0.1:1/0", 1.0, r"invalid redis URL .http://\*\*\*@127"),
        ("redis://127.0.0.1:1/0", 0.0, "timeout_secs"),
        ("redis://127.0.0.1:1/0", True, "timeout_secs"),
    ],
)
def test_from_url_when_url_or_timeout_invalid_raises_config_error(
    url: str, timeout_secs: float, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as raised:
        RedisPolicyStore.from_url(url, timeout_secs=timeout_secs)
    assert "secret" not in str(raised.value)
