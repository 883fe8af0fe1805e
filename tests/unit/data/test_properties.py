"""Property tests: malformed files only ever raise DataError naming the file; the validator
finds exactly the defects injected; repairs leave data that validates clean.

Examples are derandomized (the same ones every run) and kept few, so the module stays fast.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trader.data.loaders import load_candles, load_funding
from quantum_trader.data.market import CANDLE_COLUMNS
from quantum_trader.data.repair import repair_candles
from quantum_trader.data.validate import IssueKind, validate_candles
from quantum_trader.domain.errors import DataError

CandleMaker = Callable[..., pd.DataFrame]
BinanceCsv = Callable[..., str]

FAST = settings(
    deadline=None,
    max_examples=int(os.environ.get("QT_FUZZ_EXAMPLES", "60")),
    derandomize=os.environ.get("QT_FUZZ_EXAMPLES") is None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _loads_or_names_file(path: Path, loader: Callable[[Path], pd.DataFrame] = load_candles) -> None:
    try:
        out = loader(path)
    except DataError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert str(path) in message, message
        return
    assert out["date"].dtype == "datetime64[ns, UTC]"
    assert all(out[c].dtype == np.float64 for c in out.columns[1:])
    assert len(out) > 0


# ---------------------------------------------------------------- malformed input


@FAST
@given(
    data=st.binary(max_size=400),
    suffix=st.sampled_from([".csv", ".zip", ".feather", ".parquet", ".txt"]),
    prefix=st.sampled_from(
        [b"", b"PK\x03\x04", b"PAR1", b"ARROW1\x00\x00", b"date,open,high,low,close,volume\n"]
    ),
)
def test_load_candles_when_garbage_bytes_raises_data_error_naming_file(
    folder: Path, data: bytes, suffix: str, prefix: bytes
) -> None:
    path = folder / f"garbage{suffix}"
    path.write_bytes(prefix + data)
    _loads_or_names_file(path)
    _loads_or_names_file(path, load_funding)


_CELL = st.one_of(
    st.text(max_size=8),
    st.sampled_from(
        ["", "nan", "NaN", "inf", "-1", "1e308", "1e400", "0x1F", "true", "2025-13-45", "１２"]
    ),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@st.composite
def _mutated_csv(draw: st.DrawFn, make_candles: CandleMaker, binance_csv: BinanceCsv) -> str:
    df = make_candles(draw(st.integers(min_value=1, max_value=30)))
    if draw(st.booleans()):
        lines = binance_csv(
            df, unit=draw(st.sampled_from(["ms", "us"])), header=draw(st.booleans())
        )
        rows = [line.split(",") for line in lines.strip().split("\n")]
    else:
        frame = df.assign(date=df["date"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        rows = [list(frame.columns)] + [[str(v) for v in r] for r in frame.itertuples(index=False)]
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        mutation = draw(
            st.sampled_from(["cell", "drop_col", "dup", "shuffle", "delete", "extra", "short"])
        )
        i = draw(st.integers(min_value=0, max_value=len(rows) - 1))
        if mutation == "cell":
            j = draw(st.integers(min_value=0, max_value=len(rows[i]) - 1))
            rows[i][j] = draw(_CELL).replace(",", ";").replace("\n", " ")
        elif mutation == "drop_col":
            j = draw(st.integers(min_value=0, max_value=len(rows[0]) - 1))
            rows = [r[:j] + r[j + 1 :] for r in rows]
        elif mutation == "dup":
            rows.insert(i, list(rows[i]))
        elif mutation == "shuffle":
            k = draw(st.integers(min_value=0, max_value=len(rows) - 1))
            rows[i], rows[k] = rows[k], rows[i]
        elif mutation == "delete" and len(rows) > 1:
            del rows[i]
        elif mutation == "extra":
            rows[i].append("9")
        elif mutation == "short" and len(rows[i]) > 1:
            rows[i] = rows[i][:-1]
    text = "\n".join(",".join(r) for r in rows) + "\n"
    if draw(st.booleans()):
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    return text


@FAST
@given(data=st.data(), zipped=st.booleans())
def test_load_candles_when_csv_mutated_loads_or_raises_data_error(
    folder: Path, candles: CandleMaker, binance_csv: BinanceCsv, data: st.DataObject, zipped: bool
) -> None:
    text = data.draw(_mutated_csv(candles, binance_csv))
    if zipped:
        path = folder / "mutated.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("mutated.csv", text)
    else:
        path = folder / "mutated.csv"
        path.write_text(text)
    _loads_or_names_file(path)


@FAST
@given(
    rows=st.integers(min_value=0, max_value=20),
    drop=st.sets(st.sampled_from(list(CANDLE_COLUMNS))),
    text_column=st.sampled_from([None, *CANDLE_COLUMNS]),
    cell=_CELL,
    nan_rows=st.sets(st.integers(min_value=0, max_value=19)),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=2000)),
)
def test_load_candles_when_parquet_mutated_loads_or_raises_data_error(
    folder: Path,
    candles: CandleMaker,
    rows: int,
    drop: set[str],
    text_column: str | None,
    cell: str,
    nan_rows: set[int],
    cut: int | None,
) -> None:
    df = candles(max(rows, 1)).iloc[:rows].copy()
    for r in nan_rows:
        if r < len(df):
            df.loc[r, "close"] = np.nan
    if text_column is not None and rows:
        df[text_column] = df[text_column].astype(str)
        df.loc[0, text_column] = cell
    df = df.drop(columns=sorted(drop))
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    path = folder / "mutated.parquet"
    path.write_bytes(data if cut is None else data[:cut])
    _loads_or_names_file(path)


# ---------------------------------------------------------------- the validator finds every defect


@st.composite
def _defects(draw: st.DrawFn) -> tuple[int, dict[str, set[int]], str]:
    n = draw(st.integers(min_value=12, max_value=150))
    inner = list(range(1, n - 1))
    rows = draw(st.permutations(inner))
    sizes = [draw(st.integers(min_value=0, max_value=min(4, len(inner) // 5))) for _ in range(4)]
    taken: list[int] = []
    picks: dict[str, set[int]] = {}
    pool = iter(rows)
    for name, size in zip(("nan", "crossed", "dup", "gap"), sizes, strict=True):
        chosen: set[int] = set()
        for r in pool:
            if len(chosen) == size:
                break
            # Deleted rows must not touch each other, or two gaps become one.
            if name == "gap" and any(abs(r - g) <= 1 for g in chosen):
                continue
            chosen.add(r)
        picks[name] = chosen
        taken.extend(chosen)
    column = draw(st.sampled_from(["open", "high", "low", "close", "volume"]))
    return n, picks, column


@FAST
@given(case=_defects())
def test_validate_candles_when_defects_injected_reports_exactly_those_rows(
    candles: CandleMaker, case: tuple[int, dict[str, set[int]], str]
) -> None:
    n, picks, column = case
    clean = candles(n)
    parts: list[pd.DataFrame] = []
    where: dict[str, list[int]] = {"nan": [], "crossed": [], "dup": [], "gap": []}
    final = 0
    deleted = picks["gap"]
    first_after_gap = {d + 1 for d in deleted}
    for orig in range(n):
        if orig in deleted:
            continue
        row = clean.iloc[[orig]].copy()
        if orig in picks["nan"]:
            row[column] = np.nan
            where["nan"].append(final)
        if orig in picks["crossed"]:
            row["high"] = row["low"] - 1.0
            where["crossed"].append(final)
        if orig in first_after_gap:
            where["gap"].append(final)
        parts.append(row)
        final += 1
        if orig in picks["dup"]:
            parts.append(clean.iloc[[orig]].copy())
            where["dup"].append(final)
            final += 1
    df = pd.concat(parts, ignore_index=True)
    report = validate_candles(df, source="fuzz", timeframe="1m")
    found: dict[IssueKind, list[int]] = {}
    for issue in report.issues:
        found.setdefault(issue.kind, []).append(issue.row)
    expected = {
        IssueKind.NAN: where["nan"],
        IssueKind.HIGH_BELOW_LOW: where["crossed"],
        IssueKind.DUPLICATE: where["dup"],
        IssueKind.GAP: where["gap"],
    }
    assert found == {k: v for k, v in expected.items() if v}
    assert report.missing_bars == len(deleted)


@FAST
@given(n=st.integers(min_value=4, max_value=80), data=st.data())
def test_validate_candles_when_two_rows_swapped_reports_where_time_goes_back(
    candles: CandleMaker, n: int, data: st.DataObject
) -> None:
    i = data.draw(st.integers(min_value=0, max_value=n - 2))
    j = data.draw(st.integers(min_value=i + 1, max_value=n - 1))
    order = list(range(n))
    order[i], order[j] = order[j], order[i]
    df = candles(n).iloc[order].reset_index(drop=True)
    report = validate_candles(df, source="fuzz", timeframe="1m")
    expected = [j] if j == i + 1 else [i + 1, j]
    assert [issue.row for issue in report.issues] == expected
    assert {issue.kind for issue in report.issues} == {IssueKind.NON_MONOTONIC}


@FAST
@given(
    n=st.integers(min_value=2, max_value=120),
    drop=st.sets(st.integers(min_value=1, max_value=118), max_size=20),
    dups=st.lists(st.integers(min_value=0, max_value=119), max_size=10),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_repair_candles_when_all_repairs_applied_validates_clean(
    candles: CandleMaker, n: int, drop: set[int], dups: list[int], seed: int
) -> None:
    clean = candles(n)
    kept = clean.drop(index=[d for d in drop if d < n - 1])
    messy = pd.concat([kept, clean.iloc[[d for d in dups if d < n and d in kept.index]]])
    messy = messy.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    out, log = repair_candles(
        messy, timeframe="1m", sort=True, drop_duplicates=True, fill_gaps=True
    )
    assert validate_candles(out, source="fuzz", timeframe="1m").clean
    assert set(kept["date"]) <= set(out["date"])
    assert len(out) == len(kept) + log.bars_inserted
    assert len(log.dropped_rows) == len(messy) - len(kept)
