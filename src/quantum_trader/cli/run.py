"""``qtrader run``, ``qtrader worker``, ``qtrader supervisor``: a paper run across processes.

``qtrader run --config FILE`` starts, from the ``[run]`` and ``[risk]`` tables of one file, the
supervisor (coordinator + ESS + the ``/metrics`` endpoint) and one worker process per
``[run] workers`` entry, all sharing the Redis in ``[run] state``. It restarts a process that
dies (a restarted worker recovers from its venue journal and the shared stores), stops every
process on Ctrl-C or SIGTERM, and exits 0 when every worker has replayed its data.

``qtrader worker --index I`` and ``qtrader supervisor`` are those processes; start them by hand
to spread a run over several machines (same config, same Redis). ``qtrader ess trigger
--state-db redis://...`` from any shell halts every worker.

With ``[run] api_port`` set, it also starts ``qtrader serve --config FILE`` (the HTTP API and
the dashboard; log in ``<folder>/api.log``), restarted like the supervisor; the token comes from
the launcher's ``QT_API_TOKEN`` or ``QT_API_TOKEN_FILE``.

Metrics: the launcher gives every process one ``PROMETHEUS_MULTIPROC_DIR``
(``<folder>/metrics``), and the supervisor's ``/metrics`` serves the sum over the processes
(``prometheus_client``'s multiprocess collector).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import redis
import typer
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from quantum_trader.cli.console import console, err_console, fail, progress_bar
from quantum_trader.domain.errors import ConfigError, QuantumTraderError
from quantum_trader.engine.paper import (
    open_supervisor,
    open_worker,
    run_in_one_process,
    supervise,
)
from quantum_trader.engine.settings import QtConfig, RunSettings, load_config
from quantum_trader.engine.stores import is_redis_url
from quantum_trader.observability.metrics.http import start_metrics_server
from quantum_trader.stores.redis import connect

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_STOP_GRACE_SECS = 30.0  # a worker finishes its bar and writes its queues within this
SERVICES = ("supervisor", "api")
"""Children that serve until the run ends (restarted when they die, never "finished")."""

ConfigFile = Annotated[
    Path, typer.Option("--config", help="TOML or YAML file with [run] and [risk] tables.")
]


def _load(config: Path) -> QtConfig:
    if not config.exists():
        raise ConfigError(f"config file {config} does not exist")
    return load_config(config)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def worker(
    config: ConfigFile,
    index: Annotated[int, typer.Option(help="Which [run] workers entry this process trades.")],
    report_steps: Annotated[
        bool,
        typer.Option(help="Print one line per market time processed (for process supervisors)."),
    ] = False,
) -> None:
    """Run one worker: replay its symbols through the full path against its paper venue."""
    try:
        qt = _load(config)
        stop = threading.Event()
        _stop_on_signals(stop)
        with open_worker(qt.run, qt.risk, index) as parts:
            w = parts.worker
            w.stop = stop
            if report_steps:
                w.on_step = lambda i: print(f"step {i}", flush=True)
            report = w.recover()
            if report.discrepancies or report.republished_fills:
                err_console.print(
                    f"{w.wid}: recovered at bar {report.resume_index}: "
                    f"{len(report.discrepancies)} discrepancies fixed, "
                    f"{report.republished_fills} fills published again",
                    highlight=False,
                )
            if report_steps or not console.is_terminal:
                end = w.run(report.resume_index, wait=stop.wait)
            else:
                with progress_bar(f"{w.wid} replay") as bar:
                    task = bar.task_ids[0]
                    total = max(1, len(w.feed))
                    w.on_step = lambda i: bar.update(task, completed=(i + 1) / total)
                    end = w.run(report.resume_index, wait=stop.wait)
    except QuantumTraderError as exc:
        raise fail(exc) from None
    done = end >= len(w.feed)
    console.print(
        f"{w.wid}: {'replay finished' if done else 'stopped'} at bar {end} of {len(w.feed)}; "
        f"equity {parts.venue.equity():,.2f} USDT, {w.orders_sent} orders sent",
        highlight=False,
    )
    if not done:
        raise typer.Exit(3)


def supervisor(config: ConfigFile) -> None:
    """Run the supervisor: coordinator and ESS over every worker, and the /metrics endpoint."""
    try:
        qt = _load(config)
        stop = threading.Event()
        _stop_on_signals(stop)
        registry = None
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        with open_supervisor(qt.run, qt.risk) as parts:
            parts.stop = stop
            target = registry if registry is not None else parts.metrics
            try:
                server = start_metrics_server(target, port=qt.run.metrics_port)
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on port {qt.run.metrics_port}: {exc.strerror or exc}"
                ) from exc
            console.print(f"supervisor: metrics on {server.url}/metrics", soft_wrap=True)
            try:
                supervise(parts, qt.run.supervisor_interval_secs)
            finally:
                server.shutdown()
    except QuantumTraderError as exc:
        raise fail(exc) from None


def paper(
    config: ConfigFile,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            help="Where the state lives: a SQLite file (default <folder>/state.db) or a "
            "redis:// URL; a [run] state in the file is used when this is not given.",
        ),
    ] = None,
) -> None:
    """Paper-trade [run] in this one process: every worker and the supervisor, on replayed data."""
    try:
        qt = _load(config)
        run_settings = qt.run
        if state is not None:
            run_settings = run_settings.model_copy(update={"state": state})
        elif "state" not in run_settings.model_fields_set:
            default = str(run_settings.folder / "state.db")
            run_settings = run_settings.model_copy(update={"state": default})
        stop = threading.Event()
        _stop_on_signals(stop)
        with progress_bar("paper") as bar:
            task = bar.task_ids[0]
            result = run_in_one_process(
                run_settings,
                qt.risk,
                stop=stop,
                progress=lambda f: bar.update(task, completed=f),
            )
    except QuantumTraderError as exc:
        raise fail(exc) from None
    for wid, equity in sorted(result.equity.items()):
        console.print(f"{wid}: equity {equity:,.2f} USDT", highlight=False)
    console.print(
        f"{'replay finished' if result.finished else 'stopped'} after {result.steps:,} bars; "
        f"{result.orders_sent:,} orders sent; state in {run_settings.state}",
        highlight=False,
    )
    if result.emergency_stop:
        console.print("[bold red]EMERGENCY STOP[/] is latched: `qtrader ess status` says why.")
    if not result.finished:
        raise typer.Exit(130)


class _Child:
    """One process of the run, restarted when it dies."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = env
        self.restarts = 0
        self.finished = False
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own command line
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def reap(self) -> None:
        """Wait for the stopped child; one that ignores SIGTERM is killed after a grace time."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=_STOP_GRACE_SECS)
        except subprocess.TimeoutExpired:
            err_console.print(f"{self.name} did not stop in time; killing it", highlight=False)
            self.process.kill()
            self.process.wait()


def _check_redis(run: RunSettings) -> None:
    if not is_redis_url(run.state):
        raise ConfigError(
            f"qtrader run needs Redis for its workers to share state and events; "
            f"[run] state is {run.state!r}, give a redis:// URL"
        )
    client = connect(run.state)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise ConfigError(f"cannot reach Redis at [run] state {run.state!r}: {exc}") from exc
    finally:
        client.close()


def run(config: ConfigFile) -> None:
    """Start the supervisor and every worker of [run]; restart any that dies; stop on Ctrl-C."""
    try:
        qt = _load(config)
        _check_redis(qt.run)
    except QuantumTraderError as exc:
        raise fail(exc) from None
    folder = qt.run.folder
    metrics_dir = folder / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = {**os.environ, MULTIPROC_ENV: str(metrics_dir)}
    base = [sys.executable, "-m", "quantum_trader"]
    cfg = ["--config", str(config)]
    children = [_Child("supervisor", [*base, "supervisor", *cfg], folder / "supervisor.log", env)]
    if qt.run.api_port is not None:
        api_argv = [*base, "serve", *cfg, "--host", qt.run.api_host, "--port", str(qt.run.api_port)]
        children.append(_Child("api", api_argv, folder / "api.log", env))
    for i in range(len(qt.run.workers)):
        wid = qt.run.worker_id(i)
        argv = [*base, "worker", *cfg, "--index", str(i)]
        children.append(_Child(wid, argv, folder / wid / "worker.log", env))
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise _Stopping  # out of the blocking waitpid, which a plain flag could not do

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        for child in children:
            child.start()
            pid = child.process.pid if child.process else "?"
            console.print(f"started {child.name} (pid {pid})")
        code = _watch(children, qt.run)
    except _Stopping:
        console.print("stopping every process of the run")
        code = 130
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    for child in children:
        child.stop()
    for child in children:
        child.reap()
    raise typer.Exit(code)


class _Stopping(Exception):
    """Ctrl-C or SIGTERM reached the launcher: stop every process of the run."""


def _watch(children: list[_Child], run: RunSettings) -> int:
    """Wait for children to end; restart crashed ones. Returns the exit code of the run."""
    by_pid = {c.process.pid: c for c in children if c.process is not None}
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1
        child = by_pid.pop(pid, None)
        if child is None:
            continue
        mark_process_dead(pid, str(run.folder / "metrics"))  # type: ignore[no-untyped-call]
        code = os.waitstatus_to_exitcode(status)
        if child.process is not None:
            child.process.returncode = code
        if child.name not in SERVICES and code == 0:
            child.finished = True
            console.print(f"{child.name} finished its replay")
            if all(c.finished for c in children if c.name not in SERVICES):
                return 0
            continue
        if child.restarts >= run.max_restarts:
            err_console.print(
                f"{child.name} died (exit {code}) {child.restarts + 1} times; stopping the run "
                f"(see {child.log})",
                highlight=False,
            )
            return 1
        child.restarts += 1
        err_console.print(
            f"{child.name} died (exit {code}); restarting ({child.restarts}/{run.max_restarts})",
            highlight=False,
        )
        child.start()
        if child.process is not None:
            by_pid[child.process.pid] = child
