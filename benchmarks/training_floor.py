#!/usr/bin/env python3
"""The floor a finite training set sets for the tree C2ST of the fidelity protocol (issue 7, fifth round),
and what samplers without a flow reach on the full joint distribution (tenth round).

the fidelity protocol's split and rows (default: all rows of ``../shared/data/higgs-sample.csv.gz``).
No flow is trained. Every row is judged against test_a with the tree C2ST, ``--draws`` times,
classifier seed k for draw k, and printed as mean ± standard error.

The first table gives test_b's copula the marginals of several other samples
(``with_marginals_of``):

* test_b itself (the null);
* N(0, 1) mapped back through the inverse scaling (a flow exact in the scaled space), and
  through scalings thinned to at most K knots for each K of ``--max-knots`` (coarser knots
  smooth the training set's fluctuations out of the map, eleventh round);
* the training events drawn with replacement (their empirical distribution), and the same
  from random subsets of half and a quarter of them;
* training events drawn without replacement (an independent sample, like test_b).

The second table judges whole events, as a generated sample is judged:

* test_b (the null), and training events drawn without replacement;
* the training events drawn with replacement: reusing the Monte Carlo itself as the
  "generated" sample;
* a Gaussian kernel density estimate in the scaled space (a smoothed bootstrap): a training
  event plus h·N(0, I), for each bandwidth h of ``--bandwidths``, mapped back.

    python benchmarks/training_floor.py [--rows 218291] [--draws 8] [--csv FILE]
        [--bandwidths 0.02 0.05 0.1 0.2] [--max-knots 1000 300 100 50]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import yaml

from flowsim.data.higgs import FEATURE_COLUMNS
from flowsim.data.reader import read_higgs
from flowsim.data.scaling import Scaler, fit_scaler
from flowsim.data.splits import SplitFractions, split_indices
from flowsim.metrics.c2st import tree_two_sample_test, with_marginals_of

Draw = Callable[[np.random.Generator], np.ndarray]


ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def background_splits(path: str, rows: int) -> dict[str, np.ndarray]:
    """The background of the first ``rows`` rows, split as the paper (seed 42: 40% train, 10%
    val, 25% test_a, 25% test_b), on the default features."""
    background = read_higgs(path, max_rows=rows).background
    columns = [FEATURE_COLUMNS.index(f) for f in CONFIG["features"]]
    parts = split_indices(len(background), seed=42, label=0, fractions=SplitFractions())
    return {name: background[index][:, columns] for name, index in parts.items()}


def fit_protocol_scaler(train: np.ndarray, **options) -> Scaler:
    """The default Gauss-rank scaling, with the odd maps of ``symmetry.flip_signs``, fitted on
    ``train``; ``options`` go to ``fit_scaler`` (e.g. ``max_knots``)."""
    flip = CONFIG.get("symmetry", {}).get("flip_signs", [])
    return fit_scaler(train, CONFIG["features"], "gauss_rank", odd=flip, **options)


def without_replacement(train: np.ndarray, n: int) -> Draw:
    """n distinct training events: an independent sample of the truth, as test_b is."""
    return lambda rng: train[rng.choice(len(train), n, replace=False)]


def through_inverse(scaler: Scaler, shape: tuple[int, int]) -> Draw:
    """N(0, 1) mapped back to data units: the sample of a flow exact in the scaled space."""
    return lambda rng: scaler.inverse(rng.standard_normal(shape).astype(np.float32))


def donors(data: dict, scaler, max_knots: Iterable[int] = ()) -> dict[str, Draw]:
    """Each row's marginal donor, drawn afresh from a generator, test_b's size."""
    train, n = data["train"], len(data["test_b"])
    shape = data["test_b"].shape

    def resampled(pool_size: int) -> Draw:
        def draw(rng: np.random.Generator) -> np.ndarray:
            pool = train[rng.choice(len(train), pool_size, replace=False)]
            return pool[rng.integers(0, pool_size, size=n)]
        return draw

    return {
        "test_b itself (the null)": lambda rng: data["test_b"],
        "N(0, 1) through the inverse scaling": through_inverse(scaler, shape),
        **{f"N(0, 1) through a scaling of at most {k:,} knots":
           through_inverse(fit_protocol_scaler(train, max_knots=k), shape) for k in max_knots},
        f"the {len(train):,} training events, with replacement": resampled(len(train)),
        f"{len(train) // 2:,} training events, with replacement": resampled(len(train) // 2),
        f"{len(train) // 4:,} training events, with replacement": resampled(len(train) // 4),
        f"{n:,} training events, without replacement": without_replacement(train, n),
    }  # fmt: skip


def kernel_density_sample(
    scaled_train: np.ndarray, scaler, bandwidth: float, n: int, rng: np.random.Generator
) -> np.ndarray:
    r"""n events of the Gaussian kernel density estimate
    :math:`\hat p(z) = \frac{1}{N} \sum_i \mathcal{N}(z; z_i, h^2 I)` of the scaled training
    events :math:`z_i`, mapped back to data units: a random training event plus
    :math:`h \cdot \mathcal{N}(0, I)`."""
    z = scaled_train[rng.integers(0, len(scaled_train), size=n)]
    return scaler.inverse((z + bandwidth * rng.standard_normal(z.shape)).astype(np.float32))


def samplers(data: dict, scaler, bandwidths: Iterable[float]) -> dict[str, Draw]:
    """Whole-event samples of test_b's size that no flow made."""
    train, n = data["train"], len(data["test_b"])
    scaled_train = scaler.transform(train)
    rows: dict[str, Draw] = {
        "test_b (the null)": lambda rng: data["test_b"],
        f"{n:,} training events, without replacement": without_replacement(train, n),
        f"the {len(train):,} training events, with replacement": lambda rng: train[rng.integers(0, len(train), size=n)],
    }  # fmt: skip
    for h in bandwidths:
        rows[f"Gaussian kernel density estimate, h = {h:g}"] = (
            lambda rng, h=h: kernel_density_sample(scaled_train, scaler, h, n, rng))
    return rows


