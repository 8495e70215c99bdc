"""The ``ml_signal`` scan: the ML background fitted with the flow's own signal template, the
Asimov data staying MC signal + MC background test_a."""

from __future__ import annotations

import json
import logging

import numpy as np
import pyhf
import pytest

import flowsim.plots.analysis as plots
from flowsim import io
from flowsim.analysis.config import AnalysisConfig
from flowsim.analysis.scan import BACKGROUNDS, scan_luminosity, scan_observable, write_workspaces
from flowsim.analysis.template_files import BinnedCounts, write_templates
from flowsim.analysis.templates import Template, make_template, signal_total
from flowsim.stages.analysis import LumiScanOutputs, lumi_scan
from flowsim.stages.analysis import scan_luminosity as stage_scan
from tests.analysis.synthetic import EDGES, pyhf_model

CONFIG = AnalysisConfig(lumi_fb=(10.0, 1000.0, 3), alphas=(0.05,), observables={"m_bb": (0.0, 3.0)}, n_bins=6)


def _flow_signal(seed: int = 3) -> Template:
    """A 'generated' signal: the bump shifted and wider, with another efficiency than MC's."""
    rng = np.random.default_rng(seed)
    n_total = 12_000
    values = rng.normal(1.75, 0.4, rng.binomial(n_total, 0.7))
    return make_template(values, n_total, EDGES, name="flow signal")


def _signal_data(workspace: dict) -> np.ndarray:
    return np.asarray(workspace["channels"][0]["samples"][0]["data"], dtype=float)


def _scans(samples, predictions, signals=None, config=CONFIG):
    scans = scan_observable(
        samples.signal, samples.test_a, predictions, config=config, observable="m_bb", signals=signals
    )
    return {s.background: s for s in scans}


def test_ml_signal_is_a_known_label():
    assert BACKGROUNDS == ("mc", "ml", "ml_surrogate", "ml_signal")


def test_the_mc_signal_as_override_gives_the_ml_points_exactly(samples):
    predictions = {"mc": samples.test_b, "ml": samples.ml}
    today = _scans(samples, predictions)
    scans = _scans(samples, {**predictions, "ml_signal": samples.ml}, {"ml_signal": samples.signal})
    assert list(scans) == ["mc", "ml", "ml_signal"]
    for label in ("mc", "ml"):  # the other predictions are untouched
        assert scans[label].points == today[label].points
        assert scans[label].workspaces == today[label].workspaces
    assert all(p.status == "ok" for p in scans["ml_signal"].points)
    for a, b in zip(scans["ml"].points, scans["ml_signal"].points, strict=True):
        assert b.background == "ml_signal" and a._replace(background="x") == b._replace(background="x")
    assert scans["ml_signal"].workspaces == scans["ml"].workspaces


@pytest.fixture(scope="module")
def flow_scans(samples):
    return _scans(
        samples, {"mc": samples.test_b, "ml": samples.ml, "ml_signal": samples.ml}, {"ml_signal": _flow_signal()}
    )


def test_the_flow_signal_is_fitted_and_the_data_stay_mc(flow_scans, tmp_path):
    ml, ml_signal = flow_scans["ml"], flow_scans["ml_signal"]
    flow, lumis = _flow_signal(), CONFIG.lumis()
    for i, lumi in enumerate(lumis):
        a, b = ml.workspaces[i], ml_signal.workspaces[i]
        assert a["observations"] == b["observations"]  # MC signal + MC test_a, the truth
        assert a["channels"][0]["samples"][1] == b["channels"][0]["samples"][1]  # the same background
        # S_i = eps_i * alpha sigma_B L, computed here from the template's counts / N
        n_s = 0.05 * CONFIG.sigma_b_fb * lumi
        np.testing.assert_allclose(_signal_data(b), flow.counts / flow.n_total * n_s, rtol=1e-12)
        # ... and the MC signal of the ml workspace scaled by the ratio of efficiencies
        mc_eff, ml_signal_eff = np.asarray(a["channels"][0]["samples"][0]["data"]) / n_s, _signal_data(b) / n_s
        filled = mc_eff > 0
        assert filled.sum() >= 4
        np.testing.assert_allclose(
            _signal_data(b)[filled], _signal_data(a)[filled] * flow.efficiency[filled] / mc_eff[filled], rtol=1e-12
        )
        assert ml_signal_eff[~filled] == pytest.approx(flow.efficiency[~filled], rel=1e-12)
    assert all(p.status == "ok" for p in ml_signal.points)
    assert all(
        abs(p.mu_hat - q.mu_hat) > 0.05 and p.ul_exp != q.ul_exp for p, q in zip(ml.points, ml_signal.points)
    )
    # the written workspace refits in pyhf to the point's mu_hat
    paths = write_workspaces(tmp_path, ml_signal)
    assert paths[-1].name == "m_bb_alpha0.05_ml_signal_L1000.json"
    workspace = json.loads(paths[-1].read_text())
    assert workspace == ml_signal.workspaces[-1]
    model, data = pyhf_model(workspace)
    mu_hat = float(pyhf.infer.mle.fit(data, model)[model.config.poi_index])
    assert 0.1 < mu_hat < 5.0  # inside the POI bounds, so the comparison tests the fit
    assert ml_signal.points[-1].mu_hat == pytest.approx(mu_hat, abs=2e-3)


