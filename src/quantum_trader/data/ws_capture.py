"""Stream raw Binance websocket captures (hftbacktest's collector format) as typed events.

A capture file is gzip text with one message per line: ``<local_receive_ns> <raw JSON>``.
Websocket messages come in Binance's combined-stream envelope,
``{"stream": "btcusdt@depth@0ms", "data": {...}}``; the one REST depth snapshot of a session
has no envelope (``{"lastUpdateId": ..., "bids": [...], "asks": [...]}``). Streams read:

* ``<symbol>@trade`` → :class:`Trade` (``t`` id, ``p``, ``q``, ``T``, ``m`` buyer is maker);
* ``<symbol>@bookTicker`` → :class:`BookTicker` (``u``, ``b``/``B``, ``a``/``A``; ``T``/``E``
  on USDT-M only, spot sends no time);
* ``<symbol>@depth``, ``@depth@100ms``, ``@depth@0ms``... → :class:`DepthDiff` (``U``, ``u``,
  ``pu`` on USDT-M only, ``b``/``a`` as [price, qty] strings, ``E`` event time);
* the snapshot → :class:`DepthSnapshot`.

Events come out in the order they were recorded (arrival order at the collector, which is what
a live process sees). Each stream is in exchange-time order on its own, but the streams
interleave: in the USDT-M BTCUSDT capture an event arrives up to 110 ms of exchange time after
one of a later time on another stream. :class:`ExchangeTimeOrder` re-sorts a stream of events
by exchange time within a bounded delay, for a replay that must follow the exchange's clock.
Every event carries both clocks, in integer nanoseconds: ``ts_recv`` (the collector's clock,
about 1.27 s behind the exchange in these files) and ``ts_event`` (the exchange's ``T`` or
``E``; ``None`` where Binance sends none).

Prices and quantities are float64 (the exchange's decimal strings parsed once): this module
feeds simulation and the order book, not order I/O. Every number is checked: prices must be
finite and > 0, quantities finite and >= 0, ids and times integers. A bad line raises
:class:`CaptureFormatError` (a :class:`DataError`) naming the file, the line number and the
reason; with ``skip_bad=True`` the reader skips it instead, counts it and keeps the first
reasons in :attr:`CaptureReader.stats`.
"""

from __future__ import annotations

import gzip
import heapq
import math
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from quantum_trader.domain.errors import DataError

__all__ = [
    "BookTicker",
    "CaptureEvent",
    "CaptureFormatError",
    "CaptureReader",
    "CaptureStats",
    "DepthDiff",
    "DepthSnapshot",
    "ExchangeTimeOrder",
    "Level",
    "Trade",
    "parse_line",
    "read_capture",
]

Level = tuple[float, float]
"""One book level: (price, quantity); quantity 0 means the level is removed."""

_MS = 1_000_000
_KEEP_PROBLEMS = 100


class CaptureFormatError(DataError):
    """A capture line cannot be read: ``path``, ``line_number`` (1-based) and ``reason`` say why."""

    def __init__(self, path: str, line_number: int, reason: str) -> None:
        super().__init__(f"{path}:{line_number}: {reason}")
        self.path = path
        self.line_number = line_number
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Trade:
    """One print on the tape (not :class:`quantum_trader.domain.trading.Trade`, a round trip).

    ``buyer_is_maker`` True means the seller took liquidity (an aggressive sell).
    """

    symbol: str
    trade_id: int
    price: float
    quantity: float
    buyer_is_maker: bool
    ts_event: int
    ts_recv: int


@dataclass(frozen=True, slots=True)
class BookTicker:
    """The best bid and ask after update ``update_id``."""

    symbol: str
    update_id: int
    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float
    ts_event: int | None
    ts_recv: int


