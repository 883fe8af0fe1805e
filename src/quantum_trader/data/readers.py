"""Read one data file, whatever its format, and turn its columns into canonical ones.

Formats are told apart by their first bytes, not by the file name: ``ARROW1``/``FEA1`` is
feather (Arrow IPC), ``PAR1`` parquet, ``PK`` a zip holding one CSV, anything else CSV text.

CSV files may have a header row or not. Without one, 12 columns are Binance's kline layout
(open_time, open, high, low, close, volume, close_time, quote_volume, count, taker_buy_volume,
taker_buy_quote_volume, ignore) and 6 columns are date, open, high, low, close, volume.
With one, column names are matched case-insensitively.

Times may be datetimes, ISO 8601 strings (naive ones are read as UTC) or epoch numbers. Epoch
units are told apart by size: below 1e11 seconds, below 1e14 milliseconds, below 1e17
microseconds, else nanoseconds (Binance spot files switched from ms to µs in 2025). Every value
in one column must have the same unit.

Nothing is sorted, dropped or filled here: rows come back in file order. Every failure is a
:class:`DataError` whose message starts with the file's path; a pandas or pyarrow error never
escapes.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from quantum_trader.domain.errors import DataError

BINANCE_KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
PLAIN_CANDLE_COLUMNS = ("date", "open", "high", "low", "close", "volume")
TIME_COLUMNS = (
    "date",
    "datetime",
    "timestamp",
    "time",
    "open_time",
    "opentime",
    "open time",
    "ts",
    "calc_time",
    "funding_time",
    "fundingtime",
)

_NAT = np.iinfo(np.int64).min
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_MISSING_TEXT = frozenset({"", "nan", "na", "n/a", "null", "none", "<na>", "nat"})
# Epoch unit by magnitude: seconds below 1e11 (year 5138), ms below 1e14, µs below 1e17, else ns.
_UNIT_BOUNDS = np.array([1e11, 1e14, 1e17])
_UNIT_FACTORS = (1_000_000_000, 1_000_000, 1_000, 1)
_UNIT_NAMES = ("seconds", "milliseconds", "microseconds", "nanoseconds")
_THIRD_PARTY_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    OSError,
    OverflowError,
    KeyError,
    IndexError,
    NotImplementedError,
    EOFError,
    zlib.error,
    zipfile.BadZipFile,
    pa.ArrowException,
    pd.errors.ParserWarning,
    pd.errors.DtypeWarning,
)


@dataclass(frozen=True, slots=True)
class RawTable:
    """A file's rows with its own column names, lower-cased and stripped."""

    path: Path
    frame: pd.DataFrame
    format: str


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 200 else first[:197] + "..."


@contextmanager
def translate_errors(path: Path, doing: str) -> Iterator[None]:
    """Turn any pandas, pyarrow, zip or OS error raised inside into a DataError naming ``path``."""
    try:
        with warnings.catch_warnings():
            # A ragged CSV only warns in pandas; here it is an error like any other.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            warnings.simplefilter("error", pd.errors.DtypeWarning)
            yield
    except DataError:
        raise
    except _THIRD_PARTY_ERRORS as exc:
        raise DataError(f"{path}: cannot {doing}: {_short(exc)}") from exc


