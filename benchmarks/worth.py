#!/usr/bin/env python3
"""What a generated event is worth, tabulated from the workflow's own outputs (the worth stage).
It fits and trains nothing; the workflow writes the tables:

    snakemake --cores all                                       # amplification, spurious signal
    snakemake results/worth/coverage.tsv --cores all --configfile config/coverage-cpu.yaml
    python benchmarks/worth.py [--results results] [--study results/studies/amplification] [--markdown]

Three tables, each where its inputs exist:

* amplification, per run: G = n_equiv / n_train of the score and m_bb templates after the cut
  with their 68% bootstrap intervals, G as N_generated -> infinity (the bias alone) for the score,
  the median G over the features' marginals before the cut, and the estimator's own check (MC
  test_b judged alike: n_equiv over its size, 1 up to noise); with ``--study``, G of the score
  and m_bb templates of each point of a ``train_events`` study, with their intervals;
* spurious signal, per run and observable: |μ̂_spur|/σ_μ of the ML background at the lowest
  luminosity and its largest value (with where), beside the MC reference's largest;
* coverage, per observable, signal fraction and background model: the coverage at each
  luminosity with its binomial error.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from flowsim import io
from flowsim.studies import mean_std

ROOT = Path(__file__).resolve().parents[1]


def _interval(row: Mapping[str, str]) -> str:
    return f"{float(row['G']):.2f} [{float(row['G_low']):.2f}, {float(row['G_high']):.2f}]"


def amplification_rows(results: Path, runs: Sequence[str]) -> list[list[str]]:
    """One row per run with an ``amplification.tsv``."""
    out = []
    for run in runs:
        path = results / "worth" / run / "amplification.tsv"
        if not path.is_file():
            continue
        table = io.read_tsv(path)
        by = {r["template"]: r for r in table}
        score = by["score"]
        marginals = [float(r["G"]) for r in table if r["kind"] == "marginal"]
        out.append([
            run, f"{score['n_members']} × {int(score['n_generated']) // int(score['n_members']):,}",
            score["n_train"], _interval(score), f"{float(score['n_equiv_limit']) / float(score['n_train']):.2f}",
            _interval(by["m_bb"]) if "m_bb" in by else "-",
            f"{statistics.median(marginals):.2f}" if marginals else "-",
            f"{float(score['mc_ratio']):.2f}",
        ])  # fmt: skip
    return out


AMPLIFICATION_HEADINGS = (
    "run", "members × events", "n_train", "G score [68%]", "G∞ score", "G m_bb [68%]", "median G marginals",
    "MC check (score)",
)  # fmt: skip


def spurious_rows(results: Path, runs: Sequence[str]) -> list[list[str]]:
    """One row per run and observable with a ``spurious.tsv`` (the signal fractions agree: α only
    rescales μ, so the first one's fits stand for all)."""
    out = []
    for run in runs:
        path = results / "worth" / run / "spurious.tsv"
        if not path.is_file():
            continue
        table = [r for r in io.read_tsv(path) if math.isfinite(float(r["significance"]))]
        for observable in dict.fromkeys(r["observable"] for r in table):
            alpha = next(r["alpha"] for r in table if r["observable"] == observable)
            cells = [run, observable]
            for background in ("ml", "mc"):
                key = (observable, alpha, background)
                points = [r for r in table if (r["observable"], r["alpha"], r["background"]) == key]
                points.sort(key=lambda r: float(r["lumi_fb"]))
                worst = max(points, key=lambda r: abs(float(r["significance"])))
                if background == "ml":
                    cells.append(f"{float(points[0]['significance']):+.2f} at {float(points[0]['lumi_fb']):.3g}")
                cells.append(f"{float(worst['significance']):+.2f} at {float(worst['lumi_fb']):.3g}")
            out.append(cells)
    return out


SPURIOUS_HEADINGS = ("run", "observable", "ML μ̂/σ_μ, lowest L", "ML largest |μ̂/σ_μ|", "MC test_b largest")


def coverage_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Headings (one column per luminosity) and one row per observable, α and background model."""
    table = io.read_tsv(path)
    lumis = sorted({float(r["lumi_fb"]) for r in table})
    keys = dict.fromkeys((r["observable"], r["alpha"], r["background"]) for r in table)
    rows = []
    for key in keys:
        by = {float(r["lumi_fb"]): r for r in table if (r["observable"], r["alpha"], r["background"]) == key}
        cells = [f"{float(by[lumi]['coverage']):.2f} ± {float(by[lumi]['coverage_error']):.2f}" for lumi in lumis]
        rows.append([*key, table[0]["n_replicas"], *cells])
    return ["observable", "α", "background", "replicas", *(f"{lumi:.3g}/fb" for lumi in lumis)], rows


def study_rows(study: Path, results: Path) -> list[list[str]]:
    """One row per point of a ``train_events`` study: G of its score and m_bb templates with
    their 68% intervals (from the point's ``amplification.tsv``), and the mean ± std of G over
    the seeds of its training size."""
    points = io.read_tsv(study / "points.tsv")
    rows = []
    for point in points:
        by = {r["template"]: r for r in io.read_tsv(results / "worth" / point["run"] / "amplification.tsv")}
        seeds = [float(p["G_score"]) for p in points if (p["base"], p["value"]) == (point["base"], point["value"])]
        mean, std = mean_std(seeds)
        spread = f" ± {std:.2f}" if math.isfinite(std) else ""
        rows.append([
            point["base"], point["n_train"], point["seed"], by["score"]["n_truth"], _interval(by["score"]),
            _interval(by["m_bb"]) if "m_bb" in by else "-", f"{mean:.2f}{spread}",
        ])  # fmt: skip
    return rows


STUDY_HEADINGS = (
    "run", "n_train", "seed", "n_truth", "G score [68%]", "G m_bb [68%]", "G score, mean ± std over seeds",
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="the results folder (%(default)s)")
    parser.add_argument("--study", type=Path, help="a train_events study's folder, for G against the training size")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables (for benchmarks/README.md)")
    args = parser.parse_args(argv)
    summary = args.results / "summary" / "runs.tsv"
    runs = [r["run"] for r in io.read_tsv(summary)] if summary.is_file() else []
    printed = False
    for title, headings, rows in (
        ("Amplification of each run's templates", AMPLIFICATION_HEADINGS, amplification_rows(args.results, runs)),
        ("Spurious signal (ML background, S+B fit to background-only truth)", SPURIOUS_HEADINGS,
         spurious_rows(args.results, runs)),
    ):  # fmt: skip
        if rows:
            print(f"{title}\n{io.text_table(headings, rows, markdown=args.markdown)}\n")
            printed = True
    coverage = args.results / "worth" / "coverage.tsv"
    if coverage.is_file():
        headings, rows = coverage_rows(coverage)
        print(f"Coverage of the 68% interval on mu\n{io.text_table(headings, rows, markdown=args.markdown)}\n")
        printed = True
    if args.study is not None:
        if not (args.study / "points.tsv").is_file():
            print(f"{args.study / 'points.tsv'} does not exist: run the study first (config/amplification.yaml)")
            return 1
        rows = study_rows(args.study, args.results)
        print(f"Amplification against the training size\n{io.text_table(STUDY_HEADINGS, rows, markdown=args.markdown)}")
        printed = True
    if not printed:
        print(f"nothing to tabulate under {args.results}: run the workflow first (snakemake --cores all)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
