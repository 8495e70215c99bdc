"""The data stage run by Snakemake: files, entry counts, manifest, scaler, logs, benchmarks."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest
import yaml

from flowsim import io
from flowsim.data.higgs import COLUMNS
from flowsim.data.scaling import load_scaler
from tests.higgs_files import make_rows, write_csv
from tests.workflow.runner import ROOT, TINY_CONFIG, snakemake

SPLITS = ["train", "val", "test_a", "test_b"]


def test_splits_are_root_files_with_all_columns(tiny_run):
    manifest = io.read_json(tiny_run / "results/data/manifest.json")
    total = 0
    for cls, label in (("bkg", 0), ("sig", 1)):
        for split in SPLITS:
            path = tiny_run / f"results/data/{cls}_{split}.root"
            events = io.read_events(path)
            assert list(events) == list(COLUMNS)
            assert all(a.dtype == np.float32 for a in events.values())
            assert np.all(events["label"] == label)
            assert len(events["label"]) == manifest["counts"][cls][split]
            total += len(events["label"])
    assert total == manifest["rows_read"] == 6000


def test_scaler_maps_training_background_to_standard_normal(tiny_run):
    scaler = load_scaler(tiny_run / "results/data/scaler.npz")
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert scaler.method == "gauss_rank" and list(scaler.features) == config["features"]
    x = io.read_matrix(tiny_run / "results/data/bkg_train.root", scaler.features)
    # odd features (the η symmetry of tests/configs/tiny.yaml) are N(0, 1) on the sample and
    # its mirror image; on the sample alone their mean is off by its asymmetry, ~1/√n
    signs = np.where([f in scaler.odd_features for f in scaler.features], -1.0, 1.0)
    z = scaler.transform(np.concatenate([x, x * signs]))
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=0.02)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=0.05)


def test_every_job_left_a_log_and_a_benchmark(tiny_run):
    for rule in ("make_toy_higgs", "split_higgs", "fit_scaler"):
        assert (tiny_run / f"results/logs/{rule}.log").stat().st_size > 0
        assert (tiny_run / f"results/benchmarks/{rule}.tsv").exists()


def test_same_config_is_complete_and_reruns_nothing(tiny_run):
    result = snakemake(tiny_run, "--configfile", str(TINY_CONFIG), "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_path_source_with_a_bad_file_fails_and_leaves_no_results(tmp_path):
    rows = [",".join(f"{v:.18e}" for v in r) for r in make_rows(500, seed=4)]
    rows[41] = rows[41].replace(",", ",oops", 1)
    source = write_csv(tmp_path / "mine.csv.gz", rows)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "path", "path": str(source)}}))
    result = snakemake(tmp_path, "--configfile", str(config), check=False)
    assert result.returncode != 0
    log = (tmp_path / "results/logs/split_higgs.log").read_text()
    assert "mine.csv.gz, line 42: non-numeric value 'oops" in log
    assert not list((tmp_path / "results").glob("data/*"))


def test_path_source_reads_a_local_file(tmp_path):
    source = write_csv(tmp_path / "mine.csv", make_rows(2000, seed=5))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "path", "path": str(source)}}))
    snakemake(tmp_path, "results/data/manifest.json", "--configfile", str(config))
    manifest = io.read_json(tmp_path / "results/data/manifest.json")
    assert manifest["rows_read"] == 2000 and manifest["source"] == str(source)
    assert not (tmp_path / "resources").exists()  # nothing generated or downloaded


def test_config_error_names_the_key(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"splits": {"seeds": 3}}))
    result = snakemake(tmp_path, "--configfile", str(config), "-n", check=False)
    assert result.returncode != 0
    assert "'seeds' was unexpected" in result.stdout + result.stderr


@pytest.mark.parametrize("source", ["toy", "uci"])
def test_each_source_plans_its_rule(tmp_path, source):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": source}}))
    out = snakemake(tmp_path, "--configfile", str(config), "-n").stdout
    rule = {"toy": "make_toy_higgs", "uci": "fetch_higgs"}[source]
    assert f"rule {rule}:" in out or f"localrule {rule}:" in out


def _uci_config(tmp_path, **data):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "uci", **data}}))
    return config


def test_a_higgs_file_already_in_resources_is_held_to_the_checksum(tmp_path):
    # a HIGGS.csv.gz copied in by hand (or kept by --rerun-triggers mtime) is used only if it
    # is the file data.sha256 names
    (tmp_path / "resources/higgs").mkdir(parents=True)
    source = write_csv(tmp_path / "resources/higgs/HIGGS.csv.gz", make_rows(1000, seed=6))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    config = _uci_config(tmp_path, sha256="f" * 64)
    result = snakemake(tmp_path, "results/data/manifest.json", "--configfile", str(config), check=False)
    assert result.returncode != 0
    log = (tmp_path / "results/logs/split_higgs.log").read_text()
    assert f"its sha256 is {digest}, but data.sha256 expects {'f' * 64}" in log
    assert not list((tmp_path / "results").glob("data/*"))
    snakemake(tmp_path, "results/data/manifest.json", "--configfile", str(_uci_config(tmp_path, sha256=digest)))
    assert io.read_json(tmp_path / "results/data/manifest.json")["source_sha256"] == digest


def test_offline_download_says_how_to_use_a_local_copy(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/HIGGS.csv.gz"  # nobody listens there
    config = _uci_config(tmp_path, url=url)
    result = snakemake(tmp_path, "results/data/manifest.json", "--configfile", str(config), check=False)
    assert result.returncode != 0
    log = (tmp_path / "results/logs/fetch_higgs.log").read_text()
    assert f"cannot download {url}" in log and "data: {source: path, path:" in log
    assert "URLError" not in log.splitlines()[-1]
    assert not (tmp_path / "resources/higgs/HIGGS.csv.gz").exists()
