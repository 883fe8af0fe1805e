"""Drive a paper run's real processes from tests and benchmarks.

``write_run_config`` writes a ``[run]``/``[risk]`` file; ``WorkerProcess`` starts ``qtrader worker``
as a child (``python -m quantum_trader``) and reads its ``--report-steps`` lines without ever
sleeping (``wait_for_step`` blocks on the pipe with a deadline); ``stream_events`` reads a bus
topic straight from its Redis stream; ``wait_for_event`` blocks on XREAD until an event that
matches arrives; ``measure_ess_latency`` triggers and resets the ESS many times and returns how
long each worker took to hear each activation.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis

from quantum_trader.bus.events import Event
from quantum_trader.bus.redis_streams import FIELD
from quantum_trader.domain.clock import WallClock
from quantum_trader.domain.policy import TradingState
from quantum_trader.engine.stores import open_state_stores
from quantum_trader.risk.ess import EmergencyStopSystem, NoVenueExecutor
from quantum_trader.risk.policy_service import PolicyService

ACK_TOPIC = "ess.ack"
_FIELD = FIELD.encode()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def write_run_config(
    path: Path,
    *,
    state: str,
    prefix: str,
    folder: Path,
    workers: Sequence[Sequence[str]],
    bars: int = 400,
    speed: float = 0.0,
    params: Mapping[str, object] | None = None,
    run: Mapping[str, object] | None = None,
    risk: Mapping[str, object] | None = None,
) -> Path:
    """Write a config for a synthetic-market paper run and return its path."""
    table: dict[str, object] = {
        "workers": [list(w) for w in workers],
        "synthetic_bars": bars,
        "speed": speed,
        "state": state,
        "redis_prefix": prefix,
        "folder": folder,
        "metrics_port": 0,
        "durable": False,
        "strategy": "sma_cross",
        "params": dict(params or {"fast": 5, "slow": 20}),
        **(run or {}),
    }
    lines = ["[run]", *(f"{k} = {_toml(v)}" for k, v in table.items())]
    if risk:
        lines += ["", "[risk]", *(f"{k} = {_toml(v)}" for k, v in risk.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def qtrader_command(*args: str) -> list[str]:
    """The command line of ``qtrader ARGS`` with this interpreter."""
    return [sys.executable, "-m", "quantum_trader", *args]


class WorkerProcess:
    """``qtrader worker --report-steps`` as a child process whose steps can be awaited."""

    def __init__(self, config: Path, index: int, *, env: Mapping[str, str] | None = None) -> None:
        """Start worker ``index`` of ``config``."""
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            qtrader_command(
                "worker", "--config", str(config), "--index", str(index), "--report-steps"
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.last_step = -1
        self._selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self._stdout: IO[bytes] = self.process.stdout
        self._selector.register(self._stdout, selectors.EVENT_READ)

    def wait_for_step(self, step: int, timeout_secs: float = 60.0) -> int:
        """Block until the worker reports ``step`` (or any later one); return the last seen.

        Raises TimeoutError past the deadline, RuntimeError (with its stderr) if it exited.
        """
        deadline = time.monotonic() + timeout_secs
        while self.last_step < step:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"worker did not reach step {step} (last {self.last_step})")
            if not self._selector.select(left):
                continue
            line = self._stdout.readline()
            if not line:
                self.process.wait()
                raise RuntimeError(
                    f"worker exited with {self.process.returncode} before step {step}: "
                    f"{self.stderr()}"
                )
            text = line.decode().strip()
            if text.startswith("step "):
                self.last_step = int(text.split()[1])
        return self.last_step

    def kill(self) -> None:
        """SIGKILL the worker and reap it."""
        self.process.send_signal(signal.SIGKILL)
        self.finish()

    def finish(self, timeout_secs: float = 120.0) -> int:
        """Wait for the worker to end (draining its output); return its exit code."""
        _out, _err = self.process.communicate(timeout=timeout_secs)
        self._stderr = _err.decode(errors="replace")
        self.close()
        return self.process.returncode

    def terminate(self, timeout_secs: float = 30.0) -> int:
        """SIGTERM the worker and wait for it to end; return its exit code."""
        self.process.terminate()
        return self.finish(timeout_secs)

    def stderr(self) -> str:
        """What the worker wrote to stderr (after it ended)."""
        if getattr(self, "_stderr", None) is None:
            assert self.process.stderr is not None
            self._stderr = self.process.stderr.read().decode(errors="replace")
        return self._stderr

    def close(self) -> None:
        """Release the pipe watcher."""
        try:
            self._selector.unregister(self._stdout)
        except (KeyError, ValueError):
            pass
        self._selector.close()


def stream_key(prefix: str, topic: str) -> str:
    """The Redis stream of a bus topic (as ``RedisStreamsBus.stream_key`` names it)."""
    return "{" + prefix + "}:bus:" + topic


def stream_events(client: redis.Redis, prefix: str, topic: str) -> list[Event]:
    """Every event in ``topic``'s stream, oldest first, duplicates included."""
    rows: Any = client.xrange(stream_key(prefix, topic))
    return [Event.decode(fields[_FIELD]) for _id, fields in rows]


