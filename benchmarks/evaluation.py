"""Time the evaluation stage at full scale: per-feature distances, AUC statistics and the C2ST.

Default: 10^6 vs 10^6 events x 18 features (the paper's hold-out size), 100 bins, K = 5
resamples on 2 threads, AUC + DeLong on 10^6 vs 10^6 scores, and the classifier two-sample test
on 10^6 vs 10^6 events with the default config's classifier (``--c2st-epochs`` caps its
epochs; 0 skips it). Peers on the same data: ``scipy.stats.wasserstein_distance`` for W1 and
``sklearn.metrics.roc_auc_score`` for the AUC.

    python benchmarks/evaluation.py [--events 1000000] [--features 18] [--jobs 2] [--c2st-epochs 30]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits


def _best_of(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _data(n: int, f: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HIGGS-like float32 columns: long-tailed positives (momenta, masses), test_a/test_b/gen."""
    rng = np.random.default_rng(seed)
    shape = rng.uniform(1.5, 4.0, f)

    def draw(scale: float) -> np.ndarray:
        return (rng.gamma(shape, scale / shape, size=(n, f))).astype(np.float32)

    return draw(1.0), draw(1.02), draw(1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per sample")
    parser.add_argument("--features", type=int, default=18, help="number of features")
    parser.add_argument("--bins", type=int, default=100, help="bins per feature")
    parser.add_argument("--resamples", type=int, default=5, help="K draws per feature")
    parser.add_argument("--jobs", type=int, default=2, help="threads (cores) to use")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--c2st-epochs", type=int, default=30, help="C2ST max epochs (0: skip)")
    args = parser.parse_args(argv)
    # Cap BLAS/OpenMP pools too, so that "--jobs 2" means 2 cores for every peer.
    with threadpool_limits(args.jobs):
        _run(args)


def _run(args: argparse.Namespace) -> None:
    from scipy.stats import wasserstein_distance
    from sklearn.metrics import roc_auc_score

    from flowsim.metrics import distances as D
    from flowsim.metrics import roc as R

    n, f = args.events, args.features
    test_a, gen, test_b = _data(n, f, args.seed)
    cols_a = [test_a[:, j].astype(np.float64) for j in range(f)]
    cols_g = [gen[:, j].astype(np.float64) for j in range(f)]
    edges = [D.reference_binning(c, args.bins) for c in cols_a]

    def hist_metric(metric: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[], None]:
        def run() -> None:  # binning of both samples included: that is the real cost
            for a, g, e in zip(cols_a, cols_g, edges):
                metric(D.binned_counts(a, e), D.binned_counts(g, e))
        return run

    rows: list[tuple[str, str, float]] = []
    what = f"{n:.0e} vs {n:.0e} x {f}"
    for name, fn in [("chi2", D.chi2_distance), ("kl", D.kl_divergence),
                     ("hellinger", D.hellinger_distance)]:
        rows.append((name, what, _best_of(hist_metric(fn), args.repeat)))
    rows.append(("wasserstein (flowsim)", what, _best_of(
        lambda: [D.wasserstein_1d(a, g) for a, g in zip(cols_a, cols_g)], args.repeat)))
    rows.append(("wasserstein (scipy peer)", what, _best_of(
        lambda: [wasserstein_distance(a, g) for a, g in zip(cols_a, cols_g)], 1)))
    g_short = [c[: int(0.7 * n)] for c in cols_g]  # unequal sizes take the general merge path
    rows.append(("wasserstein, unequal (flowsim)", f"{n:.0e} vs {0.7 * n:.0e} x {f}", _best_of(
        lambda: [D.wasserstein_1d(a, g) for a, g in zip(cols_a, g_short)], args.repeat)))
    rows.append(("wasserstein, unequal (scipy peer)", f"{n:.0e} vs {0.7 * n:.0e} x {f}", _best_of(
        lambda: [wasserstein_distance(a, g) for a, g in zip(cols_a, g_short)], 1)))
    names = [f"x{j}" for j in range(f)]
    rows.append((f"distance_table K={args.resamples} + baseline, {args.jobs} threads", what,
                 _best_of(lambda: D.distance_table(test_a, gen, test_b, names, n_bins=args.bins,
                                                   n_resamples=args.resamples,
                                                   n_jobs=args.jobs), 1)))

    rng = np.random.default_rng(args.seed + 1)
    pos = rng.normal(0.05, 1.0, n).astype(np.float32)
    neg = rng.normal(0.0, 1.0, n).astype(np.float32)
    labels = np.r_[np.ones(n), np.zeros(n)]
    both = np.r_[pos, neg]
    rows.append(("auc (Mann-Whitney)", f"{n:.0e} vs {n:.0e} scores",
                 _best_of(lambda: R.auc(pos, neg), args.repeat)))
    rows.append(("auc + DeLong std", f"{n:.0e} vs {n:.0e} scores",
                 _best_of(lambda: R.auc_delong(pos, neg), args.repeat)))
    rows.append(("roc_auc_score (sklearn peer)", f"{n:.0e} vs {n:.0e} scores",
                 _best_of(lambda: roc_auc_score(labels, both), args.repeat)))

    if args.c2st_epochs:
        rows.append(_time_c2st(test_a, gen, args))

    est = R.auc_delong(pos, neg)
    width = max(len(r[0]) for r in rows)
    print(f"{'computation':<{width}}  {'data':<24}  {'seconds':>8}")
    for name, data, sec in rows:
        print(f"{name:<{width}}  {data:<24}  {sec:8.3f}")
    print(f"\nAUC = {est.auc:.5f} +- {est.std:.5f} (DeLong); sklearn "
          f"{roc_auc_score(labels, both):.5f}")


def _time_c2st(test_a: np.ndarray, gen: np.ndarray, args: argparse.Namespace) -> tuple[str, str, float]:
    """One C2ST as the workflow runs it (config/config.yaml's c2st section), timed whole."""
    from pathlib import Path

    import torch
    import yaml

    from flowsim.metrics.c2st import C2STSettings, classifier_two_sample_test

    torch.set_num_threads(args.jobs)
    section = yaml.safe_load((Path(__file__).parents[1] / "config/config.yaml").read_text())["c2st"]
    section = {k: v for k, v in section.items() if k != "seed"}
    section["training"] = {**section.get("training", {}), "max_epochs": args.c2st_epochs}
    # standardised like the workflow's scaled inputs
    mu, sd = test_a.mean(0), test_a.std(0)
    t0 = time.perf_counter()
    result = classifier_two_sample_test(
        (test_a - mu) / sd, (gen - mu) / sd, settings=C2STSettings.from_mapping(section), seed=args.seed
    )
    seconds = time.perf_counter() - t0
    epochs = result.training.epochs_run
    print(f"C2ST: AUC {result.auc:.4f} +- {result.auc_err:.4f}, {epochs} epochs "
          f"({seconds / max(epochs, 1):.1f} s/epoch incl. validation), {result.n_test} test events")
    n = len(test_a)
    return (f"c2st ({epochs} epochs, {args.jobs} threads)", f"{n:.0e} vs {n:.0e} x {test_a.shape[1]}", seconds)


if __name__ == "__main__":
    main()
