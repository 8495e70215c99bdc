"""Tests of the toy HIGGS generator: layout, determinism, physics structure, CSV writing."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from flowsim.data import toy
from flowsim.data.higgs import BTAG_COLUMNS, COLUMNS, HIGH_LEVEL, PHI_COLUMNS
from flowsim.data.toy import (
    ETA_MAX,
    ETA_SCALE,
    MASSES,
    SCALES,
    boost,
    generate_toy,
    neutrino_pz,
    two_body_momentum,
    write_toy_csv,
)

SEED = 20240911
N = 40_000
ETA_COLUMNS = tuple(c for c in COLUMNS if c.endswith("_eta"))
POSITIVE_COLUMNS = tuple(SCALES)  # momenta and masses
#: The real HIGGS file's b-tag unit per jet (DESIGN.md): each column takes 0, b and 2b only.
HIGGS_BTAG_UNITS = {
    "jet1_btag": 1.0865381,
    "jet2_btag": 1.1074361,
    "jet3_btag": 1.2741122,
    "jet4_btag": 1.5509807,
}


@pytest.fixture(scope="module")
def events() -> np.ndarray:
    return generate_toy(N, SEED)


def column(x: np.ndarray, name: str, label: float | None = None) -> np.ndarray:
    values = x[:, COLUMNS.index(name)].astype(np.float64)
    return values if label is None else values[x[:, 0] == label]


def in_file_units(name: str, mass_gev: float) -> float:
    return mass_gev / SCALES[name]


def histogram_mode(values: np.ndarray, width: float) -> float:
    """Centre of the most populated bin of the given width on [0, 3]."""
    counts, edges = np.histogram(values, bins=round(3.0 / width), range=(0.0, 3.0))
    k = int(np.argmax(counts))
    return 0.5 * (edges[k] + edges[k + 1])


def window_fraction(values: np.ndarray, centre: float, rel: float = 0.05) -> float:
    """Fraction of values within ±rel of centre."""
    return float(np.mean(np.abs(values / centre - 1.0) < rel))


def auc(signal: np.ndarray, background: np.ndarray) -> float:
    """Area under the ROC curve of a cut on one variable (Mann–Whitney U / (n_s n_b))."""
    ranks = np.empty(signal.size + background.size)
    ranks[np.argsort(np.concatenate([signal, background]), kind="stable")] = np.arange(
        1, ranks.size + 1
    )
    u = ranks[: signal.size].sum() - signal.size * (signal.size + 1) / 2
    return float(u / (signal.size * background.size))


# ---------------------------------------------------------------------------------------------
# Layout and arguments


def test_generate_toy_layout(events):
    assert events.shape == (N, len(COLUMNS)) == (N, 29)
    assert events.dtype == np.float32
    assert np.isfinite(events).all()


def test_labels_and_signal_fraction(events):
    labels = events[:, 0]
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert labels.sum() == N // 2
    # shuffled: the classes are interleaved, not in two blocks
    assert 0.4 < labels[: N // 10].mean() < 0.6
    assert np.count_nonzero(np.diff(labels)) > N // 4


@pytest.mark.parametrize(
    ("n", "fraction", "n_signal"), [(1001, 0.3, 300), (7, 0.0, 0), (5, 1.0, 5)]
)
def test_signal_fraction_is_exact(n, fraction, n_signal):
    x = generate_toy(n, 3, signal_fraction=fraction)
    assert x.shape == (n, 29)
    assert int(x[:, 0].sum()) == n_signal


def test_determinism(events):
    again = generate_toy(N, SEED)
    assert again.tobytes() == events.tobytes()
    other = generate_toy(N, SEED + 1)
    assert not np.array_equal(other, events)
    assert not np.array_equal(generate_toy(100, 0), generate_toy(100, 1))


def test_exactly_n_events_across_chunks(monkeypatch):
    # small chunks: several seeded chunks and several acceptance rounds per class
    monkeypatch.setattr(toy, "CHUNK_EVENTS", 500)
    x = generate_toy(1234, 5, signal_fraction=0.4)
    assert x.shape == (1234, 29)
    assert int(x[:, 0].sum()) == round(1234 * 0.4)
    assert np.isfinite(x).all()
    assert np.array_equal(x, generate_toy(1234, 5, signal_fraction=0.4))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_events": 0},
        {"n_events": -5},
        {"n_events": 10.0},
        {"n_events": True},
        {"seed": -1},
        {"seed": 1.5},
        {"signal_fraction": -0.1},
        {"signal_fraction": 1.5},
        {"signal_fraction": float("nan")},
        {"signal_fraction": "0.5"},
    ],
)
def test_bad_arguments_raise(kwargs):
    args = {"n_events": 10, "seed": 0, "signal_fraction": 0.5} | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        generate_toy(args["n_events"], args["seed"], signal_fraction=args["signal_fraction"])


# ---------------------------------------------------------------------------------------------
# Value ranges and file conventions


def test_phi_within_file_range(events):
    for name in PHI_COLUMNS:
        phi = column(events, name)
        assert np.abs(phi).max() <= 1.744
        assert np.abs(phi).max() > 1.70  # the whole circle is used
        assert abs(phi.mean()) < 0.05 and 0.95 < phi.std() < 1.06  # uniform: std (π/1.8015)/√3


def test_eta_within_acceptance(events):
    for name in ETA_COLUMNS:
        eta = column(events, name)
        assert np.abs(eta).max() <= ETA_MAX / ETA_SCALE * (1 + 1e-6)
        assert 0.8 < eta.std() < 1.2


def test_momenta_and_masses_positive_with_mean_one(events):
    for name in POSITIVE_COLUMNS:
        values = column(events, name)
        assert values.min() > 0.0, name
        assert 0.85 < values.mean() < 1.15, name
        assert values.max() < 50.0, name  # O(1) values with tails, not runaway ones


def test_btag_three_levels(events):
    for name in BTAG_COLUMNS:
        levels = np.unique(column(events, name))
        unit = HIGGS_BTAG_UNITS[name]
        np.testing.assert_allclose(levels, [0.0, unit, 2 * unit], rtol=1e-6)
        assert np.float32(2 * unit) == np.float32(levels[2])
    # b jets are tagged more often in signal events (two b's from h⁰ among the hardest jets)
    tagged = sum(column(events, name) > 0 for name in BTAG_COLUMNS)
    assert 1.0 < tagged.mean() < 3.0


# ---------------------------------------------------------------------------------------------
# Physics structure


def test_m_lv_has_a_sharp_w_peak_in_both_classes(events):
    expected = in_file_units("m_lv", MASSES["W"][0])
    assert expected == pytest.approx(0.99, abs=0.005)  # where the real file has it
    for label in (0.0, 1.0):
        m_lv = column(events, "m_lv", label)
        assert histogram_mode(m_lv, 0.01) == pytest.approx(expected, abs=0.015)
        assert window_fraction(m_lv, expected, 0.02) > 0.6
        assert np.median(m_lv) == pytest.approx(expected, abs=0.02)


def test_m_jj_peaks_at_the_w_mass(events):
    expected = in_file_units("m_jj", MASSES["W"][0])
    for label in (0.0, 1.0):
        m_jj = column(events, "m_jj", label)
        assert histogram_mode(m_jj, 0.05) == pytest.approx(expected, abs=0.075)


@pytest.mark.parametrize("name", ["m_jjj", "m_jlv"])
def test_top_masses_peak_at_the_top_in_background(events, name):
    expected = in_file_units(name, MASSES["top"][0])
    background = column(events, name, 0.0)
    assert histogram_mode(background, 0.05) == pytest.approx(expected, abs=0.075)
    # tops are background physics: the window around m_t is richer in background
    signal = column(events, name, 1.0)
    assert window_fraction(background, expected) > 1.4 * window_fraction(signal, expected)


# Minimum ratio of the signal's to the background's fraction of events within ±5 % of the
# resonance: m_wbb is built with the hadronic W, which is the H± daughter in half the events only.
@pytest.mark.parametrize(
    ("name", "particle", "ratio"),
    [("m_bb", "h0", 2.5), ("m_wbb", "Hpm", 1.3), ("m_wwbb", "H0", 1.5)],
)
def test_signal_resonances(events, name, particle, ratio):
    expected = in_file_units(name, MASSES[particle][0])
    signal, background = column(events, name, 1.0), column(events, name, 0.0)
    assert histogram_mode(signal, 0.05) == pytest.approx(expected, abs=0.075)
    # the background does not peak there: far fewer of its events in a ±5 % window
    assert window_fraction(signal, expected) > ratio * window_fraction(background, expected)


def test_background_m_wbb_peaks_below_the_charged_higgs(events):
    expected = in_file_units("m_wbb", MASSES["Hpm"][0])
    # a broad distribution: wide bins for a stable mode (0.85 against 0.96)
    assert histogram_mode(column(events, "m_wbb", 0.0), 0.1) < expected - 0.075


def test_signal_and_background_separable_but_overlapping(events):
    signal, background = events[events[:, 0] == 1], events[events[:, 0] == 0]
    aucs = {}
    for name in HIGH_LEVEL + ("lepton_pt", "met", "jet1_pt"):
        i = COLUMNS.index(name)
        a = auc(signal[:, i], background[:, i])
        aucs[name] = max(a, 1 - a)
    # no single feature separates the classes well, but the resonance masses carry information
    assert max(aucs.values()) < 0.75, aucs
    assert aucs["m_wwbb"] > 0.55 and aucs["m_bb"] > 0.53, aucs
    # the distributions overlap: the overlap coefficient Σ min(p_s, p_b) of m_wwbb is large
    i = COLUMNS.index("m_wwbb")
    p_s, _ = np.histogram(signal[:, i], bins=60, range=(0, 3))
    p_b, _ = np.histogram(background[:, i], bins=60, range=(0, 3))
    overlap = np.minimum(p_s / len(signal), p_b / len(background)).sum()
    assert 0.5 < overlap < 0.95


def test_high_level_masses_follow_low_level_features(events):
    # correlations between low- and high-level features: harder jets, heavier systems
    corr = np.corrcoef(column(events, "jet1_pt"), column(events, "m_wwbb"))[0, 1]
    assert corr > 0.3


# ---------------------------------------------------------------------------------------------
# Kinematics helpers


def test_two_body_momentum():
    # t → W b: p* = √[(M² − (m1+m2)²)(M² − (m1−m2)²)] / 2M
    M, m1, m2 = 173.0, 80.4, 4.8
    p = two_body_momentum(np.array([M]), m1, m2)[0]
    assert np.sqrt(p**2 + m1**2) + np.sqrt(p**2 + m2**2) == pytest.approx(M)
    assert two_body_momentum(np.array([50.0]), 30.0, 30.0)[0] == 0.0  # below threshold
    assert two_body_momentum(np.array([10.0]), 0.0, 0.0)[0] == pytest.approx(5.0)


def test_boost_preserves_mass_and_moves_rest_to_parent():
    rng = np.random.default_rng(0)
    n = 1000
    masses = rng.uniform(100, 500, n)
    momenta = rng.normal(0, 300, (3, n))
    parent = np.vstack([np.sqrt(masses**2 + (momenta**2).sum(axis=0)), momenta])
    at_rest = np.vstack([masses, np.zeros((3, n))])
    np.testing.assert_allclose(boost(at_rest, parent, masses), parent, rtol=1e-10, atol=1e-9)
    p = np.vstack([np.full(n, 50.0), rng.normal(0, 20, (3, n))])
    p[0] = np.sqrt(3.0**2 + (p[1:] ** 2).sum(axis=0))
    q = boost(p, parent, masses)
    m2 = lambda v: v[0] ** 2 - (v[1:] ** 2).sum(axis=0)  # noqa: E731
    np.testing.assert_allclose(m2(q), 9.0, rtol=1e-6)
    # a parent at rest (β = 0) leaves vectors unchanged
    np.testing.assert_allclose(boost(p, at_rest, masses), p)


def test_neutrino_pz_solves_the_w_constraint():
    rng = np.random.default_rng(1)
    n = 2000
    m_w = 80.4
    w = np.vstack([np.zeros(n), rng.normal(0, 50, (3, n))])
    w[0] = np.sqrt(m_w**2 + (w[1:] ** 2).sum(axis=0))
    lepton, neutrino = toy._decay(rng, w, np.full(n, m_w), 0.0, 0.0)
    pz = neutrino_pz(lepton, neutrino[1], neutrino[2], m_w)
    px, py = neutrino[1], neutrino[2]
    nu = np.vstack([np.sqrt(px**2 + py**2 + pz**2), px, py, pz])
    total = lepton + nu
    mass = np.sqrt(total[0] ** 2 - (total[1:] ** 2).sum(axis=0))
    # real roots exist for a true W decay (up to rounding where the discriminant is ≈ 0)
    np.testing.assert_allclose(mass, m_w, rtol=1e-4)
    # one of the two roots is the truth; the chosen one has the smaller |p_z|
    other = 2 * lepton[3] * (0.5 * m_w**2 + lepton[1] * neutrino[1] + lepton[2] * neutrino[2]) / (
        lepton[1] ** 2 + lepton[2] ** 2
    ) - pz
    close = {"rtol": 1e-4, "atol": 0.05}
    is_truth = np.isclose(pz, neutrino[3], **close) | np.isclose(other, neutrino[3], **close)
    assert is_truth.all()
    assert (np.abs(pz) <= np.abs(other) + 1e-9).all()


def test_neutrino_pz_negative_discriminant_takes_real_part():
    lepton = np.array([[50.0], [50.0], [0.0], [0.0]])  # E, px, py, pz
    pz = neutrino_pz(lepton, np.array([-200.0]), np.array([0.0]), 80.4)  # MET far too large
    assert pz[0] == 0.0  # μ p_z,ℓ / p_T,ℓ² with p_z,ℓ = 0


def test_descending_order_matches_a_stable_argsort():
    rng = np.random.default_rng(2)
    key = rng.integers(0, 4, size=(5, 3000)).astype(float)  # many ties
    expected = np.argsort(-key, axis=0, kind="stable")
    assert np.array_equal(toy._descending_order(key), expected)


# ---------------------------------------------------------------------------------------------
# Writing CSV files


@pytest.mark.parametrize("name", ["toy.csv", "toy.csv.gz"])
def test_write_toy_csv_round_trip(tmp_path, name):
    path = tmp_path / name
    write_toy_csv(path, 3000, 7, signal_fraction=0.4)
    expected = generate_toy(3000, 7, signal_fraction=0.4)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as f:
        first = f.readline()
    assert len(first.split(",")) == 29
    float(first.split(",")[0])  # a number, not a header
    read = np.loadtxt(path, delimiter=",")
    assert read.shape == (3000, 29)
    assert np.array_equal(read.astype(np.float32), expected)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left behind


def test_write_toy_csv_is_gzip_by_suffix(tmp_path):
    write_toy_csv(tmp_path / "a.csv.gz", 50, 1)
    write_toy_csv(tmp_path / "a.csv", 50, 1)
    assert (tmp_path / "a.csv.gz").read_bytes()[:2] == b"\x1f\x8b"
    text = (tmp_path / "a.csv").read_bytes()
    assert gzip.decompress((tmp_path / "a.csv.gz").read_bytes()) == text
    # no name or time stamp in the gzip header: the same arguments give the same bytes
    write_toy_csv(tmp_path / "b.csv.gz", 50, 1)
    assert (tmp_path / "b.csv.gz").read_bytes() == (tmp_path / "a.csv.gz").read_bytes()


def test_write_toy_csv_blocks_do_not_change_content(tmp_path, monkeypatch):
    monkeypatch.setattr(toy, "CHUNK_EVENTS", 400)
    write_toy_csv(tmp_path / "small.csv", 2100, 3, block_size=400)
    write_toy_csv(tmp_path / "large.csv", 2100, 3, block_size=10**6)
    assert (tmp_path / "small.csv").read_bytes() == (tmp_path / "large.csv").read_bytes()
    read = np.loadtxt(tmp_path / "small.csv", delimiter=",").astype(np.float32)
    assert np.array_equal(read, generate_toy(2100, 3))


def test_write_toy_csv_leaves_nothing_on_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(toy, "CHUNK_EVENTS", 200)
    real_chunk = toy._chunk
    calls = []

    def failing_chunk(*args):
        calls.append(args)
        if len(calls) > 2:  # after the first blocks were written to the temporary file
            raise RuntimeError("disk on fire")
        return real_chunk(*args)

    monkeypatch.setattr(toy, "_chunk", failing_chunk)
    path = tmp_path / "HIGGS.csv.gz"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_toy_csv(path, 1000, 1, block_size=200)
    assert list(tmp_path.iterdir()) == []
    # an existing file is not touched by a failed write
    path.write_text("old\n")
    calls.clear()
    with pytest.raises(RuntimeError):
        write_toy_csv(path, 1000, 1, block_size=200)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["HIGGS.csv.gz"]


def test_write_toy_csv_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="block_size"):
        write_toy_csv(tmp_path / "x.csv", 10, 0, block_size=0)
    with pytest.raises(ValueError, match="n_events"):
        write_toy_csv(tmp_path / "x.csv", 0, 0)
    with pytest.raises(ValueError, match="signal_fraction"):
        write_toy_csv(tmp_path / "x.csv", 10, 0, signal_fraction=2.0)
    assert list(tmp_path.iterdir()) == []


def test_write_toy_csv_creates_directories(tmp_path):
    path = tmp_path / "resources" / "higgs" / "HIGGS.csv.gz"
    write_toy_csv(path, 20, 0)
    assert [p.name for p in path.parent.iterdir()] == ["HIGGS.csv.gz"]
