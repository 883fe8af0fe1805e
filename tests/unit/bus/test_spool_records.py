"""The spool record format: framing, scanning, and resync after corrupt bytes."""

from __future__ import annotations

import zlib

from quantum_trader.bus.spool.records import (
    HEADER,
    HEADER_SIZE,
    MARKER,
    Corruption,
    CorruptionReason,
    frame,
    scan,
)


def _payloads(data: bytes, start: int = 0) -> list[bytes | CorruptionReason]:
    return [item.reason if isinstance(item, Corruption) else item[2] for item in scan(data, start)]


def test_frame_when_made_has_marker_length_and_crc_of_length_and_payload() -> None:
    record = frame(b"hello")

    marker, length, crc = HEADER.unpack_from(record)

    assert (marker, length) == (MARKER, 5)
    assert crc == zlib.crc32(b"hello", zlib.crc32((5).to_bytes(4, "little")))
    assert record[HEADER_SIZE:] == b"hello"


def test_scan_when_records_are_intact_yields_them_with_offsets() -> None:
    data = frame(b"a") + frame(b"") + frame(b"ccc")

    items = list(scan(data))

    assert items == [(0, 13, b"a"), (13, 25, b""), (25, 40, b"ccc")]
    assert _payloads(data, start=13) == [b"", b"ccc"]


def test_scan_when_a_payload_byte_flips_skips_that_record_and_resyncs() -> None:
    data = bytearray(frame(b"first") + frame(b"second") + frame(b"third"))
    data[len(frame(b"first")) + HEADER_SIZE] ^= 0x01

    items = list(scan(bytes(data)))

    assert _payloads(bytes(data)) == [b"first", CorruptionReason.BAD_CHECKSUM, b"third"]
    assert items[1] == Corruption(17, 18, CorruptionReason.BAD_CHECKSUM)


def test_scan_when_a_marker_is_damaged_reports_bad_marker() -> None:
    data = bytearray(frame(b"first") + frame(b"second"))
    data[0] = 0x00

    assert _payloads(bytes(data)) == [CorruptionReason.BAD_MARKER, b"second"]


def test_scan_when_a_length_is_implausible_reports_bad_length() -> None:
    data = bytearray(frame(b"first") + frame(b"second"))
    data[4:8] = (2**31).to_bytes(4, "little")

    assert _payloads(bytes(data)) == [CorruptionReason.BAD_LENGTH, b"second"]


def test_scan_when_the_last_record_is_torn_reports_truncated() -> None:
    data = frame(b"first") + frame(b"second")[:-3]

    assert _payloads(data) == [b"first", CorruptionReason.TRUNCATED]
    assert _payloads(frame(b"first") + MARKER[:2]) == [b"first", CorruptionReason.TRUNCATED]


def test_scan_when_garbage_sits_between_records_skips_it_as_one_run() -> None:
    garbage = b"\x00" * 7 + MARKER + b"\x01\x00\x00\x00zzzzx"
    data = frame(b"first") + garbage + frame(b"second")

    items = list(scan(data))

    assert _payloads(data) == [b"first", CorruptionReason.BAD_MARKER, b"second"]
    assert items[1] == Corruption(17, len(garbage), CorruptionReason.BAD_MARKER)
