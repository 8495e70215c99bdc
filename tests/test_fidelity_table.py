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


def test_the_overlay_runs_every_default_run_the_peers_and_the_new_capabilities_three_times(tmp_path):
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
    assert bases == set(base["flows"]) | set(PEERS) | {"cfm", "rqs_discflow", "rqs_label", "rqs_m_jjj"}
    flows = config["flows"]
    assert flows["rqs_discflow"]["feedback"]["rounds"] == 1
    assert flows["rqs_label"]["condition"] == "label" and flows["rqs_m_jjj"]["condition"] == "m_jjj"
    for run in ("rqs_discflow", "rqs_label", "rqs_m_jjj"):  # the default rqs, plus the capability
        assert (flows[run]["params"], flows[run]["training"]) == (flows["rqs"]["params"], flows["rqs"]["training"])
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


def _tree_workdir(tmp_path: Path, shifts: dict[str, float]) -> Path:
    """A workflow directory as benchmarks/tree_c2st.py reads it: MC test_a/test_b of a 2-D
    Gaussian, and per run a generated sample shifted by ``shifts[run]``, its model file and tables."""
    import numpy as np
    import torch

    from flowsim.data.scaling import fit_scaler
    from flowsim.flows.persist import save_flow
    from flowsim.flows.registry import build_flow

    rng = np.random.default_rng(0)
    features = ["a", "b"]
    data = tmp_path / "results" / "data"
    data.mkdir(parents=True)
    for split in ("bkg_test_a", "bkg_test_b"):
        io.write_events(data / f"{split}.root", dict(zip(features, rng.normal(size=(1000, 2)).T)))
    fit_scaler(rng.normal(size=(500, 2)), features, "gauss_rank").save(data / "scaler.npz")
    for k, (run, shift) in enumerate(shifts.items()):
        folder = tmp_path / "results" / "flows" / run
        folder.mkdir(parents=True)
        io.write_events(folder / "generated.root", dict(zip(features, (rng.normal(size=(1000, 2)) + shift).T)))
        torch.manual_seed(k)
        save_flow(folder / "model.pt", build_flow("maf", 2, blocks=1, hidden=4), model="maf",
                  params={"blocks": 1, "hidden": 4}, features=features, metadata={"val_nll": 2.0 + k})  # fmt: skip
        io.write_tsv(folder / "sampling.tsv", [{"us_per_event": 10.0 * (k + 1)}], ["us_per_event"])
    return tmp_path


def test_tree_c2st_tells_a_shifted_sample_from_the_mc_and_summarises_seeds(tmp_path, capsys):
    workdir = _tree_workdir(tmp_path, {"good-s1": 0.0, "good-s2": 0.0, "shifted": 0.5})
    tree = load_benchmark("tree_c2st")
    assert tree.main(["good-s1", "good-s2", "shifted", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:] if line.strip()}
    auc = {run: float(rows[run][1]) for run in ("good-s1", "good-s2", "shifted")}
    assert abs(auc["good-s1"] - 0.5) < 0.04 and abs(auc["good-s2"] - 0.5) < 0.04
    assert auc["shifted"] > 0.6  # a 0.5σ shift in two features: the best AUC is Φ(0.5) = 0.69
    # cells: run, AUC, ±, error, MLP AUC, val NLL, train s, µs/event
    assert float(rows["good-s1"][5]) == 2.0 and float(rows["shifted"][5]) == 4.0  # val NLL from the model files
    assert float(rows["shifted"][7]) == 30.0
    assert "null (MC test_a vs test_b): tree C2ST AUC 0.4" in out or "tree C2ST AUC 0.5" in out
    assert "good (2 seeds)" in out and "shifted (" not in out


def test_tree_c2st_names_the_runs_it_cannot_find(tmp_path, capsys):
    workdir = _tree_workdir(tmp_path, {"r": 0.0})
    assert load_benchmark("tree_c2st").main(["r", "missing", "--workdir", str(workdir)]) == 1
    assert "['missing']" in capsys.readouterr().err