@dataclass(frozen=True, slots=True)
class DepthDiff:
    """A diff-depth update covering update ids ``first_update_id`` (U) to ``final_update_id`` (u).

    ``previous_final_update_id`` is USDT-M's ``pu`` (the ``u`` of the stream's previous diff),
    ``None`` on spot. Levels carry absolute quantities; 0 removes the level.
    """

    symbol: str
    first_update_id: int
    final_update_id: int
    previous_final_update_id: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_event: int
    ts_recv: int


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A REST order-book snapshot as of update id ``last_update_id`` (bids best first)."""

    symbol: str
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_event: int | None
    ts_recv: int


CaptureEvent = Trade | BookTicker | DepthDiff | DepthSnapshot
"""Any event a capture yields."""


@dataclass(slots=True)
class CaptureStats:
    """What a reader has seen so far: lines, events by kind, and bad lines skipped."""

    lines: int = 0
    trades: int = 0
    book_tickers: int = 0
    depth_diffs: int = 0
    snapshots: int = 0
    bad_lines: int = 0
    problems: list[CaptureFormatError] = field(default_factory=list)

    @property
    def events(self) -> int:
        """Events yielded."""
        return self.trades + self.book_tickers + self.depth_diffs + self.snapshots

    def summary(self) -> str:
        """One line for a log or a report."""
        text = (
            f"{self.lines} lines: {self.trades} trades, {self.book_tickers} bookTicker, "
            f"{self.depth_diffs} depth diffs, {self.snapshots} snapshots, "
            f"{self.bad_lines} bad lines skipped"
        )
        if self.problems:
            text += f" (first: {self.problems[0]})"
        return text


class _Bad(Exception):
    """A reason a line is unreadable, raised by the field helpers below."""


def _int(data: dict[str, Any], key: str) -> int:
    value = _field(data, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"field {key!r} must be an integer, got {value!r}")
    if value < 0:
        raise _Bad(f"field {key!r} must be >= 0, got {value}")
    return int(value)


def _field(data: dict[str, Any], key: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise _Bad(f"missing field {key!r}") from None


def _number(value: Any, what: str) -> float:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise _Bad(f"{what} is not a number: {value!r}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise _Bad(f"{what} is not a number: {value!r}")
    if not math.isfinite(number):
        raise _Bad(f"{what} is not finite: {value!r}")
    return number


def _price(value: Any, what: str) -> float:
    price = _number(value, what)
    if price <= 0.0:
        raise _Bad(f"{what} must be > 0, got {value!r}")
    return price


def _qty(value: Any, what: str) -> float:
    qty = _number(value, what)
    if qty < 0.0:
        raise _Bad(f"{what} must be >= 0, got {value!r}")
    return qty


def _levels(data: dict[str, Any], key: str) -> tuple[Level, ...]:
    raw = _field(data, key)
    if not isinstance(raw, list):
        raise _Bad(f"field {key!r} must be a list of [price, qty], got {type(raw).__name__}")
    out: list[Level] = []
    for i, level in enumerate(raw):
        if not isinstance(level, list) or len(level) < 2:
            raise _Bad(f"{key}[{i}] must be [price, qty], got {level!r}")
        out.append((_price(level[0], f"{key}[{i}] price"), _qty(level[1], f"{key}[{i}] qty")))
    return tuple(out)


def _opt_ms(data: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        if key in data:
            return _int(data, key) * _MS
    return None


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _trade(symbol: str, d: dict[str, Any], ts_recv: int) -> Trade:
    buyer_is_maker = _field(d, "m")
    if not isinstance(buyer_is_maker, bool):
        raise _Bad(f"field 'm' must be true or false, got {buyer_is_maker!r}")
    return Trade(
        symbol,
        _int(d, "t"),
        _price(_field(d, "p"), "price 'p'"),
        _qty(_field(d, "q"), "quantity 'q'"),
        buyer_is_maker,
        _int(d, "T") * _MS,
        ts_recv,
    )


def _book_ticker(symbol: str, d: dict[str, Any], ts_recv: int) -> BookTicker:
    return BookTicker(
        symbol,
        _int(d, "u"),
        _price(_field(d, "b"), "bid price 'b'"),
        _qty(_field(d, "B"), "bid qty 'B'"),
        _price(_field(d, "a"), "ask price 'a'"),
        _qty(_field(d, "A"), "ask qty 'A'"),
        _opt_ms(d, "T", "E"),
        ts_recv,
    )


def _depth(symbol: str, d: dict[str, Any], ts_recv: int) -> DepthDiff:
    first, final = _int(d, "U"), _int(d, "u")
    if first > final:
        raise _Bad(f"first update id U={first} is after final update id u={final}")
    return DepthDiff(
        symbol,
        first,
        final,
        _int(d, "pu") if "pu" in d else None,
        _levels(d, "b"),
        _levels(d, "a"),
        _int(d, "E") * _MS,
        ts_recv,
    )


def _snapshot(symbol: str, d: dict[str, Any], ts_recv: int) -> DepthSnapshot:
    return DepthSnapshot(
        symbol,
        _int(d, "lastUpdateId"),
        _levels(d, "bids"),
        _levels(d, "asks"),
        _opt_ms(d, "T", "E"),
        ts_recv,
    )


def parse_line(line: bytes | str, *, symbol: str) -> CaptureEvent:
    """Parse one capture line; raise :class:`ValueError` with the reason if it is malformed.

    ``symbol`` names the snapshot's market (a snapshot line does not say); stream messages take
    theirs from the stream name. :class:`CaptureReader` turns the error into a
    :class:`CaptureFormatError` with the file and line.
    """
    try:
        return _parse(line.encode() if isinstance(line, str) else line, symbol)
    except _Bad as exc:
        raise ValueError(str(exc)) from None


def _parse(line: bytes, symbol: str) -> CaptureEvent:
    head, sep, body = line.partition(b" ")
    if not sep:
        raise _Bad("expected '<local_receive_ns> <json>', found no space")
    try:
        ts_recv = int(head)
    except ValueError:
        raise _Bad(f"local timestamp is not an integer: {head[:40]!r}") from None
    if ts_recv < 0:
        raise _Bad(f"local timestamp must be >= 0, got {ts_recv}")
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _Bad(f"malformed JSON: {exc}") from None
    message = _dict(message, "message")
    stream = message.get("stream")
    if stream is None:
        if "lastUpdateId" in message:
            return _snapshot(symbol, message, ts_recv)
        raise _Bad("neither a stream envelope nor a depth snapshot")
    if not isinstance(stream, str):
        raise _Bad(f"field 'stream' must be a string, got {stream!r}")
    data = _dict(_field(message, "data"), "field 'data'")
    market, _, kind = stream.partition("@")
    name = market.upper()
    if kind == "trade":
        return _trade(name, data, ts_recv)
    if kind == "bookTicker":
        return _book_ticker(name, data, ts_recv)
    if kind == "depth" or kind.startswith("depth@"):
        return _depth(name, data, ts_recv)
    raise _Bad(f"unknown stream {stream!r}")


_SYMBOL_FROM_NAME = re.compile(r"^([A-Za-z0-9]+)_")


class CaptureReader:
    """Read one capture file lazily, one event per line, in recorded order.

    Args:
        path: a ``.gz`` capture (plain text is read too).
        symbol: the market of the snapshot line; by default the file name's prefix
            (``btcusdt_20240808.gz`` → ``BTCUSDT``).
        skip_bad: skip unreadable lines (counted in :attr:`stats`) instead of raising
            :class:`CaptureFormatError`.
    """

    def __init__(self, path: str | Path, *, symbol: str | None = None, skip_bad: bool = False):
        self.path = Path(path)
        if symbol is None:
            match = _SYMBOL_FROM_NAME.match(self.path.name)
            symbol = match.group(1) if match else self.path.name.split(".")[0]
        self.symbol = symbol.upper()
        self.skip_bad = skip_bad
        self.stats = CaptureStats()

    def __iter__(self) -> Iterator[CaptureEvent]:
        """Yield the file's events; raise or skip bad lines as configured."""
        stats = self.stats
        opener = gzip.open if self.path.suffix == ".gz" else open
        try:
            handle = opener(self.path, "rb")
        except OSError as exc:
            raise DataError(f"{self.path}: cannot open capture: {exc}") from exc
        with handle:
            lineno = 0
            try:
                for lineno, raw in enumerate(handle, start=1):
                    stats.lines = lineno
                    line = raw.rstrip(b"\r\n")
                    if not line:
                        continue
                    try:
                        event = _parse(line, self.symbol)
                    except (_Bad, RecursionError) as exc:
                        self._bad(lineno, str(exc) or type(exc).__name__)
                        continue
                    self._count(event)
                    yield event
            except (OSError, EOFError, zlib.error) as exc:
                # A truncated or corrupt gzip stream: nothing after this point can be read.
                self._bad(lineno + 1, f"unreadable compressed data: {exc}")

    def _count(self, event: CaptureEvent) -> None:
        stats = self.stats
        if isinstance(event, BookTicker):
            stats.book_tickers += 1
        elif isinstance(event, Trade):
            stats.trades += 1
        elif isinstance(event, DepthDiff):
            stats.depth_diffs += 1
        else:
            stats.snapshots += 1

    def _bad(self, lineno: int, reason: str) -> None:
        error = CaptureFormatError(str(self.path), lineno, reason)
        if not self.skip_bad:
            raise error
        self.stats.bad_lines += 1
        if len(self.stats.problems) < _KEEP_PROBLEMS:
            self.stats.problems.append(error)


