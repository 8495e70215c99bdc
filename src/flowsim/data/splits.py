"""Seeded per-class splits of HIGGS events (the paper's Appendix A).

Each class (background, signal) is shuffled on its own with a generator seeded by
``(seed, label)`` and, after an optional cap of ``max_events``, cut into

* the ML set, ``floor(ml_fraction * n)`` events: ``train`` = ``floor(train_fraction * n_ml)``,
  ``val`` = the rest of the ML set;
* the hold-out, the remaining events: ``test_a`` = ``floor(test_a_fraction * n_hold)``,
  ``test_b`` = the rest.

The four parts are disjoint and together hold every (capped) event of the class.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from flowsim import io
from flowsim.data.fetch import ChecksumError, sha256_file
from flowsim.data.higgs import FEATURE_COLUMNS, LABEL
from flowsim.data.reader import HiggsFormatError, read_higgs

__all__ = [
    "CLASSES",
    "SPLITS",
    "SplitFractions",
    "count_duplicate_rows",
    "nested_subset",
    "split_indices",
    "split_sizes",
    "write_class_splits",
    "write_splits",
]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test_a", "test_b")
#: File prefix of each class and its label in the HIGGS file.
CLASSES: dict[str, int] = {"bkg": 0, "sig": 1}


@dataclass(frozen=True)
class SplitFractions:
    """Fractions of the paper's split; each must lie strictly between 0 and 1."""

    ml: float = 0.5
    train: float = 0.8
    test_a: float = 0.5

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 < value < 1.0:
                raise ValueError(f"splits.{name}_fraction must lie in (0, 1), got {value}")


def split_sizes(n: int, fractions: SplitFractions) -> dict[str, int]:
    """Number of events in each split for a class of ``n`` events (floors, rest to the last)."""
    n_ml = int(np.floor(fractions.ml * n))
    n_train = int(np.floor(fractions.train * n_ml))
    n_hold = n - n_ml
    n_test_a = int(np.floor(fractions.test_a * n_hold))
    return {
        "train": n_train,
        "val": n_ml - n_train,
        "test_a": n_test_a,
        "test_b": n_hold - n_test_a,
    }


def split_indices(
    n: int,
    *,
    seed: int,
    label: int,
    fractions: SplitFractions,
    max_events: int | None = None,
) -> dict[str, np.ndarray]:
    """Disjoint sorted row indices of each split for one class of ``n`` events.

    The permutation comes from ``numpy.random.default_rng([seed, label])``, so the classes get
    independent streams and the same seed always gives the same split. ``max_events`` keeps
    only the first ``max_events`` events of that permutation (a uniform random subset).
    """
    order = np.random.default_rng([seed, label]).permutation(n)
    if max_events is not None:
        if max_events < 1:
            raise ValueError(f"data.max_events must be positive or null, got {max_events}")
        order = order[:max_events]
    sizes = split_sizes(len(order), fractions)
    bounds = np.cumsum([0] + [sizes[s] for s in SPLITS])
    # sorted indices keep file order inside a split: faster gathers, reproducible files
    return {s: np.sort(order[bounds[i] : bounds[i + 1]]) for i, s in enumerate(SPLITS)}


def nested_subset(n: int, n_keep: int, *, seed: int) -> np.ndarray:
    """Sorted indices of a uniform random subset of ``n_keep`` of ``n`` rows.

    The subset is the first ``n_keep`` entries of one permutation fixed by ``seed``, so for the
    same seed a smaller subset is contained in every larger one: a training-size study adds
    events to a set instead of drawing a new one at each size.
    """
    if not 1 <= n_keep <= n:
        raise ValueError(f"cannot keep {n_keep} of {n} rows; expected 1 <= n_keep <= {n}")
    return np.sort(np.random.default_rng(seed).permutation(n)[:n_keep])


