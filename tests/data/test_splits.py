"""Per-class splits: sizes, disjointness, seeding, files and manifest."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest

from flowsim import io
from flowsim.data.fetch import ChecksumError
from flowsim.data.higgs import COLUMNS, FEATURE_COLUMNS
from flowsim.data.splits import (
    CLASSES,
    SPLITS,
    SplitFractions,
    count_duplicate_rows,
    nested_subset,
    split_indices,
    split_sizes,
    write_splits,
)  # fmt: skip
from tests.higgs_files import write_csv


def test_sizes_follow_the_paper_protocol():
    # the protocol of the fidelity issue: 54,166 background events
    assert split_sizes(54_166, SplitFractions()) == {
        "train": 21_666, "val": 5_417, "test_a": 13_541, "test_b": 13_542,
    }  # fmt: skip


@pytest.mark.parametrize("n", [10, 101, 9_999])
@pytest.mark.parametrize("fractions", [SplitFractions(), SplitFractions(0.3, 0.9, 0.25)])
def test_splits_are_disjoint_complete_and_within_rounding(n, fractions):
    parts = split_indices(n, seed=1, label=0, fractions=fractions)
    joined = np.concatenate(list(parts.values()))
    assert len(joined) == n and len(np.unique(joined)) == n
    n_ml = len(parts["train"]) + len(parts["val"])
    assert abs(n_ml - fractions.ml * n) < 1
    assert abs(len(parts["train"]) - fractions.train * n_ml) < 1
    assert abs(len(parts["test_a"]) - fractions.test_a * (n - n_ml)) < 1


def test_same_seed_same_split_other_seed_or_class_other_split():
    fr = SplitFractions()
    a = split_indices(1000, seed=5, label=0, fractions=fr)
    b = split_indices(1000, seed=5, label=0, fractions=fr)
    c = split_indices(1000, seed=6, label=0, fractions=fr)
    d = split_indices(1000, seed=5, label=1, fractions=fr)
    for s in SPLITS:
        np.testing.assert_array_equal(a[s], b[s])
    assert not np.array_equal(a["train"], c["train"])
    assert not np.array_equal(a["train"], d["train"])


def test_max_events_caps_each_class():
    parts = split_indices(1000, seed=5, label=0, fractions=SplitFractions(), max_events=100)
    assert sum(len(p) for p in parts.values()) == 100


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_fractions_outside_unit_interval_are_refused(bad):
    with pytest.raises(ValueError, match="splits.train_fraction must lie in"):
        SplitFractions(train=bad)


def _outputs(tmp_path):
    return {f"{c}_{s}": tmp_path / f"{c}_{s}.root" for c in CLASSES for s in SPLITS}


def test_write_splits_files_hold_every_event_once(tmp_path, higgs_rows):
    source = write_csv(tmp_path / "h.csv.gz", higgs_rows)
    outputs = _outputs(tmp_path)
    manifest = write_splits(source, outputs, tmp_path / "m.json", seed=3, fractions=SplitFractions())
    for cls, label in CLASSES.items():
        files = [io.read_events(outputs[f"{cls}_{s}"]) for s in SPLITS]
        for events in files:
            assert list(events) == list(COLUMNS)
            assert all(v.dtype == np.float32 for v in events.values())
            assert np.all(events["label"] == label)
        rows = np.concatenate([np.stack([e[c] for c in FEATURE_COLUMNS], 1) for e in files])
        expected = higgs_rows[higgs_rows[:, 0] == label, 1:]
        # same multiset of events: compare after a lexicographic sort
        np.testing.assert_array_equal(
            rows[np.lexsort(rows.T[::-1])], expected[np.lexsort(expected.T[::-1])]
        )
    assert manifest == io.read_json(tmp_path / "m.json")
    for path, n in manifest["entries"].items():
        assert io.root_entries(path) == n
    import hashlib

    assert manifest["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["seed"] == 3 and manifest["fractions"]["ml"] == 0.5


def test_failed_split_leaves_no_file_behind(tmp_path, higgs_rows, monkeypatch):
    source = write_csv(tmp_path / "h.csv", higgs_rows)
    outputs = _outputs(tmp_path)
    calls = []

    def failing_write(path, columns, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real_write(path, columns, **kw)

    real_write = io.write_events
    monkeypatch.setattr(io, "write_events", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_splits(source, outputs, tmp_path / "m.json", seed=3, fractions=SplitFractions())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv"]


def test_too_few_events_for_a_split_is_an_error(tmp_path, higgs_rows):
    higgs_rows[:, 0] = 0
    higgs_rows[:3, 0] = 1  # three signal events: the signal training split would be empty
    source = write_csv(tmp_path / "h.csv", higgs_rows)
    with pytest.raises(ValueError, match=r"split sig_train would be empty \(3 sig events\)"):
        write_splits(source, _outputs(tmp_path), tmp_path / "m.json", seed=3, fractions=SplitFractions())
    # the background files written before the failure are gone too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv"]


def test_nested_subsets_grow_by_adding_rows():
    sizes = [10, 100, 400, 1000]
    subsets = [set(nested_subset(1000, k, seed=3).tolist()) for k in sizes]
    assert [len(s) for s in subsets] == sizes
    for smaller, larger in zip(subsets, subsets[1:]):
        assert smaller < larger
    assert subsets[-1] == set(range(1000))
    assert set(nested_subset(1000, 100, seed=4).tolist()) != subsets[1]


def test_nested_subset_is_uniform():
    # each row is kept with probability k/n: over many seeds, the first and last halves of the
    # rows are drawn equally often (binomial, 20k draws: 5 sigma = 0.018)
    counts = np.zeros(100)
    for seed in range(1000):
        counts[nested_subset(100, 20, seed=seed)] += 1
    first, last = counts[:50].sum(), counts[50:].sum()
    assert abs(first / (first + last) - 0.5) < 0.018


@pytest.mark.parametrize("keep", [0, 101])
def test_nested_subset_refuses_impossible_sizes(keep):
    with pytest.raises(ValueError, match=f"cannot keep {keep} of 100 rows"):
        nested_subset(100, keep, seed=0)


def test_a_file_that_is_not_the_one_named_is_refused_before_anything_is_written(tmp_path, higgs_rows):
    source = write_csv(tmp_path / "HIGGS.csv.gz", higgs_rows)
    actual = hashlib.sha256(source.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError, match=f"its sha256 is {actual}, but data.sha256 expects {'a' * 64}"):
        write_splits(
            source, _outputs(tmp_path), tmp_path / "m.json", seed=3, fractions=SplitFractions(),
            expected_sha256="a" * 64,
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["HIGGS.csv.gz"]
    manifest = write_splits(
        source, _outputs(tmp_path), tmp_path / "m.json", seed=3, fractions=SplitFractions(),
        expected_sha256=actual.upper(),
    )  # fmt: skip
    assert manifest["source_sha256"] == actual


def test_the_checksum_is_named_before_a_format_error_of_the_wrong_file(tmp_path):
    source = tmp_path / "HIGGS.csv.gz"
    source.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(ChecksumError, match="not the file the configuration names"):
        write_splits(
            source, _outputs(tmp_path), tmp_path / "m.json", seed=3, fractions=SplitFractions(),
            expected_sha256="a" * 64,
        )  # fmt: skip


def _count_by_python(rows: np.ndarray) -> int:
    """Copies of earlier rows, by a set of the rows' values (-0.0 == 0.0 as numbers)."""
    seen: set[tuple[float, ...]] = set()
    copies = 0
    for row in rows.tolist():
        key = tuple(v + 0.0 for v in row)
        copies += key in seen
        seen.add(key)
    return copies


