"""``qtrader serve`` refuses bad configuration with exit code 2 and a one-line reason."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from quantum_trader.api.server import bind
from quantum_trader.cli.serve import serve


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(serve)

    @app.command()
    def version() -> None:  # a second command, so typer keeps ``serve`` as a subcommand
        pass

    return app


def test_serve_when_port_in_use_exits_2_naming_it(tmp_path: Path) -> None:
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli(),
            ["serve", "--state-db", str(tmp_path / "s.db"), "--port", str(port)],
            env={"QT_API_TOKEN": ""},
        )
    finally:
        taken.close()
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_serve_when_config_and_state_db_both_given_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text("[run]\n")
    result = CliRunner().invoke(
        cli(), ["serve", "--config", str(cfg), "--state-db", str(tmp_path / "s.db")]
    )
    assert result.exit_code == 2
    assert "not both" in result.output


def test_serve_when_token_too_short_exits_2_without_printing_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli(),
        ["serve", "--state-db", str(tmp_path / "s.db"), "--port", "0"],
        env={"QT_API_TOKEN": "tiny-secret"},
    )
    assert result.exit_code == 2
    assert "at least 16 characters" in result.output
    assert "tiny-secret" not in result.output


def test_serve_when_help_lists_its_options() -> None:
    result = CliRunner().invoke(cli(), ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--config", "--state-db", "--host", "--port", "--token-file", "8000"):
        assert option in result.output
