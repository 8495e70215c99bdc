"""Checks of a configuration that a JSON schema cannot express; each error names its key.

The schema (``workflow/schemas/config.schema.yaml``) fixes types, ranges and defaults; the
checks here relate keys to each other and to the file system.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from flowsim.errors import ConfigError

__all__ = ["check_config", "features_of", "merge_config"]


def features_of(config: Mapping[str, Any]) -> list[str]:
    """The names of the configuration's ``features`` (entries may be mappings with a ``name``)."""
    from flowsim.data.ntuple import feature_names

    return feature_names(config["features"])


def merge_config(config: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` merged over ``config`` as Snakemake merges a later ``--configfile``: mappings
    key by key, recursively; any other value replaced. Neither argument is changed."""
    merged = copy.deepcopy(dict(config))
    _merge_into(merged, overlay)
    return merged


def _merge_into(target: MutableMapping[str, Any], overlay: Mapping[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), MutableMapping):
            _merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def check_config(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first cross-key inconsistency found."""
    _check_data(config)
    _check_features(config)
    _check_symmetry(config)
    _check_flows(config)
    _check_studies(config)
    _check_analysis(config)


def _check_symmetry(config: Mapping[str, Any]) -> None:
    """A symmetry may only flip features the events have."""
    for name in config.get("symmetry", {}).get("flip_signs", []):
        if name not in features_of(config):
            raise ConfigError(
                "symmetry.flip_signs",
                f"{name!r} is not among the features {features_of(config)}; list features only",
            )


def _check_studies(config: Mapping[str, Any]) -> None:
    """Each study must expand into runs that pass the checks of ordinary runs."""
    from flowsim.studies import parse_studies, study_runs

    studies = parse_studies(config)
    for name, study in studies.items():
        runs = study_runs(config, {name: study})
        try:
            _check_flows({**config, "flows": runs})
        except ConfigError as exc:
            raise ConfigError(f"studies.{name}", f"{exc}") from None


def _check_analysis(config: Mapping[str, Any]) -> None:
    """The analysis settings must be consistent and fit only observables the events have."""
    from flowsim.analysis.config import SCORE, AnalysisConfig, alpha_label
    from flowsim.analysis.signal_classifier import ClassifierSettings

    section = config.get("analysis", {})
    analysis = AnalysisConfig.from_mapping(section)
    for name in analysis.observables:
        if name != SCORE and name not in features_of(config):
            raise ConfigError(
                f"analysis.observables.{name}",
                f"not a feature of the events; use '{SCORE}' or one of {features_of(config)}",
            )
    # alphas name files (lumi_scan_score_alpha0.01.tsv): each must print as itself, once
    labels = [alpha_label(alpha) for alpha in analysis.alphas]
    for alpha, label in zip(analysis.alphas, labels):
        if float(label) != alpha:
            raise ConfigError("analysis.alphas", f"{alpha!r} needs more than 6 significant digits")
    if len(set(labels)) != len(labels):
        raise ConfigError("analysis.alphas", f"values repeat: {labels}")
    ClassifierSettings.from_mapping(section.get("classifier", {}))


def _check_flows(config: Mapping[str, Any]) -> None:
    """Each run's architecture must build: known hyperparameters with valid values, valid
    training settings and training size."""
    from flowsim.conditioning import build_run_flow, parse_condition
    from flowsim.flows.peers import MissingPackageError
    from flowsim.flows.registry import accepted_params
    from flowsim.model_files import size_problem
    from flowsim.runs import run_spec

    built: set[str] = set()  # studies repeat architectures: build each one once
    for run, entry in config.get("flows", {}).items():
        run_spec(config, run)  # training settings
        valid = accepted_params(entry["model"])
        for key in entry.get("params", {}):
            if key not in valid:
                raise ConfigError(
                    f"flows.{run}.params.{key}",
                    f"not a hyperparameter of {entry['model']}; valid: {', '.join(valid)}",
                )
        problem = size_problem(entry.get("params", {}))
        if problem is not None:  # load_flow would refuse the model file
            raise ConfigError(f"flows.{run}.params", f"{problem}, beyond what a model file may hold")
        key = json.dumps([entry["model"], entry.get("params", {}), entry.get("condition")], sort_keys=True)
        if key in built:
            continue
        condition = parse_condition(entry.get("condition"), key=f"flows.{run}.condition", features=features_of(config))
        if condition is not None and not condition.by_label:
            _check_marginal(run, condition)
        try:
            build_run_flow(entry["model"], _shrunk(entry.get("params", {})), features_of(config), condition)
        except MissingPackageError as exc:
            raise ConfigError(f"flows.{run}.model", f"{entry['model']}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"flows.{run}.params", str(exc)) from None
        built.add(key)


def _check_marginal(run: str, condition: Any) -> None:
    """A feature-conditioned run's marginal model must be a flowsim family that builds on one feature."""
    from flowsim.flows.registry import FLOWS, PEERS, build_flow

    key = f"flows.{run}.condition.marginal"
    model = condition.marginal["model"]
    families = [m for m in FLOWS if m not in PEERS]
    if model not in families:
        raise ConfigError(f"{key}.model", f"expected a flowsim family of {families}, got {model!r}")
    try:
        build_flow(model, 1, **_shrunk(condition.marginal["params"]))
    except ValueError as exc:
        raise ConfigError(f"{key}.params", str(exc)) from None


# Building a paper-sized flow takes seconds; a narrower copy checks every value just as well.
_SIZE_CAPS = {"hidden": 32, "residual_blocks": 2, "blocks": 2}


def _shrunk(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with valid large sizes capped (invalid values are kept, so they still fail)."""
    out = dict(params)
    for key, cap in _SIZE_CAPS.items():
        value = out.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            out[key] = cap
    return out


def _check_features(config: Mapping[str, Any]) -> None:
    """Feature names must be unique and not the splits' own branches; the HIGGS sources take
    HIGGS columns only; the ntuple source's expressions must parse."""
    from flowsim.data.higgs import FEATURE_COLUMNS, LABEL
    from flowsim.data.ntuple import Expression, NtupleError
    from flowsim.io import WEIGHT

    names = features_of(config)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError("features", f"listed more than once: {repeated}")
    for i, entry in enumerate(config["features"]):
        name = names[i]
        if name in (LABEL, WEIGHT):
            raise ConfigError(
                f"features[{i}]", f"{name!r} is the name of the split files' own branch; rename the feature"
            )
        if config["data"]["source"] != "root":
            if not isinstance(entry, str) or entry not in FEATURE_COLUMNS:
                raise ConfigError(
                    f"features[{i}]",
                    f"{entry!r}: the HIGGS sources have the columns {list(FEATURE_COLUMNS)}; "
                    "features defined by expressions need data.source root",
                )
        elif not isinstance(entry, str):
            try:
                Expression(str(entry.get("expression") or name), key=f"features[{i}].expression")
            except NtupleError as exc:
                raise ConfigError(exc.where, exc.problem) from None


def _check_ntuples(root: Mapping[str, Any]) -> None:
    """Each class names files that exist, and every expression of ``data.root`` parses."""
    from flowsim.data.ntuple import Expression, NtupleError, expand_files

    for cls in ("background", "signal"):
        key = f"data.root.{cls}"
        entry = root.get(cls)
        if not entry:
            raise ConfigError(key, "required when data.source is 'root': {files: [...], tree: ..., weight: ...}")
        try:
            expand_files(entry["files"], key=f"{key}.files")
            if entry.get("weight"):
                Expression(entry["weight"], key=f"{key}.weight")
        except NtupleError as exc:
            raise ConfigError(exc.where, exc.problem) from None
    if root.get("preselection"):
        try:
            Expression(root["preselection"], key="data.root.preselection")
        except NtupleError as exc:
            raise ConfigError(exc.where, exc.problem) from None


def _check_data(config: Mapping[str, Any]) -> None:
    data = config["data"]
    if data["source"] == "root":
        _check_ntuples(data.get("root", {}))
        if data.get("max_rows") is not None:
            raise ConfigError("data.max_rows", "reads the first rows of a HIGGS file; for ntuples use data.max_events")
    if data["source"] == "path":
        path = data.get("path")
        if not path:
            raise ConfigError("data.path", "required when data.source is 'path'")
        if not Path(path).is_file():
            raise ConfigError("data.path", f"{path} is not a file")
        if not (str(path).endswith(".csv") or str(path).endswith(".csv.gz")):
            raise ConfigError("data.path", f"{path} must end in .csv or .csv.gz")
