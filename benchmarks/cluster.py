"""Benchmark: the tiny workflow locally and through a real Slurm, and Slurm's overhead per job.

Needs a running Slurm whose jobs run on this machine (``tests/slurm/localhost-cluster.sh start``).
Runs ``tests/configs/tiny.yaml`` twice from scratch, once with ``--cores 2`` and once with
``--profile workflow/profiles/slurm`` (polling with squeue every 3 s), and prints the wall times
and, averaged over the Slurm jobs: the wait in the queue (SubmitTime..StartTime: the one-node
cluster runs one 2-thread job at a time), the job's time on the node (StartTime..EndTime) minus
its own run time (Snakemake's ``benchmark:`` files): the start-up cost of a cluster job (a fresh
Snakemake, srun), and the extra wall time per job over the local run.

    python benchmarks/cluster.py
"""

from __future__ import annotations

import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
FAST = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--seconds-between-status-checks", "3"]  # fmt: skip


def run(workdir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
           str(workdir), "--cores", "2", *args]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "CONDOR_CONFIG": "/dev/null", **(env or {})})  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"snakemake failed:\n{done.stderr[-3000:]}")
    return wall, done.stdout + done.stderr


def slurm_times(job_id: str) -> tuple[float, float]:
    """(seconds queued, seconds on the node) of a finished job, from ``scontrol``."""
    text = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    fields = dict(re.findall(r"(\w+)=(\S*)", text))
    stamp = lambda key: datetime.fromisoformat(fields[key])  # noqa: E731
    return (
        (stamp("StartTime") - stamp("SubmitTime")).total_seconds(),
        (stamp("EndTime") - stamp("StartTime")).total_seconds(),
    )


def remote_runtime(workdir: Path) -> float:
    """Summed run time of the jobs that went to Slurm (every benchmark file but the summary's)."""
    files = [f for f in (workdir / "results/benchmarks").rglob("*.tsv") if f.name != "summary.tsv"]
    return sum(float(next(csv.DictReader(f.open(), delimiter="\t"))["s"]) for f in files)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        local_dir, slurm_dir = Path(tmp, "local"), Path(tmp, "slurm")
        local_wall, _ = run(local_dir, "--replace-workflow-config", "--configfile", str(TINY))
        slurm_wall, log = run(slurm_dir, "--profile", str(ROOT / "workflow/profiles/slurm"),
                              *FAST, env={"FLOWSIM_CONFIG": str(TINY)})  # fmt: skip
        ids = re.findall(r"submitted with SLURM jobid (\d+)", log)
        times = [slurm_times(i) for i in ids]
        queued = statistics.mean(t[0] for t in times)
        startup = (sum(t[1] for t in times) - remote_runtime(slurm_dir)) / len(ids)
    print("| run | jobs through sbatch | wall [s] |")
    print("|---|---|---|")
    print(f"| local, --cores 2 | 0 | {local_wall:.0f} |")
    print(f"| Slurm profile (localhost cluster) | {len(ids)} | {slurm_wall:.0f} |")
    print()
    print(f"per Slurm job, mean: {queued:.1f} s queued, {startup:.1f} s start-up on the node "
          f"beyond the job's own run time, {(slurm_wall - local_wall) / len(ids):.1f} s more "
          "wall time than locally")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
