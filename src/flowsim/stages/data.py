"""The data stage (``workflow/rules/data.smk``): the HIGGS file (generated, downloaded or given),
seeded splits, the scaler, and the worth stage's toy data.

* :func:`make_toy_higgs`: the toy HIGGS file (:mod:`flowsim.data.toy`), written block by block.
* :func:`fetch_higgs`: download ``HIGGS.csv.gz``, verified by its sha256.
* :func:`split_higgs`: validate the file and write the seeded per-class splits and the manifest.
* :func:`split_ntuples`: the same from the user's ROOT ntuples (``data.source: root``,
  :mod:`flowsim.data.ntuple`): preselection, features as expressions, MC weights.
* :func:`fit_scaler`: fit the feature scaling on the background training split.
* :func:`make_truth`: the toy truth of the worth stage, background events of the toy generator
  with a seed of their own.
* :func:`make_replica_data`: a coverage replica's own toy training and validation sets.

Each streams its output as it goes (the files are larger than the memory a job may ask for),
so there is no result held between computing and writing but the scaler's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowsim import io
from flowsim.data import scaling
from flowsim.data.fetch import download, sha256_file
from flowsim.data.higgs import FEATURE_COLUMNS, LABEL
from flowsim.data.ntuple import NtupleSource, parse_columns, read_class
from flowsim.data.splits import CLASSES, SPLITS, SplitFractions, write_class_splits, write_splits
from flowsim.data.toy import generate_toy, write_toy_csv
from flowsim.stages import PathLike

__all__ = [
    "fetch_higgs", "fit_scaler", "make_replica_data", "make_toy_higgs", "make_truth", "split_higgs", "split_ntuples",
]  # fmt: skip

log = logging.getLogger(__name__)


def make_toy_higgs(out: PathLike, *, n_events: int, seed: int, signal_fraction: float) -> None:
    """Rule ``make_toy_higgs``: ``n_events`` toy events (a ``signal_fraction`` of them signal)."""
    write_toy_csv(out, n_events=n_events, seed=seed, signal_fraction=signal_fraction)


def fetch_higgs(out: PathLike, *, url: str, sha256: str | None) -> Path:
    """Rule ``fetch_higgs``: download ``url`` to ``out`` (resuming), held to ``sha256``."""
    return download(url, out, sha256=sha256)


def split_higgs(
    csv: PathLike,
    outputs: Mapping[str, PathLike],
    *,
    seed: int,
    ml_fraction: float,
    train_fraction: float,
    test_a_fraction: float,
    max_events: int | None = None,
    max_rows: int | None = None,
    sha256: str | None = None,
) -> dict[str, Any]:
    """Rule ``split_higgs``: the splits of ``csv`` (:func:`~flowsim.data.splits.write_splits`).

    Arguments:
        outputs: The rule's outputs: ``manifest`` and one ROOT file per ``{bkg,sig}_{split}``.
        sha256: What the file's sha256 must be (``source: uci``), checked before any write.

    Returns:
        The manifest.
    """
    splits = {name: path for name, path in outputs.items() if name != "manifest"}
    return write_splits(
        csv,
        splits,
        outputs["manifest"],
        seed=seed,
        fractions=SplitFractions(ml=ml_fraction, train=train_fraction, test_a=test_a_fraction),
        max_events=max_events,
        max_rows=max_rows,
        expected_sha256=sha256,
    )


def split_ntuples(
    outputs: Mapping[str, PathLike],
    *,
    root: Mapping[str, Any],
    features: Sequence[str | Mapping[str, Any]],
    seed: int,
    ml_fraction: float,
    train_fraction: float,
    test_a_fraction: float,
    max_events: int | None = None,
) -> dict[str, Any]:
    """Rule ``split_ntuples``: read each class of the ``data.root`` ntuples
    (:func:`~flowsim.data.ntuple.read_class`) and write its seeded splits, with the MC weights
    as a ``weight`` branch, and the manifest: every input file with its sha256 and the events
    each step kept, the features' definitions and the weights' sums and effective size.

    Arguments:
        outputs: The rule's outputs: ``manifest`` and one ROOT file per ``{bkg,sig}_{split}``.
        root: The ``data.root`` section (:class:`~flowsim.data.ntuple.NtupleSource`).
        features: The ``features`` entries (names or ``{name, expression, unit, fill}``).
    """
    source = NtupleSource.from_mapping(root)
    columns = parse_columns(features)
    splits = {name: path for name, path in outputs.items() if name != "manifest"}
    classes, steps = {}, {}
    for cls, class_source in source.classes().items():
        events = read_class(
            class_source, columns, preselection=source.preselection, step_size=source.step_size, name=cls
        )
        for entry in events.steps["files"]:
            entry["sha256"] = sha256_file(entry["path"])
        classes[cls] = (events.features, events.weights)
        steps[cls] = {"tree": class_source.tree, "weight": class_source.weight, **events.steps}
    fractions = SplitFractions(ml=ml_fraction, train=train_fraction, test_a=test_a_fraction)
    names = [c.name for c in columns]
    counts, duplicates = write_class_splits(
        classes, splits, names, seed=seed, fractions=fractions, max_events=max_events, source="data.root"
    )
    manifest = {
        "source": "root",
        "preselection": source.preselection,
        "features": [dataclasses.asdict(c) for c in columns],
        "steps": steps,
        "duplicate_rows": duplicates,
        "max_events": max_events,
        "seed": seed,
        "fractions": dataclasses.asdict(fractions),
        "counts": counts,
        "entries": {str(splits[f"{c}_{s}"]): counts[c][s] for c in CLASSES for s in SPLITS},
    }
    io.write_json(outputs["manifest"], manifest)
    for cls, step in steps.items():
        log.info(
            "%s: %d entries read, %d pass the preselection, %d used", cls, step["entries"], step["preselected"],
            counts[cls]["used"],
        )  # fmt: skip
    return manifest


def fit_scaler(
    train: PathLike, out: PathLike, *, features: Sequence[str], method: str, odd: Sequence[str] = ()
) -> scaling.Scaler:
    """Rule ``fit_scaler``: fit the scaling of ``features`` on the events of ``train`` and save it
    (:func:`~flowsim.data.scaling.fit_scaler`: Gauss-rank or logit, odd in ``odd``), on their MC
    weights where the file has them."""
    x = io.read_matrix(train, list(features))
    weights = io.read_weights(train)
    scaler = scaling.fit_scaler(x, features, method, odd=odd, weights=weights)
    scaler.save(out)
    log.info(
        "fitted %s scaling of %d features on %d %sevents of %s%s", method, len(features), len(x),
        "weighted " if weights is not None else "", train, f", odd in {list(odd)}" if odd else "",
    )  # fmt: skip
    return scaler


def _write_background(path: PathLike, rows: np.ndarray) -> None:
    """Toy rows (label, then the 28 features) as a background events file like the splits'."""
    columns = {LABEL: np.zeros(len(rows), dtype=np.float32)}
    columns.update({name: np.ascontiguousarray(rows[:, j + 1]) for j, name in enumerate(FEATURE_COLUMNS)})
    io.write_events(path, columns)


