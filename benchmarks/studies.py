"""Benchmark: how long `snakemake -n` takes to build the DAG of a large study.

Times, in an empty directory (nothing built, so every job is in the DAG), the median of
``--repeat`` runs of:

* ``snakemake --version``: the start-up floor (interpreter, Snakemake and its executor plugins);
* ``snakemake -n`` with the default config (6 runs);
* ``snakemake -n`` with the ``training_size`` study of ``config/studies.yaml`` added: 5 models x
  5 training sizes x 3 seeds = 75 more runs;
* ``snakemake -n`` with every study of ``config/studies.yaml`` (117 more runs).

The goal is < 10 s for the 5 x 5 x 3 study, start-up included.

    python benchmarks/studies.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "config" / "studies.yaml"


def timed(args: list[str], workdir: Path) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CONDOR_CONFIG": "/dev/null"})
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return wall, done.stdout + done.stderr


def n_jobs(output: str) -> int:
    match = re.search(r"^total\s+(\d+)$", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        size_only = workdir / "training_size.yaml"
        studies = yaml.safe_load(STUDIES.read_text())["studies"]
        size_only.write_text(yaml.safe_dump({"studies": {"training_size": studies["training_size"]}}))
        cases = {
            "snakemake --version (start-up)": ["--version"],
            "-n, default config": ["-n"],
            "-n, + training_size (5 x 5 x 3)": ["-n", "--configfile", str(size_only)],
            "-n, + all of config/studies.yaml": ["-n", "--configfile", str(STUDIES)],
        }
        print(f"{'case':<36} {'jobs':>5} {'median s':>9} {'min s':>7}  (of {options.repeat})")
        for name, args in cases.items():
            walls, output = [], ""
            for _ in range(options.repeat):
                wall, output = timed(args, workdir)
                walls.append(wall)
            print(f"{name:<36} {n_jobs(output):>5} {statistics.median(walls):>9.2f} {min(walls):>7.2f}", flush=True)


if __name__ == "__main__":
    main()
