"""The pyhf workspace: structure, exact linearity in L, atomic writing, and pyhf's own CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from flowsim.analysis.inference import AsymptoticCalculator
from flowsim.analysis.likelihood import BinnedLikelihood
from flowsim.analysis.model import (
    CHANNEL,
    POI,
    SHAPESYS,
    SURROGATE,
    ChannelYields,
    build_workspace,
    channel_yields,
    staterror_name,
    write_workspace,
)
from flowsim.analysis.templates import Template
from tests.analysis.synthetic import pyhf_model


def _pyhf_cli(*args: str) -> dict:
    """Run pyhf's command-line interface in this interpreter; return its JSON output."""
    code = "import sys; from pyhf.cli import cli; sys.exit(cli())"
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(done.stdout)


def test_workspace_is_the_papers_model(samples):
    yields = channel_yields(
        samples.signal, samples.test_a, samples.test_b, lumi_fb=50.0, alpha=0.01
    )
    ws = build_workspace(yields)
    model, data = pyhf_model(ws)
    assert model.config.poi_name == POI
    assert tuple(model.config.suggested_bounds()[model.config.poi_index]) == (0.0, 10.0)
    modifiers = {m["name"]: m["type"] for s in ws["channels"][0]["samples"] for m in s["modifiers"]}
    assert sorted(modifiers.values()) == ["normfactor", "shapesys", "staterror"]
    bkg = ws["channels"][0]["samples"][1]
    np.testing.assert_allclose(np.divide(bkg["modifiers"][0]["data"], bkg["data"]), 0.1)
    np.testing.assert_allclose(bkg["modifiers"][1]["data"], yields.background_stat)
    # Asimov observations: MC signal + MC test_a background, from templates
    np.testing.assert_allclose(data[: model.config.nmaindata], yields.observed)
    n_b = 1000.0 * 50.0
    np.testing.assert_allclose(
        yields.observed, 0.01 * n_b * samples.signal.efficiency + n_b * samples.test_a.efficiency
    )


def test_yields_scale_exactly_linearly_with_luminosity(samples):
    at = {
        lumi: channel_yields(samples.signal, samples.test_a, samples.ml, lumi_fb=lumi, alpha=0.05)
        for lumi in (10.0, 30.0, 1000.0)
    }
    for lumi in (30.0, 1000.0):
        for field in ("signal", "background", "background_stat", "observed"):
            np.testing.assert_allclose(
                getattr(at[lumi], field), lumi / 10.0 * getattr(at[10.0], field), rtol=1e-14
            )
    # the relative uncertainties (the constraint widths) do not depend on L
    np.testing.assert_allclose(
        at[1000.0].background_stat / at[1000.0].background,
        at[10.0].background_stat / at[10.0].background, rtol=1e-13,
    )  # fmt: skip


def test_empty_bins_and_other_binnings_are_refused(samples):
    edges = samples.signal.edges
    empty = Template(edges, np.array([5, 0, 3, 2, 1, 1]), 100)
    with pytest.raises(ValueError, match=r"bins \[1\] have no background-prediction event"):
        channel_yields(samples.signal, samples.test_a, empty, lumi_fb=10.0, alpha=0.01)
    other = Template(edges + 0.1, np.ones(6, dtype=int), 100)
    with pytest.raises(ValueError, match="other bin edges"):
        channel_yields(samples.signal, samples.test_a, other, lumi_fb=10.0, alpha=0.01)
    with pytest.raises(ValueError, match="luminosity must be positive"):
        channel_yields(samples.signal, samples.test_a, samples.test_b, lumi_fb=-1.0, alpha=0.01)


def test_write_workspace_is_atomic_and_exact(tmp_path, samples):
    yields = channel_yields(samples.signal, samples.test_a, samples.ml, lumi_fb=77.0, alpha=0.05)
    ws = build_workspace(yields)
    path = tmp_path / "sub" / "ws.json"
    write_workspace(path, ws)
    assert json.loads(path.read_text()) == ws  # floats round-trip exactly
    assert [p.name for p in path.parent.iterdir()] == ["ws.json"]  # no temporary left over


def test_pyhf_command_line_refits_the_written_workspace(tmp_path, samples):
    yields = channel_yields(samples.signal, samples.test_a, samples.ml, lumi_fb=40.0, alpha=0.05)
    path = tmp_path / "ws.json"
    write_workspace(path, build_workspace(yields))
    calc = AsymptoticCalculator(BinnedLikelihood.from_yields(yields))

    fitted = _pyhf_cli("fit", "--value", str(path))
    result = calc.fit_result()
    assert fitted["mle_parameters"][POI][0] == pytest.approx(result.mu_hat, abs=2e-3)
    assert fitted["twice_nll"] == pytest.approx(result.twice_nll, abs=1e-5)

    cls = _pyhf_cli("cls", "--test-poi", "1.0", str(path))
    assert cls["CLs_obs"] == pytest.approx(calc.hypotest(1.0).cls, rel=0.01)
    np.testing.assert_allclose(cls["CLs_exp"], calc.expected_cls(1.0), rtol=0.01)