def judged(reference: np.ndarray, draw: Draw, draws: int, compose: Callable[[np.ndarray], np.ndarray]) -> str:
    """Mean ± standard error of the tree C2ST AUC over ``draws`` fresh samples."""
    aucs = [
        tree_two_sample_test(reference, compose(draw(np.random.default_rng(100 + k))), seed=k).auc
        for k in range(1, draws + 1)
    ]  # fmt: skip
    return f"{np.mean(aucs):.4f} ± {np.std(aucs, ddof=1) / np.sqrt(len(aucs)):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", default=str(ROOT.parent / "shared" / "data" / "higgs-sample.csv.gz"))
    parser.add_argument("--rows", type=int, default=218_291)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--bandwidths", type=float, nargs="*", default=[0.02, 0.05, 0.1, 0.2])
    parser.add_argument("--max-knots", type=int, nargs="*", default=[],
                        help="also the floor through scalings thinned to these many knots (default 10,000)")
    options = parser.parse_args()
    data = background_splits(options.csv, options.rows)
    scaler = fit_protocol_scaler(data["train"])
    print(f"train {len(data['train'])}, test_a {len(data['test_a'])}, test_b {len(data['test_b'])}; "
          f"{options.draws} draws per row\n")  # fmt: skip
    print("| test_b's copula with the marginals of | tree C2ST AUC |\n|---|---|")
    for name, draw in donors(data, scaler, options.max_knots).items():
        result = judged(data["test_a"], draw, options.draws, lambda x: with_marginals_of(data["test_b"], x))
        print(f"| {name} | {result} |", flush=True)
    print("\n| whole events | tree C2ST AUC |\n|---|---|")
    for name, draw in samplers(data, scaler, options.bandwidths).items():
        print(f"| {name} | {judged(data['test_a'], draw, options.draws, lambda x: x)} |", flush=True)


if __name__ == "__main__":
    main()
