"""A small ``/metrics`` (Prometheus text format) and ``/health`` HTTP server.

Standard library only: a threaded ``wsgiref`` server in a background thread, the metrics page
from ``prometheus_client.make_wsgi_app`` over a logger's own registry or a multiprocess
registry. The supervisor of ``qtrader run`` serves the run's scrape target with it (it keeps
answering whether or not the HTTP API runs); ``qtrader serve`` is the full API.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app

from quantum_trader.observability.metrics.logger import MetricsLogger

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9108
_HEALTH_BODY = b'{"status":"ok"}'
_POLL_INTERVAL_SECS = 0.1  # how quickly shutdown() is noticed by serve_forever


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # a scrape every few seconds would flood the terminal


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck client never blocks shutdown

    def __init__(self, host: str, port: int, family: socket.AddressFamily) -> None:
        self.address_family = family
        super().__init__((host, port), _QuietHandler)


def metrics_wsgi_app(metrics: MetricsLogger | CollectorRegistry) -> WSGIApplication:
    """Return the WSGI app serving ``/metrics`` and ``/health`` (404 elsewhere).

    ``metrics`` is a logger (its own registry is served) or a registry (e.g. one holding the
    multiprocess collector of a run's processes).
    """
    registry = metrics if isinstance(metrics, CollectorRegistry) else metrics.registry
    prometheus_app = cast(WSGIApplication, make_wsgi_app(registry))

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return prometheus_app(environ, start_response)
        if path == "/health":
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(_HEALTH_BODY))),
            ]
            start_response("200 OK", headers)
            return [_HEALTH_BODY]
        body = b"not found: try /metrics or /health\n"
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [body]

    return app


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """A running metrics server: where it listens and how to stop it."""

    server: WSGIServer
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:9108``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def shutdown(self) -> None:
        """Stop serving, close the socket and wait for the server thread to end."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def start_metrics_server(
    metrics: MetricsLogger | CollectorRegistry, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> MetricsServer:
    """Listen on ``host:port`` and serve in a daemon thread; port 0 picks a free port.

    The socket is listening when this returns, so a client may connect at once. Raises OSError
    when the address cannot be bound (port in use, unknown host).
    """
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    server = _ThreadingWSGIServer(str(address[0]), port, family)
    server.set_app(metrics_wsgi_app(metrics))
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": _POLL_INTERVAL_SECS},
        name="metrics-server",
        daemon=True,
    )
    thread.start()
    return MetricsServer(server=server, thread=thread, host=host, port=server.server_port)


def serve_until_interrupted(running: MetricsServer, wait: Callable[[], None] | None = None) -> None:
    """Block in ``wait`` (default: until the server thread ends) and shut down on Ctrl-C.

    Ctrl-C raises KeyboardInterrupt in the main thread, which ends the wait; the server is shut
    down however the wait ends.
    """
    try:
        (wait or running.thread.join)()
    except KeyboardInterrupt:
        pass
    finally:
        running.shutdown()
