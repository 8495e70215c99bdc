"""File input/output: atomic writes, event samples as ROOT TTrees (uproot), small tables and JSON.

Every writer goes through :func:`atomic_output`: the data land in a temporary file next to the
target and are renamed over it only once complete, so a failed or killed job never leaves a
half-written file where the workflow (or a physicist) would take it for a finished one. A job
killed outright (SIGKILL, a cluster's time limit) cannot remove its temporary file; the next
writer of the same target does (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TREE_NAME",
    "WEIGHT",
    "EventWriter",
    "atomic_output",
    "event_writer",
    "iter_matrix",
    "read_events",
    "read_json",
    "read_matrix",
    "read_tsv",
    "read_weights",
    "remove_stale_temporaries",
    "root_entries",
    "text_table",
    "write_events",
    "write_json",
    "write_tsv",
]

log = logging.getLogger(__name__)

#: Name of the TTree holding events in every ROOT file the workflow writes.
TREE_NAME = "events"
#: Branch of an MC events file holding its per-event weights; a file without it is unweighted.
WEIGHT = "weight"


def _file_mode() -> int:
    """Permissions an ordinary new file gets under the process umask (mkstemp makes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _default_suffix(target: Path) -> str:
    return "".join(target.suffixes)


def remove_stale_temporaries(path: str | os.PathLike[str], suffix: str | None = None) -> list[Path]:
    """Remove the temporary files that :func:`atomic_output` left beside ``path`` when its
    writer was killed; return them. Each target has one writer at a time (the job that owns
    it), so any such file is an orphan."""
    target = Path(path)
    if not target.parent.is_dir():
        return []
    # mkstemp's names: the prefix, 8 characters of [a-z0-9_], the suffix
    pattern = re.compile(
        re.escape(f".{target.name}.") + "[a-z0-9_]{8}" + re.escape(suffix or _default_suffix(target))
    )
    removed = []
    for candidate in target.parent.iterdir():
        if pattern.fullmatch(candidate.name) and candidate.is_file():
            size = candidate.stat().st_size
            candidate.unlink(missing_ok=True)
            log.info("removed %s (%.1f MB), left by an earlier writer that was killed", candidate, size / 1e6)
            removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it to ``path`` on success.

    On any exception the temporary file is removed and the target is left untouched;
    temporary files of earlier, killed writers of the same target are removed first.
    ``suffix`` defaults to the target's own suffix (uproot and numpy look at it).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix or _default_suffix(target)
    remove_stale_temporaries(target, suffix)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _file_mode())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class EventWriter:
    """Appends float32 branches chunk by chunk to the TTree ``events`` of a file being written.

    Use through :func:`event_writer`, which renames the file into place only when complete.
    """

    def __init__(self, tree: Any, branches: Sequence[str]) -> None:
        self._tree = tree
        self.branches = tuple(branches)
        self.entries = 0

    def extend(self, columns: Mapping[str, np.ndarray]) -> None:
        """Append equal-length arrays for every branch (one basket)."""
        if set(columns) != set(self.branches):
            raise ValueError(f"expected branches {list(self.branches)}, got {list(columns)}")
        lengths = {len(columns[b]) for b in self.branches}
        if len(lengths) != 1:
            raise ValueError(f"branches have different lengths: {sorted(lengths)}")
        self._tree.extend({b: np.asarray(columns[b], dtype=np.float32) for b in self.branches})
        self.entries += lengths.pop()


@contextlib.contextmanager
def event_writer(
    path: str | os.PathLike[str], branches: Sequence[str], *, compression_level: int = 5
) -> Iterator[EventWriter]:
    """Write a ROOT file of float32 branches incrementally (bounded memory), atomically.

    ZSTD is as compact as ROOT's ZLIB default here and about 8x faster to write with uproot.
    """
    import uproot

    with atomic_output(path) as tmp:
        with uproot.recreate(tmp, compression=uproot.ZSTD(compression_level)) as f:
            tree = f.mktree(TREE_NAME, {b: np.float32 for b in branches})
            yield EventWriter(tree, branches)


