#!/usr/bin/env python3
"""The fidelity table: every run of the ``fidelity`` study against zuko's peers, from the
workflow's own outputs. It trains and samples nothing; ``config/fidelity.yaml`` is the protocol
and the workflow runs it:

    snakemake --cores all --configfile config/fidelity.yaml --config data='{path: /path/to/HIGGS.csv.gz}'
    python benchmarks/fidelity.py [--study results/studies/fidelity] [--markdown]

Per run, mean ± std over the seeds (``results/studies/<study>/summary.tsv`` and ``points.tsv``):
the best validation NLL (nats/event, scaled space), the C2ST AUC of test_a against the
generated sample (MLP, the ``c2st`` section), the mean copula χ²/dof over feature pairs (1 for
a perfect copula), the training time and sampling µs/event. The nulls, MC test_a against
test_b, head the table. Peers (zuko) are marked.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from flowsim import io
from flowsim.flows.registry import PEERS
from flowsim.studies import mean_std

ROOT = Path(__file__).resolve().parents[1]
#: (column of summary.tsv without _mean/_std, heading, format)
SUMMARY_COLUMNS = (
    ("val_nll", "val NLL", ".3f"),
    ("c2st_auc", "C2ST AUC", ".4f"),
    ("copula_chi2_dof_mean", "copula χ²/dof", ".2f"),
    ("train_seconds", "train s", ".0f"),
)
#: (column of points.tsv, heading, format): averaged here over the seeds
POINT_COLUMNS = (("us_per_event", "µs/event", ".1f"),)


def cell(mean: float, std: float, fmt: str) -> str:
    """``mean ± std``, or ``mean`` alone for a single seed, or ``-`` for no number."""
    if not math.isfinite(mean):
        return "-"
    return f"{mean:{fmt}}" if not math.isfinite(std) else f"{mean:{fmt}} ± {std:{fmt}}"


def fidelity_rows(summary: Sequence[Mapping[str, str]], points: Sequence[Mapping[str, str]]) -> list[list[str]]:
    """One table row per base run of the study, in the study's order."""
    rows = []
    for row in summary:
        base = row["base"]
        own = [p for p in points if p["base"] == base and p["value"] == row["value"]]
        name = f"{base} (peer)" if row["model"] in PEERS else base
        cells = [name, row["model"], row["n_seeds"]]
        cells += [cell(float(row[f"{c}_mean"]), float(row[f"{c}_std"]), fmt) for c, _, fmt in SUMMARY_COLUMNS]
        cells += [cell(*mean_std([float(p[c]) for p in own]), fmt) for c, _, fmt in POINT_COLUMNS]
        rows.append(cells)
    return rows


def headings() -> list[str]:
    return ["run", "model", "seeds", *(h for _, h, _ in SUMMARY_COLUMNS), *(h for _, h, _ in POINT_COLUMNS)]


def null_line(summary: Sequence[Mapping[str, str]]) -> str:
    """The MC-vs-MC nulls the runs are judged against (one split: the same for every run)."""
    first = summary[0]
    return (
        f"null (MC test_a vs test_b): C2ST AUC {float(first['c2st_auc_null']):.4f}, "
        f"copula χ²/dof {float(first['copula_chi2_dof_baseline']):.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, default=ROOT / "results" / "studies" / "fidelity",
                        help="the study's folder (default: %(default)s)")  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="a Markdown table (for benchmarks/README.md)")
    args = parser.parse_args(argv)
    summary_path, points_path = args.study / "summary.tsv", args.study / "points.tsv"
    for path in (summary_path, points_path):
        if not path.is_file():
            print(
                f"{path} does not exist: run the study first, e.g.\n  snakemake --cores all "
                "--configfile config/fidelity.yaml --config data='{path: /path/to/HIGGS.csv.gz}'",
                file=sys.stderr,
            )
            return 1
    summary, points = io.read_tsv(summary_path), io.read_tsv(points_path)
    if not summary:
        print(f"{summary_path} has no runs", file=sys.stderr)
        return 1
    print(null_line(summary))
    print(io.text_table(headings(), fidelity_rows(summary, points), markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
