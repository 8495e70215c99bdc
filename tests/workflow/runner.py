"""Run Snakemake on this workflow from the tests, in a scratch directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAKEFILE = ROOT / "Snakefile"
TINY_CONFIG = ROOT / "tests" / "configs" / "tiny.yaml"


def snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    timeout: float = 900,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``snakemake -s Snakefile --directory workdir ARGS``; output captured, raises on failure.

    Config files given in ``args`` replace the default configuration (unset keys take the
    schema's defaults), so a test sees exactly the runs its own file declares. ``env`` adds
    environment variables. The timeout kills Snakemake (SIGKILL), which also ends a run stuck
    polling a cluster.
    """
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir),
        "--cores", "2", "--replace-workflow-config", *args,
    ]  # fmt: skip
    # the HTCondor executor plugin warns on every call without an HTCondor configuration
    env = {"CONDOR_CONFIG": "/dev/null", **os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{result.stdout[-5000:]}\n--- stderr ---\n{result.stderr[-10000:]}"
        )
    return result