def write_events(
    path: str | os.PathLike[str],
    columns: Mapping[str, np.ndarray],
    *,
    chunk_size: int = 1_000_000,
) -> None:
    """Write equal-length 1-D arrays as float32 branches of the TTree ``events``, atomically."""
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        raise ValueError(f"branches of {path} have different lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    with event_writer(path, list(arrays)) as writer:
        for start in range(0, max(n, 1), chunk_size):
            writer.extend({name: a[start : start + chunk_size] for name, a in arrays.items()})


def read_events(
    path: str | os.PathLike[str],
    branches: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Read branches (default: all) of the ``events`` TTree as numpy arrays.

    A missing branch raises a ``KeyError`` naming the file and the branches it has.
    """
    import uproot

    with uproot.open(path) as f:
        if TREE_NAME not in f:
            raise KeyError(f"{path}: no TTree '{TREE_NAME}' (keys: {f.keys()})")
        tree = f[TREE_NAME]
        available = list(tree.keys())
        wanted = list(branches) if branches is not None else available
        missing = [b for b in wanted if b not in available]
        if missing:
            raise KeyError(f"{path}: missing branch(es) {missing}; it has {available}")
        return tree.arrays(wanted, library="np")


def iter_matrix(
    path: str | os.PathLike[str], columns: Sequence[str], *, step: int = 1_000_000
) -> Iterator[np.ndarray]:
    """Chunks of at most ``step`` events of ``events`` as (n, len(columns)) float32 arrays, in order.

    Memory stays bounded by the chunk size whatever the file size (10⁸ generated events).
    """
    import uproot

    columns = list(columns)
    with uproot.open(path) as f:
        if TREE_NAME not in f:
            raise KeyError(f"{path}: no TTree '{TREE_NAME}' (keys: {f.keys()})")
        tree = f[TREE_NAME]
        missing = [c for c in columns if c not in tree.keys()]
        if missing:
            raise KeyError(f"{path}: missing branch(es) {missing}; it has {list(tree.keys())}")
        for arrays in tree.iterate(columns, step_size=int(step), library="np"):
            yield np.stack([arrays[c] for c in columns], axis=1).astype(np.float32, copy=False)


def read_matrix(path: str | os.PathLike[str], columns: Sequence[str]) -> np.ndarray:
    """Read branches of ``events`` into one (n, len(columns)) float32 array, in that order."""
    arrays = read_events(path, columns)
    out = np.empty((len(arrays[columns[0]]), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        out[:, j] = arrays[name]
    return out


def read_weights(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The per-event weights (branch :data:`WEIGHT`) of ``events`` as float64, checked by
    :func:`flowsim.weights.check_weights`; None for an unweighted file."""
    import uproot

    from flowsim.weights import check_weights

    with uproot.open(path) as f:
        if TREE_NAME not in f:
            raise KeyError(f"{path}: no TTree '{TREE_NAME}' (keys: {f.keys()})")
        tree = f[TREE_NAME]
        if WEIGHT not in tree.keys():
            return None
        weights = tree[WEIGHT].array(library="np")
        return check_weights(weights, int(tree.num_entries), name=str(path))


def root_entries(path: str | os.PathLike[str]) -> int:
    """Number of entries of the ``events`` TTree."""
    import uproot

    with uproot.open(path) as f:
        return int(f[TREE_NAME].num_entries)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically.

    NaN and infinities are refused (``ValueError``): they are not JSON, and most readers fail
    on them. A number that does not exist is written as ``null`` by its producer, with a field
    saying why.
    """
    try:
        text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}; write null and say why instead") from None
    with atomic_output(path) as tmp:
        tmp.write_text(text + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def write_tsv(
    path: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
) -> None:
    """Write rows (mappings) as a tab-separated table with a header, atomically."""

    def cell(value: Any) -> str:
        if isinstance(value, float | np.floating):
            return repr(float(value))
        return str(value)

    lines = ["\t".join(columns)]
    lines += ["\t".join(cell(row[c]) for c in columns) for row in rows]
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def read_tsv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Read a tab-separated table with a header into a list of dicts of strings."""
    header, *body = Path(path).read_text().splitlines()
    columns = header.split("\t")
    return [dict(zip(columns, line.split("\t"), strict=True)) for line in body if line]


def text_table(headings: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool = False) -> str:
    """``rows`` of cells under ``headings`` as aligned plain text, or as a Markdown table."""
    table = [list(headings), *(list(r) for r in rows)]
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in table]
        lines.insert(1, "|" + "---|" * len(table[0]))
        return "\n".join(lines)
    widths = [max(len(r[k]) for r in table) for k in range(len(table[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
