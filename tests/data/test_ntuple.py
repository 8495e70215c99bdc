"""The ROOT-ntuple source: jagged branches, expressions, fill values, preselection, weights,
errors that name the file, branch or expression, and the HIGGS CSV converter."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from flowsim import io
from flowsim.data.higgs import FEATURE_COLUMNS
from flowsim.data.ntuple import (
    ClassSource,
    Column,
    Expression,
    NtupleError,
    NtupleSource,
    feature_names,
    higgs_to_ntuple,
    parse_columns,
    read_class,
)
from flowsim.data.reader import read_higgs
from flowsim.stages.data import split_ntuples
from flowsim.weights import WeightError
from tests.higgs_files import make_rows, write_csv

#: Jets per event of the tiny ntuple: some events have none, one has five.
N_JETS = [2, 0, 1, 3, 5, 2, 0, 4, 1, 2]


def jagged_events(n_jets=N_JETS, offset=0.0):
    """A tiny jagged event record: jet j of event i has pT 100 i + 10 j + offset, η = j/10."""
    pt = [[100.0 * i + 10.0 * j + offset for j in range(k)] for i, k in enumerate(n_jets)]
    eta = [[j / 10 for j in range(k)] for k in n_jets]
    return {
        "Jet": ak.zip({"pt": ak.Array(pt), "eta": ak.Array(eta)}),
        "MET_pt": np.arange(len(n_jets), dtype=np.float32) + 20.0 + offset,
        "genWeight": np.where(np.arange(len(n_jets)) % 3 == 0, -0.5, 1.5),
    }


def write_ntuple(path, branches, tree="Events"):
    with uproot.recreate(path) as f:
        types = {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()}
        f.mktree(tree, types).extend(branches)
    return path


@pytest.fixture
def ntuple(tmp_path):
    return write_ntuple(tmp_path / "bkg.root", jagged_events())


def read(path, columns, **kwargs):
    source = ClassSource((str(path),), "Events", kwargs.pop("weight", None))
    return read_class(source, parse_columns(columns), **kwargs)


def test_branches_expressions_counts_and_fill_values(ntuple):
    events = read(
        ntuple,
        ["MET_pt", {"name": "n_jets", "expression": "ak.num(Jet_pt)"},
         {"name": "ht", "expression": "ak.sum(Jet_pt, axis=1)"},
         {"name": "jet2_pt", "expression": "at(Jet_pt, 1)", "fill": -1.0}],
    )  # fmt: skip
    pt = [[100.0 * i + 10.0 * j for j in range(k)] for i, k in enumerate(N_JETS)]
    np.testing.assert_array_equal(events.features[:, 0], np.arange(10) + 20.0)
    np.testing.assert_array_equal(events.features[:, 1], N_JETS)
    np.testing.assert_allclose(events.features[:, 2], [sum(p) for p in pt])
    np.testing.assert_array_equal(events.features[:, 3], [p[1] if len(p) > 1 else -1.0 for p in pt])
    assert events.weights is None
    assert events.features.dtype == np.float32
    assert events.steps["entries"] == events.steps["preselected"] == 10


def test_preselection_filters_events_and_indexing_then_works(ntuple):
    events = read(
        ntuple,
        [{"name": "jet1_pt", "expression": "Jet_pt[:, 0]"}, {"name": "jet1_eta", "expression": "Jet_eta[:, 0]"}],
        preselection="(ak.num(Jet_pt) >= 2) & (MET_pt > 20.5)", step_size=3,
    )  # fmt: skip
    kept = [i for i, k in enumerate(N_JETS) if k >= 2 and 20 + i > 20.5]
    np.testing.assert_array_equal(events.features[:, 0], [100.0 * i for i in kept])
    np.testing.assert_array_equal(events.features[:, 1], 0.0)
    assert events.steps["entries"] == 10 and events.steps["preselected"] == len(kept)
    assert events.steps["files"] == [{"path": str(ntuple), "entries": 10, "preselected": len(kept)}]


def test_weights_are_read_per_event_and_summarised(ntuple):
    events = read(ntuple, ["MET_pt"], weight="genWeight * 2", preselection="ak.num(Jet_pt) > 0")
    kept = [i for i, k in enumerate(N_JETS) if k > 0]
    w = np.array([-1.0 if i % 3 == 0 else 3.0 for i in kept])
    np.testing.assert_array_equal(events.weights, w)
    summary = events.steps["weights"]
    assert summary["sum_w"] == w.sum() and summary["sum_w2"] == (w**2).sum()
    assert summary["negative"] == int((w < 0).sum())
    assert summary["effective_events"] == pytest.approx(w.sum() ** 2 / (w**2).sum())


def test_several_files_by_glob_in_sorted_order(tmp_path):
    write_ntuple(tmp_path / "b_2.root", jagged_events(offset=0.5))
    write_ntuple(tmp_path / "b_1.root", jagged_events())
    events = read(tmp_path / "b_*.root", ["MET_pt"])
    np.testing.assert_array_equal(events.features[:, 0], np.r_[np.arange(10) + 20.0, np.arange(10) + 20.5])
    assert [f["path"] for f in events.steps["files"]] == [str(tmp_path / "b_1.root"), str(tmp_path / "b_2.root")]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("Jet_pt[:, 1]", "'Jet_pt[:, 1]' failed (IndexError"),
        ("at(Jet_pt, 1)", "gives no value for 4 of 10 events"),
        ("Jet_pt", "gives a list per event, not one number"),
        ("np.log(MET_pt - 25)", "non-finite value(s), the first nan at entry 0"),
        ("genWeight * 1e39", "exceeds the float32 range"),
    ],
)
def test_failing_expressions_name_the_file_entries_and_expression(ntuple, expression, message):
    with pytest.raises(NtupleError, match="bkg.root, entries 0-9") as info:
        read(ntuple, [{"name": "f", "expression": expression}])
    assert message in str(info.value) and "feature f" in str(info.value)


def test_missing_branch_names_the_file_the_user_and_close_names(ntuple):
    with pytest.raises(NtupleError, match=r"bkg.root: no branch 'Jet_ptt' \(used by feature f\); did you mean Jet_pt"):
        read(ntuple, [{"name": "f", "expression": "Jet_ptt[:, 0]"}])


def test_bad_files_and_trees_are_named(tmp_path, ntuple):
    text = tmp_path / "notroot.root"
    text.write_text("not a ROOT file\n")
    with pytest.raises(NtupleError, match="notroot.root: cannot be opened as a ROOT file"):
        read(text, ["MET_pt"])
    with pytest.raises(NtupleError, match=r"bkg.root: no TTree 'Tree'; it has \['Events'\]"):
        read_class(ClassSource((str(ntuple),), "Tree"), parse_columns(["MET_pt"]))
    with pytest.raises(NtupleError, match=r"data.root.background.files: '.*nothing\*.root' matches no file"):
        read_class(ClassSource((str(tmp_path / "nothing*.root"),), "Events"), parse_columns(["MET_pt"]), name="bkg")


def test_weights_and_preselection_errors(ntuple):
    with pytest.raises(
        WeightError, match=r"data.root.background.weight '-abs\(genWeight\)': the event weights sum to -"
    ):
        read(ntuple, ["MET_pt"], weight="-abs(genWeight)")
    with pytest.raises(NtupleError, match="must give True or False per event"):
        read(ntuple, ["MET_pt"], preselection="MET_pt")
    with pytest.raises(NtupleError, match="no event of its 10 entries passes the preselection"):
        read(ntuple, ["MET_pt"], preselection="MET_pt < 0")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("MET_pt.__class__", "uses the attribute '__class__'"),
        ("__import__('os')", "uses the name '__import__'"),
        ("[x for x in MET_pt]", "comprehensions are not allowed"),
        ("MET_pt +", "is not a valid expression"),
    ],
)
def test_expressions_refuse_what_a_formula_of_branches_does_not_need(text, message):
    with pytest.raises(NtupleError, match="feature f") as info:
        Expression(text, key="feature f")
    assert message in str(info.value)


def test_expression_lists_the_branches_it_uses():
    assert Expression("np.sqrt(Jet_pt[:, 0] * at(Jet_eta, 1)) + abs(MET_pt)", key="k").branches == (
        "Jet_pt", "Jet_eta", "MET_pt",
    )  # fmt: skip


def test_feature_entries_as_names_and_mappings():
    columns = parse_columns(["met", {"name": "j1", "expression": "Jet_pt[:, 0]", "unit": "GeV", "fill": 0}])
    assert columns == (Column("met", "met"), Column("j1", "Jet_pt[:, 0]", "GeV", 0.0))
    assert feature_names(["met", {"name": "j1"}]) == ["met", "j1"]


def test_converted_higgs_ntuple_reads_back_as_the_csv(tmp_path):
    csv = write_csv(tmp_path / "h.csv", [",".join(f"{v:.9e}" for v in r) for r in make_rows(300, seed=2)])
    paths = higgs_to_ntuple(csv, tmp_path / "nt")
    expected = read_higgs(csv)
    columns = [
        name if not name.startswith("jet") else {"name": name, "expression": f"Jet_{name[5:]}[:, {int(name[3]) - 1}]"}
        for name in FEATURE_COLUMNS
    ]  # fmt: skip
    for cls, events in (("background", expected.background), ("signal", expected.signal)):
        got = read_class(ClassSource((str(paths[cls]),), "Events"), parse_columns(columns))
        np.testing.assert_array_equal(got.features, events)
        assert got.weights is None


def test_converter_drops_soft_jets_and_adds_signed_weights(tmp_path):
    csv = write_csv(tmp_path / "h.csv", [",".join(f"{v:.9e}" for v in r) for r in make_rows(400, seed=3)])
    paths = higgs_to_ntuple(csv, tmp_path / "nt", jet_pt_min=1.0, negative_fraction=0.2, seed=1)
    expected = read_higgs(csv).background
    tree = uproot.open(paths["background"])["Events"]
    jets = expected[:, [FEATURE_COLUMNS.index(f"jet{k}_pt") for k in range(1, 5)]]
    np.testing.assert_array_equal(tree["nJet"].array(library="np"), (jets >= 1.0).sum(axis=1))
    np.testing.assert_array_equal(ak.flatten(tree["Jet_pt"].array()), jets[jets >= 1.0])
    w = tree["weight"].array(library="np")
    assert set(np.unique(w)) == {-1.0, 1.0} and 0.1 < np.mean(w < 0) < 0.3


def test_split_ntuples_writes_weighted_splits_and_the_manifest(tmp_path):
    write_ntuple(tmp_path / "bkg.root", jagged_events(N_JETS * 8))
    write_ntuple(tmp_path / "sig.root", jagged_events(N_JETS * 8, offset=0.25))
    outputs = {
        f"{c}_{s}": tmp_path / f"out/{c}_{s}.root" for c in ("bkg", "sig") for s in ("train", "val", "test_a", "test_b")
    }
    root = {
        "background": {"files": [str(tmp_path / "bkg.root")], "tree": "Events", "weight": "genWeight"},
        "signal": {"files": [str(tmp_path / "sig.root")], "tree": "Events"},
        "preselection": "ak.num(Jet_pt) >= 1",
    }
    features = ["MET_pt", {"name": "jet1_pt", "expression": "Jet_pt[:, 0]", "unit": "GeV"}]
    manifest = split_ntuples(
        {**outputs, "manifest": tmp_path / "out/manifest.json"}, root=root, features=features,
        seed=1, ml_fraction=0.5, train_fraction=0.8, test_a_fraction=0.5,
    )  # fmt: skip
    kept = 8 * sum(k >= 1 for k in N_JETS)
    assert manifest["steps"]["bkg"]["entries"] == 80 and manifest["steps"]["bkg"]["preselected"] == kept
    assert manifest["counts"]["bkg"]["used"] == kept
    assert len(manifest["steps"]["bkg"]["files"][0]["sha256"]) == 64
    assert manifest["features"][1] == {"name": "jet1_pt", "expression": "Jet_pt[:, 0]", "unit": "GeV", "fill": None}
    assert io.read_json(tmp_path / "out/manifest.json") == manifest
    bkg = io.read_events(outputs["bkg_train"])
    assert list(bkg) == ["label", "MET_pt", "jet1_pt", "weight"]
    assert set(np.unique(bkg["weight"])) <= {-0.5, 1.5}
    assert io.read_weights(outputs["bkg_train"]) is not None and io.read_weights(outputs["sig_train"]) is None
    total = sum(len(io.read_events(outputs[f"bkg_{s}"])["weight"]) for s in ("train", "val", "test_a", "test_b"))
    assert total == kept


def test_source_section_needs_both_classes():
    with pytest.raises(NtupleError, match="data.root.signal.files: at least one ROOT file"):
        NtupleSource.from_mapping({"background": {"files": ["a.root"]}})


def test_root_itself_reads_the_converted_jagged_ntuple(tmp_path):
    root = pytest.importorskip("ROOT", reason="CERN's ROOT (the 'root' test extra) is not installed")
    csv = write_csv(tmp_path / "h.csv", [",".join(f"{v:.9e}" for v in r) for r in make_rows(200, seed=5)])
    path = higgs_to_ntuple(csv, tmp_path / "nt", jet_pt_min=1.0, negative_fraction=0.2)["background"]
    frame = root.RDataFrame("Events", str(path)).Define("ht", "Sum(Jet_pt)").Define("n", "int(Jet_pt.size())")
    got = frame.AsNumpy(["nJet", "n", "ht", "weight", "m_bb"])
    tree = uproot.open(path)["Events"]
    np.testing.assert_array_equal(got["nJet"], tree["nJet"].array(library="np"))
    np.testing.assert_array_equal(got["n"], got["nJet"])
    np.testing.assert_allclose(got["ht"], ak.to_numpy(ak.sum(tree["Jet_pt"].array(), axis=1)), rtol=1e-6)
    np.testing.assert_array_equal(got["weight"], tree["weight"].array(library="np"))
    np.testing.assert_array_equal(got["m_bb"], tree["m_bb"].array(library="np"))
