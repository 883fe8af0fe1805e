"""The websocket capture reader: each stream parsed to a typed event, bad lines named or skipped."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.data.ws_capture import (
    BookTicker,
    CaptureFormatError,
    CaptureReader,
    CaptureStats,
    DepthDiff,
    DepthSnapshot,
    ExchangeTimeOrder,
    Trade,
    parse_line,
    read_capture,
)
from quantum_trader.domain.errors import DataError

# Derandomized: the same examples every run.
PROPERTY = settings(deadline=None, derandomize=True, database=None)

TRADE = (
    '1723161255088176367 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,'
    '"T":1723161256321,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET",'
    '"m":false}}'
)
TICKER = (
    '1723161255088169167 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker",'
    '"u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510",'
    '"T":1723161256313,"E":1723161256314}}'
)
DEPTH = (
    '1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate",'
    '"E":1723161256299,"T":1723161256298,"s":"BTCUSDT","U":5123107832006,"u":5123107837557,'
    '"pu":5123107831937,"b":[["61800.20","2.507"],["61739.00","0.000"]],'
    '"a":[["61800.30","3.330"]]}}'
)
SNAPSHOT = (
    '1723161255319702566 {"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,'
    '"bids":[["61800.20","2.909"],["61800.10","0.696"]],"asks":[["61800.30","1.5"]]}'
)
SPOT_TICKER = (
    '1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",'
    '"b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}'
)
SPOT_DEPTH = (
    '1723161254036059768 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate",'
    '"E":1723161255308,"s":"BTCUSDT","U":50093239203,"u":50093239207,'
    '"b":[["55653.87000000","0.00000000"]],"a":[["61838.04000000","0.32332000"]]}}'
)
GOOD_LINES = [TRADE, TICKER, DEPTH, SNAPSHOT, SPOT_TICKER, SPOT_DEPTH]
EVENT_TYPES = (Trade, BookTicker, DepthDiff, DepthSnapshot)


def write_capture(path: Path, lines: list[str] | list[bytes]) -> Path:
    """Write ``lines`` as a gzip capture file and return its path."""
    with gzip.open(path, "wb") as handle:
        for line in lines:
            handle.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return path


def test_parse_line_when_trade_gives_typed_trade_in_nanoseconds() -> None:
    event = parse_line(TRADE, symbol="IGNORED")
    assert event == Trade(
        "BTCUSDT", 5266583935, 61800.30, 0.006, False, 1723161256321_000_000, 1723161255088176367
    )


def test_parse_line_when_usdm_book_ticker_takes_transaction_time() -> None:
    event = parse_line(TICKER, symbol="X")
    assert event == BookTicker(
        "BTCUSDT",
        5123107839020,
        61800.20,
        2.507,
        61800.30,
        2.510,
        1723161256313_000_000,
        1723161255088169167,
    )


def test_parse_line_when_spot_book_ticker_has_no_exchange_time() -> None:
    event = parse_line(SPOT_TICKER, symbol="X")
    assert isinstance(event, BookTicker)
    assert event.ts_event is None
    assert (event.bid_price, event.ask_price) == (61837.63, 61837.64)


def test_parse_line_when_usdm_depth_keeps_pu_and_zero_levels() -> None:
    event = parse_line(DEPTH, symbol="X")
    assert isinstance(event, DepthDiff)
    assert (event.first_update_id, event.final_update_id) == (5123107832006, 5123107837557)
    assert event.previous_final_update_id == 5123107831937
    assert event.bids == ((61800.20, 2.507), (61739.00, 0.0))
    assert event.asks == ((61800.30, 3.330),)
    assert event.ts_event == 1723161256299_000_000


def test_parse_line_when_spot_depth_has_no_pu() -> None:
    event = parse_line(SPOT_DEPTH, symbol="X")
    assert isinstance(event, DepthDiff)
    assert event.previous_final_update_id is None


def test_parse_line_when_snapshot_takes_the_given_symbol() -> None:
    event = parse_line(SNAPSHOT, symbol="BTCUSDT")
    assert event == DepthSnapshot(
        "BTCUSDT",
        5123107852948,
        ((61800.20, 2.909), (61800.10, 0.696)),
        ((61800.30, 1.5),),
        1723161256493_000_000,
        1723161255319702566,
    )


def test_events_when_created_are_immutable() -> None:
    event = parse_line(TRADE, symbol="X")
    with pytest.raises(AttributeError):
        event.price = 1.0  # type: ignore[misc]


def test_reader_when_file_is_good_yields_events_in_recorded_order_and_counts(
    tmp_path: Path,
) -> None:
    path = write_capture(tmp_path / "btcusdt_20240808.gz", [DEPTH, "", SNAPSHOT, TICKER, TRADE])
    reader = CaptureReader(path)
    events = list(reader)
    assert [type(e) for e in events] == [DepthDiff, DepthSnapshot, BookTicker, Trade]
    assert events[1].symbol == "BTCUSDT"  # the snapshot's symbol comes from the file name
    stats = reader.stats
    assert (stats.lines, stats.trades, stats.book_tickers, stats.depth_diffs, stats.snapshots) == (
        5,
        1,
        1,
        1,
        1,
    )
    assert stats.events == 4
    assert stats.bad_lines == 0


def test_read_capture_when_several_files_reads_them_in_turn_and_adds_stats(
    tmp_path: Path,
) -> None:
    first = write_capture(tmp_path / "ethusdt_20240808.gz", [SNAPSHOT, TRADE])
    second = write_capture(tmp_path / "ethusdt_20240809.gz", [TICKER])
    stats = CaptureStats()
    events = list(read_capture([first, second], stats=stats))
    assert [type(e) for e in events] == [DepthSnapshot, Trade, BookTicker]
    assert events[0].symbol == "ETHUSDT"
    assert (stats.lines, stats.events) == (3, 3)


BAD_LINES = [
    ('1723161255088176367 {"stream":"btcusdt@trade","data":{"p":', "malformed JSON"),
    (TRADE.replace('"p":"61800.30",', ""), "missing field 'p'"),
    (TRADE.replace('"61800.30"', '"abc"'), "price 'p' is not a number: 'abc'"),
    (TRADE.replace('"61800.30"', '"NaN"'), "price 'p' is not finite"),
    (TRADE.replace('"61800.30"', '"0"'), "price 'p' must be > 0"),
    (TRADE.replace('"0.006"', '"-0.006"'), "quantity 'q' must be >= 0"),
    (TRADE.replace('"m":false', '"m":"no"'), "field 'm' must be true or false"),
    (TRADE.replace('"t":5266583935', '"t":"5266583935"'), "field 't' must be an integer"),
    (TRADE.replace("btcusdt@trade", "btcusdt@aggTrade"), "unknown stream 'btcusdt@aggTrade'"),
    (DEPTH.replace('["61739.00","0.000"]', '["61739.00","-1"]'), "b[1] qty must be >= 0"),
    (DEPTH.replace('"b":[[', '"b":[7,['), "b[0] must be [price, qty]"),
    (DEPTH.replace('"U":5123107832006', '"U":9923107832006'), "is after final update id"),
    ("notanumber " + TRADE.split(" ", 1)[1], "local timestamp is not an integer"),
    ("1723161255088176367", "found no space"),
    ("1723161255088176367 [1, 2]", "message must be a JSON object"),
    ('1723161255088176367 {"foo": 1}', "neither a stream envelope nor a depth snapshot"),
    ('1723161255088176367 {"stream": "btcusdt@trade", "data": 3}', "field 'data' must be"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_reader_when_line_is_bad_raises_data_error_naming_file_line_and_reason(
    tmp_path: Path, line: str, reason: str
) -> None:
    path = write_capture(tmp_path / "btcusdt_x.gz", [TICKER, line, TRADE])
    with pytest.raises(DataError) as info:
        list(CaptureReader(path))
    error = info.value
    assert isinstance(error, CaptureFormatError)
    assert (error.path, error.line_number) == (str(path), 2)
    assert reason in error.reason
    assert str(error).startswith(f"{path}:2: ")


def test_reader_when_skip_bad_skips_counts_and_reports_each_bad_line(tmp_path: Path) -> None:
    lines = [TICKER] + [line for line, _ in BAD_LINES] + [TRADE]
    path = write_capture(tmp_path / "btcusdt_x.gz", lines)
    reader = CaptureReader(path, skip_bad=True)
    events = list(reader)
    assert [type(e) for e in events] == [BookTicker, Trade]
    assert reader.stats.bad_lines == len(BAD_LINES)
    assert [p.line_number for p in reader.stats.problems] == list(range(2, 2 + len(BAD_LINES)))
    assert "bad lines skipped" in reader.stats.summary()


def test_reader_when_gzip_is_truncated_raises_data_error(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "btcusdt_x.gz", [TICKER] * 200)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaptureFormatError, match="unreadable compressed data"):
        list(CaptureReader(path))
    skipping = CaptureReader(path, skip_bad=True)
    assert all(isinstance(e, BookTicker) for e in skipping)
    assert skipping.stats.bad_lines == 1


def test_reader_when_file_is_missing_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot open capture"):
        list(CaptureReader(tmp_path / "nope.gz"))


# ------------------------------------------------------------------ properties and fuzzing
prices = st.decimals(min_value="0.01", max_value="1000000", places=2).map(str)
qtys = st.decimals(min_value="0", max_value="100000", places=3).map(str)
ids = st.integers(min_value=0, max_value=2**62)
ms = st.integers(min_value=0, max_value=4_102_444_800_000)


@PROPERTY
@given(
    trade_id=ids,
    price=prices,
    qty=qtys,
    maker=st.booleans(),
    ts=ms,
    recv=ids,
)
def test_parse_line_when_trade_is_well_formed_round_trips(
    trade_id: int, price: str, qty: str, maker: bool, ts: int, recv: int
) -> None:
    data = {"e": "trade", "E": ts, "T": ts, "t": trade_id, "p": price, "q": qty, "m": maker}
    line = f"{recv} " + orjson.dumps({"stream": "ethusdt@trade", "data": data}).decode()
    assert parse_line(line, symbol="X") == Trade(
        "ETHUSDT", trade_id, float(price), float(qty), maker, ts * 1_000_000, recv
    )


@PROPERTY
@given(
    first=ids,
    span=st.integers(min_value=0, max_value=10_000),
    pu=st.none() | ids,
    bids=st.lists(st.tuples(prices, qtys), max_size=20),
    asks=st.lists(st.tuples(prices, qtys), max_size=20),
    ts=ms,
)
def test_parse_line_when_depth_is_well_formed_round_trips(
    first: int,
    span: int,
    pu: int | None,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    ts: int,
) -> None:
    data: dict[str, object] = {"E": ts, "U": first, "u": first + span, "b": bids, "a": asks}
    if pu is not None:
        data["pu"] = pu
    line = "1 " + orjson.dumps({"stream": "btcusdt@depth@0ms", "data": data}).decode()
    event = parse_line(line, symbol="X")
    assert event == DepthDiff(
        "BTCUSDT",
        first,
        first + span,
        pu,
        tuple((float(p), float(q)) for p, q in bids),
        tuple((float(p), float(q)) for p, q in asks),
        ts * 1_000_000,
        1,
    )


def _mutate(line: bytes, rng: random.Random) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, 4)):
        action = rng.randrange(4)
        pos = rng.randrange(len(data)) if data else 0
        if action == 0 and data:
            del data[pos]
        elif action == 1:
            data.insert(pos, rng.choice(b'{}[]",:-.0123456789eEnatrufl '))
        elif action == 2 and data:
            data[pos] = rng.randrange(256)
        else:
            cut = rng.randrange(len(data) + 1)
            data = data[:cut]
    return bytes(data).replace(b"\n", b" ")


def test_parse_line_when_fuzzed_with_mutated_lines_only_returns_events_or_value_errors() -> None:
    rng = random.Random(7)
    outcomes = {"event": 0, "error": 0}
    for _ in range(5000):
        line = _mutate(rng.choice(GOOD_LINES).encode(), rng)
        try:
            event = parse_line(line, symbol="X")
        except ValueError:
            outcomes["error"] += 1
        else:
            assert isinstance(event, EVENT_TYPES)
            outcomes["event"] += 1
    # The mutations are strong enough to break most lines, yet some survive (e.g. digit swaps).
    assert outcomes["error"] > 2500
    assert outcomes["event"] > 100


def test_reader_when_fuzzed_file_with_skip_bad_accounts_for_every_line(tmp_path: Path) -> None:
    rng = random.Random(11)
    lines = [
        _mutate(line.encode(), rng) if rng.random() < 0.5 else line.encode()
        for line in (rng.choice(GOOD_LINES) for _ in range(2000))
    ]
    path = write_capture(tmp_path / "btcusdt_fuzz.gz", lines)
    reader = CaptureReader(path, skip_bad=True)
    events = list(reader)
    blank = sum(1 for line in lines if not line.rstrip(b"\r"))
    assert reader.stats.lines == len(lines)
    assert len(events) + reader.stats.bad_lines + blank == len(lines)
    assert 0 < reader.stats.bad_lines < len(lines)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=300))
def test_parse_line_when_given_arbitrary_bytes_never_raises_anything_but_value_error(
    raw: bytes,
) -> None:
    try:
        event = parse_line(raw, symbol="X")
    except ValueError:
        return
    assert isinstance(event, EVENT_TYPES)


# ------------------------------------------------------------------ exchange-time order
def tick(ts_event: int | None, seq: int) -> BookTicker:
    """A bookTicker at exchange time ``ts_event``; ``seq`` tells equal ones apart."""
    return BookTicker("BTCUSDT", seq, 1.0, 1.0, 2.0, 1.0, ts_event, seq)


def test_exchange_time_order_when_streams_interleave_sorts_within_the_delay() -> None:
    events = [tick(10, 0), tick(5, 1), tick(20, 2), tick(None, 3), tick(15, 4), tick(20, 5)]
    ordered = ExchangeTimeOrder(events, max_delay_ns=10)
    # The spot-style ticker without a time stays right after the event recorded before it.
    assert [e.update_id for e in ordered] == [1, 0, 4, 2, 3, 5]
    assert ordered.late == 0


def test_exchange_time_order_when_event_is_later_than_the_bound_releases_and_counts_it() -> None:
    events = [tick(10, 0), tick(20, 1), tick(30, 2), tick(12, 3), tick(40, 4)]
    ordered = ExchangeTimeOrder(events, max_delay_ns=5)
    assert [e.update_id for e in ordered] == [0, 1, 3, 2, 4]
    assert ordered.late == 1
    with pytest.raises(ValueError, match="max_delay_ns"):
        ExchangeTimeOrder([], max_delay_ns=-1)


@PROPERTY
@given(
    times=st.lists(st.integers(min_value=0, max_value=10_000), max_size=200),
    jitter=st.lists(st.integers(min_value=0, max_value=50), min_size=200, max_size=200),
)
def test_exchange_time_order_when_delays_are_bounded_yields_a_sorted_permutation(
    times: list[int], jitter: list[int]
) -> None:
    # Arrival order: by exchange time plus a delay of at most 50.
    base = sorted(times)
    arrivals = sorted(range(len(base)), key=lambda i: (base[i] + jitter[i], i))
    events = [tick(base[i], i) for i in arrivals]
    ordered = ExchangeTimeOrder(events, max_delay_ns=50)
    out = list(ordered)
    assert ordered.late == 0
    assert sorted(e.update_id for e in out) == list(range(len(times)))
    assert [e.ts_event for e in out] == base
