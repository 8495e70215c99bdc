"""The signal classifier, its score friend trees and the cut, against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowsim import io
from flowsim.analysis.selection import (
    SCORE_BRANCH,
    SelectionCounts,
    read_scores,
    read_selected,
    read_selected_events,
)  # fmt: skip
from flowsim.analysis.signal_classifier import (
    ClassifierSettings,
    labelled_sample,
    load_classifier,
    save_classifier,
    score_file,
    train_signal_classifier,
)  # fmt: skip
from flowsim.classifier import balanced_weights, predict_proba
from flowsim.data.scaling import fit_scaler
from flowsim.errors import ConfigError
from flowsim.metrics.roc import auc
from flowsim.stages.classifier import ScoreOutputs, score_and_cut

FEATURES = ["a", "b", "m_bb"]


def _gaussians(n: int, shift: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, size=(n, len(FEATURES))).astype(np.float32)


def _write(path, x: np.ndarray) -> None:
    io.write_events(path, {f: x[:, j] for j, f in enumerate(FEATURES)})


@pytest.fixture(scope="module")
def trained():
    """A classifier trained on two separated Gaussians (Bayes AUC Φ(√3 · 2/√2) ≈ 0.993)."""
    settings = ClassifierSettings.from_mapping(
        {"hidden": 16, "residual_blocks": 1, "training": {"max_epochs": 6, "device": "cpu"}}
    )
    x, y = labelled_sample(_gaussians(3000, 1.0, 1), _gaussians(3000, -1.0, 2))
    xv, yv = labelled_sample(_gaussians(600, 1.0, 3), _gaussians(600, -1.0, 4))
    scaler = fit_scaler(x, FEATURES, "gauss_rank")
    model, history = train_signal_classifier(
        (scaler.transform(x), y), (scaler.transform(xv), yv), settings
    )
    return model, scaler, settings, history


def test_settings_defaults_and_errors_name_the_key():
    settings = ClassifierSettings.from_mapping({})
    config = settings.train_config()
    assert (config.batch_size, config.max_epochs, config.patience, config.lr) == (512, 20, 4, 1e-3)
    assert ClassifierSettings.from_mapping({"seed": 7, "training": {"lr": 0.01}}).train_config().seed == 7
    with pytest.raises(ConfigError, match=r"analysis.classifier.*unknown key\(s\) \['hiden'\]"):
        ClassifierSettings.from_mapping({"hiden": 3})
    with pytest.raises(ConfigError, match="analysis.classifier.*hidden=0"):
        ClassifierSettings.from_mapping({"hidden": 0})
    with pytest.raises(ConfigError, match="analysis.classifier.*lr"):
        ClassifierSettings.from_mapping({"training": {"lr": -1}})


def test_labelled_sample_labels_and_caps_each_class():
    sig, bkg = _gaussians(50, 1.0, 0), _gaussians(80, -1.0, 1)
    x, y = labelled_sample(sig, bkg)
    assert x.shape == (130, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(y, np.r_[np.ones(50), np.zeros(80)])
    np.testing.assert_array_equal(x[:50], sig)
    x, y = labelled_sample(sig, bkg, max_events=20, seed=3)
    assert y.sum() == 20 and (1 - y).sum() == 20
    assert {tuple(r) for r in x[:20]} <= {tuple(r) for r in sig}
    x2, _ = labelled_sample(sig, bkg, max_events=20, seed=3)
    np.testing.assert_array_equal(x, x2)
    with pytest.raises(ValueError, match="both classes"):
        labelled_sample(sig, bkg[:0])


def test_classifier_separates_the_classes_and_reloads_without_pickle(tmp_path, trained):
    model, scaler, settings, history = trained
    assert history.best_epoch >= 1
    d_sig = predict_proba(model, scaler.transform(_gaussians(2000, 1.0, 10)))
    d_bkg = predict_proba(model, scaler.transform(_gaussians(2000, -1.0, 11)))
    assert auc(d_sig, d_bkg) > 0.97  # Bayes optimum 0.993
    path = tmp_path / "model.pt"
    save_classifier(path, model, settings, features=FEATURES, metadata={"auc": 0.99})
    payload = torch.load(path, weights_only=True)  # plain tensors and builtins only
    assert payload["features"] == FEATURES and payload["metadata"] == {"auc": 0.99}
    loaded, info = load_classifier(path)
    x = scaler.transform(_gaussians(100, 0.0, 12))
    np.testing.assert_array_equal(predict_proba(loaded, x), predict_proba(model, x))
    assert info["params"] == {"hidden": 16, "residual_blocks": 1, "dropout": 0.0}


def test_load_classifier_refuses_another_file(tmp_path):
    path = tmp_path / "flow.pt"
    torch.save({"format_version": 1, "model": "maf"}, path)
    with pytest.raises(ValueError, match="not a signal-classifier file"):
        load_classifier(path)


def test_score_file_is_the_classifier_output_in_any_chunking(tmp_path, trained):
    model, scaler, _, _ = trained
    x = _gaussians(1000, 0.3, 20)
    _write(tmp_path / "events.root", x)
    expected = predict_proba(model, scaler.transform(x)).astype(np.float32)
    for chunk in (97, 10_000):
        out = tmp_path / f"scores_{chunk}.root"
        counts = score_file(model, scaler, tmp_path / "events.root", out, cut=0.6, chunk_size=chunk)
        score = io.read_events(out)[SCORE_BRANCH]
        np.testing.assert_allclose(score, expected, rtol=1e-6, atol=1e-7)
        assert counts == SelectionCounts(1000, int(np.count_nonzero(score > 0.6)), 0.6)


def test_score_and_cut_writes_the_counts(tmp_path, trained):
    model, scaler, settings, _ = trained
    save_classifier(tmp_path / "model.pt", model, settings, features=FEATURES)
    scaler.save(tmp_path / "scaler.npz")
    _write(tmp_path / "events.root", _gaussians(300, 0.0, 30))
    counts = score_and_cut(
        ScoreOutputs(scores=tmp_path / "s.root", counts=tmp_path / "s.json"),
        model=tmp_path / "model.pt", scaler=tmp_path / "scaler.npz", events=tmp_path / "events.root",
        cut=0.5, device="cpu",
    )  # fmt: skip
    written = io.read_json(tmp_path / "s.json")
    assert written["n_total"] == 300 == io.root_entries(tmp_path / "s.root")
    assert written["n_selected"] == counts.n_selected
    assert written["efficiency"] == pytest.approx(counts.n_selected / 300)


def test_score_and_cut_refuses_a_scaler_of_other_features(tmp_path, trained):
    model, _, settings, _ = trained
    save_classifier(tmp_path / "model.pt", model, settings, features=FEATURES)
    fit_scaler(_gaussians(50, 0, 0), ["x", "y", "z"], "none").save(tmp_path / "scaler.npz")
    with pytest.raises(ValueError, match="scales .*'x'.* but .*expects"):
        score_and_cut(
            ScoreOutputs(scores=tmp_path / "s.root", counts=tmp_path / "s.json"),
            model=tmp_path / "model.pt", scaler=tmp_path / "scaler.npz",
            events=tmp_path / "missing.root", cut=0.5, device="cpu",
        )  # fmt: skip
    assert not (tmp_path / "s.root").exists()


def test_selection_counts_efficiency_and_binomial_error():
    counts = SelectionCounts(400, 100, 0.51)
    assert counts.efficiency == 0.25
    assert counts.efficiency_error == pytest.approx(math.sqrt(0.25 * 0.75 / 400))
    assert math.isnan(SelectionCounts(0, 0, 0.5).efficiency)


def test_read_selected_applies_the_cut_across_parts(tmp_path):
    parts = []
    rng = np.random.default_rng(5)
    expected_mbb, expected_score = [], []
    for i, n in enumerate((40, 25)):
        x = _gaussians(n, 0.0, 40 + i)
        score = rng.uniform(size=n).astype(np.float32)
        _write(tmp_path / f"e{i}.root", x)
        io.write_events(tmp_path / f"s{i}.root", {SCORE_BRANCH: score})
        parts.append((tmp_path / f"e{i}.root", tmp_path / f"s{i}.root"))
        expected_mbb.append(x[score > 0.51, 2])
        expected_score.append(score[score > 0.51])
    values, n_total = read_selected(parts, "m_bb", 0.51)
    assert n_total == 65
    np.testing.assert_array_equal(values, np.concatenate(expected_mbb))
    values, _ = read_selected(parts, "score", 0.51)
    np.testing.assert_array_equal(values, np.concatenate(expected_score))
    matrix = read_selected_events(parts, ["m_bb", "a"], 0.51)
    np.testing.assert_array_equal(matrix[:, 0], np.concatenate(expected_mbb))
    assert read_scores(parts).shape == (65,)


def test_read_selected_refuses_stale_scores(tmp_path):
    _write(tmp_path / "e.root", _gaussians(10, 0.0, 0))
    io.write_events(tmp_path / "s.root", {SCORE_BRANCH: np.zeros(9, np.float32)})
    with pytest.raises(ValueError, match=r"s\.root has 9 scores but .*e\.root has 10 events"):
        read_selected([(tmp_path / "e.root", tmp_path / "s.root")], "m_bb", 0.5)


def test_balanced_weights_give_each_class_half_the_weight():
    y = np.r_[np.ones(10), np.zeros(90)]
    w = balanced_weights(y)
    assert w[:10] == pytest.approx(5.0) and w[10:] == pytest.approx(100 / 180)
    assert w.mean() == pytest.approx(1.0) and w[:10].sum() == pytest.approx(w[10:].sum())
    with pytest.raises(ValueError, match="both classes"):
        balanced_weights(np.ones(5))


@pytest.mark.parametrize("balance", [True, False])
def test_balanced_training_makes_the_score_independent_of_the_signal_fraction(balance):
    """10% signal, N(+1, 1) vs background N(-1, 1) in each of 3 features: along x = t(1, 1, 1)
    the Bayes posterior is σ(6t) for balanced classes and σ(6t + ln(1/9)) with the 10% prior.
    Balanced training must learn the first, plain training the second."""
    settings = ClassifierSettings.from_mapping({
        "hidden": 16, "residual_blocks": 1, "balance_classes": balance,
        "training": {"max_epochs": 15, "batch_size": 128, "lr": 3e-3, "device": "cpu"},
    })  # fmt: skip
    x, y = labelled_sample(_gaussians(600, 1.0, 1), _gaussians(5400, -1.0, 2))
    xv, yv = labelled_sample(_gaussians(150, 1.0, 3), _gaussians(1350, -1.0, 4))
    scaler = fit_scaler(x, FEATURES, "gauss_rank")
    model, _ = train_signal_classifier((scaler.transform(x), y), (scaler.transform(xv), yv), settings)
    t = np.linspace(-0.5, 0.5, 5)
    line = (t[:, None] * np.ones((1, 3))).astype(np.float32)
    prior_logit = 0.0 if balance else math.log(1 / 9)
    bayes = 1 / (1 + np.exp(-(6 * t + prior_logit)))
    np.testing.assert_allclose(predict_proba(model, scaler.transform(line)), bayes, atol=0.15)


# --- weighted MC ---------------------------------------------------------------------------------


def test_balanced_weights_with_event_weights_balance_the_sums_of_weights():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(10), np.zeros(90)]
    v = rng.uniform(-0.5, 3.0, size=100)
    w = balanced_weights(y, v)
    # each class sums to N/2 in weight, whatever its count, and keeps its events' relative weights
    assert w[:10].sum() == pytest.approx(50.0, rel=1e-6) and w[10:].sum() == pytest.approx(50.0, rel=1e-6)
    np.testing.assert_allclose(w[:10], v[:10] * 50 / v[:10].sum(), rtol=1e-6)
    np.testing.assert_allclose(w[10:], v[10:] * 50 / v[10:].sum(), rtol=1e-6)
    np.testing.assert_array_equal(balanced_weights(y, np.ones(100)), balanced_weights(y))
    with pytest.raises(ValueError, match=r"positive sum of event weights.*-1 \(class 1\)"):
        balanced_weights(y, np.r_[-0.1 * np.ones(10), np.ones(90)])


def test_labelled_sample_carries_the_event_weights_of_the_kept_events():
    sig, bkg = _gaussians(50, 1.0, 0), _gaussians(80, -1.0, 1)
    v_sig = 100.0 + np.arange(50)  # the weight says which event it belongs to
    x, y, w = labelled_sample(sig, bkg, max_events=20, seed=3, signal_weights=v_sig)
    x_plain, y_plain = labelled_sample(sig, bkg, max_events=20, seed=3)
    np.testing.assert_array_equal(x, x_plain)  # the same subsets as without weights
    index = [int(np.flatnonzero((sig == row).all(axis=1))[0]) for row in x[:20]]
    np.testing.assert_array_equal(w[:20], v_sig[index])
    np.testing.assert_array_equal(w[20:], np.ones(20))  # an unweighted class: each event weighs 1
    with pytest.raises(ValueError, match="signal events: expected 50 event weights"):
        labelled_sample(sig, bkg, signal_weights=np.ones(49))


@pytest.mark.parametrize("balance", [True, False])
def test_weighted_training_learns_the_posterior_of_the_weighted_densities(balance):
    """Signal drawn from N(½, 1)³ and weighted by N(1, 1)³/N(½, 1)³ / 9 describes N(1, 1)³ at a
    10% prior against unweighted background N(−1, 1)³ (equal counts): along x = t(1, 1, 1) the
    posterior is σ(6t) balanced in Σw and σ(6t + ln(1/9)) unbalanced. Ignoring the weights gives
    σ(4.5t + 1.125) (0.75 at t = 0), balancing counts instead of Σw σ(6t + ln(1/9))."""
    settings = ClassifierSettings.from_mapping({
        "hidden": 16, "residual_blocks": 1, "balance_classes": balance,
        "training": {"max_epochs": 15, "batch_size": 128, "lr": 3e-3, "device": "cpu"},
    })  # fmt: skip

    def split(n: int, seed: int) -> tuple[np.ndarray, ...]:
        sig = _gaussians(n, 0.5, seed)
        ratio = np.exp((0.5 * (sig.astype(np.float64) - 0.75)).sum(axis=1))
        return labelled_sample(sig, _gaussians(n, -1.0, seed + 1), signal_weights=ratio / 9)

    x, y, w = split(2000, 1)
    xv, yv, wv = split(500, 3)
    scaler = fit_scaler(x, FEATURES, "gauss_rank")
    model, _ = train_signal_classifier(
        (scaler.transform(x), y), (scaler.transform(xv), yv), settings, train_weights=w, val_weights=wv
    )
    t = np.linspace(-0.5, 0.5, 5)
    line = (t[:, None] * np.ones((1, 3))).astype(np.float32)
    prior_logit = 0.0 if balance else math.log(1 / 9)
    bayes = 1 / (1 + np.exp(-(6 * t + prior_logit)))
    np.testing.assert_allclose(predict_proba(model, scaler.transform(line)), bayes, atol=0.12)


def test_all_ones_event_weights_train_the_unweighted_classifier_bit_for_bit():
    settings = ClassifierSettings.from_mapping(
        {"hidden": 8, "residual_blocks": 1, "training": {"max_epochs": 2, "device": "cpu"}}
    )
    x, y = labelled_sample(_gaussians(300, 1.0, 1), _gaussians(500, -1.0, 2))
    xv, yv = labelled_sample(_gaussians(100, 1.0, 3), _gaussians(100, -1.0, 4))
    plain, plain_result = train_signal_classifier((x, y), (xv, yv), settings)
    ones, ones_result = train_signal_classifier(
        (x, y), (xv, yv), settings, train_weights=np.ones(len(y)), val_weights=np.ones(len(yv))
    )
    losses = lambda result: [(row["train_loss"], row["val_loss"]) for row in result.history]  # noqa: E731
    assert losses(plain_result) == losses(ones_result)
    for name, value in plain.state_dict().items():
        assert torch.equal(value, ones.state_dict()[name]), name
    with pytest.raises(ValueError, match="event weights for one split only"):
        train_signal_classifier((x, y), (xv, yv), settings, train_weights=np.ones(len(y)))


def test_the_classifier_stage_refuses_weights_that_do_not_sum_to_a_positive_number(tmp_path):
    from flowsim.stages.classifier import fit_signal_classifier
    from flowsim.weights import WeightError

    x = _gaussians(20, 1.0, 0)
    io.write_events(tmp_path / "sig.root", {**{f: x[:, j] for j, f in enumerate(FEATURES)}, io.WEIGHT: -np.ones(20)})
    _write(tmp_path / "bkg.root", _gaussians(20, -1.0, 1))
    files = {"signal": tmp_path / "sig.root", "background": tmp_path / "bkg.root"}
    with pytest.raises(WeightError, match=r"sig\.root: the event weights sum to -20"):
        fit_signal_classifier(
            signal_train=files["signal"], background_train=files["background"], signal_val=files["signal"],
            background_val=files["background"], signal_test=[], background_test=[], features=FEATURES,
            scaling_method="gauss_rank", section={},
        )  # fmt: skip