def test_duplicate_rows_are_counted_exactly():
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(2000, 6)).astype(np.float32)
    rows = np.concatenate([rows, rows[[3, 3, 3, 17, 1999]], np.zeros((2, 6), np.float32)])
    rows[-1, 2] = -0.0  # the same event as the row before it
    almost = rows[10].copy()
    almost[5] = np.nextafter(almost[5], np.float32(np.inf))  # one ulp away: not a copy
    rows = rng.permutation(np.concatenate([rows, almost[None]]))
    assert count_duplicate_rows(rows) == _count_by_python(rows) == 5 + 1
    assert count_duplicate_rows(rows.astype(np.float64)) == 6
    assert count_duplicate_rows(rows[:1]) == 0


def test_duplicates_are_logged_and_in_the_manifest(tmp_path, higgs_rows, caplog):
    rows = np.concatenate([higgs_rows, higgs_rows[:7]])  # 7 copies, of both classes
    source = write_csv(tmp_path / "h.csv", rows)
    with caplog.at_level(logging.WARNING):
        manifest = write_splits(source, _outputs(tmp_path), tmp_path / "m.json", seed=3, fractions=SplitFractions())
    expected = {cls: int(np.sum(higgs_rows[:7, 0] == label)) for cls, label in CLASSES.items()}
    assert manifest["duplicate_rows"] == expected and sum(expected.values()) == 7
    assert f"{expected['bkg']} bkg and {expected['sig']} sig rows are exact copies" in caplog.text