#: relative surrogate uncertainty per bin of the tests: 5-20%, none in bin 2
SURROGATE_REL = np.array([0.05, 0.1, 0.0, 0.2, 0.15, 0.08])


def test_surrogate_uncertainty_is_a_second_shapesys(samples):
    err = SURROGATE_REL * samples.ml.efficiency
    yields = channel_yields(
        samples.signal, samples.test_a, samples.ml, lumi_fb=50.0, alpha=0.05, surrogate_error=err
    )
    n_b = 1000.0 * 50.0
    np.testing.assert_allclose(yields.background_surrogate, n_b * err, rtol=1e-15)
    ws = build_workspace(yields)
    bkg = ws["channels"][0]["samples"][1]
    assert [m["name"] for m in bkg["modifiers"]] == [SHAPESYS, staterror_name(CHANNEL), SURROGATE]
    surrogate = bkg["modifiers"][2]
    assert surrogate["type"] == "shapesys"
    assert surrogate["data"][2] == 0.0  # a bin without surrogate uncertainty stays 0
    np.testing.assert_allclose(np.divide(surrogate["data"], bkg["data"]), SURROGATE_REL, rtol=1e-12)
    # pyhf validates the spec and fixes the bin without uncertainty at 1 (factor, auxdata 1)
    model, data = pyhf_model(ws)
    fixed = np.asarray(model.config.suggested_fixed())[model.config.par_slice(SURROGATE)]
    assert fixed.tolist() == [False, False, True, False, False, False]
    tau = np.asarray(model.config.param_set(SURROGATE).auxdata)
    free = SURROGATE_REL > 0
    np.testing.assert_allclose(tau[free], 1.0 / SURROGATE_REL[free] ** 2, rtol=1e-12)
    assert tau[~free].tolist() == [1.0]
    np.testing.assert_allclose(data[: model.config.nmaindata], yields.observed)
    assert model.config.npars == 1 + 3 * 6
    # exactly linear in L, like every other yield
    at_1000 = channel_yields(
        samples.signal, samples.test_a, samples.ml, lumi_fb=1000.0, alpha=0.05, surrogate_error=err
    )
    np.testing.assert_allclose(
        at_1000.background_surrogate, 20.0 * yields.background_surrogate, rtol=1e-14
    )


def test_no_or_zero_surrogate_uncertainty_leaves_the_workspace_as_it_was(samples):
    kwargs = {"lumi_fb": 30.0, "alpha": 0.01}
    plain = channel_yields(samples.signal, samples.test_a, samples.ml, **kwargs)
    zero = channel_yields(
        samples.signal, samples.test_a, samples.ml, surrogate_error=np.zeros(6), **kwargs
    )
    assert plain.background_surrogate is None
    assert zero.background_surrogate.tolist() == [0.0] * 6
    before = ChannelYields(*plain[:5])  # the yields as they were without the surrogate field
    text = json.dumps(build_workspace(before))
    assert json.dumps(build_workspace(plain)) == text
    assert json.dumps(build_workspace(zero)) == text
    modifiers = [m["name"] for m in build_workspace(zero)["channels"][0]["samples"][1]["modifiers"]]
    assert modifiers == [SHAPESYS, staterror_name(CHANNEL)]


@pytest.mark.parametrize(
    ("error", "match"),
    [
        (np.array([0.01, -0.001, 0.0, 0.0, 0.0, 0.0]), r"finite and >= 0 .* in bins \[1\]"),
        (np.array([0.01, 0.0, np.nan, 0.0, 0.0, 0.0]), r"finite and >= 0 .* in bins \[2\]"),
        (np.full(6, np.inf), r"finite and >= 0"),
        (np.full(5, 0.01), r"one value per bin, shape \(6,\), got \(5,\)"),
        (np.full((6, 1), 0.01), r"one value per bin, shape \(6,\), got \(6, 1\)"),
        (["a"] * 6, "array of numbers"),
    ],
)
def test_bad_surrogate_errors_are_refused(samples, error, match):
    with pytest.raises(ValueError, match=match):
        channel_yields(
            samples.signal, samples.test_a, samples.ml, lumi_fb=10.0, alpha=0.01,
            surrogate_error=error,
        )  # fmt: skip
