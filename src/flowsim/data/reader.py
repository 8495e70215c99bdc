"""Streaming reader and validator for files in the HIGGS layout (``.csv`` or ``.csv.gz``).

The file is decompressed in a background thread (zlib, every gzip member of the file) and cut
into blocks at line ends; each block is parsed by pyarrow's multi-threaded CSV parser straight
into float32 and validated row by row: 29 numeric columns, finite values, a label whose text is
exactly 0 or 1. Because every block knows the number of its first line, any problem is reported
with the file, the line and what was wrong. The first row is an event (HIGGS has no header), so
column names are never taken from it.

What real files have and is accepted: a last line without a line end, blank lines (LF or CRLF)
after the last row, CRLF line ends, several gzip members back to back (pigz, bgzip). What is
refused with the file named: a blank line between rows (with its line), a gzip file named
``.csv`` or a plain or otherwise compressed file named ``.gz`` (saying what the file is), a
truncated gzip stream (with the number of complete lines it holds).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from flowsim.data.higgs import COLUMNS, N_COLUMNS

__all__ = ["HiggsFormatError", "HiggsSample", "file_format", "iter_blocks", "read_higgs"]

log = logging.getLogger(__name__)

_BLOCK_BYTES = 8 << 20
_RAW_BYTES = 1 << 20  # compressed bytes handed to zlib at a time
_BLANK = b" \t\r\n"

#: A number as pyarrow's float parser takes it (checked in tests/data/test_reader.py): spaces
#: or tabs around, no underscores (Python's ``float`` takes ``1_5``), ASCII digits only.
_NUMBER = re.compile(
    rb"[ \t]*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)[ \t]*",
    re.IGNORECASE,
)
#: Label texts that are exactly 0 or exactly 1 however written; any other text is judged by
#: its exact decimal value (``0.1e1`` is 1, ``0.99999999`` and ``1e-46`` are neither).
_EXACT_LABEL = (
    r"^[ \t]*(?:[+-]?(?:0+\.?0*|\.0+)(?:[eE][+-]?[0-9]+)?"
    r"|\+?0*1(?:\.0*)?(?:[eE][+-]?0+)?)[ \t]*$"
)

#: Spellings of exactly 0 and 1 common enough to be looked up before any regex (UCI's first).
_COMMON_LABELS = pa.array(
    ["1.000000000000000000e+00", "0.000000000000000000e+00", "1", "0", "1.0", "0.0", "1.", "0."]
)

#: Leading bytes of compressed formats a HIGGS file could be mistaken for.
_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip",
}


class HiggsFormatError(ValueError):
    """A HIGGS-layout file that cannot be used: names the file, the line and the problem."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class HiggsSample:
    """Events of one file split by class; arrays are (n, 28) float32 in ``FEATURE_COLUMNS`` order."""

    background: np.ndarray
    signal: np.ndarray
    n_rows: int


def _head(path: str | os.PathLike[str], size: int = 8) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def file_format(path: str | os.PathLike[str]) -> str:
    """What a file is by its first bytes: ``"gzip"``, another compression's name, ``"empty"``,
    ``"text"`` (no control bytes but tabs and line ends) or ``"binary"``."""
    head = _head(path, 4096)
    if not head:
        return "empty"
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    if not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", head):
        return "text"  # a stray non-ASCII character is the parser's to name, with its line
    return "binary"


def _check_format(path: Path) -> bool:
    """Whether ``path`` is to be gunzipped; refuses a file whose name says otherwise."""
    kind = file_format(path)
    named_gz = path.suffix == ".gz"
    if kind == "empty":
        raise HiggsFormatError(path, None, "empty file: no events")
    if kind == "gzip" and not named_gz:
        raise HiggsFormatError(
            path, None, f"is gzip-compressed but named {path.suffix or 'without .gz'}: "
            f"rename it to {path.name}.gz"
        )  # fmt: skip
    if kind == "text" and named_gz:
        raise HiggsFormatError(
            path, None, f"is plain text, not gzip, although named .gz: rename it to {path.stem}"
        )
    if kind == "binary":
        raise HiggsFormatError(
            path, None, "is neither text nor gzip (it starts with "
            f"{_head(path)!r}): expected plain .csv or gzip .csv.gz"
        )  # fmt: skip
    if kind != "gzip" and kind != "text":
        raise HiggsFormatError(
            path, None, f"is {kind}-compressed: expected plain .csv or gzip .csv.gz; "
            "recompress it with gzip"
        )  # fmt: skip
    return kind == "gzip"


