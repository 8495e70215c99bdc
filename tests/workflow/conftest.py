"""A tiny workflow run shared by the workflow tests (one Snakemake run per test session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflow.runner import TINY_CONFIG, snakemake


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """Directory in which the default targets were built with the tiny config."""
    workdir = tmp_path_factory.mktemp("tiny-workflow")
    snakemake(workdir, "--configfile", str(TINY_CONFIG))
    return workdir
