"""The fidelity protocol as data: config/fidelity.yaml is a valid overlay whose study holds every
run and zuko's peers, and benchmarks/fidelity.py tabulates a study's outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from flowsim import io
from flowsim.config import check_config, merge_config
from flowsim.flows.registry import PEERS
from flowsim.settings import parse_settings
from flowsim.studies import STUDY_SUMMARY_COLUMNS, summarise_points
from tests.benchmark_scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_the_overlay_runs_every_default_run_the_peers_and_cfm_three_times(tmp_path):
    pytest.importorskip("zuko")
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    overlay = yaml.safe_load((ROOT / "config" / "fidelity.yaml").read_text())
    csv = tmp_path / "higgs.csv"
    csv.write_text("".join(f"{i % 2}" + ",0.5" * 28 + "\n" for i in range(200)))
    config = merge_config(base, {**overlay, "data": {**overlay["data"], "path": str(csv)}})
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    check_config(config)
    study = parse_settings(config).studies["fidelity"]
    bases = {point.base for point in study.points}
    assert bases == set(base["flows"]) | set(PEERS) | {"cfm"}
    assert {point.seed for point in study.points} == {1, 2, 3} and len(study.points) == 3 * len(bases)


def test_the_overlay_without_a_path_names_the_key():
    from flowsim.errors import ConfigError

    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config = merge_config(base, yaml.safe_load((ROOT / "config" / "fidelity.yaml").read_text()))
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    with pytest.raises(ConfigError, match="'data.path': required when data.source is 'path'"):
        check_config(config)


def _point(base: str, model: str, seed: int, auc: float, us: float) -> dict:
    return {
        "study": "fidelity", "base": base, "model": model, "scan": "train_events", "value": "all",
        "x": 1, "seed": seed, "n_train": 100, "val_nll": 10.0 + seed, "c2st_auc": auc,
        "hellinger_mean": 0.01, "copula_chi2_dof_mean": 1.5, "train_seconds": 60.0,
        "c2st_auc_null": 0.501, "copula_chi2_dof_baseline": 1.02, "us_per_event": us, "G_score": 1.5,
    }  # fmt: skip


def test_the_table_shows_mean_and_std_over_seeds(tmp_path, capsys):
    points = [_point("rqs", "rqs", s, auc, us) for s, auc, us in ((1, 0.52, 10.0), (2, 0.54, 14.0))]
    points += [_point("zuko_nsf", "zuko_nsf", 1, 0.56, 30.0)]
    io.write_tsv(tmp_path / "summary.tsv", summarise_points(points), list(STUDY_SUMMARY_COLUMNS))
    io.write_tsv(tmp_path / "points.tsv", points, list(points[0]))
    assert load_benchmark("fidelity").main(["--study", str(tmp_path), "--markdown"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "null (MC test_a vs test_b): C2ST AUC 0.5010, copula χ²/dof 1.02"
    rqs = next(line for line in out if line.startswith("| rqs |"))
    # by hand: AUC mean 0.53, sample std 0.01414; µs mean 12, std 2.828; val NLL 11.5 ± 0.707
    assert "| 0.5300 ± 0.0141 |" in rqs and "| 12.0 ± 2.8 |" in rqs and "| 11.500 ± 0.707 |" in rqs
    peer = next(line for line in out if line.startswith("| zuko_nsf (peer) |"))
    assert "| 0.5600 |" in peer  # one seed: no spread to show


def test_the_table_without_a_study_says_how_to_make_one(tmp_path, capsys):
    assert load_benchmark("fidelity").main(["--study", str(tmp_path / "none")]) == 1
    assert "--configfile config/fidelity.yaml" in capsys.readouterr().err


def test_the_gpu_overlay_is_valid_and_adds_one_run():
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config = merge_config(base, yaml.safe_load((ROOT / "config" / "gpu.yaml").read_text()))
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    check_config(config)
    runs = parse_settings(config).runs
    assert set(runs) - set(base["flows"]) == {"rqs_gpu_average"}
    training = runs["rqs_gpu_average"].training_params()["training"]
    assert (training["batch_size"], training["average_epochs"]) == (2048, 3.0)
