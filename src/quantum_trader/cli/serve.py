"""``qtrader serve``: the HTTP API and the dashboard, with uvicorn, for a run or a state file.

::

    qtrader serve --config run.toml [--host 127.0.0.1] [--port 8000]
    qtrader serve --state-db runs/state.db [--audit-dir runs/audit]

With ``--config`` it serves the run the ``[run]`` table describes: its shared state
(``state``, ``redis_prefix``), its workers, and its audit trail in ``<folder>/audit``; with a
Redis state it also reads the run's event bus (status, orders, fills). With ``--state-db`` (env
``QT_STATE_DB``) it serves one state file (policy, ESS, trades) without a bus.

The token that guards every state-changing route comes from ``$QT_API_TOKEN`` or from a file
(``--token-file`` or ``$QT_API_TOKEN_FILE``), never from a flag; without one the API serves
reads and refuses writes (503). The token is never printed.

Ctrl-C or SIGTERM stops it gracefully: open event streams end at once, requests in flight
finish (two seconds at most). Uvicorn then re-raises the signal, so after SIGTERM the process
ends by that signal (status 143 in a shell). Exit code 2: bad configuration (unreadable config
or token, port in use).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from quantum_trader.api.auth import TOKEN_ENV, token_from_env
from quantum_trader.api.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ApiSettings,
    GracefulServer,
    bind,
    open_operations,
    uvicorn_config,
)
from quantum_trader.cli.console import console, err_console, fail
from quantum_trader.domain.errors import ConfigError, QuantumTraderError
from quantum_trader.engine.settings import load_config

DEFAULT_STATE_DB = "runs/state.db"
DEFAULT_AUDIT_DIR = Path("runs/audit")


def _settings(config: Path | None, state_db: str | None, audit_dir: Path | None) -> ApiSettings:
    if config is not None and state_db is not None:
        raise ConfigError("give either --config or --state-db, not both")
    if config is not None:
        if not config.exists():
            raise ConfigError(f"config file {config} does not exist")
        run = load_config(config).run
        settings = ApiSettings.from_run(run)
        if audit_dir is not None:
            settings = ApiSettings(
                state=settings.state,
                redis_prefix=settings.redis_prefix,
                audit_dir=audit_dir,
                worker_ids=settings.worker_ids,
                worker_stale_secs=settings.worker_stale_secs,
            )
        return settings
    return ApiSettings(state=state_db or DEFAULT_STATE_DB, audit_dir=audit_dir or DEFAULT_AUDIT_DIR)


def serve(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The run's TOML or YAML file (its \\[run] table: state, folder, workers).",
        ),
    ] = None,
    state_db: Annotated[
        str | None,
        typer.Option(
            "--state-db",
            envvar="QT_STATE_DB",
            help="A SQLite state file or redis:// URL, instead of --config "
            f"(default {DEFAULT_STATE_DB}).",
        ),
    ] = None,
    audit_dir: Annotated[
        Path | None,
        typer.Option("--audit-dir", envvar="QT_AUDIT_DIR", help="The audit folder."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option(help="Port to listen on (0 picks a free one).")
    ] = DEFAULT_PORT,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help=f"File holding the API token (else ${TOKEN_ENV} or $QT_API_TOKEN_FILE).",
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request (no headers).")] = False,
) -> None:
    """Serve the HTTP API, /metrics and the dashboard until Ctrl-C."""
    try:
        settings = _settings(config, state_db, audit_dir)
        token = token_from_env(token_file=token_file)
        try:
            sock = bind(host, port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        with open_operations(settings) as ops:
            app = ops.app(token)
            server = GracefulServer(uvicorn_config(app, access_log=access_log), app)
            bound = sock.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{bound}"
            console.print(f"Dashboard on {url}/", soft_wrap=True)
            console.print(f"API docs on {url}/docs, metrics on {url}/metrics", soft_wrap=True)
            if token is None:
                err_console.print(
                    f"note: no API token (set {TOKEN_ENV}): reads only, writes answer 503",
                    highlight=False,
                )
            try:
                server.run(sockets=[sock])
            finally:
                sock.close()
    except QuantumTraderError as exc:
        raise fail(exc) from None
