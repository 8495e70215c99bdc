"""The CUDA paths: training, model files, sampling and classifiers on a GPU.

Skipped where no CUDA device is present (CI, the development machines); run on a GPU machine
with ``pytest tests/test_cuda.py``. The flow invariants themselves run on the GPU with
``FLOWSIM_TEST_DEVICE=cuda pytest tests/flows``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowsim import io
from flowsim.classifier import fit_classifier, predict_proba
from flowsim.data.scaling import fit_scaler
from flowsim.flows import FLOWS, build_flow, hyperparameters
from flowsim.flows.persist import load_flow, save_flow
from flowsim.metrics.roc import weighted_auc
from flowsim.sampling import generate_to_root
from flowsim.stages.flows import negative_log_likelihood
from flowsim.training import TrainConfig, resolve_device, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FEATURES = ("a", "b", "c")
SMALL = {"blocks": 2, "hidden": 16, "residual_blocks": 1, "mixtures": 3, "bins": 6, "tail_bound": 4.0}


def correlated_gaussian(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, -0.5], [0.0, -0.5, 1.0]])
    return rng.multivariate_normal(np.zeros(3), cov, size=n).astype(np.float32)


def small_params(model: str) -> dict:
    valid = hyperparameters(model)
    return {k: v for k, v in SMALL.items() if k in valid}


def small_flow(model: str) -> torch.nn.Module:
    return build_flow(model, len(FEATURES), **small_params(model))


def test_auto_device_is_cuda():
    assert resolve_device("auto").type == "cuda"


@pytest.mark.parametrize("model", sorted(FLOWS))
def test_flow_trains_on_cuda_and_its_file_loads_on_the_cpu(model, tmp_path):
    torch.manual_seed(0)
    flow = small_flow(model).to("cuda")
    x = torch.from_numpy(correlated_gaussian(4000, 1))
    val = torch.from_numpy(correlated_gaussian(1000, 2))
    config = TrainConfig(batch_size=256, max_epochs=4, patience=4, lr=3e-3, device="cuda", seed=1)
    result = train(flow, negative_log_likelihood, (x,), (val,), config, name=model)
    assert next(flow.parameters()).is_cuda
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"] + 1e-3
    # the target's entropy is ½ log det(2πe Σ) = 3.15 nats and N(0, I) costs 1.5 log 2π + 1.5 =
    # 4.26, so below 3.6 the flow has learned the correlations (3.17–3.40 after 4 epochs on the CPU)
    assert result.best_val_loss < 3.6

    save_flow(tmp_path / "m.pt", flow, model=model, params=small_params(model), features=FEATURES)
    on_cpu, _ = load_flow(tmp_path / "m.pt", "cpu")
    with torch.no_grad():
        expected = flow.eval().log_prob(val[:500].cuda()).cpu()
        assert torch.allclose(on_cpu.log_prob(val[:500]), expected, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("model", sorted(FLOWS))
def test_sampling_on_cuda_is_finite_seeded_and_matches_log_prob(model):
    torch.manual_seed(0)
    flow = small_flow(model).to("cuda").eval()
    generator = torch.Generator(device="cuda")
    with torch.no_grad():
        a = flow.sample(20_000, generator=generator.manual_seed(3))
        b = flow.sample(20_000, generator=generator.manual_seed(3))
        assert a.is_cuda and torch.isfinite(a).all()
        assert torch.equal(a, b)
        # the same model on the CPU assigns the GPU's samples the same density
        cpu = small_flow(model)
        cpu.load_state_dict({k: v.cpu() for k, v in flow.state_dict().items()})
        cpu.eval()
        assert torch.allclose(cpu.log_prob(a[:2000].cpu()), flow.log_prob(a[:2000]).cpu(), atol=1e-3, rtol=1e-4)


def test_generate_to_root_on_cuda(tmp_path):
    x = correlated_gaussian(5000, 4)
    scaler = fit_scaler(x, FEATURES, "gauss_rank")
    flow = small_flow("maf").to("cuda").eval()
    report = generate_to_root(flow, scaler, 25_000, tmp_path / "gen.root", chunk_size=10_000, seed=2)
    assert report.device.startswith("cuda")
    assert report.n_written + report.n_nonfinite == 25_000
    events = io.read_events(tmp_path / "gen.root")
    assert list(events) == list(FEATURES) and len(events["a"]) == report.n_written


def test_templates_fill_on_cuda_as_from_the_stored_sample(tmp_path):
    """fill_templates' path on a GPU: the events, the scores and the histograms of one chunk
    stream agree with the stored sample scored on the same device."""
    from flowsim.analysis.filling import fill_from_chunks
    from flowsim.analysis.selection import read_selected
    from flowsim.analysis.signal_classifier import score_file
    from flowsim.analysis.templates import make_template, uniform_edges
    from flowsim.classifier import MLPClassifier
    from flowsim.sampling import GeneratedChunks

    x = correlated_gaussian(5000, 4)
    scaler = fit_scaler(x, FEATURES, "gauss_rank")
    flow = small_flow("maf").to("cuda").eval()
    classifier = MLPClassifier(3, hidden=8, residual_blocks=1).to("cuda").eval()
    events, scores = tmp_path / "gen.root", tmp_path / "scores.root"
    generate_to_root(flow, scaler, 30_000, events, chunk_size=10_000, seed=2)
    score_file(classifier, scaler, events, scores, cut=0.3, chunk_size=10_000)
    edges = {"score": uniform_edges(0.3, 1.0, 10), "b": uniform_edges(-3.0, 3.0, 10)}
    chunks = GeneratedChunks(flow, scaler, 30_000, chunk_size=10_000, seed=2)
    filled = fill_from_chunks(chunks, classifier, scaler, cut=0.3, edges=edges)
    assert filled.device.startswith("cuda")
    for name, e in edges.items():
        stored = make_template(*read_selected([(events, scores)], name, 0.3), e)
        np.testing.assert_array_equal(filled.histograms[name].counts, stored.counts)


def test_classifier_trains_on_cuda():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 1, (3000, 3)), rng.normal(0.7, 1, (3000, 3))]).astype(np.float32)
    y = np.repeat([0.0, 1.0], 3000).astype(np.float32)
    order = rng.permutation(len(y))
    fit, val = order[:4500], order[4500:]
    config = TrainConfig(batch_size=256, max_epochs=5, patience=5, lr=2e-3, device="cuda", seed=3)
    model, _ = fit_classifier((x[fit], y[fit]), (x[val], y[val]), config,
                              hidden=16, residual_blocks=1, dropout=0.0, name="gpu classifier")  # fmt: skip
    assert next(model.parameters()).is_cuda
    score = predict_proba(model, x[val])
    # Bayes AUC of two unit Gaussians 0.7·√3 apart: Φ(0.7·√3/√2) = 0.805
    auc = weighted_auc(score[y[val] == 1], score[y[val] == 0]).auc
    assert auc == pytest.approx(0.805, abs=0.03)


def test_sign_flip_symmetry_and_weight_average_on_cuda(tmp_path):
    """The default rqs run's set-up: mirrored training events, averaged weights, the mixture."""
    from flowsim.flows.symmetry import RandomSignFlip, SignFlipMixture, flip_signs

    torch.manual_seed(0)
    flow = small_flow("rqs").to("cuda")
    signs = flip_signs(len(FEATURES), [0, 2]).to("cuda")
    x = torch.from_numpy(correlated_gaussian(2000, 1))
    val = torch.from_numpy(correlated_gaussian(500, 2)).to("cuda")
    config = TrainConfig(batch_size=256, max_epochs=2, patience=2, device="cuda", seed=1, average_epochs=1.0)
    val = torch.cat([val, val * signs])
    result = train(flow, negative_log_likelihood, (x,), (val,), config, augment=RandomSignFlip(signs))
    with torch.no_grad():  # what is returned is the validated average
        assert float(-flow.eval().log_prob(val).mean()) == pytest.approx(result.best_val_loss, rel=1e-4)
    save_flow(tmp_path / "f.pt", flow, model="rqs", params=small_params("rqs"), features=FEATURES, sign_flip=["a", "c"])
    gpu, _ = load_flow(tmp_path / "f.pt", "cuda")
    cpu, _ = load_flow(tmp_path / "f.pt", "cpu")
    assert isinstance(gpu, SignFlipMixture)
    z = gpu.sample(1000, generator=torch.Generator(device="cuda").manual_seed(0))
    assert z.is_cuda and torch.isfinite(z).all()
    with torch.no_grad():
        np.testing.assert_allclose(gpu(z).cpu(), cpu(z.cpu()), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(gpu(z * signs).cpu(), gpu(z).cpu(), rtol=1e-5, atol=1e-5)


def _conditional_checks(model: str, tmp_path, device: str) -> None:
    """A label-conditioned and a feature-conditioned flow built, sampled and reloaded on ``device``."""
    from flowsim.flows.conditional import FeatureConditioned, condition_on_feature

    torch.manual_seed(0)
    flow = build_flow(model, len(FEATURES), context=1, **small_params(model)).to(device).eval()
    x = torch.from_numpy(correlated_gaussian(500, 4)).to(device)
    label = torch.ones(len(x), 1, device=device)
    generator = torch.Generator(device=device)
    with torch.no_grad():
        assert torch.isfinite(flow.log_prob(x, label)).all()
        sample = flow.sample(300, generator=generator.manual_seed(1), context=torch.ones(1, device=device))
        assert sample.device.type == torch.device(device).type and torch.isfinite(sample).all()
    params = {**small_params(model), "context": 1}
    save_flow(tmp_path / "label.pt", flow, model=model, params=params, features=FEATURES, condition={"given": "label"})
    signal, _ = load_flow(tmp_path / "label.pt", device, label="signal")
    with torch.no_grad():
        torch.testing.assert_close(signal.log_prob(x), flow.log_prob(x, label))
    marginal = build_flow("rqs", 1, blocks=1, bins=6)
    joint = condition_on_feature(len(FEATURES), 2, marginal, build_flow(model, 2, context=1, **small_params(model)))
    joint = joint.to(device).eval()
    condition = {"given": "c", "marginal": {"model": "rqs", "params": {"blocks": 1, "bins": 6}}}
    save_flow(tmp_path / "joint.pt", joint, model=model, params=params, features=FEATURES, condition=condition)
    loaded, _ = load_flow(tmp_path / "joint.pt", device)
    assert isinstance(loaded, FeatureConditioned)
    with torch.no_grad():
        torch.testing.assert_close(loaded.log_prob(x), joint.log_prob(x))
        assert torch.isfinite(loaded.sample(300, generator=generator.manual_seed(2))).all()


@pytest.mark.parametrize("model", sorted(FLOWS))
def test_conditional_flows_build_sample_and_reload_on_cuda(model, tmp_path):
    _conditional_checks(model, tmp_path, "cuda")
