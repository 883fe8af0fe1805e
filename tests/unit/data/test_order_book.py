"""The local order book follows Binance's snapshot-plus-diffs procedure, USDT-M and spot."""

from __future__ import annotations

import bisect
from pathlib import Path

import pytest

from quantum_trader.data.order_book import BookGapError, DiffOutcome, OrderBook
from quantum_trader.data.ws_capture import (
    BookTicker,
    CaptureStats,
    DepthDiff,
    DepthSnapshot,
    ExchangeTimeOrder,
    Level,
    read_capture,
)

A, S, G, B = DiffOutcome.APPLIED, DiffOutcome.STALE, DiffOutcome.GAP, DiffOutcome.BUFFERED


def snapshot(last: int = 100) -> DepthSnapshot:
    """A small snapshot: bids 99, 98, 97; asks 101, 102, 103."""
    return DepthSnapshot(
        "BTCUSDT",
        last,
        ((99.0, 1.0), (98.0, 2.0), (97.0, 3.0)),
        ((101.0, 1.5), (102.0, 2.5), (103.0, 3.5)),
        5_000,
        4_000,
    )


def diff(
    first: int,
    final: int,
    pu: int | None,
    bids: tuple[Level, ...] = (),
    asks: tuple[Level, ...] = (),
) -> DepthDiff:
    """A diff covering update ids first..final; ``pu`` None makes it a spot diff."""
    return DepthDiff("BTCUSDT", first, final, pu, bids, asks, final * 10, final * 10 - 1)


def synced_book() -> OrderBook:
    """A futures book after the snapshot and a first diff 95..105."""
    book = OrderBook("BTCUSDT")
    book.apply_snapshot(snapshot(100))
    assert book.apply_diff(diff(95, 105, 90, bids=((99.5, 0.5),))) is A
    return book


def test_book_when_snapshot_loaded_answers_top_mid_spread_and_depth() -> None:
    book = OrderBook("BTCUSDT")
    assert book.best_bid is None
    assert book.mid is None
    assert book.spread is None
    book.apply_snapshot(snapshot())
    assert book.best_bid == (99.0, 1.0)
    assert book.best_ask == (101.0, 1.5)
    assert book.mid == 100.0
    assert book.spread == 2.0
    assert book.bids(2) == [(99.0, 1.0), (98.0, 2.0)]
    assert book.asks(5) == [(101.0, 1.5), (102.0, 2.5), (103.0, 3.5)]
    assert book.depth(2) == (3.0, 4.0)
    assert book.bids(0) == []
    assert len(book) == 6
    assert not book.is_crossed
    assert book.ts_event == 5_000


def test_book_when_diffs_arrive_before_snapshot_buffers_then_drops_stale_and_applies_rest() -> None:
    book = OrderBook("BTCUSDT")
    early = [
        diff(80, 90, 70, bids=((50.0, 9.0),)),  # u < lastUpdateId: stale
        diff(91, 99, 90, bids=((51.0, 9.0),)),  # stale
        diff(100, 104, 99, asks=((101.0, 0.0),)),  # U <= 100 <= u: the first applied
        diff(105, 110, 104, bids=((99.0, 4.0),)),
    ]
    assert [book.apply_diff(d) for d in early] == [B, B, B, B]
    assert not book.in_sync
    assert book.apply_snapshot(snapshot(100)) == [S, S, A, A]
    assert book.in_sync
    assert (book.stale, book.applied, book.last_update_id) == (2, 2, 110)
    assert book.best_ask == (102.0, 2.5)  # 101 was removed by qty 0
    assert book.best_bid == (99.0, 4.0)
    assert 50.0 not in dict(book.bids(10))


def test_book_when_first_diff_equals_last_update_id_at_u_it_applies() -> None:
    book = OrderBook("BTCUSDT")
    book.apply_snapshot(snapshot(100))
    assert book.apply_diff(diff(90, 100, 85)) is A  # u == lastUpdateId is not stale (u < only)


def test_book_when_first_diff_starts_after_snapshot_flags_gap() -> None:
    book = OrderBook("BTCUSDT")
    book.apply_snapshot(snapshot(100))
    assert book.apply_diff(diff(101, 110, 100)) is G
    assert not book.in_sync
    assert book.gaps == 1
    assert book.best_bid is None  # an out-of-sync book shows nothing rather than stale levels


def test_book_when_pu_breaks_the_chain_flags_gap_and_resyncs_from_a_new_snapshot() -> None:
    book = synced_book()
    assert book.apply_diff(diff(106, 110, 105)) is A
    assert book.apply_diff(diff(115, 120, 112)) is G  # pu 112 != previous u 110
    assert (book.in_sync, book.gaps) == (False, 1)
    assert book.apply_diff(diff(121, 125, 120, asks=((100.5, 1.0),))) is B
    # A new snapshot at 123: the buffered 115..120 is stale, 121..125 covers it.
    assert book.apply_snapshot(snapshot(123)) == [S, A]
    assert book.in_sync
    assert book.best_ask == (100.5, 1.0)
    assert book.apply_diff(diff(126, 130, 125)) is A


def test_book_when_strict_raises_gap_error_with_fields() -> None:
    book = OrderBook("BTCUSDT", strict=True)
    book.apply_snapshot(snapshot(100))
    book.apply_diff(diff(95, 105, 90))
    bad = diff(106, 110, 104)
    with pytest.raises(BookGapError, match="pu=104 does not follow u=105") as info:
        book.apply_diff(bad)
    assert info.value.expected == 105
    assert info.value.diff is bad
    assert not book.in_sync