def _sniff(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise DataError(f"{path}: cannot open: {_short(exc)}") from exc
    if not head:
        raise DataError(f"{path}: the file is empty")
    if head.startswith((b"ARROW1", b"FEA1")):
        return "feather"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    suffix = path.suffix.lower()
    claimed = {".feather": "feather", ".arrow": "feather", ".parquet": "parquet", ".zip": "zip"}
    if suffix in claimed:
        raise DataError(
            f"{path}: not a {claimed[suffix]} file (its first bytes are not a {claimed[suffix]} "
            "signature); the file is corrupt or misnamed"
        )
    return "csv"


def _zip_member(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [
                info
                for info in archive.infolist()
                if not info.is_dir() and not info.filename.startswith("__MACOSX/")
            ]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members) or "nothing"
                raise DataError(f"{path}: expected one CSV file inside the zip, found {names}")
            return archive.read(members[0])
    except DataError:
        raise
    # zipfile raises a zoo of types for damaged or encrypted archives (BadZipFile, zlib.error,
    # EOFError, RuntimeError for a password, NotImplementedError for a method); all mean the same.
    except Exception as exc:
        raise DataError(f"{path}: cannot unzip: {_short(exc)}") from exc


def _is_data_field(text: str) -> bool:
    """Tell a first data field (a number or an ISO date) from a header name."""
    if _ISO_DATE.match(text):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv_bytes(path: Path, data: bytes) -> pd.DataFrame:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise DataError(f"{path}: the file is empty")
    first_line = data.lstrip(b"\r\n").split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()
    sep = next((s for s in (",", ";", "\t") if s in first_line), ",")
    fields = [f.strip().strip('"') for f in first_line.split(sep)]
    options: dict[str, object] = {
        "sep": sep,
        "index_col": False,
        "skipinitialspace": True,
        "low_memory": False,
        "encoding": "utf-8",
    }
    if _is_data_field(fields[0]):
        if len(fields) == len(BINANCE_KLINE_COLUMNS):
            names: Sequence[str] = BINANCE_KLINE_COLUMNS
        elif len(fields) == len(PLAIN_CANDLE_COLUMNS):
            names = PLAIN_CANDLE_COLUMNS
        else:
            raise DataError(
                f"{path}: no header row and {len(fields)} columns; expected Binance's 12 kline "
                "columns, 6 columns (date, open, high, low, close, volume), or a header row"
            )
        frame = pd.read_csv(io.BytesIO(data), header=None, names=list(names), **options)  # type: ignore[call-overload]
    else:
        frame = pd.read_csv(io.BytesIO(data), header=0, **options)  # type: ignore[call-overload]
    assert isinstance(frame, pd.DataFrame)
    return frame


def read_raw(path: Path | str) -> RawTable:
    """Read ``path`` (feather, parquet, CSV, or a zip holding one CSV) with its own columns.

    Raises:
        DataError: The file is missing, empty, corrupt, or not a table.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    fmt = _sniff(path)
    with translate_errors(path, f"read it as {fmt}"):
        if fmt == "feather":
            frame = pd.read_feather(path)
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        elif fmt == "zip":
            frame = _read_csv_bytes(path, _zip_member(path))
        else:
            frame = _read_csv_bytes(path, path.read_bytes())
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()
        frame.columns = pd.Index([str(c).strip().lower() for c in frame.columns])
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise DataError(f"{path}: column name(s) {dupes} appear more than once (names ignore case)")
    if frame.empty:
        raise DataError(f"{path}: no data rows")
    return RawTable(path, frame, fmt)


# ---------------------------------------------------------------- columns


def find_column(table: RawTable, candidates: Sequence[str], what: str) -> str:
    """Return the first of ``candidates`` that the table has, or raise a DataError naming them."""
    for name in candidates:
        if name in table.frame.columns:
            return name
    raise DataError(
        f"{table.path}: no {what} column: expected one of {', '.join(candidates)}; "
        f"found {', '.join(map(str, table.frame.columns))}"
    )


def _first_bad(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


def _blank(text: pd.Series) -> npt.NDArray[np.bool_]:
    return (text.isna() | text.str.lower().isin(_MISSING_TEXT)).to_numpy(dtype=bool)


def _text_to_float(table: RawTable, name: str, series: pd.Series) -> npt.NDArray[np.float64]:
    text = series.astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    missing = numbers.isna().to_numpy(dtype=bool)
    if missing.any():
        bad = missing & ~_blank(text)
        if bad.any():
            row = _first_bad(bad)
            raise DataError(
                f"{table.path}: row {row} (0-based data row), column {name!r}: "
                f"{series.iloc[row]!r} is not a number"
            )
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def column_floats(table: RawTable, name: str) -> npt.NDArray[np.float64]:
    """Return column ``name`` as float64; DataError naming the first row that is not a number."""
    series = table.frame[name]
    kind = series.dtype.kind
    with translate_errors(table.path, f"read column {name!r} as numbers"):
        if kind in "iuf":
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        if kind == "b":
            raise DataError(f"{table.path}: column {name!r} holds true/false values, not numbers")
        if kind in "mM":
            raise DataError(f"{table.path}: column {name!r} holds times, not numbers")
        return _text_to_float(table, name, series)


def _epoch_to_ns(
    table: RawTable, name: str, values: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    finite = np.isfinite(values)
    if np.isinf(values).any():
        row = _first_bad(np.isinf(values))
        raise DataError(f"{table.path}: row {row}, column {name!r}: time {values[row]} is infinite")
    out = np.full(values.size, _NAT, dtype=np.int64)
    if not finite.any():
        return out
    magnitude = np.abs(values[finite])
    units = np.searchsorted(_UNIT_BOUNDS, magnitude, side="right")
    rows = np.flatnonzero(finite)
    if units.min() != units.max():
        row = int(rows[int(np.flatnonzero(units != units[0])[0])])
        raise DataError(
            f"{table.path}: row {row}, column {name!r}: time {values[row]:.0f} is in a different "
            f"unit than row {int(rows[0])} ({_UNIT_NAMES[int(units[0])]}); mixed epoch units"
        )
    factor = _UNIT_FACTORS[int(units[0])]
    scaled = values[finite] * factor
    too_big = np.abs(scaled) >= 9.2e18
    if too_big.any():
        row = int(rows[_first_bad(too_big)])
        raise DataError(
            f"{table.path}: row {row}, column {name!r}: time {values[row]:.0f} is out of range"
        )
    out[finite] = np.round(scaled).astype(np.int64)
    return out


def _int_epoch_to_ns(
    table: RawTable, name: str, values: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    magnitude = np.abs(values.astype(np.float64))
    units = np.searchsorted(_UNIT_BOUNDS, magnitude, side="right")
    if units.min() != units.max():
        return _epoch_to_ns(table, name, values.astype(np.float64))
    factor = _UNIT_FACTORS[int(units[0])]
    limit = np.iinfo(np.int64).max // factor
    if np.abs(values).max() > limit:
        row = _first_bad(np.abs(values) > limit)
        raise DataError(
            f"{table.path}: row {row}, column {name!r}: time {values[row]} is out of range"
        )
    return values * factor


def _text_times_to_ns(table: RawTable, name: str, series: pd.Series) -> npt.NDArray[np.int64]:
    text = series.astype(str).str.strip()
    blank = _blank(text)
    numbers = pd.to_numeric(text, errors="coerce")
    if not (numbers.isna().to_numpy() & ~blank).any():
        return _epoch_to_ns(table, name, numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    parsed = pd.to_datetime(text.where(~blank), utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy() & ~blank
    if bad.any():
        row = _first_bad(bad)
        raise DataError(
            f"{table.path}: row {row} (0-based data row), column {name!r}: {series.iloc[row]!r} "
            "is not a time (expected ISO 8601 text or epoch seconds/ms/µs/ns)"
        )
    return _datetimes_to_ns(pd.Series(parsed))


def _datetimes_to_ns(series: pd.Series) -> npt.NDArray[np.int64]:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    values: npt.NDArray[np.datetime64] = series.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]")
    return values.view(np.int64)


def column_times(table: RawTable, name: str) -> npt.NDArray[np.int64]:
    """Return column ``name`` as UTC epoch nanoseconds (NaT as int64 min), in file order."""
    series = table.frame[name]
    kind = series.dtype.kind
    with translate_errors(table.path, f"read column {name!r} as times"):
        if kind == "M":
            return _datetimes_to_ns(series)
        if kind in "iu" and not series.hasnans:
            if kind == "u" and series.max() > np.iinfo(np.int64).max:
                raise DataError(f"{table.path}: column {name!r}: times are out of range")
            return _int_epoch_to_ns(table, name, series.to_numpy(dtype=np.int64))
        if kind in "iuf":
            return _epoch_to_ns(table, name, series.to_numpy(dtype=np.float64, na_value=np.nan))
        if kind in "bm":
            raise DataError(f"{table.path}: column {name!r} does not hold times ({series.dtype})")
        return _text_times_to_ns(table, name, series)


def utc_dates(ts_ns: npt.NDArray[np.int64]) -> pd.DatetimeIndex:
    """Return epoch nanoseconds (int64 min = NaT) as a ``datetime64[ns, UTC]`` index."""
    return pd.DatetimeIndex(ts_ns.view("datetime64[ns]")).tz_localize("UTC")
