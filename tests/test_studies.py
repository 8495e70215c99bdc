"""Studies: expansion into runs, config errors by key, the mean ± std over seeds, the x axis."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from snakemake.utils import validate

from flowsim.config import check_config
from flowsim.errors import ConfigError
from flowsim.studies import Study, StudyPoint, parse_studies, plot_positions, study_runs, summarise_points
from tests.test_config import ROOT, SCHEMA, default_config


def with_study(**section) -> dict:
    config = default_config()
    config["studies"] = {"scan": {"runs": ["glow"], "scan": "params.blocks", "values": [2, 4], **section}}
    validate(config, SCHEMA)
    return config


def test_a_study_expands_into_one_run_per_base_value_and_seed():
    config = with_study(runs=["glow", "rqs"], seeds=[1, 2, 3])
    study = parse_studies(config)["scan"]
    assert len(study.points) == 2 * 2 * 3
    assert study.points[0] == StudyPoint("scan-glow-2-s1", "glow", 2, 1)
    assert study.points[-1] == StudyPoint("scan-rqs-4-s3", "rqs", 4, 3)
    assert len(set(study.runs)) == len(study.runs)
    check_config(config)


def test_each_run_is_its_base_with_the_scanned_setting_and_seed():
    config = with_study(seeds=[7])
    before = copy.deepcopy(config["flows"])
    runs = study_runs(config, parse_studies(config))
    assert runs["scan-glow-4-s7"]["params"] == {**config["flows"]["glow"]["params"], "blocks": 4}
    assert runs["scan-glow-4-s7"]["training"] == {"seed": 7}
    assert runs["scan-glow-4-s7"]["model"] == "glow"
    assert config["flows"] == before  # the base runs are left alone


def test_without_seeds_the_base_runs_seed_is_used():
    config = with_study()
    assert [p.run for p in parse_studies(config)["scan"].points] == ["scan-glow-2-s1", "scan-glow-4-s1"]


def test_training_size_and_training_setting_scans():
    config = default_config()
    config["studies"] = {
        "size": {"runs": ["maf"], "scan": "train_events", "values": [1000, None]},
        "rate": {"runs": ["maf"], "scan": "training.lr", "values": [1.0e-3, 3.0e-4]},
    }
    validate(config, SCHEMA)
    studies = parse_studies(config)
    runs = study_runs(config, studies)
    assert runs["size-maf-1000-s1"]["train_events"] == 1000
    assert runs["size-maf-all-s1"]["train_events"] is None
    assert runs["rate-maf-0.0003-s1"]["training"] == {"lr": 3.0e-4, "seed": 1}
    check_config(config)


def test_the_studies_file_is_a_valid_overlay_of_the_default_config():
    config = default_config()
    config.update(yaml.safe_load((ROOT / "config" / "studies.yaml").read_text()))
    validate(config, SCHEMA)
    check_config(config)
    assert set(parse_studies(config)) >= {"glow_blocks", "mademog_mixtures", "rqs_bins"}


@pytest.mark.parametrize(
    "section, message",
    [
        ({"runs": ["nope"]}, r"'studies.scan.runs': 'nope' is not a run of flows"),
        ({"scan": "blocks"}, r"'studies.scan.scan': expected 'params.<hyperparameter>'"),
        ({"scan": "training.seed"}, r"'studies.scan.scan': seeds are scanned with the study's 'seeds'"),
        ({"values": [2, 2.0]}, r"'studies.scan.values': values repeat"),
        ({"values": ["a b"]}, r"'studies.scan.values': 'a b' cannot be part of a run name"),
        ({"scan": "train_events", "values": [0]}, r"training sizes must be positive integers or null"),
        ({"scan": "train_events", "values": [1.5e4]}, r"training sizes must be positive integers"),
        (
            {"scan": "params.mixtures"},
            r"'studies.scan': .*'flows.scan-glow-2-s1.params.mixtures': not a hyperparameter of glow",
        ),
        ({"values": [0]}, r"'studies.scan': .*'flows.scan-glow-0-s1.params'"),
        ({"scan": "training.lr", "values": [0.0]}, r"'studies.scan': .*'flows.scan-glow-0-s1.training'"),
    ],
)  # fmt: skip
def test_bad_studies_are_refused_by_key(section, message):
    with pytest.raises(ConfigError, match=message):
        check_config(with_study(**section))


def test_a_run_name_that_is_taken_is_refused():
    config = with_study(values=[2])
    config["flows"]["scan-glow-2-s1"] = config["flows"]["glow"]
    with pytest.raises(ConfigError, match="'studies.scan': its run 'scan-glow-2-s1' is already a run"):
        parse_studies(config)


def test_the_schema_needs_runs_scan_and_values():
    config = default_config()
    config["studies"] = {"scan": {"runs": ["glow"], "values": [1]}}
    with pytest.raises(Exception, match="'scan' is a required property"):
        validate(config, SCHEMA)


def points_table(values: dict[str, list[float]]) -> list[dict]:
    rows = []
    for value, results in values.items():
        for seed, nll in enumerate(results):
            rows.append({
                "study": "s", "base": "glow", "model": "glow", "scan": "params.blocks", "value": value,
                "x": float(value), "seed": seed, "n_train": 100, "c2st_auc_null": 0.5,
                "copula_chi2_dof_baseline": 1.0, "val_nll": nll,
                "c2st_auc": 0.5 + nll / 100, "hellinger_mean": nll / 10, "copula_chi2_dof_mean": 1 + nll,
                "train_seconds": 10 * nll, "G_score": 2 * nll,
            })  # fmt: skip
    return rows


def test_summary_is_the_mean_and_sample_std_over_seeds():
    results = {"2": [1.0, 1.5, 2.5], "4": [0.5]}
    summary = summarise_points(points_table(results))
    assert [row["value"] for row in summary] == ["2", "4"]
    assert [row["n_seeds"] for row in summary] == [3, 1]
    assert summary[0]["val_nll_mean"] == pytest.approx(np.mean(results["2"]))
    assert summary[0]["val_nll_std"] == pytest.approx(np.std(results["2"], ddof=1))
    assert summary[0]["c2st_auc_std"] == pytest.approx(np.std(results["2"], ddof=1) / 100)
    assert summary[0]["copula_chi2_dof_mean_mean"] == pytest.approx(1 + np.mean(results["2"]))
    assert summary[0]["G_score_std"] == pytest.approx(2 * np.std(results["2"], ddof=1))
    assert summary[1]["val_nll_mean"] == 0.5
    assert np.isnan(summary[1]["val_nll_std"])  # one seed: no spread to show


def test_plot_positions_follow_the_kind_of_scan():
    def study(scan, values):
        return Study("s", scan, tuple(StudyPoint(f"r{i}", "glow", v, 1) for i, v in enumerate(values)))

    sizes = study("train_events", [1000, None])
    assert plot_positions(sizes, {"r0": 1000, "r1": 52000}) == {"r0": 1000.0, "r1": 52000.0}
    assert plot_positions(study("params.bins", [4, 8]), {}) == {"r0": 4.0, "r1": 8.0}
    words = study("params.permutation", ["reverse", "random", "reverse"])
    assert plot_positions(words, {}) == {"r0": 0.0, "r1": 1.0, "r2": 0.0}