def test_book_when_qty_zero_removes_level_and_absent_removal_is_harmless() -> None:
    book = synced_book()
    assert book.best_bid == (99.5, 0.5)
    book.apply_diff(diff(106, 107, 105, bids=((99.5, 0.0), (42.0, 0.0)), asks=((103.0, 0.0),)))
    assert book.best_bid == (99.0, 1.0)
    assert book.asks(10) == [(101.0, 1.5), (102.0, 2.5)]
    book.apply_diff(diff(108, 109, 107, bids=((98.0, 7.0),)))
    assert book.bids(2) == [(99.0, 1.0), (98.0, 7.0)]


def test_book_when_bid_reaches_ask_reports_crossed_and_negative_spread() -> None:
    book = synced_book()
    book.apply_diff(diff(106, 107, 105, bids=((101.5, 1.0),)))
    assert book.is_crossed
    assert book.spread == -0.5


def test_book_when_spot_diffs_follow_spot_rules() -> None:
    book = OrderBook("BTCUSDT")
    book.apply_snapshot(snapshot(100))
    assert book.apply_diff(diff(95, 100, None)) is S  # spot drops u <= lastUpdateId
    assert book.apply_diff(diff(99, 104, None, asks=((100.5, 1.0),))) is A  # U <= 101 <= u
    assert book.apply_diff(diff(105, 106, None)) is A  # U == previous u + 1
    assert book.apply_diff(diff(108, 109, None)) is G
    assert book.best_ask is None


def test_book_when_buffer_overflows_keeps_the_newest_diffs_and_detects_the_loss() -> None:
    book = OrderBook("BTCUSDT", max_buffer=2)
    for first in (90, 95, 100):
        book.apply_diff(diff(first, first + 4, first - 1))
    # 90..94 fell out of the buffer; it was the one a snapshot at 92 needed first.
    assert book.apply_snapshot(snapshot(92)) == [G, B]
    assert not book.in_sync
    # A newer snapshot is covered by what is still buffered.
    assert book.apply_snapshot(snapshot(97)) == [A, A]
    assert book.last_update_id == 104


# ------------------------------------------------------------------ the real capture
def _usdm_btc(reference_data: Path) -> Path:
    path = reference_data / "hftbacktest_binance_ws_streams" / "usdm" / "btcusdt_20240808.gz"
    if not path.is_file():
        pytest.skip(f"websocket capture not found at {path}")
    return path


@pytest.mark.reference_data
def test_book_when_rebuilding_usdm_btc_capture_stays_in_sync_and_matches_book_ticker(
    reference_data: Path,
) -> None:
    """The whole USDT-M BTCUSDT session (93,954 lines, about 2 s).

    Depth diffs batch many update ids, so a bookTicker can be compared with the book only when
    its update id is some diff's final id ``u``: there (629 bookTickers in this session) the
    rebuilt top of book must equal the ticker exactly, price and quantity.
    """
    stats = CaptureStats()
    book = OrderBook("BTCUSDT", strict=True)
    tops: dict[int, tuple[Level | None, Level | None]] = {}
    tickers: list[BookTicker] = []
    crossed = 0
    for event in read_capture(_usdm_btc(reference_data), stats=stats):
        if isinstance(event, DepthDiff):
            if book.apply_diff(event) is A:
                tops[event.final_update_id] = (book.best_bid, book.best_ask)
                crossed += book.is_crossed
        elif isinstance(event, DepthSnapshot):
            book.apply_snapshot(event)
        elif isinstance(event, BookTicker):
            tickers.append(event)
    assert (stats.depth_diffs, stats.snapshots, stats.book_tickers) == (6551, 1, 66089)
    assert book.in_sync
    assert book.gaps == 0
    assert book.applied + book.stale == stats.depth_diffs
    assert book.stale == 4
    assert crossed == 0
    matched = [t for t in tickers if t.update_id in tops]
    assert len(matched) == 629
    disagree = [
        t
        for t in matched
        if tops[t.update_id] != ((t.bid_price, t.bid_qty), (t.ask_price, t.ask_qty))
    ]
    assert disagree == []
    # Between diff boundaries the book lags the ticker; the prices still agree most of the time.
    finals = sorted(tops)
    same_prices = 0
    for t in tickers:
        i = bisect.bisect_right(finals, t.update_id) - 1
        if i >= 0:
            bid, ask = tops[finals[i]]
            same_prices += (
                bid is not None
                and ask is not None
                and (bid[0], ask[0])
                == (
                    t.bid_price,
                    t.ask_price,
                )
            )
    assert same_prices / len(tickers) > 0.55


@pytest.mark.reference_data
def test_exchange_time_order_when_replaying_usdm_btc_capture_sorts_every_event(
    reference_data: Path,
) -> None:
    """The worst cross-stream delay in this capture is 110 ms: a 200 ms bound sorts it all."""
    ordered = ExchangeTimeOrder(read_capture(_usdm_btc(reference_data)), max_delay_ns=200_000_000)
    times = [e.ts_event for e in ordered]
    assert len(times) == 93_954
    assert ordered.late == 0
    assert all(t is not None for t in times)
    assert times == sorted(times)  # type: ignore[type-var]