class _Sha256InBackground:
    """Hash a (possibly multi-GB) file in a thread while the main thread parses it."""

    def __init__(self, path: Path) -> None:
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            self._digest = sha256_file(path)
        except BaseException as exc:
            self._error = exc

    def result(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._digest is not None
        return self._digest


def _row_digests(rows: np.ndarray, step: int = 1 << 16) -> np.ndarray:
    """A 64-bit FNV-1a hash of each row's 32- or 64-bit words, -0.0 read as 0.0."""
    zero = rows.dtype.type(0)
    word = np.uint32 if rows.dtype.itemsize == 4 else np.uint64
    prime = np.uint64(0x100000001B3)
    digests = np.empty(len(rows), dtype=np.uint64)
    for start in range(0, len(rows), step):  # blocks that stay in the cache
        words = (rows[start : start + step] + zero).view(word)
        digest = np.full(len(words), 0xCBF29CE484222325, dtype=np.uint64)
        for j in range(words.shape[1]):
            digest ^= words[:, j]
            digest *= prime  # wraps modulo 2**64, as FNV means it to
        digests[start : start + step] = digest
    return digests


def count_duplicate_rows(rows: np.ndarray) -> int:
    """Number of rows of a 2-D array that are exact copies of an earlier row (by value).

    Rows whose hash (:func:`_row_digests`) no other row shares are unique; only rows sharing a
    hash are compared exactly, so a hash collision never counts as a copy. ~1 s for the
    5.8M × 28 background of HIGGS.
    """
    if rows.ndim != 2 or rows.dtype.kind != "f" or rows.dtype.itemsize not in (4, 8):
        raise ValueError(f"expected a 2-D float32 or float64 array, got {rows.dtype} {rows.shape}")
    if len(rows) < 2:
        return 0
    digests = _row_digests(rows)
    ordered = np.sort(digests)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if repeated.size == 0:
        return 0
    candidates = rows[np.isin(digests, repeated)] + rows.dtype.type(0)
    return len(candidates) - len(np.unique(candidates, axis=0))


def _log_duplicates(source: Path, duplicates: dict[str, int]) -> None:
    if any(duplicates.values()):
        log.warning(
            "%s: %s rows are exact copies of earlier rows of their class; copies can fall "
            "into different splits, so a test split may share events with the training "
            "split: remove them from the file if they are not meant to be there",
            source, " and ".join(f"{n} {cls}" for cls, n in duplicates.items()),
        )  # fmt: skip
    else:
        log.info("%s: no row is an exact copy of another", source)


def _verified_digest(hasher: _Sha256InBackground, source: Path, expected: str | None) -> str:
    """The file's sha256, refused unless it is ``expected`` (when one is given)."""
    digest = hasher.result()
    if expected is not None and digest != expected.lower():
        raise ChecksumError(
            f"{source}: its sha256 is {digest}, but data.sha256 expects {expected}: this is "
            "not the file the configuration names. Delete it to download the file again, or "
            f"use it as it is with data: {{source: path, path: {source}}}"
        )
    return digest


def write_splits(
    source: str | os.PathLike[str],
    outputs: Mapping[str, str | os.PathLike[str]],
    manifest: str | os.PathLike[str],
    *,
    seed: int,
    fractions: SplitFractions,
    max_events: int | None = None,
    max_rows: int | None = None,
    expected_sha256: str | None = None,
) -> dict:
    """Read and validate ``source``, split each class, write ROOT files and the manifest.

    ``outputs`` maps ``"{bkg,sig}_{split}"`` to a path. Each file holds the TTree ``events``
    with the label and all 28 features as float32 branches. ``expected_sha256``, if given, is
    what the whole file's sha256 must be (a downloaded file is held to its checksum however it
    got there); it is checked before anything is written. Exact duplicate rows are counted per
    class, logged and written to the manifest. On any failure no output of the set is left
    behind. Returns the manifest.
    """
    expected = {f"{c}_{s}" for c in CLASSES for s in SPLITS}
    if set(outputs) != expected:
        raise ValueError(f"outputs must name exactly {sorted(expected)}, got {sorted(outputs)}")
    source = Path(source)
    hasher = _Sha256InBackground(source)
    try:
        sample = read_higgs(source, max_rows=max_rows)
    except HiggsFormatError:
        if expected_sha256 is not None and source.is_file():  # the wrong file: that comes first
            _verified_digest(hasher, source, expected_sha256)
        raise
    digest = _verified_digest(hasher, source, expected_sha256)
    classes = {"bkg": (sample.background, None), "sig": (sample.signal, None)}
    del sample
    counts, duplicates = write_class_splits(
        classes, outputs, FEATURE_COLUMNS, seed=seed, fractions=fractions, max_events=max_events, source=source
    )
    result = {
        "source": str(source),
        "source_sha256": digest,
        "rows_read": int(sum(c["available"] for c in counts.values())),
        "duplicate_rows": duplicates,
        "max_rows": max_rows,
        "max_events": max_events,
        "seed": seed,
        "fractions": asdict(fractions),
        "counts": counts,
        "entries": {str(outputs[f"{c}_{s}"]): counts[c][s] for c in CLASSES for s in SPLITS},
    }
    io.write_json(manifest, result)
    return result


def write_class_splits(
    classes: MutableMapping[str, tuple[np.ndarray, np.ndarray | None]],
    outputs: Mapping[str, str | os.PathLike[str]],
    columns: Sequence[str],
    *,
    seed: int,
    fractions: SplitFractions,
    max_events: int | None,
    source: str | os.PathLike[str],
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Split each class's events ``(features (n, F), weights (n,) or None)`` and write the
    files of ``outputs``; the features as ``columns`` branches, the weights as the ``weight``
    branch (:data:`flowsim.io.WEIGHT`) where a class has them. Exact duplicate rows are counted
    and logged. Returns the counts per class and split, and the duplicates per class. On any
    failure no file of the set is left behind. ``classes`` is emptied class by class, so
    that each class's events are freed once written."""
    duplicates = {cls: count_duplicate_rows(events) for cls, (events, _) in classes.items()}
    _log_duplicates(Path(source), duplicates)
    try:
        counts = {
            cls: _split_class(*classes.pop(cls), cls, outputs, columns, seed, fractions, max_events, Path(source))
            for cls in list(classes)
        }
    except BaseException:
        # a set of splits is only usable whole: do not leave some files of it behind
        for path in outputs.values():
            Path(path).unlink(missing_ok=True)
        raise
    return counts, duplicates


def _split_class(
    events: np.ndarray,
    weights: np.ndarray | None,
    cls: str,
    outputs: Mapping[str, str | os.PathLike[str]],
    columns: Sequence[str],
    seed: int,
    fractions: SplitFractions,
    max_events: int | None,
    source: Path,
) -> dict[str, int]:
    """Split one class and write its four files; return the counts."""
    parts = split_indices(
        len(events), seed=seed, label=CLASSES[cls], fractions=fractions, max_events=max_events
    )
    counts = {"available": len(events), "used": sum(len(p) for p in parts.values())}
    for split, rows in parts.items():
        name = f"{cls}_{split}"
        if len(rows) == 0:
            raise ValueError(
                f"{source}: split {name} would be empty ({len(events)} {cls} events); "
                "use more events or other fractions"
            )
        _write_split(outputs[name], events[rows], CLASSES[cls], columns, None if weights is None else weights[rows])
        counts[split] = len(rows)
        log.info("wrote %s: %d events", outputs[name], len(rows))
    return counts


def _write_split(
    path: str | os.PathLike[str], features: np.ndarray, label: int, columns: Sequence[str], weights: np.ndarray | None
) -> None:
    branches = {LABEL: np.full(len(features), label, dtype=np.float32)}
    branches.update({name: features[:, j] for j, name in enumerate(columns)})
    if weights is not None:
        branches[io.WEIGHT] = weights
    io.write_events(path, branches)
