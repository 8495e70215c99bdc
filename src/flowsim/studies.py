"""Studies: scans that expand into ordinary flow runs, and the table that collects them.

A study of ``config["studies"]`` scans one setting of one or more base runs of
``config["flows"]``:

* ``params.<name>``: an architecture hyperparameter (Glow blocks, MADEMOG mixtures, RQS bins);
* ``training.<name>``: a training setting (``lr``, ``weight_decay``, ...);
* ``train_events``: the number of background training events (``null``: all of them), drawn
  as nested subsets of the training split (see :func:`flowsim.data.splits.nested_subset`);

each value trained with every seed of ``seeds``. Each (base, value, seed) point is a flow run
named ``{study}-{base}-{value}-s{seed}`` with its own train, sample and evaluation jobs; the
study rule reads their histories, C2ST and distance tables into one table per point and a
mean ± standard deviation over seeds per (base, value).

Only names and structure are checked here; the expanded runs go through the same checks as
the runs of ``flows`` (see :func:`flowsim.config.check_config`).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowsim.errors import ConfigError

__all__ = [
    "STUDY_SUMMARY_COLUMNS",
    "TRAIN_EVENTS",
    "Study",
    "StudyPoint",
    "mean_std",
    "parse_studies",
    "plot_positions",
    "study_runs",
    "summarise_points",
    "value_label",
]

#: The scan key of training-set-size studies (also the flow-run key it sets).
TRAIN_EVENTS = "train_events"
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._]*$")

#: Metrics averaged over seeds in the study's summary table.
SUMMARY_METRICS = ("val_nll", "c2st_auc", "hellinger_mean", "copula_chi2_dof_mean", "G_score", "train_seconds")
#: Columns of a study's summary table (one row per base run and value), in order.
STUDY_SUMMARY_COLUMNS = (
    "study", "base", "model", "scan", "value", "x", "n_seeds", "n_train",
    *[f"{metric}_{stat}" for metric in SUMMARY_METRICS for stat in ("mean", "std")],
    "c2st_auc_null", "copula_chi2_dof_baseline",
)  # fmt: skip


@dataclass(frozen=True)
class StudyPoint:
    """One run of a study: ``base`` with the scanned setting at ``value``, trained with ``seed``."""

    run: str
    base: str
    value: Any
    seed: int


@dataclass(frozen=True)
class Study:
    """A scan of setting ``scan`` (e.g. ``params.blocks``) over the points' values and seeds."""

    name: str
    scan: str
    points: tuple[StudyPoint, ...]

    @property
    def runs(self) -> list[str]:
        return [point.run for point in self.points]

    def point_params(self) -> list[dict[str, Any]]:
        """The points as plain values (Snakemake params compare plain values only)."""
        return [{"run": p.run, "base": p.base, "value": p.value, "seed": p.seed} for p in self.points]

    @classmethod
    def from_params(cls, name: str, scan: str, points: Sequence[Mapping[str, Any]]) -> Study:
        """The study of :meth:`point_params`."""
        return cls(name, scan, tuple(StudyPoint(**point) for point in points))


def value_label(value: Any) -> str:
    """How a scanned value appears in run names: ``null`` is ``all``, floats in short form."""
    if value is None:
        return "all"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def parse_studies(config: Mapping[str, Any]) -> dict[str, Study]:
    """The studies of ``config["studies"]`` with their points; errors name the key.

    Raises :class:`ConfigError` for an unknown base run, a scan key of the wrong form, a value
    that cannot name a run, repeated values, or a run name that is taken.
    """
    flows = config.get("flows", {})
    studies: dict[str, Study] = {}
    taken = set(flows)
    for name, section in config.get("studies", {}).items():
        key = f"studies.{name}"
        scan = _scan_key(key, section.get("scan"))
        bases = list(section.get("runs", []))
        for base in bases:
            if base not in flows:
                raise ConfigError(f"{key}.runs", f"{base!r} is not a run of flows; runs: {sorted(flows)}")
        values = list(section.get("values", []))
        labels = [_checked_label(f"{key}.values", value, scan) for value in values]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{key}.values", f"values repeat: {labels}")
        points = []
        for base in bases:
            seeds = section.get("seeds") or [_base_seed(config, base)]
            for value, label in zip(values, labels):
                for seed in seeds:
                    run = f"{name}-{base}-{label}-s{seed}"
                    if run in taken:
                        raise ConfigError(key, f"its run {run!r} is already a run of flows or of another study")
                    taken.add(run)
                    points.append(StudyPoint(run, base, value, int(seed)))
        studies[name] = Study(name, scan, tuple(points))
    return studies