def test_bins_empty_in_a_prediction_merge_the_flow_signal_alike(samples):
    counts = samples.ml.counts.copy()
    counts[2] = 0
    holed = Template(samples.ml.edges, counts, samples.ml.n_total)
    flow = _flow_signal()
    sparse = Template(flow.edges, np.r_[0, flow.counts[1:]], flow.n_total)  # empty signal bin: no merge
    config = AnalysisConfig(lumi_fb=(10.0, 10.0, 1), alphas=(0.05,), observables={"m_bb": (0.0, 3.0)}, n_bins=6)
    scans = _scans(samples, {"mc": samples.test_b, "ml": holed, "ml_signal": holed}, {"ml_signal": sparse}, config)
    groups = [[0], [1], [2, 3], [4], [5]]  # bin 2 joins its right neighbour
    workspace = scans["ml_signal"].workspaces[0]
    assert workspace["observations"] == scans["mc"].workspaces[0]["observations"]
    assert len(workspace["observations"][0]["data"]) == 5
    n_s = signal_total(10.0, config.sigma_b_fb, 0.05)
    np.testing.assert_allclose(_signal_data(workspace), sparse.rebinned(groups).efficiency * n_s, rtol=1e-12)
    assert _signal_data(workspace)[0] == 0.0


def test_a_signal_override_on_other_edges_or_for_no_prediction_is_refused(samples):
    flow = _flow_signal()
    other = Template(np.linspace(0.0, 3.5, 7), flow.counts, flow.n_total)
    predictions = {"mc": samples.test_b, "ml_signal": samples.ml}
    for empty_bins in ("merge", "raise"):
        config = AnalysisConfig(
            lumi_fb=(10.0, 10.0, 1), alphas=(0.05,), observables={"m_bb": (0.0, 3.0)}, empty_bins=empty_bins
        )
        with pytest.raises(ValueError, match="ml_signal signal template has other bin edges"):
            _scans(samples, predictions, {"ml_signal": other}, config)
    with pytest.raises(ValueError, match=r"signal templates for \['ml'\]"):
        _scans(samples, predictions, {"ml": flow})
    with pytest.raises(ValueError, match="fitted signal template has other bin edges"):
        scan_luminosity(samples.signal, samples.test_a, samples.ml, alpha=0.05, lumis=[10.0], fit_signal=other)


# --- through the stage, from files -----------------------------------------------------------

SECTION = {
    "cut": 0.5, "n_bins": 6, "observables": {"m_bb": [0.0, 3.0]}, "lumi_fb": {"min": 10, "max": 1000, "n": 2},
    "alphas": [0.05],
}  # fmt: skip


def _scored(directory, name: str, values: np.ndarray, seed: int) -> list[tuple[str, str]]:
    """A scored MC sample: an events file and its score friend tree (half the events pass)."""
    events, scores = directory / f"{name}.root", directory / f"{name}_scores.root"
    io.write_events(events, {"m_bb": values.astype(np.float32)})
    io.write_events(scores, {"score": np.random.default_rng(seed).uniform(0.0, 1.0, values.size)})
    return [(str(events), str(scores))]


def _template_file(path, values: np.ndarray, n_generated: int) -> str:
    """A template file of rule fill_templates: ``values`` are the selected events."""
    h = BinnedCounts(np.linspace(0.0, 3.0, 7))
    h.fill(values)
    write_templates(path, {"m_bb": h}, n_generated=n_generated, n_finite=n_generated, n_selected=values.size)
    return str(path)


@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("flow_signal_stage")
    rng = np.random.default_rng(11)
    ml = [_template_file(d / f"member{k}.root", rng.exponential(0.72 + 0.03 * k, 6000), 24_000) for k in range(2)]
    return {
        "run": "cond", "observable": "m_bb", "alpha": 0.05, "section": SECTION,
        "signal": _scored(d, "signal", rng.normal(1.6, 0.3, 8000), 1),
        "data_background": _scored(d, "test_a", rng.exponential(0.7, 20_000), 2),
        "mc_prediction": _scored(d, "test_b", rng.exponential(0.7, 20_000), 3),
        "ml_templates": ml,
        "signal_file": _template_file(d / "signal_templates.root", rng.normal(1.7, 0.35, 5000), 9000),
    }  # fmt: skip


