"""Streaming reader and validator for files in the HIGGS layout (``.csv`` or ``.csv.gz``).

The file is decompressed in a background thread and cut into blocks at line ends; each block is
parsed by pyarrow's multi-threaded CSV parser straight into float32 and validated row by row:
29 numeric columns, finite values, a label of exactly 0 or 1. Because every block knows the
number of its first line, any problem is reported with the file, the line and what was wrong.
The first row is an event (HIGGS has no header), so column names are never taken from it.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from flowsim.data.higgs import COLUMNS, N_COLUMNS

__all__ = ["HiggsFormatError", "HiggsSample", "iter_blocks", "read_higgs"]

log = logging.getLogger(__name__)

_BLOCK_BYTES = 8 << 20


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


def _open_stream(path: Path) -> pa.NativeFile:
    compression = "gzip" if path.suffix == ".gz" else None
    return pa.input_stream(str(path), compression=compression)


def _raw_chunks(path: Path, block_bytes: int) -> Iterator[bytes]:
    """Yield chunks of decompressed text that each end on a line end (the last one may not)."""
    rest = b""
    with _open_stream(path) as stream:
        while True:
            data = stream.read(block_bytes)
            if not data:
                break
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # a single line longer than the block: keep reading
                rest = data
                continue
            rest = data[cut:]
            yield data[:cut]
    if rest:
        yield rest


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
_CONVERT_OPTIONS = pacsv.ConvertOptions(
    column_types={f"f{i}": pa.float32() for i in range(N_COLUMNS)},
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
        if not line:
            return offset, f"empty line (expected {N_COLUMNS} comma-separated numbers)"
        if len(fields) != N_COLUMNS:
            return offset, f"expected {N_COLUMNS} columns, found {len(fields)}"
        for col, field in enumerate(fields):
            try:
                float(field)
            except ValueError:
                text = field.decode(errors="replace")[:40]
                return offset, f"non-numeric value {text!r} in column {col + 1} ({COLUMNS[col]})"
    return None


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
            last = first_line + chunk.count(b"\n")
            raise HiggsFormatError(path, None, f"lines {first_line}-{last}: {exc}") from exc
        offset, problem = located
        raise HiggsFormatError(path, first_line + offset, problem) from None
    if table.num_columns != N_COLUMNS:
        raise HiggsFormatError(
            path, first_line, f"expected {N_COLUMNS} columns, found {table.num_columns}"
        )
    block = np.empty((table.num_rows, N_COLUMNS), dtype=np.float32)
    for j, column in enumerate(table.columns):
        block[:, j] = column.to_numpy()
    return block


def _validate_block(path: Path, block: np.ndarray, first_line: int) -> None:
    """Check finiteness and labels; name the first offending line."""
    finite = np.isfinite(block)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise HiggsFormatError(
            path,
            first_line + int(row),
            f"non-finite value {float(block[row, col])} in column {col + 1} ({COLUMNS[col]})",
        )
    label = block[:, 0]
    bad = (label != 0) & (label != 1)
    if bad.any():
        row = int(np.argmax(bad))
        raise HiggsFormatError(
            path, first_line + row, f"label {float(label[row])} is neither 0 (background) nor 1 (signal)"
        )


def iter_blocks(
    path: str | os.PathLike[str],
    *,
    max_rows: int | None = None,
    block_bytes: int = _BLOCK_BYTES,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_line, block)`` with validated (n, 29) float32 blocks of a HIGGS file.

    ``max_rows`` stops after that many rows (the first rows of the file). Lines count from 1.
    Raises :class:`HiggsFormatError` for a missing or empty file, a truncated or corrupt gzip,
    a wrong column count, a non-numeric or non-finite value, or a label other than 0/1.
    """
    path = Path(path)
    if not path.is_file():
        raise HiggsFormatError(path, None, "no such file")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be a positive number of rows, got {max_rows}")
    line = 1
    rows = 0
    chunks = _prefetch(_raw_chunks(path, block_bytes))
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
    except (OSError, EOFError) as exc:
        text = str(exc)
        if "runcated" in text or isinstance(exc, EOFError):
            problem = f"truncated gzip stream: the file ends after {line - 1} complete lines"
        else:
            problem = f"cannot be decompressed or read ({text})"
        raise HiggsFormatError(path, None, problem) from exc
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
