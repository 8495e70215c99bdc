"""The real client: ROOT itself opens the split files and reads back identical values."""

from __future__ import annotations

import numpy as np
import pytest

from flowsim import io

ROOT = pytest.importorskip("ROOT", reason="CERN's ROOT (the 'root' test extra) is not installed")


@pytest.mark.parametrize("name", ["bkg_train", "sig_test_b"])
def test_rdataframe_reads_back_identical_values(tiny_run, name):
    path = tiny_run / f"results/data/{name}.root"
    expected = io.read_events(path)
    frame = ROOT.RDataFrame("events", str(path))
    assert frame.Count().GetValue() == io.root_entries(path) == len(expected["label"])
    columns = [str(c) for c in frame.GetColumnNames()]
    assert sorted(columns) == sorted(expected)  # RDataFrame lists columns alphabetically
    assert all(frame.GetColumnType(c) == "Float_t" for c in columns)
    arrays = frame.AsNumpy(columns)
    for column in columns:
        np.testing.assert_array_equal(arrays[column], expected[column])
