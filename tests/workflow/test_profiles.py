"""The execution profiles: each dry-runs the paper configuration and resolves honest resources.

No Slurm or HTCondor is needed for a dry run (the real Slurm run is in ``test_slurm.py``); the
resolved ``resources:`` of every job are what the executor would submit.
"""

from __future__ import annotations

import re

import pytest
import yaml

from flowsim.runs import training_settings
from tests.workflow.runner import ROOT, TINY_CONFIG, snakemake

PAPER = ROOT / "config" / "paper.yaml"
PROFILES = ROOT / "workflow" / "profiles"
GPU_RULES = {"train_flow", "sample_flow", "fill_templates", "train_classifier", "score_and_cut", "reweight"}


def _resources_by_rule(output: str) -> dict[str, list[dict[str, str]]]:
    """Rule name -> the resolved resources of each of its jobs, from a dry run's job listing."""
    jobs: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r"\n(?=\[.*\]\n(?:local)?rule )", output):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and resources:
            pairs = dict(item.split("=", 1) for item in resources.group(1).split(", "))
            jobs.setdefault(rule.group(1), []).append(pairs)
    return jobs


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory) -> dict[str, dict[str, list[dict[str, str]]]]:
    """Profile name -> resolved resources of the paper configuration's jobs (optional rules on)."""
    runs = {}
    optional_on = tmp_path_factory.mktemp("overlay") / "reweighting.yaml"
    optional_on.write_text("reweighting: {enabled: true}\n")
    for profile in ("local", "slurm", "htcondor"):
        workdir = tmp_path_factory.mktemp(profile)
        result = snakemake(
            workdir, "--configfile", str(PAPER), str(optional_on), "--profile", str(PROFILES / profile), "-n"
        )
        runs[profile] = _resources_by_rule(result.stdout + result.stderr)
    return runs


def test_every_profile_is_valid_yaml_with_its_executor():
    executors = {"local": None, "slurm": "slurm", "htcondor": "htcondor"}
    for name, executor in executors.items():
        profile = yaml.safe_load((PROFILES / name / "config.yaml").read_text())
        assert profile.get("executor") == executor


@pytest.mark.parametrize("profile", ["local", "slurm", "htcondor"])
def test_every_job_has_runtime_and_memory_and_gpu_jobs_ask_for_one(dry_runs, profile):
    jobs = dry_runs[profile]
    assert GPU_RULES <= set(jobs) and {"lumi_scan", "eval_weighted"} <= set(jobs)
    for rule, resources in jobs.items():
        if rule == "all":  # a local rule without work
            continue
        for res in resources:
            assert "runtime" in res and "mem_mb" in res, (rule, res)
            # rules that may use a GPU declare gpu=0 when their device is not CUDA
            assert res.get("gpu", "0") == ("1" if rule in GPU_RULES else "0"), (rule, res)


def test_local_profile_limits_gpu_jobs_by_the_gpu_resource():
    profile = yaml.safe_load((PROFILES / "local" / "config.yaml").read_text())
    assert "gpu=1" in profile["resources"]


def test_htcondor_profile_states_the_submit_resources_the_plugin_reads(dry_runs):
    for rule, resources in dry_runs["htcondor"].items():
        if rule == "all":
            continue
        for res in resources:
            assert re.fullmatch(r"\d+GB", res["request_memory"]), (rule, res)
            assert re.fullmatch(r"\d+GB", res["request_disk"]), (rule, res)
            assert res.get("request_gpus") == ("1" if rule in GPU_RULES else None), (rule, res)


def test_cpu_runs_ask_for_no_gpu(tmp_path):
    """The default configuration (device auto) must not hold GPUs it may not use."""
    result = snakemake(tmp_path, "--profile", str(PROFILES / "slurm"), "-n")
    jobs = _resources_by_rule(result.stdout + result.stderr)
    assert "train_flow" in jobs
    assert all(res.get("gpu", "0") == "0" for resources in jobs.values() for res in resources)


def test_c2st_and_reweight_jobs_ask_for_a_gpu_when_their_section_says_cuda(tmp_path):
    overlay = tmp_path / "sections-cuda.yaml"
    overlay.write_text("c2st: {training: {device: cuda}}\nreweighting: {enabled: true, training: {device: cuda}}\n")
    result = snakemake(tmp_path, "--configfile", str(TINY_CONFIG), str(overlay), "-n")
    jobs = _resources_by_rule(result.stdout + result.stderr)
    assert {"c2st", "c2st_null", "reweight", "train_flow"} <= set(jobs)
    assert all(res.get("gpu") == "1" for rule in ("c2st", "c2st_null", "reweight") for res in jobs[rule])
    assert all(res.get("gpu", "0") == "0" for res in jobs["train_flow"])  # tiny.yaml trains on the CPU


def _job_lines(output: str, rule: str, field: str) -> dict[str, str]:
    """Run wildcard -> the value of one ``field:`` line of each dry-run job of ``rule``."""
    values = {}
    for block in re.split(r"\n(?=\[.*\]\n(?:local)?rule )", output):
        if re.search(rf"^(?:local)?rule {rule}:", block, re.M):
            run = re.search(r"^\s+wildcards: run=(\w+)", block, re.M).group(1)
            line = re.search(rf"^\s+{field}: (.*)$", block, re.M)
            values[run] = line.group(1) if line else None
    return values


def test_trainings_start_longest_first_and_take_the_threads_they_are_given(tmp_path):
    """On few cores the longest planned training must not start last; --set-threads reaches it."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    result = snakemake(tmp_path, "-n", "--cores", "4", "--set-threads", "train_flow=3")
    output = result.stdout + result.stderr
    priorities = {run: int(p) for run, p in _job_lines(output, "train_flow", "priority").items()}
    assert set(priorities) == set(config["flows"])
    for run, priority in priorities.items():
        assert priority == training_settings(config, run)["max_epochs"], run
    assert max(priorities, key=priorities.get) == "rqs"
    assert set(_job_lines(output, "train_flow", "threads").values()) == {"3"}
    assert set(_job_lines(output, "eval_distances", "threads").values()) == {None}  # one thread