class _Truncated(Exception):
    """The compressed stream ended before its end-of-member marker; ``blank_lines`` complete
    blank lines at the point where it ended were not handed on."""

    def __init__(self, blank_lines: int = 0) -> None:
        super().__init__(blank_lines)
        self.blank_lines = blank_lines


def _gunzip(path: Path, piece_bytes: int) -> Iterator[bytes]:
    """Decompressed pieces (at most ``piece_bytes`` each) of every gzip member of ``path``.

    zlib hands out everything it can decompress, so a truncated file yields all its complete
    data before :class:`_Truncated` is raised.
    """
    with open(path, "rb") as f:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        pending = b""
        while True:
            if not pending:
                pending = f.read(_RAW_BYTES)
                if not pending:
                    break
            out = inflater.decompress(pending, piece_bytes)
            pending = inflater.unconsumed_tail
            if out:
                yield out
            if inflater.eof:  # a member ends; another may follow (pigz, bgzip)
                pending = inflater.unused_data or f.read(_RAW_BYTES)
                if not pending:
                    return
                inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
            elif not pending:
                while out := inflater.decompress(b"", piece_bytes):  # output zlib still holds
                    yield out
        rest = inflater.flush()
        if rest:
            yield rest
        if not inflater.eof:
            raise _Truncated


