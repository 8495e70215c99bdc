"""Events from the user's own ROOT ntuples (``data.source: root``).

Each class (background, signal) is one or more ROOT files (glob patterns, sorted) holding a
TTree. The files are read chunk by chunk with uproot into awkward arrays, so jagged branches
(a variable number of jets per event) are handled as they are:

1. the optional ``preselection``, an expression that gives one boolean per event, keeps the
   events the analysis uses (``(ak.num(Jet_pt) >= 4) & (Lep_pt > 25)``);
2. every feature is a branch of the same name or an expression of branches, evaluated on the
   kept events: ``Jet_pt[:, 0]`` (the leading jet: every kept event must have one),
   ``at(Jet_pt, 2)`` with ``fill: -1`` (the third jet, or -1 where there is none),
   ``ak.num(Jet_pt)``, ``np.log(MET_pt)``;
3. the optional per-class ``weight`` expression gives each event its MC weight (negative
   weights allowed; :mod:`flowsim.weights`).

Expressions are Python with the branches, ``ak``, ``np``, ``at`` and ``abs`` as their only
names (no builtins, no attribute of anything but ``ak`` and ``np``). An expression that fails,
gives more or fewer than one value per event, or a non-finite value stops the read with the
file, the entries and the expression named; a missing branch names the file and the branches
it has. The count of events each step keeps goes to the manifest.

:func:`higgs_to_ntuple` writes a HIGGS-layout CSV as such an ntuple (jets as jagged branches),
so that the tests and the toy data exercise this path without any external file:
``python -m flowsim.data.ntuple HIGGS.csv.gz resources/ntuple``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import glob
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowsim.data.higgs import FEATURE_COLUMNS

__all__ = [
    "ClassEvents",
    "ClassSource",
    "Column",
    "Expression",
    "NtupleError",
    "NtupleSource",
    "feature_names",
    "higgs_to_ntuple",
    "parse_columns",
    "read_class",
]

log = logging.getLogger(__name__)

#: The names an expression may use besides branches.
_HELPERS = ("ak", "np", "at", "abs")
_MODULES = ("ak", "np")
#: Entries read at a time by default: ~100 MB of awkward arrays for a few dozen branches.
DEFAULT_STEP = 200_000


class NtupleError(ValueError):
    """An ntuple, branch or expression that cannot be used: ``where`` (a file and its entries,
    or a configuration key) and the ``problem``."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


