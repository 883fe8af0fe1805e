"""ReadModel: duplicates dropped by id, the equity curve thinned with an exact peak and drawdown,
listeners told of every change."""

from __future__ import annotations

from typing import Any

from quantum_trader.api.readmodel import ReadModel
from quantum_trader.bus.events import Event


def status(event_id: str, worker: str, ts: int, equity: float) -> Event:
    payload: dict[str, Any] = {"worker": worker, "market_ts": ts, "equity": equity}
    return Event(event_id, "worker.status", ts, payload, worker)


def test_read_model_when_event_repeated_drops_it() -> None:
    model = ReadModel(["w0"])
    heard: list[str] = []
    model.add_listener(lambda kind, data: heard.append(kind))
    model.handle(status("a", "w0", 1, 100.0))
    model.handle(status("a", "w0", 1, 100.0))
    assert len(model.curve()) == 1
    assert heard == ["status"]


def test_read_model_when_curve_exceeds_max_points_thins_it_keeping_peak_and_drawdown() -> None:
    model = ReadModel(["w0"], max_points=10)
    values = [100.0, 150.0, *([120.0] * 20), 90.0, 95.0]
    for i, value in enumerate(values):
        model.handle(status(f"e{i}", "w0", i, value))
    curve = model.curve()
    assert len(curve) <= 11
    assert curve[-1].equity == 95.0
    assert model.peak() == (150.0, 0.4)


def test_read_model_when_listener_removed_stops_calling_it() -> None:
    model = ReadModel()
    heard: list[str] = []

    def listener(kind: str, data: object) -> None:
        heard.append(kind)

    model.add_listener(listener)
    model.handle(Event("o1", "orders", 1, {"symbol": "BTCUSDT"}, "w0"))
    model.remove_listener(listener)
    model.handle(Event("o2", "fills", 2, {"symbol": "BTCUSDT"}, "w0"))
    assert heard == ["order"]
    assert model.fills_seen == 1