def _plain(path: Path, piece_bytes: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while piece := f.read(piece_bytes):
            yield piece


def _trailing_blank_start(data: bytes, end: int | None = None) -> int:
    """Offset where the run of blank lines at the end of ``data[:end]`` (which ends on a line
    end) starts; ``end`` if its last line is not blank."""
    end = len(data) if end is None else end
    if end == 0:
        return 0
    last_line = data.rfind(b"\n", 0, end - 1) + 1
    if data[last_line:end].strip(_BLANK):  # the usual case, without copying the block
        return end
    core = len(data[:end].rstrip(_BLANK))
    return data.index(b"\n", core) + 1 if core else 0


def _line_blocks(path: Path, gz: bool, block_bytes: int) -> Iterator[bytes]:
    """Blocks of whole lines, each ending on a line end, in file order.

    Blank lines at the end of the file are dropped (with a log line); a blank line followed by
    an event stays, for the parser to name. A last line without a line end gets one. A
    truncated gzip stream hands on its complete lines, then raises :class:`_Truncated`.
    """
    pieces = _gunzip(path, block_bytes) if gz else _plain(path, block_bytes)
    rest = b""
    try:
        for piece in pieces:
            data = rest + piece
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # a single line longer than the block: keep reading
                rest = data
                continue
            # blank lines are held back until an event follows them (then they are errors)
            keep = _trailing_blank_start(data, cut)
            rest = data[keep:]
            if keep:
                yield data[:keep]
    except _Truncated:
        complete = rest.rfind(b"\n") + 1
        cut = _trailing_blank_start(rest, complete)
        if cut:
            yield rest[:cut]
        raise _Truncated(rest.count(b"\n", cut, complete)) from None
    if rest.strip(_BLANK):
        yield rest if rest.endswith(b"\n") else rest + b"\n"
    elif rest:
        log.info("%s: ignored %d blank line(s) after the last event", path, rest.count(b"\n") or 1)


def _prefetch(chunks: Iterator[bytes], depth: int = 2) -> Iterator[bytes]:
    """Run ``chunks`` in a background thread so decompression overlaps parsing."""
    q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                q.put(("chunk", chunk))
            q.put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(("error", exc))

    thread = threading.Thread(target=produce, name="higgs-decompress", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item  # type: ignore[misc]
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


_READ_OPTIONS = dict(autogenerate_column_names=True, use_threads=True)
_PARSE_OPTIONS = pacsv.ParseOptions(ignore_empty_lines=False)
# the label is read as text so that it is judged on its exact value, not after rounding
_CONVERT_OPTIONS = pacsv.ConvertOptions(
    column_types={"f0": pa.string(), **{f"f{i}": pa.float32() for i in range(1, N_COLUMNS)}},
    null_values=[],
    strings_can_be_null=False,
    quoted_strings_can_be_null=False,
)


def _locate_problem(chunk: bytes) -> tuple[int, str] | None:
    """Find the first bad line of a chunk pyarrow refused: (offset within chunk, problem)."""
    for offset, raw in enumerate(chunk.split(b"\n")):
        line = raw.rstrip(b"\r")
        if not line and offset == chunk.count(b"\n"):
            break  # the empty string after the final line end
        fields = line.split(b",")
        if not line.strip(_BLANK):
            return offset, f"empty line (expected {N_COLUMNS} comma-separated numbers)"
        if len(fields) != N_COLUMNS:
            return offset, f"expected {N_COLUMNS} columns, found {len(fields)}"
        label = _exact_label(fields[0].decode(errors="replace"))
        if isinstance(label, str):
            return offset, label
        for col, field in enumerate(fields[1:], start=1):
            if not _NUMBER.fullmatch(field):
                text = field.decode(errors="replace")[:40]
                return offset, f"non-numeric value {text!r} in column {col + 1} ({COLUMNS[col]})"
    return None


def _exact_label(text: str) -> float | str:
    """0.0 or 1.0 for a label text whose exact value is 0 or 1, else the problem."""
    if not _NUMBER.fullmatch(text.encode()):
        return f"non-numeric value {text[:40]!r} in column 1 ({COLUMNS[0]})"
    value = Decimal(text.strip(" \t"))
    if not value.is_finite():
        return f"non-finite value {text.strip()} in column 1 ({COLUMNS[0]})"
    if value in (0, 1):
        return float(value)
    return f"label {text.strip()!r} is neither 0 (background) nor 1 (signal)"


def _labels(path: Path, text: pa.ChunkedArray, first_line: int) -> np.ndarray:
    """The label column as float32 0/1, judged on the exact value of its text."""
    if pc.all(pc.is_in(text, value_set=_COMMON_LABELS)).as_py():
        exact = np.ones(len(text), dtype=bool)  # 4x faster than the regex, HIGGS's case
    else:
        exact = pc.match_substring_regex(text, _EXACT_LABEL).to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(~exact):  # unusual spellings: exact decimal arithmetic
        value = _exact_label(text[int(row)].as_py())
        if isinstance(value, str):
            raise HiggsFormatError(path, first_line + int(row), value)
    # every text is now a number whose exact value is 0 or 1, which float64 represents exactly
    try:
        values = pc.cast(text, pa.float64())
    except pa.ArrowInvalid:  # the CSV parser takes spaces around a number, the cast does not
        values = pc.cast(pc.utf8_trim(text, " \t"), pa.float64())
    return values.to_numpy(zero_copy_only=False).astype(np.float32)


def _parse_chunk(path: Path, chunk: bytes, first_line: int) -> np.ndarray:
    """Parse one chunk into an (n, 29) float32 array, or raise a located HiggsFormatError."""
    block_size = max(1 << 20, math.ceil(len(chunk) / (os.cpu_count() or 1)))
    try:
        table = pacsv.read_csv(
            pa.py_buffer(chunk),
            read_options=pacsv.ReadOptions(block_size=block_size, **_READ_OPTIONS),
            parse_options=_PARSE_OPTIONS,
            convert_options=_CONVERT_OPTIONS,
        )
    except pa.ArrowInvalid as exc:
        located = _locate_problem(chunk)
        if located is None:
            last = first_line + chunk.count(b"\n") - 1
            raise HiggsFormatError(path, None, f"lines {first_line}-{last}: {exc}") from exc
        offset, problem = located
        raise HiggsFormatError(path, first_line + offset, problem) from None
    if table.num_columns != N_COLUMNS:
        raise HiggsFormatError(
            path, first_line, f"expected {N_COLUMNS} columns, found {table.num_columns}"
        )
    block = np.empty((table.num_rows, N_COLUMNS), dtype=np.float32)
    block[:, 0] = _labels(path, table.column(0), first_line)
    for j in range(1, N_COLUMNS):
        block[:, j] = table.column(j).to_numpy()
    return block


def _validate_block(path: Path, block: np.ndarray, first_line: int) -> None:
    """Check that every feature is finite; name the first offending line."""
    finite = np.isfinite(block)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise HiggsFormatError(
            path,
            first_line + int(row),
            f"non-finite value {float(block[row, col])} in column {col + 1} ({COLUMNS[col]})",
        )


def iter_blocks(
    path: str | os.PathLike[str],
    *,
    max_rows: int | None = None,
    block_bytes: int = _BLOCK_BYTES,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_line, block)`` with validated (n, 29) float32 blocks of a HIGGS file.

    ``max_rows`` stops after that many rows (the first rows of the file). Lines count from 1.
    Raises :class:`HiggsFormatError` for a missing or empty file, a file whose name does not
    say its compression, a truncated or corrupt gzip, a blank line between events, a wrong
    column count, a non-numeric or non-finite value, or a label other than exactly 0 or 1.
    """
    path = Path(path)
    if not path.is_file():
        raise HiggsFormatError(path, None, "no such file")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be a positive number of rows, got {max_rows}")
    gz = _check_format(path)
    line = 1
    rows = 0
    chunks = _prefetch(_line_blocks(path, gz, block_bytes))
    try:
        for chunk in chunks:
            block = _parse_chunk(path, chunk, line)
            _validate_block(path, block, line)
            if max_rows is not None and rows + len(block) >= max_rows:
                yield line, block[: max_rows - rows]
                return
            yield line, block
            rows += len(block)
            line += len(block)
    except _Truncated as exc:  # every line handed on before it has been parsed: line - 1 of them
        complete = line - 1 + exc.blank_lines
        raise HiggsFormatError(
            path, None, f"truncated gzip stream: the file ends after {complete} complete lines"
        ) from None
    except (OSError, zlib.error) as exc:
        raise HiggsFormatError(path, None, f"cannot be decompressed or read ({exc})") from exc
    finally:
        chunks.close()
    if line == 1:
        raise HiggsFormatError(path, None, "empty file: no events")


def read_higgs(path: str | os.PathLike[str], *, max_rows: int | None = None) -> HiggsSample:
    """Read and validate a whole HIGGS-layout file into background and signal arrays.

    Raises :class:`HiggsFormatError` as :func:`iter_blocks` does, and when one class has no events.
    """
    parts: dict[int, list[np.ndarray]] = {0: [], 1: []}
    n_rows = 0
    for _, block in iter_blocks(path, max_rows=max_rows):
        is_signal = block[:, 0] == 1
        parts[0].append(block[~is_signal, 1:])
        parts[1].append(block[is_signal, 1:])
        n_rows += len(block)
        del block
    arrays = {}
    for label, name in ((0, "background"), (1, "signal")):
        arrays[name] = (
            np.concatenate(parts[label]) if parts[label] else np.empty((0, N_COLUMNS - 1), np.float32)
        )
        parts[label].clear()
        if len(arrays[name]) == 0:
            raise HiggsFormatError(
                path, None, f"no {name} events (label {label}) among its {n_rows} rows"
            )
    log.info(
        "read %d rows from %s: %d background, %d signal",
        n_rows, path, len(arrays["background"]), len(arrays["signal"]),
    )  # fmt: skip
    return HiggsSample(background=arrays["background"], signal=arrays["signal"], n_rows=n_rows)
