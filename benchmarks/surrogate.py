#!/usr/bin/env python3
"""What the generated templates and the surrogate uncertainty do to the fit, from workflow results.

For every run of one or more workflow directories (``results/`` of a finished run): how many
events are behind its ML templates, the relative statistical error of its templates and of the
MC reference's (test_b), the relative surrogate uncertainty of an ensemble, and at the highest
luminosity of each scan the pull of the ML fit on the MC reference's,
:math:`(\\hat\\mu_{ML} - \\hat\\mu_{MC}) / \\sigma_{MC}`, with and without the surrogate
uncertainty, and the ratio of their expected limits. Comparing a directory run with
``analysis.n_template_events: 1x`` against one at the default shows how much of the ML-MC
difference was template noise.

    python benchmarks/surrogate.py DIR [DIR ...] [--runs maf rqs] [--configfile config/config.yaml ...]

The config files (default ``config/config.yaml``, merged in order as Snakemake merges
``--configfile``) say which members make each run's prediction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from flowsim import io
from flowsim.analysis.scan import read_scan_tsv
from flowsim.analysis.template_files import read_templates
from flowsim.analysis.templates import EnsembleTemplate
from flowsim.config import merge_config
from flowsim.settings import WorkflowSettings, parse_settings

ROOT = Path(__file__).resolve().parents[1]


def _relative(error: np.ndarray, eff: np.ndarray) -> float:
    """The median over the filled bins of error / efficiency."""
    filled = eff > 0
    return float(np.median(error[filled] / eff[filled])) if filled.any() else float("nan")


def _relative_total(error: np.ndarray, eff: np.ndarray) -> float:
    """Σ error / Σ efficiency: the relative uncertainty of the selected total if the bins move together."""
    return float(error.sum() / eff.sum()) if eff.sum() > 0 else float("nan")


def settings_of(configfiles: list[Path]) -> WorkflowSettings:
    """The workflow settings of ``configfiles`` merged in order, validated as the workflow does."""
    from snakemake.utils import validate

    config: dict = {}
    for path in configfiles:
        config = merge_config(config, yaml.safe_load(path.read_text()))
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return parse_settings(config)


def template_rows(directory: Path, runs: list[str] | None, settings: WorkflowSettings) -> list[dict]:
    """One row per run and observable: events, members, relative errors."""
    rows = []
    templates = directory / "results/templates"
    for run in runs or list(settings.runs):
        files = [templates / name / "templates.root" for name in settings.template_runs(run)]
        if not all(f.exists() for f in files):
            continue
        contents = [read_templates(f) for f in files]
        for observable in contents[0].templates:
            ensemble = EnsembleTemplate(tuple(c[observable] for c in contents))
            pooled = ensemble.pooled
            sigma = ensemble.surrogate_error() if ensemble.size > 1 else None
            rows.append({
                "run": run, "observable": observable, "members": ensemble.size,
                "events": pooled.n_total, "rel_stat": _relative(pooled.error, pooled.efficiency),
                "rel_surrogate": float("nan") if sigma is None else _relative(sigma, pooled.efficiency),
                "rel_surrogate_total": float("nan") if sigma is None else _relative_total(sigma, pooled.efficiency),
                "bins_with_surrogate": 0 if sigma is None else int(np.count_nonzero(sigma > 0)),
                "bins": pooled.n_bins,
            })  # fmt: skip
    return rows


def pull_rows(directory: Path, runs: list[str] | None) -> list[dict]:
    """One row per run, observable and α: pulls and limit ratios at the highest luminosity."""
    rows = []
    for path in sorted((directory / "results/analysis").glob("*/lumi_scan_*.tsv")):
        run = path.parent.name
        if runs and run not in runs:
            continue
        points = read_scan_tsv(path)
        top = max(p.lumi_fb for p in points)
        at = {p.background: p for p in points if p.lumi_fb == top}
        mc, ml, sur = at.get("mc"), at.get("ml"), at.get("ml_surrogate")
        if mc is None or ml is None:
            continue
        rows.append({
            "run": run, "scan": path.stem.removeprefix("lumi_scan_"), "lumi": top,
            "pull": (ml.mu_hat - mc.mu_hat) / mc.mu_err,
            "pull_surrogate": (sur.mu_hat - mc.mu_hat) / mc.mu_err if sur else float("nan"),
            "mu_err_ratio": sur.mu_err / ml.mu_err if sur else float("nan"),
            "ul_exp_ratio": sur.ul_exp / ml.ul_exp if sur else float("nan"),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directories", nargs="+", type=Path)
    parser.add_argument("--runs", nargs="*", default=None)
    parser.add_argument("--configfile", nargs="*", type=Path, default=[ROOT / "config" / "config.yaml"])
    args = parser.parse_args()
    settings = settings_of(args.configfile)
    for directory in args.directories:
        mc = io.root_entries(directory / "results/data/bkg_test_b.root")
        print(f"\n## {directory} (MC reference test_b: {mc} events before the cut)\n")
        print("| run | observable | members | events per template | rel. stat. error (median bin) | "
              "rel. surrogate unc. (median bin) | Σσ/Σε | bins with σ > 0 |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for r in template_rows(directory, args.runs, settings):
            print(f"| {r['run']} | {r['observable']} | {r['members']} | {r['events']:.3g} | "
                  f"{r['rel_stat']:.4f} | {r['rel_surrogate']:.4f} | {r['rel_surrogate_total']:.4f} | "
                  f"{r['bins_with_surrogate']}/{r['bins']} |")  # fmt: skip
        print("\n| run | scan | L fb⁻¹ | (μ̂_ML − μ̂_MC)/σ_MC | same, with surrogate unc. | σ_μ ratio | "
              "expected-limit ratio |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for r in pull_rows(directory, args.runs):
            print(f"| {r['run']} | {r['scan']} | {r['lumi']:.4g} | {r['pull']:+.3f} | {r['pull_surrogate']:+.3f} | "
                  f"{r['mu_err_ratio']:.3f} | {r['ul_exp_ratio']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