def test_the_stage_adds_ml_signal_only_with_signal_templates(stage_inputs, caplog):
    inputs = {k: v for k, v in stage_inputs.items() if k != "signal_file"}
    today = stage_scan(**inputs)
    assert [s.background for s in today.scans] == ["mc", "ml", "ml_surrogate"]
    with caplog.at_level(logging.INFO, logger="flowsim.stages.analysis"):
        scan = stage_scan(**inputs, ml_signal_templates=[stage_inputs["signal_file"]])
    assert "fitted with the flow's signal template (ml_signal, 1 file(s))" in caplog.text
    assert [s.background for s in scan.scans] == ["mc", "ml", "ml_surrogate", "ml_signal"]
    for old, new in zip(today.scans, scan.scans[:3], strict=True):
        assert old.points == new.points
    ml, ml_signal = scan.scans[1], scan.scans[3]
    for a, b in zip(ml.workspaces, ml_signal.workspaces, strict=True):
        assert a["observations"] == b["observations"]
        # the pooled ML background, no surrogate uncertainty
        assert a["channels"][0]["samples"][1] == b["channels"][0]["samples"][1]
        assert not np.allclose(_signal_data(a), _signal_data(b))
    # the signal template file's efficiency: counts of the selected events / generated ones
    from flowsim.analysis.template_files import read_templates

    flow = read_templates(stage_inputs["signal_file"])["m_bb"]
    n_s = signal_total(10.0, 1000.0, 0.05)
    np.testing.assert_allclose(_signal_data(ml_signal.workspaces[0]), flow.counts / 9000 * n_s, rtol=1e-12)


def test_lumi_scan_writes_ml_signal_rows_workspaces_and_plots(stage_inputs, tmp_path):
    inputs = {k: v for k, v in stage_inputs.items() if k != "signal_file"}
    outputs = LumiScanOutputs(
        tmp_path / "scan.tsv", tmp_path / "ws", tmp_path / "mu.png", tmp_path / "p.png", tmp_path / "ul.png"
    )
    points = lumi_scan(outputs, **inputs, ml_signal_templates=[stage_inputs["signal_file"]])
    rows = io.read_tsv(outputs.table)
    assert [r["background"] for r in rows] == [b for b in ("mc", "ml", "ml_surrogate", "ml_signal") for _ in range(2)]
    assert len(points) == 8
    assert sorted(p.name for p in (tmp_path / "ws").glob("*ml_signal*")) == [
        "m_bb_alpha0.05_ml_signal_L10.json", "m_bb_alpha0.05_ml_signal_L1000.json",
    ]  # fmt: skip
    for path in (outputs.mu, outputs.pvalues, outputs.limits):
        assert path.stat().st_size > 10_000


# --- the plots ---------------------------------------------------------------------------------


def _legends(monkeypatch) -> list[list[str]]:
    """Record the legend texts of every figure the scan plots save."""
    seen: list[list[str]] = []
    real = plots.save_figure

    def recording(fig, path, *args, **kwargs):
        seen.append([t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()])
        real(fig, path, *args, **kwargs)

    monkeypatch.setattr(plots, "save_figure", recording)
    return seen


def test_the_scan_plots_draw_ml_signal_with_its_own_legend_entry(flow_scans, tmp_path, monkeypatch):
    seen = _legends(monkeypatch)
    with_signal = [p for s in flow_scans.values() for p in s.points]
    without = [p for p in with_signal if p.background != "ml_signal"]
    for tag, points in (("with", with_signal), ("without", without)):
        plots.plot_mu_hat(points, tmp_path / f"mu_{tag}.png", title="t")
        plots.plot_pvalues(points, tmp_path / f"p_{tag}.png", title="t")
        plots.plot_upper_limits(points, tmp_path / f"ul_{tag}.png", title="t")
        for name in ("mu", "p", "ul"):
            assert (tmp_path / f"{name}_{tag}.png").stat().st_size > 10_000
    name = plots.SIGNAL_FLOW_NAME
    assert name == "ML background and signal"
    for legend in seen[:3]:
        assert any(name in text for text in legend), legend
    for legend in seen[3:]:
        assert not any(name in text for text in legend), legend
    # without ml_signal the entries are those of today, in the same order
    assert seen[4] == [f"{p}, {s}" for p in (r"$p_{s+b}$", r"$p_b$", r"CL$_s$") for s in ("MC reference", "ML")]
    assert [t for t in seen[0] if name not in t] == seen[3]