def make_truth(out: PathLike, *, n_events: int, seed: int) -> None:
    """Rule ``make_truth``: ``n_events`` background events of the toy generator, seed ``seed``.

    They are what the split's background rows are, drawn afresh: the toy's background density
    sampled as often as wanted (the split's rows are float32 values that the CSV round-trips
    exactly, so no rounding sets them apart)."""
    log.info("generating %d toy background events with seed %d", n_events, seed)
    _write_background(out, generate_toy(n_events, seed, signal_fraction=0.0))
    log.info("wrote %s", out)


def make_replica_data(
    *, replica: str, train_out: PathLike, val_out: PathLike, n_train: int | None, n_val: int | None,
    train_like: PathLike, val_like: PathLike, seed: int,
) -> None:  # fmt: skip
    """Rule ``make_replica_data``: coverage replica ``replica`` (``r007``)'s own toy training and
    validation sets from the toy stream ``seed`` (:func:`flowsim.worth.replica_seed`), as large
    as ``n_train``/``n_val`` or, for None, as the data's splits (``train_like``, ``val_like``)."""
    n_train = n_train or io.root_entries(train_like)
    n_val = n_val or io.root_entries(val_like)
    log.info("replica %s: %d training and %d validation toy events, toy seed %d", replica, n_train, n_val, seed)
    rows = generate_toy(n_train + n_val, seed, signal_fraction=0.0)
    _write_background(train_out, rows[:n_train])
    _write_background(val_out, rows[n_train:])
