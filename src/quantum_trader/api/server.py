"""Compose the API for a run and serve it with uvicorn.

``ApiSettings`` says where the run's state lives (``from_run`` reads a ``[run]`` table: its
``state``, ``redis_prefix``, workers and ``<folder>/audit``; or give a single SQLite state file).
``open_operations`` builds the service, its read model and the feed thread, and closes them when
the block ends. ``ApiServer`` runs uvicorn in a thread on a socket bound before it returns (a
client may connect at once: the kernel queues the connection), for tests, benchmarks and
``qtrader run``; ``qtrader serve`` runs uvicorn in the foreground.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from quantum_trader.api.app import create_app
from quantum_trader.api.auth import ApiToken
from quantum_trader.api.feed import BusFeed
from quantum_trader.api.readmodel import ReadModel
from quantum_trader.api.service import OperationsService
from quantum_trader.bus.local import ErrorPolicy
from quantum_trader.bus.redis_streams import RedisStreamsBus
from quantum_trader.domain.clock import Clock, WallClock
from quantum_trader.engine.audit import open_audit_logger
from quantum_trader.engine.settings import RunSettings
from quantum_trader.engine.stores import REDIS_PREFIX_ENV, is_redis_url, open_state_stores
from quantum_trader.observability.audit.records import Durability
from quantum_trader.observability.metrics.logger import MetricsLogger
from quantum_trader.stores.redis import DEFAULT_PREFIX, connect

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Where the API finds the run.

    Attributes:
        state: A redis:// URL (the bus is read too), a SQLite file, or None (in memory).
        redis_prefix: The deployment's key prefix (None: ``$QT_REDIS_PREFIX``, else ``qt``).
        audit_dir: The run's audit folder: API writes are audited there and ``/audit`` reads it.
        worker_ids: The workers the run should have (readiness and the equity curve wait for
            all of them); empty: whoever reports.
        worker_stale_secs: A worker silent this long is stale (and the API not ready).
        group: The API's consumer group on the bus (one per API instance).
        backfill: Status events loaded from the streams at start-up.
    """

    state: str | Path | None
    redis_prefix: str | None = None
    audit_dir: Path | None = None
    worker_ids: tuple[str, ...] = ()
    worker_stale_secs: float = 10.0
    group: str = "api"
    backfill: int = 20_000
    consumer: str = field(default_factory=lambda: f"api-{os.getpid()}")

    @classmethod
    def from_run(cls, run: RunSettings) -> ApiSettings:
        """The settings of the run a ``[run]`` table describes."""
        return cls(
            state=run.state,
            redis_prefix=run.redis_prefix,
            audit_dir=run.folder / "audit",
            worker_ids=tuple(run.worker_id(i) for i in range(len(run.workers))),
            worker_stale_secs=run.worker_stale_secs,
        )


@dataclass(slots=True)
class Operations:
    """A composed API: the service, the feed thread and the registry ``/metrics`` serves."""

    service: OperationsService
    feed: BusFeed
    registry: CollectorRegistry

    def app(self, token: ApiToken | None) -> FastAPI:
        """The FastAPI app over this service."""
        return create_app(self.service, token=token, registry=self.registry)


@contextmanager
def open_operations(settings: ApiSettings, *, clock: Clock | None = None) -> Iterator[Operations]:
    """Open the stores, the audit log and the bus of ``settings``; start the feed thread."""
    clock = clock or WallClock()
    with ExitStack() as stack:
        audit = None
        if settings.audit_dir is not None:
            audit = open_audit_logger(settings.audit_dir, clock, durability=Durability.FSYNC)
            stack.callback(audit.close)
        registry = CollectorRegistry()
        metrics = MetricsLogger(registry)
        stores = open_state_stores(settings.state, redis_prefix=settings.redis_prefix)
        stack.callback(stores.close)
        service = OperationsService(
            stores,
            clock,
            read_model=ReadModel(settings.worker_ids),
            audit=audit,
            metrics=metrics,
            audit_dir=settings.audit_dir,
            worker_stale_secs=settings.worker_stale_secs,
        )
        stack.callback(service.closing.set)
        bus = client = None
        prefix = settings.redis_prefix or os.environ.get(REDIS_PREFIX_ENV) or DEFAULT_PREFIX
        if is_redis_url(settings.state):
            assert isinstance(settings.state, str)
            client = connect(settings.state)
            stack.callback(client.close)
            bus = RedisStreamsBus(
                client,
                prefix=prefix,
                group=settings.group,
                consumer=settings.consumer,
                error_policy=ErrorPolicy.REPORT,
            )
        feed = BusFeed(service, bus=bus, client=client, prefix=prefix, backfill=settings.backfill)
        feed.start()
        stack.callback(feed.stop)
        yield Operations(service, feed, registry)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one); OSError if it cannot."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def uvicorn_config(app: FastAPI, *, access_log: bool = False) -> uvicorn.Config:
    """How the API is served: no access log by default, short graceful shutdown."""
    return uvicorn.Config(
        app,
        access_log=access_log,
        log_level="warning",
        timeout_graceful_shutdown=2,
        lifespan="off",
    )


class GracefulServer(uvicorn.Server):
    """Uvicorn that tells the app's event streams to end as soon as it is asked to stop, so a
    graceful shutdown never has to cancel them."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        """Serve ``config`` for ``app``."""
        super().__init__(config)
        self.stopping: threading.Event = app.state.stopping
        self.stopping.clear()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Ctrl-C or SIGTERM: end the streams, then shut down as uvicorn does."""
        self.stopping.set()
        super().handle_exit(sig, frame)

    def stop(self) -> None:
        """Ask the server to stop (from another thread)."""
        self.stopping.set()
        self.should_exit = True


class ApiServer:
    """Uvicorn serving an app from a daemon thread, on a socket bound in the constructor."""

    def __init__(self, app: FastAPI, host: str = DEFAULT_HOST, port: int = 0) -> None:
        """Bind ``host:port`` and start serving; OSError if the address cannot be bound."""
        self.sock = bind(host, port)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.server = GracefulServer(uvicorn_config(app), app)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="api-server", daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8000``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def shutdown(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.stop()
        self.thread.join(timeout=10)
        self.sock.close()
