"""RedisServer: a private, throw-away ``redis-server`` for tests, on a free localhost port.

Tests start their own server, never a shared one (nothing touches port 6379): a temporary
folder, no persistence (``--save "" --appendonly no``), bound to 127.0.0.1. Starting waits until
the server answers PING, polling a bounded number of times; between tries it waits on the
child process itself, so a server that dies at start-up is reported at once with its log.
``stop`` and ``start`` stop and restart the same server on the same port, for fault tests
(the data is gone after a restart, unless ``appendonly=True`` keeps an append-only file).

Use it as a context manager::

    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from quantum_trader.domain.errors import QuantumTraderError

HOST: Final = "127.0.0.1"
_LOG_NAME: Final = "redis-server.log"
_PORT_ATTEMPTS: Final = 3


class RedisServerError(QuantumTraderError):
    """The test Redis server could not be started or stopped."""


class RedisServerNotFoundError(RedisServerError):
    """No ``redis-server`` executable was found on PATH."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


class RedisServer:
    """A ``redis-server`` child process on 127.0.0.1, for one test session or one test.

    Attributes:
        port: The TCP port; fixed for the object's life, so a restart keeps the URL.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        executable: str = "redis-server",
        ping_tries: int = 500,
        poll_secs: float = 0.01,
        stop_timeout_secs: float = 5.0,
        appendonly: bool = False,
    ) -> None:
        """Prepare a server (nothing runs until ``start``).

        Args:
            port: The port to listen on; a free one when None.
            executable: The server program, looked up on PATH.
            ping_tries: How many times ``start`` tries PING before it gives up.
            poll_secs: How long each try waits for the process between PINGs (and the
                socket timeout of each PING).
            stop_timeout_secs: How long ``stop`` waits after SIGTERM before SIGKILL.
            appendonly: Keep an append-only file (fsync on every write) in the server's folder,
                so a restart keeps the data, as a production server should.

        Raises:
            RedisServerNotFoundError: ``executable`` is not on PATH.
        """
        found = shutil.which(executable)
        if found is None:
            raise RedisServerNotFoundError(
                f"{executable!r} is not on PATH; install Redis (e.g. apt-get install "
                f"redis-server) to run the Redis tests"
            )
        self._executable = found
        self._auto_port = port is None
        self.port = free_port() if port is None else port
        self._ping_tries = ping_tries
        self._poll_secs = poll_secs
        self._stop_timeout_secs = stop_timeout_secs
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._started_once = False
        self._appendonly = appendonly

    @property
    def url(self) -> str:
        """The client URL, ``redis://127.0.0.1:<port>/0``."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else None."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and return once it answers PING (a no-op while it runs).

        Raises:
            RedisServerError: It exited during start-up or never answered PING.
        """
        if self.running:
            return
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="qt-redis-")
        # A free port may be taken between probing and binding: then try another one, but only
        # before the first successful start (a restart must keep the port).
        attempts = _PORT_ATTEMPTS if self._auto_port and not self._started_once else 1
        for attempt in range(1, attempts + 1):
            try:
                self._spawn_and_wait()
            except RedisServerError:
                if attempt == attempts:
                    raise
                self.port = free_port()
            else:
                self._started_once = True
                return

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited in time (a no-op if down)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self._stop_timeout_secs)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self.stop()
        finally:
            if self._folder is not None:
                self._folder.cleanup()
                self._folder = None

    def log(self) -> str:
        """Return what the server has written to its log so far ("" before the first start)."""
        if self._folder is None:
            return ""
        path = Path(self._folder.name) / _LOG_NAME
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Self:
        """Start the server; ``with`` stops it and deletes its folder on exit."""
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server and delete its folder."""
        self.close()

    def _spawn_and_wait(self) -> None:
        assert self._folder is not None
        folder = Path(self._folder.name)
        command = [
            self._executable,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "yes" if self._appendonly else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(folder),
            "--daemonize",
            "no",
        ]
        # The child keeps its own copy of the log descriptor; ours closes right away.
        with (folder / _LOG_NAME).open("ab") as log_file:
            self._process = subprocess.Popen(  # noqa: S603 - a fixed program and arguments
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_ready(self._process)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        for _ in range(self._ping_tries):
            if self._answers_ping():
                return
            try:
                code = process.wait(timeout=self._poll_secs)
            except subprocess.TimeoutExpired:
                continue
            raise RedisServerError(
                f"redis-server on port {self.port} exited with code {code} during start-up; "
                f"its log:\n{self.log()[-2000:]}"
            )
        raise RedisServerError(
            f"redis-server on port {self.port} did not answer PING after {self._ping_tries} "
            f"tries; its log:\n{self.log()[-2000:]}"
        )

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=self._poll_secs * 10) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False
