"""``qtrader paper``: every worker and the supervisor in one process, on the embedded state.

No Redis: the state is a SQLite file and the events a local bus. The run equals each worker
replayed on its own, a stopped run resumes from the venue journals to the same end, and the
command line works as a new user would type it.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from quantum_trader.domain.clock import ManualClock
from quantum_trader.engine.paper import open_worker, run_in_one_process
from quantum_trader.engine.settings import QtConfig, load_config
from quantum_trader.engine.stores import open_state_stores
from quantum_trader.observability.audit.verify import verify_audit_dir
from quantum_trader.testing.paper import qtrader_command, write_run_config

BARS = 600


def config(tmp: Path, name: str) -> QtConfig:
    cfg = write_run_config(
        tmp / f"{name}.toml",
        state=str(tmp / name / "state.db"),
        prefix="qt",
        folder=tmp / name,
        workers=[["BTCUSDT"], ["ETHUSDT"]],
        bars=BARS,
    )
    return load_config(cfg)


def fills(qt: QtConfig, index: int) -> list[tuple[object, ...]]:
    with open_worker(qt.run, qt.risk, index, clock=ManualClock(0)) as parts:
        return [
            (f.client_order_id, f.quantity, f.price, f.fee) for f in parts.venue.exchange.fills
        ]


def test_one_process_equals_each_worker_alone_and_keeps_one_book(tmp_path: Path) -> None:
    qt = config(tmp_path, "together")
    result = run_in_one_process(qt.run, qt.risk, stop=threading.Event())
    assert result.finished
    assert result.steps == 2 * BARS
    for index in (0, 1):
        alone = config(tmp_path, f"alone{index}")
        with open_worker(alone.run, alone.risk, index) as parts:
            parts.worker.run(wait=lambda _s: None)
        assert fills(qt, index) == fills(alone, index)
    with open_state_stores(qt.run.state) as stores:
        marks = stores.equity_marks.load()
        assert marks.peak_equity >= sum(result.equity.values()) > 0  # the supervisor's book
        assert {r.trade_id.split("-")[0] for r in stores.trades.list()} == {"w0", "w1"}
    assert verify_audit_dir(qt.run.folder / "audit").ok


def test_a_stopped_run_resumes_to_the_same_end(tmp_path: Path) -> None:
    whole = config(tmp_path, "whole")
    run_in_one_process(whole.run, whole.risk, stop=threading.Event())
    cut = config(tmp_path, "cut")
    stop = threading.Event()
    first = run_in_one_process(cut.run, cut.risk, stop=stop, progress=lambda _f: stop.set())
    assert not first.finished
    assert 0 < first.steps < 2 * BARS
    second = run_in_one_process(cut.run, cut.risk, stop=threading.Event())
    assert second.finished
    assert first.steps + second.steps == 2 * BARS
    for index in (0, 1):
        assert fills(cut, index) == fills(whole, index)


def test_qtrader_paper_command(tmp_path: Path) -> None:
    cfg = write_run_config(
        tmp_path / "paper.toml",
        state="redis://unused",  # replaced by --state
        prefix="qt",
        folder=tmp_path / "out",
        workers=[["BTCUSDT"], ["ETHUSDT"]],
        bars=300,
    )
    done = subprocess.run(
        qtrader_command("paper", "--config", str(cfg), "--state", str(tmp_path / "s.db")),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "replay finished after 600 bars" in done.stdout
    assert "w0: equity" in done.stdout
    assert (tmp_path / "s.db").exists()
