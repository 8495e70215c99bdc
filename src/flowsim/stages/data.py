"""The data stage (``workflow/rules/data.smk``): the HIGGS file (generated, downloaded or given),
seeded splits, the scaler, and the worth stage's toy data.

* :func:`make_toy_higgs`: the toy HIGGS file (:mod:`flowsim.data.toy`), written block by block.
* :func:`fetch_higgs`: download ``HIGGS.csv.gz``, verified by its sha256.
* :func:`split_higgs`: validate the file and write the seeded per-class splits and the manifest.
* :func:`fit_scaler`: fit the feature scaling on the background training split.
* :func:`make_truth`: the toy truth of the worth stage, background events of the toy generator
  with a seed of their own.
* :func:`make_replica_data`: a coverage replica's own toy training and validation sets.

Each streams its output as it goes (the files are larger than the memory a job may ask for),
so there is no result held between computing and writing but the scaler's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowsim import io
from flowsim.data import scaling
from flowsim.data.fetch import download
from flowsim.data.higgs import FEATURE_COLUMNS, LABEL
from flowsim.data.splits import SplitFractions, write_splits
from flowsim.data.toy import generate_toy, write_toy_csv
from flowsim.stages import PathLike

__all__ = ["fetch_higgs", "fit_scaler", "make_replica_data", "make_toy_higgs", "make_truth", "split_higgs"]

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


def fit_scaler(
    train: PathLike, out: PathLike, *, features: Sequence[str], method: str, odd: Sequence[str] = ()
) -> scaling.Scaler:
    """Rule ``fit_scaler``: fit the scaling of ``features`` on the events of ``train`` and save it
    (:func:`~flowsim.data.scaling.fit_scaler`: Gauss-rank or logit, odd in ``odd``)."""
    x = io.read_matrix(train, list(features))
    scaler = scaling.fit_scaler(x, features, method, odd=odd)
    scaler.save(out)
    log.info(
        "fitted %s scaling of %d features on %d events of %s%s", method, len(features), len(x), train,
        f", odd in {list(odd)}" if odd else "",
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