def study_runs(config: Mapping[str, Any], studies: Mapping[str, Study]) -> dict[str, dict[str, Any]]:
    """The flow-run entries of every study point: the base run's entry with the scanned
    setting and the training seed replaced."""
    runs = {}
    for study in studies.values():
        for point in study.points:
            entry = copy.deepcopy(dict(config["flows"][point.base]))
            section, _, setting = study.scan.partition(".")
            if section == TRAIN_EVENTS:
                entry[TRAIN_EVENTS] = point.value
            else:
                entry.setdefault(section, {})[setting] = point.value
            entry.setdefault("training", {})["seed"] = point.seed
            runs[point.run] = entry
    return runs


def _scan_key(key: str, scan: Any) -> str:
    if scan == TRAIN_EVENTS:
        return scan
    section, _, setting = str(scan).partition(".")
    if section not in ("params", "training") or not setting or "." in setting:
        raise ConfigError(
            f"{key}.scan",
            f"expected 'params.<hyperparameter>', 'training.<setting>' or '{TRAIN_EVENTS}', got {scan!r}",
        )
    if scan == "training.seed":
        raise ConfigError(f"{key}.scan", "seeds are scanned with the study's 'seeds' list")
    return scan


def _checked_label(key: str, value: Any, scan: str) -> str:
    if scan == TRAIN_EVENTS and value is not None and not _is_positive_int(value):
        raise ConfigError(key, f"training sizes must be positive integers or null (all), got {value!r}")
    if isinstance(value, (list, dict)):
        raise ConfigError(key, f"a scanned value must be a number, a word or null, got {value!r}")
    label = value_label(value)
    if not _LABEL.match(label):
        raise ConfigError(key, f"{value!r} cannot be part of a run name (letters, digits, '.', '_')")
    return label


def _base_seed(config: Mapping[str, Any], base: str) -> int:
    run_training = config["flows"][base].get("training", {})
    return int(run_training.get("seed", config.get("training", {}).get("seed", 0)))


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plot_positions(study: Study, n_train: Mapping[str, int]) -> dict[str, float]:
    """Where each run sits on the study's x axis.

    Training sizes sit at the number of events actually used (``null`` at the full split);
    numeric values at themselves; anything else at 0, 1, 2, ... in the order of the config.
    """
    if study.scan == TRAIN_EVENTS:
        return {p.run: float(n_train[p.run]) for p in study.points}
    if all(_is_number(p.value) for p in study.points):
        return {p.run: float(p.value) for p in study.points}
    order = list(dict.fromkeys(value_label(p.value) for p in study.points))
    return {p.run: float(order.index(value_label(p.value))) for p in study.points}


def summarise_points(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds of each (base, value) of a points table.

    The standard deviation uses ``n − 1`` (NaN for a single seed): it is the spread of one
    training, the error bar of the study plots.
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["base"], row["value"]), []).append(row)
    table = []
    for (base, value), group in groups.items():
        first = group[0]
        out: dict[str, Any] = {
            "study": first["study"], "base": base, "model": first["model"], "scan": first["scan"],
            "value": value, "x": first["x"], "n_seeds": len(group), "n_train": first["n_train"],
            "c2st_auc_null": first["c2st_auc_null"],
            "copula_chi2_dof_baseline": first["copula_chi2_dof_baseline"],
        }  # fmt: skip
        for metric in SUMMARY_METRICS:
            mean, std = mean_std([float(row[metric]) for row in group])
            out[f"{metric}_mean"], out[f"{metric}_std"] = mean, std
        table.append(out)
    return table


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``n − 1``; NaN for a single value) of ``values``."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, float("nan")
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
