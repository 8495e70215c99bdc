#!/usr/bin/env python3
"""Training and sampling speed of every flow family, against zuko in the same run.

For each model of ``config/config.yaml`` (default size) and ``config/paper.yaml`` (paper size)
on 18 features: training throughput (forward + backward + AdamW step, events/s) at batch 1024
and at the best of a few larger batches, and sampling speed (µs/event at a large batch). zuko
1.6 (a maintained PyTorch flow library; a benchmark-only dependency, ``pip install -e
.[bench]``) runs its equivalents of maf, rqs and nsf_coupling at the same sizes.
On a CUDA device (TF32 matmuls on, as the workflow's GPU jobs run) also the achieved fraction
of the card's dense TF32 tensor-core peak (training, from the parameter count: ~6 FLOP per
parameter per event for forward + backward, an estimate), and for the paper-size glow,
mafmademog and rqs the speed-up of sampling over the paper's Table 2 (RTX 3070). A batch that
does not fit in the GPU's memory is reported as such and larger ones are skipped. The log-density
cost (µs/event) stands beside the sampling cost: for ``cfm`` it is an ODE solve with the exact
divergence, 1 + D network passes per step, against one pass for an autoregressive flow.

    python benchmarks/flows.py [--device cpu|cuda] [--sizes default paper fidelity] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from flowsim.flows import build_flow

ROOT = Path(__file__).resolve().parents[1]
D = 18
# dense TF32 tensor-core peaks (the flows' matmuls run in TF32 on a GPU), TFLOP/s, SXM cards
TF32_PEAK_TFLOPS = {"H100": 494.7, "H200": 494.7, "A100": 156.0}
# the paper's Table 2: sampling µs/event of its model-selection flows on an RTX 3070
PAPER_TABLE2_US = {"glow": 1.33, "mafmademog": 11.1, "rqs": 103.6}
# sample a smaller batch from very large models (the paper's 255M-parameter MADEMOG)
LARGE_MODEL_PARAMS = 5e7
#: the runs measured for each ``--sizes`` value: the default, the paper's, and the fidelity
#: protocol's extra runs (zuko's flows and the flow-matching cfm)
CONFIG_OF_SIZE = {"default": "config.yaml", "paper": "paper.yaml", "fidelity": "fidelity.yaml"}


def flows_of(config_file: str) -> dict[str, tuple[str, dict]]:
    config = yaml.safe_load((ROOT / "config" / config_file).read_text())
    return {name: (e["model"], e.get("params", {})) for name, e in config["flows"].items()}


def zuko_equivalent(model: str, params: dict):
    """zuko's counterpart of a flowsim run, at the same transforms, width, bins and depth.

    A flowsim residual MADE/MLP with ``r`` residual blocks has ``2 + 2r`` linear layers; zuko's
    MLP with ``L`` hidden layers has ``L + 1``, so it gets ``1 + 2r`` hidden layers.
    """
    import zuko

    hidden = [params.get("hidden", 128)] * (1 + 2 * params.get("residual_blocks", 2))
    blocks = params.get("blocks", 10)
    if model == "maf":
        return lambda: zuko.flows.MAF(D, transforms=blocks, hidden_features=hidden)
    if model == "rqs":
        return lambda: zuko.flows.NSF(D, transforms=blocks, bins=params.get("bins", 32), hidden_features=hidden)
    if model == "nsf_coupling":
        return lambda: zuko.flows.NSF(
            D, transforms=blocks, bins=params.get("bins", 32), passes=2, hidden_features=hidden
        )
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def log_prob_fn(model):
    if hasattr(model, "n_features"):
        return model.log_prob
    return lambda x: model().log_prob(x)  # zuko: the flow is built lazily from its module


def sample_fn(model):
    if hasattr(model, "n_features"):
        return model.sample
    return lambda n: model().sample((n,))


def train_throughput(model, batch: int, device: torch.device, seconds: float) -> float:
    """Events/s of forward + backward + AdamW step at ``batch``; NaN if it does not fit in memory."""
    try:
        return _train_throughput(model, batch, device, seconds)
    except torch.OutOfMemoryError:
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        return float("nan")


def _train_throughput(model, batch: int, device: torch.device, seconds: float) -> float:
    log_prob = log_prob_fn(model)
    # the loss the family trains on: its own (cfm: flow matching), else the NLL
    own = getattr(model, "training_loss", None)
    loss_of = (lambda x: own((x,))) if own is not None else (lambda x: -log_prob(x).mean())  # noqa: E731
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, D, device=device)
    model.train()
    for _ in range(3):  # warm-up
        loss = loss_of(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(device)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        loss = loss_of(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def _best_us_per_event(run, n: int, device: torch.device, repeat: int) -> float:
    """µs/event of the fastest of ``repeat`` calls of ``run()`` on ``n`` events."""
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        t = time.perf_counter()
        run()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 1e6 * best / n


@torch.no_grad()
def sampling_us(model, n: int, device: torch.device, repeat: int) -> float:
    sample = sample_fn(model)
    model.eval()
    sample(min(n, 1000))
    return _best_us_per_event(lambda: sample(n), n, device, repeat)


@torch.no_grad()
def density_us(model, n: int, device: torch.device, repeat: int) -> float:
    """µs/event of the log-density of ``n`` events (cfm: an ODE solve with the divergence)."""
    log_prob = log_prob_fn(model)
    model.eval()
    x = torch.randn(n, D, device=device)
    log_prob(x[:100])
    return _best_us_per_event(lambda: log_prob(x), n, device, repeat)


def peak_fraction(events_per_s: float, n_params: int, device: torch.device) -> str:
    if device.type != "cuda":
        return ""
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in TF32_PEAK_TFLOPS.items() if k in name), None)
    if peak is None:
        return "?"
    return f"{100 * 6 * n_params * events_per_s / (peak * 1e12):.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", nargs="+", default=["default", "paper"], choices=list(CONFIG_OF_SIZE))
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--max-params", type=float, default=3e7,
                        help="skip larger models on the CPU (the paper's 255M MADEMOG)")  # fmt: skip
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_flush_denormal(True)  # as the workflow's jobs do (flowsim.training.configure_torch)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    seconds = 1.0 if args.quick else 3.0
    batches = [1024, 4096, 16384] if device.type == "cpu" else [1024, 8192, 65536]
    n_sample_default = 20_000 if device.type == "cpu" else 262_144
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}\n")  # fmt: skip
    header = (f"{'size':<8} {'model':<27} {'params':>9} {'train ev/s @1024':>17} "
              f"{'best ev/s (batch)':>22} {'sample µs/ev':>13} {'density µs/ev':>14} {'TF32 peak':>9} "
              f"{'vs paper T2':>11}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        runs = flows_of(CONFIG_OF_SIZE[size])
        models = {}
        for name, (model, params) in runs.items():
            models[name] = lambda m=model, p=params: build_flow(m, D, **p)
            peer = zuko_equivalent(model, params)
            if peer is not None:
                models[f"  zuko peer of {name}"] = peer
        for name, make in models.items():
            torch.manual_seed(0)
            model = make().to(device)
            n_params = sum(p.numel() for p in model.parameters())
            if device.type == "cpu" and n_params > args.max_params:
                print(f"{size:<8} {name:<27} {n_params:9.2e}   skipped on the CPU (> --max-params)")
                continue
            at_1024 = train_throughput(model, 1024, device, seconds)
            best, best_batch = at_1024, 1024
            for batch in batches[1:]:
                rate = train_throughput(model, batch, device, seconds)
                if rate != rate:  # out of memory: larger batches will not fit either
                    print(f"    {name}: batch {batch} does not fit in the GPU's memory", flush=True)
                    break
                if rate > best:
                    best, best_batch = rate, batch
            n_sample = n_sample_default if n_params < LARGE_MODEL_PARAMS else n_sample_default // 10
            us = sampling_us(model, n_sample, device, repeat=2 if args.quick else 3)
            density = density_us(model, max(n_sample // 10, 1000), device, repeat=2 if args.quick else 3)
            paper = PAPER_TABLE2_US.get(name) if size == "paper" and device.type == "cuda" else None
            versus = f"{paper / us:.1f}× faster" if paper else ""
            print(f"{size:<8} {name:<27} {n_params:9.2e} {at_1024:17,.0f} "
                  f"{best:14,.0f} ({best_batch:>5}) {us:13.3f} {density:14.3f} "
                  f"{peak_fraction(best, n_params, device):>9} {versus:>11}",
                  flush=True)  # fmt: skip
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print("\nzuko peers: same transforms, bins, width and number of linear layers as the run above them.")


if __name__ == "__main__":
    main()
