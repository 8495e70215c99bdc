"""Benchmark of the luminosity scan: the full grid on synthetic samples of realistic size.

Runs 30 luminosity points x 2 signal fractions x 2 observables x (MC reference + one "ML"
prediction) = 240 points, prints the wall time per (observable, alpha, background), the total
and the conditional fits (profiles at fixed mu) per second, then times pyhf's own
``pyhf.infer.intervals.upper_limits.upper_limit`` (toms748 root finding at ``--pyhf-rtol``,
1e-2 by default; ``--pyhf-rtol 0`` skips it) on ONE point and compares the limits.

    python benchmarks/analysis.py --threads 2

Synthetic samples (``--events`` per MC sample before the cut): background score ~ Beta(2, 5),
m_bb ~ Gamma(3, 0.3); signal score ~ Beta(5, 2), m_bb ~ N(1.0, 0.15); the "ML" prediction is a
slightly distorted background (score ~ Beta(2.05, 5), m_bb scaled by 1.02) with ``--ml-factor``
times the events. Selection: score > cut (0.51); 25 bins as in the paper.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads (2)")
    parser.add_argument("--events", type=int, default=100_000, help="events per MC sample")
    parser.add_argument("--ml-factor", type=float, default=1.0, help="ML / MC sample size (1)")
    parser.add_argument("--points", type=int, default=30, help="luminosity points (30)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument(
        "--pyhf-rtol", type=float, default=1e-2,
        help="rtol of the one pyhf upper_limit for comparison (1e-2; 0 skips it)",
    )  # fmt: skip
    parser.add_argument(
        "--pyhf-background", choices=("mc", "ml"), default="mc",
        help="prediction of the pyhf comparison point (mc; ml takes pyhf several minutes)",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="log every scan point")
    return parser.parse_args(argv)


def make_samples(n: int, n_ml: int, seed: int) -> dict[str, tuple[dict[str, Any], int]]:
    """name -> ({observable: values of all events}, events before the cut)."""
    import numpy as np

    from flowsim.analysis.config import SCORE

    rng = np.random.default_rng(seed)

    def background(size: int, a: float = 2.0, scale: float = 1.0) -> dict[str, Any]:
        return {SCORE: rng.beta(a, 5.0, size), "m_bb": scale * rng.gamma(3.0, 0.3, size)}

    return {
        "signal": ({SCORE: rng.beta(5.0, 2.0, n), "m_bb": rng.normal(1.0, 0.15, n)}, n),
        "test_a": (background(n), n),
        "mc": (background(n), n),
        "ml": (background(n_ml, a=2.05, scale=1.02), n_ml),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy is imported

    import logging

    from flowsim.analysis.config import SCORE, AnalysisConfig
    from flowsim.analysis.scan import scan_observable
    from flowsim.analysis.templates import make_template

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    config = AnalysisConfig(lumi_fb=(10.0, 1000.0, args.points))
    n_ml = int(args.ml_factor * args.events)
    samples = make_samples(args.events, n_ml, args.seed)

    def template(name: str, observable: str):
        values, total = samples[name]
        selected = values[observable][values[SCORE] > config.cut]
        return make_template(selected, total, config.edges(observable), name=f"{name}/{observable}")

    rows, scans = [], []
    t_start = time.perf_counter()
    for observable in config.observables:
        signal, data = template("signal", observable), template("test_a", observable)
        for alpha in config.alphas:
            for label in ("mc", "ml"):
                t0 = time.perf_counter()
                (scan,) = scan_observable(
                    signal, data, {label: template(label, observable)},
                    config=AnalysisConfig(lumi_fb=config.lumi_fb, alphas=(alpha,)),
                    observable=observable,
                )  # fmt: skip
                rows.append((scan, time.perf_counter() - t0))
                scans.append(scan)
    total = time.perf_counter() - t_start
    print_table(rows, total, args, n_ml, config.n_bins)
    if args.pyhf_rtol > 0:
        compare_with_pyhf(args, config, template, total, sum(len(s.points) for s in scans))
    return 0


def print_table(rows: list, total: float, args: argparse.Namespace, n_ml: int, n_bins: int) -> None:
    """Wall time and profiles per second per scan, and in total."""
    print(f"threads={args.threads} events/MC sample={args.events} ML events={n_ml} bins={n_bins}")
    print(f"{'observable':<10} {'alpha':>6} {'bkg':>4} {'points':>6} {'failed':>6} "
          f"{'profiles':>8} {'wall [s]':>9} {'profiles/s':>10}")  # fmt: skip
    for scan, dt in rows:
        bad = sum(p.status != "ok" for p in scan.points)
        print(f"{scan.observable:<10} {scan.alpha:>6g} {scan.background:>4} {len(scan.points):>6d} "
              f"{bad:>6d} {scan.n_profiles:>8d} {dt:>9.3f} "
              f"{scan.n_profiles / dt:>10.0f}")  # fmt: skip
    points = sum(len(s.points) for s, _ in rows)
    failed = sum(p.status != "ok" for s, _ in rows for p in s.points)
    profiles = sum(s.n_profiles for s, _ in rows)
    print(f"{'total':<10} {'':>6} {'':>4} {points:>6d} {failed:>6d} {profiles:>8d} "
          f"{total:>9.3f} {profiles / total:>10.0f}")  # fmt: skip
    print(f"per point: {1e3 * total / points:.1f} ms "
          "(fit, CLs(mu=1), Z, observed + 5 expected limits)")  # fmt: skip


def compare_with_pyhf(args, config, template, total: float, n_points: int) -> None:
    """Time pyhf's upper_limit at the middle luminosity (score, first alpha, --pyhf-background)."""
    import pyhf

    from flowsim.analysis.config import SCORE
    from flowsim.analysis.inference import AsymptoticCalculator
    from flowsim.analysis.likelihood import BinnedLikelihood
    from flowsim.analysis.model import build_workspace, channel_yields
    from flowsim.analysis.templates import merge_empty_bins

    label, alpha = args.pyhf_background, config.alphas[0]
    lumi = float(config.lumis()[len(config.lumis()) // 2])
    pred, sig, data = merge_empty_bins(
        template(label, SCORE), template("signal", SCORE), template("test_a", SCORE)
    )
    yields = channel_yields(
        sig, data, pred, lumi_fb=lumi, alpha=alpha, sigma_b_fb=config.sigma_b_fb
    )
    workspace = pyhf.Workspace(build_workspace(yields))
    model = workspace.model()
    t0 = time.perf_counter()
    obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(
        workspace.data(model), model, rtol=args.pyhf_rtol
    )
    t_pyhf = time.perf_counter() - t0
    t0 = time.perf_counter()
    limits = AsymptoticCalculator(BinnedLikelihood.from_yields(yields), cl=config.cl).limits()
    t_ours = time.perf_counter() - t0
    print(f"one point ({SCORE}, alpha={alpha:g}, {label}, L={lumi:.4g} fb^-1, "
          f"{model.config.npars} parameters):")  # fmt: skip
    print(f"  pyhf upper_limit (toms748, rtol={args.pyhf_rtol:g}): {t_pyhf:.1f} s; "
          f"this module's limits: {1e3 * t_ours:.1f} ms (x{t_pyhf / t_ours:.0f}); "
          f"whole {n_points}-point scan: {total:.1f} s")  # fmt: skip
    print(f"  observed  pyhf {float(obs):.5f}  ours {limits.observed:.5f}")
    print(f"  expected  pyhf {[round(float(e), 5) for e in exp]}")
    print(f"            ours {[round(e, 5) for e in limits.expected]}")


if __name__ == "__main__":
    sys.exit(main())