def wait_for_event(
    client: redis.Redis,
    prefix: str,
    topic: str,
    matches: Callable[[Event], bool],
    *,
    after: str = "0-0",
    timeout_secs: float = 30.0,
) -> tuple[Event, str]:
    """Block on XREAD until an event of ``topic`` after stream id ``after`` matches.

    Returns the event and its stream id. Raises TimeoutError past the deadline.
    """
    key = stream_key(prefix, topic)
    deadline = time.monotonic() + timeout_secs
    while True:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            raise TimeoutError(f"no matching {topic} event within {timeout_secs} s")
        reply: Any = client.xread({key: after}, block=min(left_ms, 1000), count=100)
        for _key, rows in reply or []:
            for stream_id, fields in rows:
                after = stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
                event = Event.decode(fields[_FIELD])
                if matches(event):
                    return event, after


def _is_ack_of(activation: int) -> Callable[[Event], bool]:
    def matches(event: Event) -> bool:
        return event.payload.get("activation") == activation

    return matches


def _status_of(worker: str, *, halted: bool) -> Callable[[Event], bool]:
    def matches(event: Event) -> bool:
        return event.payload.get("worker") == worker and event.payload.get("halted") is halted

    return matches


def _last_id(client: redis.Redis, key: str) -> str:
    """The id of the newest entry of stream ``key`` ("0-0" when it is empty or missing)."""
    rows: Any = client.xrevrange(key, count=1)
    if not rows:
        return "0-0"
    first = rows[0][0]
    return first.decode() if isinstance(first, bytes) else str(first)


@dataclass(frozen=True, slots=True)
class LatchWindow:
    """One trigger: when it latched, when it was reset, and when each worker heard it."""

    activation: int
    activated_at_ns: int
    reset_at_ns: int
    seen_ns: dict[str, int]

    def latencies_ms(self) -> list[float]:
        """Each worker's delay from the latch write to hearing it, in milliseconds."""
        return [(seen - self.activated_at_ns) / 1e6 for seen in self.seen_ns.values()]


def measure_ess_latency(
    url: str,
    prefix: str,
    workers: Sequence[str],
    triggers: int,
    *,
    hold_steps: int = 0,
    timeout_secs: float = 10.0,
) -> list[LatchWindow]:
    """Trigger the ESS ``triggers`` times (as ``qtrader ess trigger`` does); return each window.

    After every worker acknowledged a trigger, the latch is held until each worker has
    reported ``hold_steps`` more bars as halted, then reset to ACTIVE, and the next trigger
    waits until each worker reported a bar with trading resumed.
    """
    clock = WallClock()
    client = redis.Redis.from_url(url)
    windows: list[LatchWindow] = []
    with open_state_stores(url, redis_prefix=prefix) as stores:
        policy = PolicyService(stores.policy, clock)
        ess = EmergencyStopSystem(stores.ess, policy, NoVenueExecutor(), clock, evaluators=())
        last_id = _last_id(client, stream_key(prefix, ACK_TOPIC))
        for _ in range(triggers):
            activation = ess.trigger_manual("bench", "latency measurement")
            state = ess.state()
            seen: dict[str, int] = {}
            while len(seen) < len(workers):
                event, last_id = wait_for_event(
                    client,
                    prefix,
                    ACK_TOPIC,
                    _is_ack_of(state.activations),
                    after=last_id,
                    timeout_secs=timeout_secs,
                )
                payload: Any = event.payload
                seen[str(payload["worker"])] = int(payload["seen_ns"])
            status_id = _last_id(client, stream_key(prefix, "worker.status"))
            for wid in workers:
                for _ in range(hold_steps):
                    _event, status_id = wait_for_event(
                        client,
                        prefix,
                        "worker.status",
                        _status_of(wid, halted=True),
                        after=status_id,
                        timeout_secs=timeout_secs,
                    )
            reset_at = clock.now_ns()
            ess.reset("bench", "measured", resume=TradingState.ACTIVE)
            status_id = _last_id(client, stream_key(prefix, "worker.status"))
            for wid in workers:
                _event, _id = wait_for_event(
                    client,
                    prefix,
                    "worker.status",
                    _status_of(wid, halted=False),
                    after=status_id,
                    timeout_secs=timeout_secs,
                )
            assert activation.activated
            windows.append(LatchWindow(state.activations, state.activated_at_ns, reset_at, seen))
    client.close()
    return windows
