#!/usr/bin/env python3
"""The floor a finite training set sets for the tree C2ST of fidelity.py (issue 7, fifth round).

fidelity.py's protocol and rows (default: all rows of ``../shared/data/higgs-sample.csv.gz``).
No flow is trained: test_b's copula is given the marginals of several other samples
(``with_marginals_of``) and judged against test_a with the tree C2ST, ``--draws`` times each,
classifier seed k for draw k; printed as mean ± standard error:

* test_b itself (the null);
* N(0, 1) mapped back through the inverse scaling (a flow exact in the scaled space);
* the training events drawn with replacement (their empirical distribution), and the same
  from random subsets of half and a quarter of them;
* training events drawn without replacement (an independent sample, like test_b).

    python benchmarks/training_floor.py [--rows 218291] [--draws 8] [--csv FILE]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

import fidelity
from flowsim.data.scaling import fit_scaler
from flowsim.metrics.c2st import tree_two_sample_test, with_marginals_of


def donors(data: dict, scaler) -> dict[str, Callable[[np.random.Generator], np.ndarray]]:
    """Each row's marginal donor, drawn afresh from a generator, test_b's size."""
    train, n = data["train"], len(data["test_b"])

    def resampled(pool_size: int) -> Callable[[np.random.Generator], np.ndarray]:
        def draw(rng: np.random.Generator) -> np.ndarray:
            pool = train[rng.choice(len(train), pool_size, replace=False)]
            return pool[rng.integers(0, pool_size, size=n)]
        return draw

    return {
        "test_b itself (the null)": lambda rng: data["test_b"],
        "N(0, 1) through the inverse scaling": lambda rng: scaler.inverse(
            rng.standard_normal(data["test_b"].shape).astype(np.float32)),
        f"the {len(train):,} training events, with replacement": resampled(len(train)),
        f"{len(train) // 2:,} training events, with replacement": resampled(len(train) // 2),
        f"{len(train) // 4:,} training events, with replacement": resampled(len(train) // 4),
        f"{n:,} training events, without replacement":
            lambda rng: train[rng.choice(len(train), n, replace=False)],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", default=str(fidelity.ROOT.parent / "shared" / "data" / "higgs-sample.csv.gz"))
    parser.add_argument("--rows", type=int, default=218_291)
    parser.add_argument("--draws", type=int, default=8)
    options = parser.parse_args()
    data = fidelity.background_splits(options.csv, 0, options.rows)
    flip = fidelity.CONFIG["symmetry"]["flip_signs"]
    scaler = fit_scaler(data["train"], fidelity.CONFIG["features"], "gauss_rank", odd=flip)
    print(f"train {len(data['train'])}, test_a {len(data['test_a'])}, test_b {len(data['test_b'])}; "
          f"{options.draws} draws per row\n")  # fmt: skip
    print("| test_b's copula with the marginals of | tree C2ST AUC |\n|---|---|")
    for name, draw in donors(data, scaler).items():
        aucs = [
            tree_two_sample_test(data["test_a"], with_marginals_of(data["test_b"], draw(np.random.default_rng(100 + k))), seed=k).auc
            for k in range(1, options.draws + 1)
        ]  # fmt: skip
        print(f"| {name} | {np.mean(aucs):.4f} ± {np.std(aucs, ddof=1) / np.sqrt(len(aucs)):.4f} |", flush=True)


if __name__ == "__main__":
    main()
