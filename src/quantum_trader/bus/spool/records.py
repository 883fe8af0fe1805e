"""The spool's record format, and a scanner that skips corrupt bytes and resyncs.

A segment file is a plain run of records, no file header::

    offset  size  field
    0       4     marker   b"\\xffQE\\x01" (0xFF never occurs in UTF-8, so never in a payload)
    4       4     length   payload length in bytes, unsigned little-endian
    8       4     crc32    zlib.crc32 of the 4 length bytes then the payload, little-endian
    12      n     payload  the encoded event (UTF-8 JSON)

A record is valid when its marker matches, its length is at most the maximum record size and
fits in the file, and the checksum matches. At the first invalid byte the scanner reports a
corrupt region and resyncs: it searches forward for the next marker and accepts it only if a
whole valid record starts there (marker, plausible length, checksum). Because the marker's
0xFF cannot occur inside a payload, every record whose own bytes are intact is found again;
a false match inside damaged bytes needs both the marker and a 32-bit checksum to agree by
chance. A region that runs to the end of the file after a record that claims more bytes than
are left is a torn write (``truncated``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

MARKER = b"\xffQE\x01"
"""Starts every record: 0xFF, ``QE`` and the format version 1."""

HEADER = struct.Struct("<4sII")
"""Marker, payload length, CRC32."""

HEADER_SIZE = HEADER.size
_LENGTH = struct.Struct("<I")


class CorruptionReason(StrEnum):
    """Why bytes of a segment were skipped."""

    BAD_MARKER = "bad_marker"
    BAD_LENGTH = "bad_length"
    BAD_CHECKSUM = "bad_checksum"
    TRUNCATED = "truncated"
    UNDECODABLE = "undecodable"


@dataclass(frozen=True, slots=True)
class Corruption:
    """A run of bytes that holds no valid record: where it starts, how long, and why."""

    offset: int
    length: int
    reason: CorruptionReason


def frame(payload: bytes) -> bytes:
    """Return ``payload`` as one record: header (marker, length, CRC32) then payload."""
    length = len(payload)
    crc = zlib.crc32(payload, zlib.crc32(_LENGTH.pack(length)))
    return HEADER.pack(MARKER, length, crc) + payload


def _check(data: bytes, offset: int, max_payload: int) -> CorruptionReason | None:
    if len(data) - offset < HEADER_SIZE:
        return CorruptionReason.TRUNCATED
    marker, length, crc = HEADER.unpack_from(data, offset)
    if marker != MARKER:
        return CorruptionReason.BAD_MARKER
    if length > max_payload:
        return CorruptionReason.BAD_LENGTH
    start = offset + HEADER_SIZE
    if start + length > len(data):
        return CorruptionReason.TRUNCATED
    if zlib.crc32(data[start : start + length], zlib.crc32(data[offset + 4 : offset + 8])) != crc:
        return CorruptionReason.BAD_CHECKSUM
    return None


def _resync(data: bytes, offset: int, max_payload: int) -> int:
    candidate = data.find(MARKER, offset + 1)
    while candidate != -1:
        if _check(data, candidate, max_payload) is None:
            return candidate
        candidate = data.find(MARKER, candidate + 1)
    return len(data)


def scan(
    data: bytes, start: int = 0, *, max_payload: int = 1 << 30
) -> Iterator[tuple[int, int, bytes] | Corruption]:
    """Yield the records of ``data`` from ``start``, in order, and the corrupt runs between.

    Args:
        data: A whole segment file.
        start: Offset of the first record to read.
        max_payload: Larger lengths are implausible and count as corrupt.

    Yields:
        ``(offset, end, payload)`` for each valid record, where ``end`` is the offset just past
        it, and a ``Corruption`` for each run of bytes skipped to reach the next valid record.
    """
    offset = start
    size = len(data)
    header = HEADER.unpack_from
    crc32 = zlib.crc32
    while offset < size:
        if size - offset >= HEADER_SIZE:
            marker, length, crc = header(data, offset)
            begin = offset + HEADER_SIZE
            end = begin + length
            if (
                marker == MARKER
                and length <= max_payload
                and end <= size
                and crc32(data[begin:end], crc32(data[offset + 4 : begin - 4])) == crc
            ):
                yield offset, end, data[begin:end]
                offset = end
                continue
        reason = _check(data, offset, max_payload)
        assert reason is not None
        following = _resync(data, offset, max_payload)
        if reason is CorruptionReason.TRUNCATED and following < size:
            reason = CorruptionReason.BAD_LENGTH  # a record follows: the length lied, no tear
        yield Corruption(offset, following - offset, reason)
        offset = following
