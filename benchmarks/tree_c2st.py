#!/usr/bin/env python3
"""The fidelity protocol's judge on any set of trained runs: the gradient-boosted-tree C2ST of
each run's generated sample against MC test_a, with the null (MC test_a against test_b) and the
numbers the workflow already wrote beside it. It trains and samples nothing; run the runs
first, e.g. the first seed of some of the fidelity study's runs:

    snakemake --cores all --configfile config/fidelity.yaml --config data='{path: /path/to/HIGGS.csv.gz}' \\
        -- results/eval/fidelity-rqs-all-s1/c2st.tsv results/eval/fidelity-cfm-all-s1/c2st.tsv
    python benchmarks/tree_c2st.py fidelity-rqs-all-s1 fidelity-cfm-all-s1 [--markdown]

Per run: the tree C2ST AUC ± its DeLong error (``flowsim.metrics.c2st.tree_two_sample_test``,
equal-size samples, half held out, seed 0), the workflow's MLP C2ST AUC (``eval/{run}/c2st.tsv``),
the best validation NLL (the model file; nats/event in the scaled space), the training time
(``benchmarks/train_flow/{run}.tsv``) and the sampling cost (``flows/{run}/sampling.tsv``).
Runs trained on several seeds (``…-s1``, ``…-s2``) are also summarised as mean ± std per base.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from flowsim import io
from flowsim.data.scaling import load_scaler
from flowsim.metrics.c2st import tree_two_sample_test
from flowsim.model_files import read_model_file
from flowsim.studies import mean_std

HEADINGS = ["run", "tree C2ST AUC", "MLP C2ST AUC", "val NLL", "train s", "sampling µs/event"]
#: the numbers of a run (``run_row``'s keys but the error) and their formats, in the table's order
FORMATS = (("tree", ".4f"), ("mlp", ".4f"), ("val_nll", ".3f"), ("train_s", ".0f"), ("us_per_event", ".0f"))


def _first(rows: list[dict[str, str]], column: str) -> float:
    return float(rows[0][column]) if rows and rows[0].get(column) not in (None, "") else math.nan


def run_row(workdir: Path, run: str, reference, features: list[str], seed: int) -> dict[str, float]:
    """The numbers of one run (NaN where the workflow has not written them)."""
    generated = io.read_matrix(workdir / f"results/flows/{run}/generated.root", features)
    tree = tree_two_sample_test(reference, generated, seed=seed)
    c2st = workdir / f"results/eval/{run}/c2st.tsv"
    mlp = {r["metric"]: float(r["value"]) for r in io.read_tsv(c2st)} if c2st.is_file() else {}
    timing = workdir / f"results/benchmarks/train_flow/{run}.tsv"
    sampling = workdir / f"results/flows/{run}/sampling.tsv"
    return {
        "tree": tree.auc,
        "tree_err": tree.std,
        "mlp": mlp.get("auc", math.nan),
        "val_nll": float(read_model_file(workdir / f"results/flows/{run}/model.pt")["metadata"]["val_nll"]),
        "train_s": _first(io.read_tsv(timing), "s") if timing.is_file() else math.nan,
        "us_per_event": _first(io.read_tsv(sampling), "us_per_event") if sampling.is_file() else math.nan,
    }


def cells(name: str, row: dict[str, float]) -> list[str]:
    return [
        name, f"{row['tree']:.4f} ± {row['tree_err']:.4f}", f"{row['mlp']:.4f}", f"{row['val_nll']:.3f}",
        f"{row['train_s']:.0f}", f"{row['us_per_event']:.0f}",
    ]  # fmt: skip


def by_base(rows: dict[str, dict[str, float]]) -> list[list[str]]:
    """Mean ± std over the seeds of the runs named ``<base>-s<k>``, for bases with two or more."""
    groups: dict[str, list[dict[str, float]]] = {}
    for run, row in rows.items():
        match = re.fullmatch(r"(.+)-s\d+", run)
        if match:
            groups.setdefault(match.group(1), []).append(row)
    out = []
    for base, group in groups.items():
        if len(group) < 2:
            continue
        cell = [f"{base} ({len(group)} seeds)"]
        for key, fmt in FORMATS:
            mean, std = mean_std([r[key] for r in group])
            cell.append(f"{mean:{fmt}} ± {std:{fmt}}")
        out.append(cell)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run names (folders of results/flows/)")
    parser.add_argument("--workdir", type=Path, default=Path.cwd(), help="the workflow's directory (default: here)")
    parser.add_argument("--seed", type=int, default=0, help="the tree C2ST's seed (default: 0)")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table (for benchmarks/README.md)")
    args = parser.parse_args(argv)
    missing = [r for r in args.runs if not (args.workdir / f"results/flows/{r}/generated.root").is_file()]
    if missing:
        print(f"no generated sample for {missing} under {args.workdir}/results/flows: run them first", file=sys.stderr)
        return 1
    features = list(load_scaler(args.workdir / "results/data/scaler.npz").features)
    test_a = io.read_matrix(args.workdir / "results/data/bkg_test_a.root", features)
    test_b = io.read_matrix(args.workdir / "results/data/bkg_test_b.root", features)
    null = tree_two_sample_test(test_a, test_b, seed=args.seed)
    print(f"null (MC test_a vs test_b): tree C2ST AUC {null.auc:.4f} ± {null.std:.4f}", flush=True)
    rows = {}
    for run in args.runs:
        rows[run] = run_row(args.workdir, run, test_a, features, args.seed)
        print(f"{run}: tree C2ST AUC {rows[run]['tree']:.4f}", file=sys.stderr, flush=True)
    table = [cells(run, row) for run, row in rows.items()] + by_base(rows)
    print(io.text_table(HEADINGS, table, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