def read_capture(
    paths: str | Path | Iterable[str | Path],
    *,
    symbol: str | None = None,
    skip_bad: bool = False,
    stats: CaptureStats | None = None,
) -> Iterator[CaptureEvent]:
    """Yield the events of one capture file, or of several read one after the other.

    A session split at midnight (``btcusdt_20240808.gz`` then ``btcusdt_20240809.gz``) reads
    as one stream when both are passed in order. When ``stats`` is given, every file's counts
    are added to it as the files are read.
    """
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for path in items:
        reader = CaptureReader(path, symbol=symbol, skip_bad=skip_bad)
        try:
            yield from reader
        finally:
            if stats is not None:
                _add(stats, reader.stats)


def _add(total: CaptureStats, part: CaptureStats) -> None:
    total.lines += part.lines
    total.trades += part.trades
    total.book_tickers += part.book_tickers
    total.depth_diffs += part.depth_diffs
    total.snapshots += part.snapshots
    total.bad_lines += part.bad_lines
    room = _KEEP_PROBLEMS - len(total.problems)
    total.problems.extend(part.problems[:room])


class ExchangeTimeOrder:
    """Re-sort events by exchange time, assuming none arrives more than ``max_delay_ns`` late.

    Events are held until an event ``max_delay_ns`` of exchange time newer has been seen, then
    released oldest first (ties keep their recorded order, so each stream keeps its own order).
    An event without an exchange time (spot bookTicker) sorts right after the event recorded
    before it. An event later than the bound cannot be put back in place: it is released at once
    and counted in :attr:`late`. The default bound, 1 s, is nine times the worst delay in the
    reference captures (110 ms).
    """

    def __init__(self, events: Iterable[CaptureEvent], *, max_delay_ns: int = 1_000_000_000):
        if max_delay_ns < 0:
            raise ValueError(f"max_delay_ns must be >= 0, got {max_delay_ns}")
        self._events = events
        self.max_delay_ns = max_delay_ns
        self.late = 0
        """Events that arrived more than ``max_delay_ns`` late (released out of order)."""

    def __iter__(self) -> Iterator[CaptureEvent]:
        """Yield the events in non-decreasing exchange time (late ones excepted)."""
        heap: list[tuple[int, int, CaptureEvent]] = []
        newest = released = previous = -1
        for seq, event in enumerate(self._events):
            ts = event.ts_event
            key = max(ts, 0) if ts is not None else max(previous, released, 0)
            previous = key
            if key < released:
                self.late += 1
                yield event
                continue
            heapq.heappush(heap, (key, seq, event))
            newest = max(newest, key)
            while heap and heap[0][0] <= newest - self.max_delay_ns:
                released, _, ready = heapq.heappop(heap)
                yield ready
        while heap:
            yield heapq.heappop(heap)[2]
