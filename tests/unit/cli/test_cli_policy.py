"""``qtrader policy`` through typer's CliRunner: show, set, mode, history, exit codes, audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from quantum_trader.cli.policy import parse_settings, policy_app
from quantum_trader.domain.errors import ConfigError
from quantum_trader.domain.policy import DEFAULT_LIMITS, MODE_ORDER, Policy, RiskMode
from quantum_trader.engine.stores import open_state_stores

# A valid SAFE size_scale whatever the defaults are: between NORMAL's and CRITICAL's.
SAFE_SCALE = (
    DEFAULT_LIMITS[RiskMode.NORMAL].size_scale + DEFAULT_LIMITS[RiskMode.CRITICAL].size_scale
) / 2
TOO_LOOSE_LEVERAGE = DEFAULT_LIMITS[RiskMode.NORMAL].max_leverage + 40


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(policy_app, name="policy")
    return root


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    state_db, audit_dir = tmp_path / "runs" / "state.db", tmp_path / "runs" / "audit"
    monkeypatch.setenv("QT_STATE_DB", str(state_db))
    monkeypatch.setenv("QT_AUDIT_DIR", str(audit_dir))
    monkeypatch.setenv("COLUMNS", "160")
    return state_db, audit_dir


def _run(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, ["policy", *args])


def _stored(state_db: Path) -> list[Policy]:
    with open_state_stores(state_db) as stores:
        return list(stores.policy.history(limit=100))


def _audit(audit_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(audit_dir.glob("audit-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_show_when_no_database_prints_default_policy_without_creating_it(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, _ = paths
    result = _run(app, "show")
    assert result.exit_code == 0, result.output
    assert "Policy version 1" in result.stdout
    assert "normal" in result.stdout
    assert "all symbols" in result.stdout
    for mode in MODE_ORDER:
        assert mode.value in result.stdout
    assert "max_open_positions" in result.stdout
    assert "showing the default policy" in result.stderr
    assert not state_db.exists()


def test_show_when_json_prints_the_document(app: typer.Typer, paths: tuple[Path, Path]) -> None:
    _run(app, "mode", "safe", "--actor", "alice", "--reason", "test")
    result = _run(app, "show", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert Policy.from_dict(document) == _stored(paths[0])[0]
    assert document["mode"] == "safe"


def test_set_when_settings_valid_writes_version_audits_and_prints_diff(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, audit_dir = paths
    result = _run(
        app,
        "set",
        "mode=safe",
        f"limits.safe.size_scale={SAFE_SCALE}",
        "limits.critical.max_open_positions=1",
        "allowed_symbols=BTCUSDT, ETHUSDT",
        "max_orders_per_window=30",
        "max_price_deviation=0.05",
        "--actor",
        "alice",
        "--reason",
        "CPI day",
    )
    assert result.exit_code == 0, result.output
    assert "policy version 2 written by alice" in result.stdout
    assert "limits.safe.size_scale" in result.stdout
    new, old = _stored(state_db)
    assert new.version == 2
    assert new.mode is RiskMode.SAFE
    assert new.limits[RiskMode.SAFE].size_scale == SAFE_SCALE
    assert new.limits[RiskMode.CRITICAL].max_open_positions == 1
    assert type(new.limits[RiskMode.CRITICAL].max_open_positions) is int
    assert new.allowed_symbols == frozenset({"BTCUSDT", "ETHUSDT"})
    assert new.max_orders_per_window == 30
    assert new.max_price_deviation == 0.05
    assert (new.updated_by, new.reason) == ("alice", "CPI day")
    [record] = _audit(audit_dir)
    assert record["event_type"] == "policy.changed"
    assert (record["actor"], record["reason"], record["outcome"]) == (
        "alice",
        "CPI day",
        "version_2",
    )
    assert record["metadata"]["old"] == old.to_dict()
    assert record["metadata"]["new"] == new.to_dict()


def test_set_when_allowed_symbols_empty_allows_every_symbol(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    _run(app, "set", "allowed_symbols=BTCUSDT", "--actor", "a", "--reason", "one")
    result = _run(app, "set", "allowed_symbols=", "--actor", "a", "--reason", "all again")
    assert result.exit_code == 0, result.output
    assert _stored(paths[0])[0].allowed_symbols == frozenset()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("colour=red", "unknown policy setting 'colour'"),
        ("limits.safe.leverage=2", "unknown policy limit 'limits.safe.leverage'"),
        ("limits.safe=2", "unknown policy limit 'limits.safe'"),
        ("limits.yolo.max_leverage=2", "limits.yolo.max_leverage: 'yolo' is not a risk mode"),
        ("max_orders_per_window=ten", "max_orders_per_window: 'ten' is not an integer"),
        ("limits.safe.max_open_positions=2.5", "max_open_positions: '2.5' is not an integer"),
        ("limits.safe.max_leverage=lots", "limits.safe.max_leverage: 'lots' is not a number"),
        ("mode=reckless", "mode: 'reckless' is not a risk mode"),
        ("state=paused", "state: 'paused' is not a trading state"),
        ("max_price_deviation=1.5", "max_price_deviation must be in (0, 1]"),
        ("allowed_symbols=btc/usdt", "allowed symbol 'btc/usdt' is not an exchange symbol"),
        (
            f"limits.safe.max_leverage={TOO_LOOSE_LEVERAGE}",
            "limits must tighten from normal to safe: max_leverage",
        ),
        ("limits.critical.max_leverage=500", "max_leverage=500.0 is outside [1, 125]"),
        ("mode", "'mode' is not KEY=VALUE"),
    ],
)
def test_set_when_setting_invalid_exits_2_naming_it_and_writes_nothing(
    app: typer.Typer, paths: tuple[Path, Path], setting: str, message: str
) -> None:
    state_db, audit_dir = paths
    _run(app, "mode", "safe", "--actor", "alice", "--reason", "before")
    result = _run(app, "set", setting, "--actor", "bob", "--reason", "bad")
    assert result.exit_code == 2, result.output
    assert "configuration error" in result.stderr
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
    assert [p.version for p in _stored(state_db)] == [2, 1]
    assert [r["actor"] for r in _audit(audit_dir)] == ["alice"]


def test_set_when_expected_version_stale_exits_1_with_conflict(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, audit_dir = paths
    _run(app, "mode", "safe", "--actor", "alice", "--reason", "first")
    result = _run(
        app,
        "set",
        "mode=aggressive",
        "--actor",
        "bob",
        "--reason",
        "late",
        "--expected-version",
        "1",
    )
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "policy changed since you read it: expected version 1, store has 2" in message
    assert _stored(state_db)[0].mode is RiskMode.SAFE
    assert len(_audit(audit_dir)) == 1


def test_set_when_expected_version_current_writes(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    result = _run(
        app,
        "set",
        "state=reducing",
        "--actor",
        "bob",
        "--reason",
        "pinned",
        "--expected-version",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert _stored(paths[0])[0].version == 2


def test_set_when_actor_missing_exits_2(app: typer.Typer, paths: tuple[Path, Path]) -> None:
    result = _run(app, "set", "mode=safe", "--reason", "who?")
    assert result.exit_code == 2
    assert not paths[0].exists()


def test_mode_when_valid_switches_mode_and_audits(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, audit_dir = paths
    result = _run(app, "mode", "CRITICAL", "--actor", "bob", "--reason", "drawdown")
    assert result.exit_code == 0, result.output
    assert "mode: 'normal' → 'critical'" in result.stdout
    assert _stored(state_db)[0].mode is RiskMode.CRITICAL
    [record] = _audit(audit_dir)
    assert record["metadata"]["new"]["mode"] == "critical"
    shown = _run(app, "show")
    assert "effective: reducing" in shown.stdout


def test_mode_when_already_active_writes_nothing(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    result = _run(app, "mode", "normal", "--actor", "bob", "--reason", "again")
    assert result.exit_code == 0, result.output
    assert "no change" in result.stdout
    assert [p.version for p in _stored(paths[0])] == [1]
    assert _audit(paths[1]) == []


def test_mode_when_unknown_exits_2(app: typer.Typer, paths: tuple[Path, Path]) -> None:
    result = _run(app, "mode", "turbo", "--actor", "bob", "--reason", "fast")
    assert result.exit_code == 2
    assert "'turbo' is not a risk mode" in result.stderr


def test_history_when_changed_lists_versions_newest_first(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    _run(app, "mode", "safe", "--actor", "alice", "--reason", "first change")
    _run(app, "mode", "critical", "--actor", "ai-hfos", "--reason", "second change")
    result = _run(app, "history")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("second change") < out.index("first change") < out.index("initial policy")
    limited = _run(app, "history", "--limit", "1", "--json")
    assert [p["version"] for p in json.loads(limited.stdout)] == [3]


def test_history_when_limit_zero_exits_2(app: typer.Typer, paths: tuple[Path, Path]) -> None:
    assert _run(app, "history", "--limit", "0").exit_code == 2


def test_show_when_database_corrupt_exits_1_with_one_line(
    app: typer.Typer, paths: tuple[Path, Path]
) -> None:
    state_db, _ = paths
    state_db.parent.mkdir(parents=True)
    state_db.write_bytes(b"garbage" * 1000)
    result = _run(app, "show")
    assert result.exit_code == 1
    assert "corrupt or not a SQLite database" in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_set_when_audit_folder_unwritable_exits_1_and_writes_nothing(
    app: typer.Typer, paths: tuple[Path, Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _run(
        app, "mode", "safe", "--actor", "a", "--reason", "b", "--audit-dir", str(blocker / "audit")
    )
    assert result.exit_code == 1
    assert "audit" in result.stderr
    assert not paths[0].exists()


def test_parse_settings_when_key_repeated_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="mode is given more than once"):
        parse_settings(["mode=safe", "mode=normal"])


def test_options_when_given_on_command_line_override_environment(
    app: typer.Typer, paths: tuple[Path, Path], tmp_path: Path
) -> None:
    other_db, other_audit = tmp_path / "other.db", tmp_path / "other-audit"
    result = _run(
        app,
        "mode",
        "safe",
        "--actor",
        "a",
        "--reason",
        "b",
        "--state-db",
        str(other_db),
        "--audit-dir",
        str(other_audit),
    )
    assert result.exit_code == 0, result.output
    assert _stored(other_db)[0].mode is RiskMode.SAFE
    assert len(_audit(other_audit)) == 1
    assert not paths[0].exists()
