#!/usr/bin/env python3
"""Template filling (rule ``fill_templates``) against the flow's sampling alone, and its memory.

For every run of ``config/config.yaml`` (default size, 18 features, weights as initialised:
the speed does not depend on them) and the default signal classifier, fill the templates of
the default observables from N events exactly as the workflow does
(:class:`~flowsim.sampling.GeneratedChunks` -> :func:`~flowsim.analysis.filling.fill_from_chunks`)
and report the flow's own sampling time (µs/event, what ``sampling.tsv`` reports), the whole
filling (sampling + unscaling + scoring + cut + histograms) and the overhead of the rest over
the sampling. Then the peak RSS of whole filling processes at two sizes (default 10⁶ and 10⁷
events, one family), each in a fresh subprocess, so that the second shows whether memory grows
with N. The same command on a GPU (``--device cuda``) times 10⁹ events with ``--events``.

    python benchmarks/templates.py [--device cpu] [--events 100000] [--rss-events 1000000 10000000]
        [--rss-model glow] [--families glow maf ...] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def _setup(model: str, device: str):
    """A default-size flow of run ``model``, a toy-fitted scaler, the default classifier."""
    from flowsim.analysis.config import AnalysisConfig
    from flowsim.classifier import MLPClassifier
    from flowsim.data.scaling import fit_scaler
    from flowsim.data.toy import COLUMNS, generate_toy
    from flowsim.flows import build_flow

    config = _config()
    features = config["features"]
    toy = generate_toy(50_000, seed=1)
    x = toy[toy[:, 0] == 0][:, [COLUMNS.index(f) for f in features]]
    odd = config["symmetry"]["flip_signs"]
    scaler = fit_scaler(x, features, config["scaling"]["method"], odd=odd)
    run = config["flows"][model]
    torch.manual_seed(0)
    flow = build_flow(run["model"], len(features), **run.get("params", {})).to(device).eval()
    section = config["analysis"]
    net = section["classifier"]
    classifier = MLPClassifier(len(features), hidden=net["hidden"], residual_blocks=net["residual_blocks"])
    classifier = classifier.to(device).eval()
    analysis = AnalysisConfig.from_mapping({k: v for k, v in section.items() if k != "n_template_events"})
    edges = {name: analysis.edges(name) for name in analysis.observables}
    return flow, scaler, classifier, edges, analysis.cut


def fill_once(model: str, n: int, device: str, chunk_size: int) -> dict:
    from flowsim.analysis.filling import fill_from_chunks
    from flowsim.sampling import GeneratedChunks

    flow, scaler, classifier, edges, cut = _setup(model, device)
    with torch.no_grad():
        chunks = GeneratedChunks(flow, scaler, n, chunk_size=chunk_size, seed=1, max_nonfinite_fraction=1.0)
        filled = fill_from_chunks(chunks, classifier, scaler, cut=cut, edges=edges)
    return {
        "model": model, "events": n,
        "sampling_us": 1e6 * filled.seconds_sampling / n,
        "filling_us": 1e6 * filled.seconds_total / n,
        "overhead": filled.seconds_total / filled.seconds_sampling - 1.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip


def _child(args: argparse.Namespace, model: str, n: int) -> dict:
    cmd = [sys.executable, __file__, "--child", model, str(n), "--device", args.device,
           "--chunk-size", str(args.chunk_size), "--threads", str(args.threads)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--events", type=int, default=100_000, help="events per family for the speed table")
    parser.add_argument("--rss-events", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--rss-model", default="glow")
    parser.add_argument("--families", nargs="*", default=None, help="runs of config/config.yaml (default: all)")
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the workflow's jobs use 1)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(fill_once(args.child[0], int(args.child[1]), args.device, args.chunk_size)))
        return
    families = args.families or list(_config()["flows"])
    print(f"# template filling, {args.events} events per family, device {args.device}, "
          f"{args.threads} thread(s), chunks of {args.chunk_size}")  # fmt: skip
    print("| run | sampling µs/event | filling µs/event | overhead over sampling | events/s |")
    print("|---|---|---|---|---|")
    for model in families:
        row = _child(args, model, args.events)
        print(f"| {model} | {row['sampling_us']:.2f} | {row['filling_us']:.2f} | "
              f"{100 * row['overhead']:.0f}% | {1e6 / row['filling_us']:.3g} |", flush=True)  # fmt: skip
    if args.rss_events:
        print(f"\n# peak RSS of whole filling processes, run {args.rss_model}")
        print("| events | wall s | peak RSS MB |")
        print("|---|---|---|")
        for n in args.rss_events:
            started = time.perf_counter()
            row = _child(args, args.rss_model, n)
            print(f"| {n:.0e} | {time.perf_counter() - started:.1f} | {row['peak_rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