# --- features and expressions ----------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One feature of the events: its name, the expression that computes it (by default the
    branch of that name), its unit for axis labels and the value for events the expression
    gives none (``fill``; None: such events are an error)."""

    name: str
    expression: str
    unit: str | None = None
    fill: float | None = None


def parse_columns(entries: Sequence[str | Mapping[str, Any]]) -> tuple[Column, ...]:
    """The ``features`` list of the configuration: each entry a name (a branch, or for the
    HIGGS sources a HIGGS column) or a mapping ``{name, expression, unit, fill}``."""
    columns = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            columns.append(Column(entry, entry))
            continue
        if "name" not in entry:
            raise NtupleError(f"features[{i}]", f"a feature given as a mapping needs a 'name', got {dict(entry)}")
        name = str(entry["name"])
        fill = entry.get("fill")
        columns.append(
            Column(name, str(entry.get("expression") or name), entry.get("unit"), None if fill is None else float(fill))
        )
    return tuple(columns)


def feature_names(entries: Sequence[str | Mapping[str, Any]]) -> list[str]:
    """The names of the ``features`` entries, in order (what the split files' branches are called)."""
    return [column.name for column in parse_columns(entries)]


def at(array: Any, index: int) -> Any:
    """The ``index``-th object of each event of a jagged array, missing (None) where an event
    has fewer objects: ``at(Jet_pt, 2)`` with a ``fill`` value is the third jet's pT or the fill."""
    import awkward as ak

    return ak.pad_none(array, index + 1, axis=1, clip=True)[:, index]


class Expression:
    """A configuration expression of branches, parsed once and checked for what it may use."""

    def __init__(self, text: str, *, key: str) -> None:
        self.text = text
        self.key = key
        try:
            self._tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise NtupleError(key, f"{text!r} is not a valid expression ({exc.msg})") from None
        self.branches = self._check()
        self._code = compile(self._tree, f"<{key}>", "eval")

    def _check(self) -> tuple[str, ...]:
        """The branch names the expression uses; refuses attribute access beyond ak./np. and
        dunder names, which have no place in a formula of branches."""
        names: list[ast.Name] = []
        for node in ast.walk(self._tree):
            if isinstance(node, ast.Attribute):
                if not (isinstance(node.value, ast.Name) and node.value.id in _MODULES) or node.attr.startswith("_"):
                    raise NtupleError(
                        self.key,
                        f"{self.text!r} uses the attribute {node.attr!r}; only functions of "
                        "ak and np (ak.num, np.log, ...) may be called",
                    )
            elif isinstance(node, ast.Name):
                if node.id.startswith("__"):
                    raise NtupleError(self.key, f"{self.text!r} uses the name {node.id!r}")
                if node.id not in _HELPERS:
                    names.append(node)
            elif isinstance(node, ast.Lambda | ast.NamedExpr | ast.comprehension):
                raise NtupleError(self.key, f"{self.text!r}: lambdas, := and comprehensions are not allowed")
        # in the order they appear in the text, each once
        return tuple(dict.fromkeys(n.id for n in sorted(names, key=lambda n: (n.lineno, n.col_offset))))

    def evaluate(self, arrays: Mapping[str, Any]) -> Any:
        """The expression's value with the branches of ``arrays`` (awkward arrays) in scope."""
        import awkward as ak

        scope = {"ak": ak, "np": np, "at": at, "abs": abs, **{b: arrays[b] for b in self.branches}}
        return eval(self._code, {"__builtins__": {}}, scope)  # noqa: S307 - names checked in _check


# --- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassSource:
    """The files (glob patterns) and tree of one class, and its weight expression (None:
    unweighted)."""

    files: tuple[str, ...]
    tree: str
    weight: str | None = None


@dataclass(frozen=True)
class NtupleSource:
    """The ``data.root`` section: a :class:`ClassSource` per class, the preselection and the
    number of entries read at a time."""

    background: ClassSource
    signal: ClassSource
    preselection: str | None = None
    step_size: int = DEFAULT_STEP

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> NtupleSource:
        def one(name: str) -> ClassSource:
            entry = section.get(name)
            if not entry or not entry.get("files"):
                raise NtupleError(f"data.root.{name}.files", "at least one ROOT file (or glob) is needed")
            files = entry["files"]
            return ClassSource(
                (files,) if isinstance(files, str) else tuple(files),
                str(entry.get("tree", "Events")),
                entry.get("weight"),
            )

        return cls(
            one("background"), one("signal"), section.get("preselection"), int(section.get("step_size", DEFAULT_STEP))
        )

    def classes(self) -> dict[str, ClassSource]:
        """The sources by the splits' class prefix."""
        return {"bkg": self.background, "sig": self.signal}


def expand_files(patterns: Sequence[str], *, key: str) -> list[Path]:
    """The files ``patterns`` match (each glob sorted, in pattern order, each file once);
    refuses a pattern that matches nothing."""
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matched:
            raise NtupleError(key, f"{pattern!r} matches no file")
        files += [Path(m) for m in matched if Path(m) not in files]
    return files


@dataclass
class ClassEvents:
    """The events of one class: features (n, F) float32, weights (n,) float64 or None, and
    what each step kept (``steps``, per file and in all)."""

    features: np.ndarray
    weights: np.ndarray | None
    steps: dict[str, Any] = field(default_factory=dict)


def _open_tree(path: Path, tree: str) -> Any:
    import uproot

    try:
        handle = uproot.open(path)
    except Exception as exc:  # uproot raises many types for a file that is not ROOT
        raise NtupleError(path, f"cannot be opened as a ROOT file ({type(exc).__name__}: {exc})") from None
    try:
        obj = handle[tree]
    except Exception:
        trees = [k.split(";")[0] for k, c in handle.classnames().items() if c.startswith("TTree")]
        handle.close()
        raise NtupleError(path, f"no TTree {tree!r}; it has {sorted(set(trees)) or 'no TTree'}") from None
    if not hasattr(obj, "iterate"):
        handle.close()
        raise NtupleError(path, f"{tree!r} is a {type(obj).__name__}, not a TTree")
    return handle, obj


def _check_branches(path: Path, tree: Any, needed: Sequence[str], expressions: Sequence[Expression]) -> None:
    available = set(tree.keys(recursive=True))
    for name in needed:
        if name not in available:
            users = [e.key for e in expressions if name in e.branches]
            close = difflib.get_close_matches(name, sorted(available), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise NtupleError(path, f"no branch {name!r} (used by {', '.join(users)}){hint} It has {sorted(available)}")


def _per_event(value: Any, n: int, expression: Expression, where: str) -> np.ndarray:
    """``value`` as one float64 per event, or an error naming the expression and the entries."""
    import awkward as ak

    if isinstance(value, int | float | np.number | bool):  # a constant, e.g. a cross-section
        return np.full(n, float(value))
    try:
        array = ak.to_layout(value)
    except Exception:
        raise NtupleError(
            where, f"{expression.key} {expression.text!r} gives a {type(value).__name__}, not numbers"
        ) from None
    value = ak.Array(array)
    if value.ndim != 1:
        raise NtupleError(
            where,
            f"{expression.key} {expression.text!r} gives a list per event, not one number; "
            "pick one object (Jet_pt[:, 0], at(Jet_pt, 1)) or reduce (ak.sum, ak.num)",
        )
    if len(value) != n:
        raise NtupleError(where, f"{expression.key} {expression.text!r} gives {len(value)} values for {n} events")
    missing = ak.is_none(value)
    if ak.any(missing):
        raise _Missing(int(ak.sum(missing)))
    try:
        return ak.to_numpy(value).astype(np.float64)
    except Exception as exc:
        raise NtupleError(where, f"{expression.key} {expression.text!r} does not give numbers ({exc})") from None


class _Missing(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def _evaluate(
    expression: Expression, arrays: Any, entries: np.ndarray, where: str, fill: float | None = None
) -> np.ndarray:
    """One finite float64 per event of ``arrays`` (tree entries ``entries``), or an error."""
    import awkward as ak

    n = len(entries)
    try:
        with np.errstate(all="ignore"):  # non-finite results are reported below, with the entry
            value = expression.evaluate(arrays)
        if fill is not None and isinstance(value, ak.Array):
            value = ak.fill_none(value, fill, axis=-1)
        values = _per_event(value, n, expression, where)
    except _Missing as exc:
        raise NtupleError(
            where,
            f"{expression.key} {expression.text!r} gives no value for {exc.count} of {n} events "
            "(missing objects); give the feature a fill value, or keep only events that have the "
            "object with the preselection (e.g. ak.num(Jet_pt) >= 3)",
        ) from None
    except NtupleError:
        raise
    except Exception as exc:
        message = str(exc).splitlines()[0].split(" (in compiled code")[0]
        hint = ""
        if "index out of range" in message:
            hint = "; an event lacks the object: use at(branch, i) with a fill value, or a preselection"
        raise NtupleError(
            where, f"{expression.key} {expression.text!r} failed ({type(exc).__name__}: {message}){hint}"
        ) from None
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise NtupleError(
            where,
            f"{expression.key} {expression.text!r} gives {int(bad.sum())} non-finite value(s), "
            f"the first {values[first]} at entry {int(entries[first])}",
        )
    return values


def _chunks(tree: Any, branches: Sequence[str], step: int) -> Iterator[tuple[Any, int, int]]:
    for arrays, report in tree.iterate(list(branches), step_size=step, library="ak", report=True):
        yield arrays, int(report.tree_entry_start), int(report.tree_entry_stop)


def read_class(
    source: ClassSource,
    columns: Sequence[Column],
    *,
    preselection: str | None = None,
    step_size: int = DEFAULT_STEP,
    name: str = "bkg",
) -> ClassEvents:
    """Read the events of one class: preselection, features and weights of every file.

    Raises:
        NtupleError: a pattern matching no file, a file that is not ROOT or lacks the tree or a
            branch, an expression that fails or gives anything but one finite number per event,
            or a class left with no event.
    """
    key = f"data.root.{ {'bkg': 'background', 'sig': 'signal'}.get(name, name) }"
    files = expand_files(source.files, key=f"{key}.files")
    features = [Expression(c.expression, key=f"feature {c.name}") for c in columns]
    select = Expression(preselection, key="preselection") if preselection else None
    weight = Expression(source.weight, key=f"{key}.weight") if source.weight else None
    expressions = [e for e in (select, weight, *features) if e is not None]
    needed = list(dict.fromkeys(b for e in expressions for b in e.branches))
    parts: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    per_file = []
    for path in files:
        handle, tree = _open_tree(path, source.tree)
        with handle:
            _check_branches(path, tree, needed, expressions)
            read = kept = 0
            for arrays, start, stop in _chunks(tree, needed or tree.keys()[:1], step_size):
                where = f"{path}, entries {start}-{stop - 1}"
                entries = np.arange(start, stop)
                read += len(entries)
                if select is not None:
                    mask = _evaluate(select, arrays, entries, where)
                    if not np.isin(mask, (0.0, 1.0)).all():
                        raise NtupleError(where, f"preselection {preselection!r} must give True or False per event")
                    arrays, entries = arrays[mask.astype(bool)], entries[mask.astype(bool)]
                n = len(entries)
                kept += n
                block = np.empty((n, len(columns)), dtype=np.float32)
                for j, (column, expression) in enumerate(zip(columns, features)):
                    values = _evaluate(expression, arrays, entries, where, column.fill)
                    with np.errstate(over="ignore"):  # refused just below, with the feature named
                        block[:, j] = values
                    if not np.isfinite(block[:, j]).all():  # finite in float64, too large for float32
                        raise NtupleError(
                            where, f"feature {column.name} {column.expression!r} exceeds the float32 range"
                        )
                parts.append(block)
                if weight is not None:
                    weights.append(_evaluate(weight, arrays, entries, where))
        per_file.append({"path": str(path), "entries": read, "preselected": kept})
        log.info("%s: %d entries, %d kept by the preselection", path, read, kept)
    x = np.concatenate(parts) if parts else np.empty((0, len(columns)), np.float32)
    w = np.concatenate(weights) if weight is not None and weights else None
    steps: dict[str, Any] = {
        "files": per_file,
        "entries": sum(f["entries"] for f in per_file),
        "preselected": len(x),
    }
    if not len(x):
        raise NtupleError(key, f"no event of its {steps['entries']} entries passes the preselection {preselection!r}")
    if w is not None:
        from flowsim.weights import check_weights, weight_summary

        check_weights(w, len(x), name=f"{key}.weight {source.weight!r}")
        steps["weights"] = weight_summary(w, name=f"{name} ({source.weight})")
    return ClassEvents(x, w, steps)


# --- HIGGS CSV -> ntuple -----------------------------------------------------------------------

#: The per-jet HIGGS columns, as the jagged ``Jet_*`` branches of the converted ntuple.
_JET_FIELDS = ("pt", "eta", "phi", "btag")


def higgs_to_ntuple(
    csv: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    tree: str = "Events",
    max_rows: int | None = None,
    jet_pt_min: float | None = None,
    negative_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the events of a HIGGS-layout file as two ntuples, ``background.root`` and
    ``signal.root`` in ``out_dir``: the lepton, MET and the masses as scalar branches, the four
    jets as jagged branches ``Jet_pt``, ``Jet_eta``, ``Jet_phi``, ``Jet_btag`` (with ``nJet``).

    ``jet_pt_min`` drops the jets below it, so that events have 0-4 jets (the order is kept,
    so ``Jet_pt[:, 0]`` is no longer always ``jet1_pt``). ``negative_fraction`` adds a
    ``weight`` branch of ±1 with that fraction of -1, drawn independently of the event (the
    weighted density is the unweighted one, with effective size ``(1 - 2f)² n``), to exercise
    weighted MC; 0 writes no weight branch.
    """
    import awkward as ak
    import uproot

    from flowsim.data.reader import read_higgs
    from flowsim.io import atomic_output

    if not 0.0 <= negative_fraction < 0.5:
        raise ValueError(f"negative_fraction must lie in [0, 0.5), got {negative_fraction}")
    sample = read_higgs(csv, max_rows=max_rows)
    out_dir = Path(out_dir)
    written = {}
    rng = np.random.default_rng(seed)
    for name, events in (("background", sample.background), ("signal", sample.signal)):
        column = {c: events[:, j] for j, c in enumerate(FEATURE_COLUMNS)}
        jets = np.stack([np.stack([column[f"jet{k}_{f}"] for k in range(1, 5)], axis=1) for f in _JET_FIELDS])
        keep = np.ones(jets.shape[1:], dtype=bool) if jet_pt_min is None else jets[0] >= jet_pt_min
        counts = keep.sum(axis=1)
        branches: dict[str, Any] = {c: column[c] for c in FEATURE_COLUMNS if not c.startswith("jet")}
        branches["Jet"] = ak.zip({f: ak.unflatten(jets[i][keep], counts) for i, f in enumerate(_JET_FIELDS)})
        if negative_fraction > 0:
            branches["weight"] = np.where(rng.random(len(events)) < negative_fraction, -1.0, 1.0).astype(np.float32)
        path = out_dir / f"{name}.root"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            with uproot.recreate(tmp, compression=uproot.ZSTD(5)) as f:
                # a TTree, not the RNTuple that uproot 5.7 writes by default on assignment
                types = {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()}
                f.mktree(tree, types).extend(branches)
        log.info("wrote %s: %d events, %d jets", path, len(events), int(counts.sum()))
        written[name] = path
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flowsim.data.ntuple CSV OUT_DIR``: convert a HIGGS CSV to two ntuples."""
    parser = argparse.ArgumentParser(prog="python -m flowsim.data.ntuple", description=main.__doc__)
    parser.add_argument("csv", help="a HIGGS-layout .csv or .csv.gz")
    parser.add_argument("out_dir", help="where background.root and signal.root are written")
    parser.add_argument("--tree", default="Events")
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--jet-pt-min", type=float, default=None, help="drop jets below this pT (file units)")
    parser.add_argument("--negative-fraction", type=float, default=0.0, help="add ±1 weights, this fraction -1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    written = higgs_to_ntuple(
        args.csv, args.out_dir, tree=args.tree, max_rows=args.max_rows, jet_pt_min=args.jet_pt_min,
        negative_fraction=args.negative_fraction, seed=args.seed,
    )  # fmt: skip
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
