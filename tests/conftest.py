"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.higgs_files import make_rows

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def higgs_rows() -> np.ndarray:
    return make_rows(3000, seed=1)
