#!/usr/bin/env python3
"""Fidelity on real HIGGS: the default runs against zuko's flows, judged by two C2STs.

Protocol (issue "Fidelity on real HIGGS"): ``--rows`` rows of a HIGGS-layout file from
``--first-row`` on (default: the first 60,000 of ``../shared/data/higgs-sample.csv.gz``),
background only, the paper's split (seed 42: 40% train, 10% val, 25% test_a, 25% test_b),
Gauss-rank scaling fitted on train, the 18 default features. Every run of
``config/config.yaml`` and the zuko 1.6 peers (MAF with 5 transforms of 128×2; NSF
autoregressive and coupling with 8 bins) are trained with the project's trainer and the default
config's training settings (early stopping on val), once per ``--seeds``; each then generates
as many events as test_a. Printed per model, mean ± std over seeds:

* the best validation NLL (nats/event, scaled space);
* the project's C2ST (MLP, ``c2st`` section of the config) of test_a vs generated, and its null
  test_a vs test_b;
* the tree C2ST (scikit-learn gradient boosting, data units; ``tree_two_sample_test``) and its
  null;
* the same tree C2ST of the sample's copula alone (carrying test_b's marginals) and of its
  marginals alone (on test_b's copula), ``copula_and_marginal_tests``: which of the two is off;
  and, once per seed, the floor that the training set's own fluctuations set for the
  marginals: test_b's copula with the marginals of N(0, 1) mapped back through the inverse
  scaling (``training_sample_floor``);
* where the copula is off: the χ² of every feature pair's copula against test_a's
  (``flowsim.metrics.copula``), as its mean over the pairs divided by its degrees of freedom
  (1 for a perfect copula; the null's is printed), and the three worst pairs of each run;
* the largest per-feature KS distance to test_a, and sampling µs/event;

and, with more than one seed, the same C2STs of the equal-weight ensemble of the seeds' models.

Every model, peers included, learns the config's sign-flip symmetry (``symmetry.flip_signs``,
every η): odd scaling, randomly mirrored training events, early stopping on val and its mirror
image, and the symmetric mixture as the sampled model (``flowsim.flows.symmetry``).
``--no-symmetry`` runs the issue's original protocol without it.

``--select-by pair_chi2`` keeps, instead of the epoch of the best val NLL, the epoch whose
weights generate the sample closest to val by the mean pair copula χ²/dof (n_val events, the
same generator seed every epoch so that epochs are compared on common random numbers); early
stopping still follows the NLL. This is model selection by a two-sample criterion: val is then
also what chose the epoch, and test_a judges as before.

``--train-on-val`` fits the scaling and trains every model on train ∪ val (25% more events) for
exactly its ``max_epochs``, with no early stopping: the usual refit once the settings are
chosen, since the training set's own fluctuations set a floor that shrinks only with its size
(``training_sample_floor``). val is then in-sample: its NLL is printed but no longer a held-out
number, and the epoch kept is the in-sample best (for the default ``rqs`` the 80th, which ends
a cosine cycle).

Every training shows its epochs on stderr as it goes; the tables go to stdout.

With ``--reweight`` a second generated sample and test_b train the classifier reweighting of
``flowsim.reweighting`` (``--reweighter mlp``, the default, or ``tree``); the tree C2ST and the
KS distance of the *first* sample are then also shown weighted (never instead of the
unweighted numbers). Fresh flow events, in batches of four times test_a's size, are thinned
by rejection with the same weights until as many as test_a are kept (``rejection_sample``):
an unweighted sample of the reweighted density, judged by the tree C2ST like the first, with
its acceptance.

    python benchmarks/fidelity.py [--rows 60000] [--first-row 0] [--seeds 1 2 3] [--reweight] [--reweighter mlp|tree]
        [--models glow maf zuko_maf ...] [--max-epochs N] [--overlay settings.yaml]
        [--device auto|cpu|cuda] [--threads 2] [--csv FILE] [--no-symmetry] [--train-on-val]
        [--select-by nll|pair_chi2]

Overlays tried so far: ``fidelity-long-training.yaml``, ``fidelity-dropout.yaml``,
``fidelity-average.yaml``, ``fidelity-bins.yaml``, ``fidelity-weight-decay.yaml`` and
``fidelity-permutation.yaml`` (CPU), ``fidelity-batch.yaml`` (CPU, first slice and all rows),
``fidelity-all-rows.yaml`` (CPU, all rows: ``--rows 218291``), ``fidelity-gpu.yaml``
(GPU-sized runs on all rows; its ``peers:`` key resizes the zuko peers). Results and commands:
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from flowsim.config import ConfigError, check_config, merge_config
from flowsim.data.higgs import FEATURE_COLUMNS
from flowsim.data.reader import read_higgs
from flowsim.data.scaling import Scaler, fit_scaler
from flowsim.data.splits import SplitFractions, split_indices
from flowsim.flows import build_flow
from flowsim.flows.jobs import negative_log_likelihood
from flowsim.flows.symmetry import RandomSignFlip, SignFlipMixture, signs_of, with_mirror_images
from flowsim.logs import job_logging
from flowsim.metrics.c2st import (
    C2STSettings,
    classifier_two_sample_test,
    copula_and_marginal_tests,
    tree_two_sample_test,
    with_marginals_of,
)  # fmt: skip
from flowsim.metrics.copula import PAIR_BINS, copula_pair_chi2, pair_chi2_dof, worst_pairs
from flowsim.metrics.distances import ks_distance
from flowsim.reweighting import (
    ReweightSettings,
    accept_by_weight,
    density_ratio_weights,
    effective_size,
    fit_reweighter,
)
from flowsim.runs import training_settings
from flowsim.training import TrainConfig, configure_torch, resolve_device, train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
PEERS = ("zuko_maf", "zuko_nsf", "zuko_nsf_coupling")


class ZukoFlow(torch.nn.Module):
    """A zuko flow behind flowsim's interface: ``forward`` is log p(x), ``sample(n, generator)``."""

    def __init__(self, flow: torch.nn.Module) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow().log_prob(x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is not None:  # zuko draws from the global generator
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator, device=generator.device)))
        return self.flow().sample((n,))


#: the sections of the config that the protocol reads, and so an overlay may change
OVERLAY_SECTIONS = ("flows", "training", "features", "symmetry", "c2st")

#: the peers' sizes (the issue's: 5 transforms of 128×2, 8 bins); an overlay's ``peers:`` changes them
PEER_SIZE = {"transforms": 5, "hidden": [128, 128], "bins": 8}


def build_model(name: str) -> torch.nn.Module:
    """A default run of config/config.yaml by name, or one of the zuko peers."""
    d = len(CONFIG["features"])
    if name in CONFIG["flows"]:
        entry = CONFIG["flows"][name]
        return build_flow(entry["model"], d, **entry.get("params", {}))
    import zuko

    size = {"transforms": PEER_SIZE["transforms"], "hidden_features": list(PEER_SIZE["hidden"])}
    if name == "zuko_maf":
        return ZukoFlow(zuko.flows.MAF(d, **size))
    if name == "zuko_nsf":
        return ZukoFlow(zuko.flows.NSF(d, bins=PEER_SIZE["bins"], **size))
    if name == "zuko_nsf_coupling":
        return ZukoFlow(zuko.flows.NSF(d, bins=PEER_SIZE["bins"], passes=2, **size))
    raise SystemExit(f"unknown model {name!r}; runs: {list(CONFIG['flows'])}, peers: {list(PEERS)}")


def training_config(name: str, seed: int, options) -> TrainConfig:
    """The run's training settings as the workflow resolves them (a peer gets the shared ones),
    with this seed, the device and ``--max-epochs``."""
    settings = training_settings(CONFIG, name if name in CONFIG["flows"] else None)
    settings.update(seed=seed, device=str(options.device))
    if options.max_epochs:
        settings["max_epochs"] = options.max_epochs
    if options.train_on_val:  # val is in-sample: no early stopping on it
        settings["patience"] = settings["max_epochs"]
    return TrainConfig(**settings)


def apply_overlay(path: str) -> None:
    """Merge the overlay at ``path`` over ``CONFIG`` as the workflow would merge it as a second
    ``--configfile``, and its ``peers:`` over ``PEER_SIZE``; a wrong key fails here, not after
    an hour of training."""
    overlay = yaml.safe_load(Path(path).read_text()) or {}
    PEER_SIZE.update(overlay.pop("peers", {}))
    unused = sorted(overlay.keys() - set(OVERLAY_SECTIONS))
    if unused:  # the protocol fixes the data, the split and the scaling: say so, not ignore them
        raise SystemExit(f"overlay {path}: section {unused[0]!r} is not read by this benchmark; "
                         f"an overlay may set {', '.join(OVERLAY_SECTIONS)} and peers")
    merged = merge_config(CONFIG, overlay)
    try:
        check_config(merged)
    except ConfigError as exc:
        raise SystemExit(f"overlay {path}: {exc}") from None
    CONFIG.clear()
    CONFIG.update(merged)


def background_splits(path: str, first_row: int, rows: int) -> dict[str, np.ndarray]:
    sample = read_higgs(path, max_rows=first_row + rows)
    # read_higgs splits by class; recover the rows' order within the background by class only
    columns = [FEATURE_COLUMNS.index(f) for f in CONFIG["features"]]
    n_bkg_before = _background_rows_before(path, first_row) if first_row else 0
    bkg = sample.background[n_bkg_before:][:, columns]
    parts = split_indices(len(bkg), seed=42, label=0, fractions=SplitFractions())
    return {name: bkg[index] for name, index in parts.items()}


def fit_protocol_scaler(train: np.ndarray, flip: list[str] | None = None, **options) -> Scaler:
    """The protocol's Gauss-rank scaling of the config's features, fitted on ``train``, with odd
    maps for ``flip`` (default: the config's ``symmetry.flip_signs``); ``options`` go to
    ``fit_scaler`` (e.g. ``max_knots``)."""
    if flip is None:
        flip = CONFIG.get("symmetry", {}).get("flip_signs", [])
    return fit_scaler(train, CONFIG["features"], "gauss_rank", odd=flip, **options)


def _background_rows_before(path: str, first_row: int) -> int:
    return len(read_higgs(path, max_rows=first_row).background)


def sample_flow(flow: torch.nn.Module, n: int, seed: int) -> tuple[np.ndarray, float]:
    """n events in the scaled space (non-finite rows dropped, counted) and µs/event."""
    device = next(flow.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    flow.eval()
    start = time.perf_counter()
    with torch.no_grad():
        z = flow.sample(n, generator=generator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        us = 1e6 * (time.perf_counter() - start) / n
        z = z.double().cpu().numpy()
    finite = np.isfinite(z).all(axis=1)
    if not finite.all():
        print(f"    {np.count_nonzero(~finite)} non-finite generated events dropped")
    return z[finite], us


def rejection_sample(flow: torch.nn.Module, reweighter, n: int, seed: int) -> tuple[np.ndarray, float]:
    """n events (scaled space) of the reweighted density p_flow·w/E[w], by rejection from
    batches of 4n flow events; the bound is the largest weight of the first batch (a later
    weight above it is counted in the log), and the acceptance is returned with the events."""
    kept, drawn, bound, rng = [], 0, None, np.random.default_rng(seed)
    while sum(map(len, kept)) < n:
        pool, _ = sample_flow(flow, 4 * n, seed + 2000 + drawn)
        weights, _ = density_ratio_weights(reweighter, pool.astype(np.float32))
        bound = bound or float(weights.max())
        kept.append(pool[accept_by_weight(weights, rng, bound)])
        drawn += len(pool)
    accepted = np.concatenate(kept)
    return accepted[:n], len(accepted) / drawn


def c2st_settings(device: torch.device) -> C2STSettings:
    """The project's C2ST as the workflow runs it (config section ``c2st``; seeds set per call)."""
    section = {k: v for k, v in CONFIG["c2st"].items() if k != "seed"}
    section["training"] = {**section.get("training", {}), "device": str(device)}
    return C2STSettings.from_mapping(section)


def max_ks(reference: np.ndarray, candidate: np.ndarray, weights: np.ndarray | None = None) -> float:
    return max(ks_distance(reference[:, j], candidate[:, j], weights) for j in range(reference.shape[1]))


class PairChi2Selection:
    """Epoch selection by a two-sample criterion (``--select-by pair_chi2``): after each epoch,
    as many events as val from the validated weights (their symmetric mixture where the run has
    one), scored by :func:`mean_pair_chi2` against val; the best epoch's weights are kept.

    The copula χ² compares ranks, so it reads the same in the scaled space as in data units
    (Gauss-rank scaling is monotone in every feature)."""

    def __init__(self, name: str, val: np.ndarray, signs: torch.Tensor | None, seed: int) -> None:
        self.name, self.val, self.signs, self.seed = name, val, signs, seed
        self.best_score, self.best_epoch, self.best_weights = math.inf, 0, None

    def __call__(self, epoch: int, module: torch.nn.Module) -> None:
        flow = SignFlipMixture(module, self.signs) if self.signs is not None else module
        z, _ = sample_flow(flow, len(self.val), self.seed)
        score = mean_pair_chi2(copula_pair_chi2(self.val, z, seed=self.seed))
        if score < self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self.best_weights = copy.deepcopy(module.state_dict())
        print(f"    {self.name} epoch {epoch}: val pair χ²/dof {score:.4f}"
              + (" *" if self.best_epoch == epoch else ""), flush=True)


def evaluate_model(name: str, seed: int, data: dict, scaler, options) -> dict[str, float]:
    scaled = {k: scaler.transform(v).astype(np.float32) for k, v in data.items()}
    torch.manual_seed(seed)
    flow = build_model(name).to(options.device)
    config = training_config(name, seed, options)
    flipped = scaler.odd_features
    signs = signs_of(CONFIG["features"], flipped).to(options.device)
    x_val = torch.from_numpy(scaled["val"]).to(options.device)
    selection = (PairChi2Selection(f"{name} s{seed}", scaled["val"], signs if flipped else None, seed)
                 if options.select_by == "pair_chi2" else None)  # fmt: skip
    start = time.perf_counter()
    result = train(
        flow, negative_log_likelihood, (torch.from_numpy(scaled["train"]),),
        (with_mirror_images(x_val, signs) if flipped else x_val,), config, name=f"{name} s{seed}",
        augment=RandomSignFlip(signs) if flipped else None, on_epoch=selection,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    kept_val_nll = result.best_val_loss
    if selection is not None:
        flow.load_state_dict(selection.best_weights)
        kept_val_nll = next(row["val_loss"] for row in result.history if row["epoch"] == selection.best_epoch)
        print(f"  {name} seed {seed}: epoch {selection.best_epoch} kept by val pair χ²/dof "
              f"{selection.best_score:.4f} (best val NLL at epoch {result.best_epoch})", flush=True)
    if flipped:
        flow = SignFlipMixture(flow, signs)
    z, us = sample_flow(flow, len(data["test_a"]), seed)
    generated = scaler.inverse(z.astype(np.float32))
    c2st = classifier_two_sample_test(
        scaled["test_a"], scaler.transform(generated).astype(np.float32),
        settings=c2st_settings(options.device),
        seed=seed, name=f"c2st {name}",
    )  # fmt: skip
    tree = tree_two_sample_test(data["test_a"], generated, seed=seed)
    split = copula_and_marginal_tests(data["test_a"], generated, data["test_b"], seed=seed)
    pairs = copula_pair_chi2(data["test_a"], generated, seed=seed)
    row = {
        "val_nll": kept_val_nll, "c2st": c2st.auc, "c2st_err": c2st.auc_err,
        "tree": tree.auc, "tree_err": tree.std, "tree_copula": split.copula.auc,
        "tree_marginals": split.marginals.auc, "pair_chi2": mean_pair_chi2(pairs),
        "ks": max_ks(data["test_a"], generated),
        "us": us, "train_s": seconds, "epochs": result.epochs_run,
        **({"kept_epoch": selection.best_epoch, "val_pair_chi2": selection.best_score} if selection else {}),
    }  # fmt: skip
    if options.reweight:
        z2, _ = sample_flow(flow, len(data["test_b"]), seed + 1000)
        settings = ReweightSettings(classifier=options.reweighter)
        reweighter = fit_reweighter(scaled["test_b"], z2.astype(np.float32), settings=settings, seed=seed)
        weights, n_clipped = density_ratio_weights(reweighter, scaler.transform(generated).astype(np.float32))
        weighted = tree_two_sample_test(data["test_a"], generated, candidate_weights=weights, seed=seed)
        kept, acceptance = rejection_sample(flow, reweighter, len(data["test_a"]), seed)
        rejected = tree_two_sample_test(data["test_a"], scaler.inverse(kept.astype(np.float32)), seed=seed)
        row.update({
            "tree_w": weighted.auc, "tree_w_err": weighted.std,
            "ks_w": max_ks(data["test_a"], generated, weights), "n_eff": effective_size(weights),
            "clipped": n_clipped, "tree_rejected": rejected.auc, "acceptance": acceptance,
        })  # fmt: skip
    print(f"  {name} seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
    print(f"    worst copula pairs (χ², dof {pair_chi2_dof(PAIR_BINS)}): "
          + ", ".join(f"{x}–{y} {v:.0f}" for x, y, v in worst_pairs(pairs, CONFIG["features"])), flush=True)
    row["generated"] = generated
    return row


def evaluate_ensemble(name: str, runs: list[dict], data: dict, scaler, device: torch.device) -> dict[str, float]:
    """The equal-weight mixture of the seeds' models: n/k events of each model's sample (each
    an independent draw) is an exact sample of the mixture density (1/k) Σ p_k."""
    n = len(data["test_a"])
    share = n // len(runs)
    generated = np.concatenate([r["generated"][:share] for r in runs])
    c2st = classifier_two_sample_test(
        scaler.transform(data["test_a"]).astype(np.float32), scaler.transform(generated).astype(np.float32),
        settings=c2st_settings(device),
        seed=0, name=f"c2st {name} ensemble",
    )  # fmt: skip
    tree = tree_two_sample_test(data["test_a"], generated, seed=0)
    row = {"c2st": c2st.auc, "tree": tree.auc, "ks": max_ks(data["test_a"], generated)}
    print(f"  {name} ensemble of {len(runs)}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
    return row


def training_sample_floor(data: dict, scaler, seed: int) -> float:
    """Tree C2ST of test_a against test_b's copula carrying the marginals of N(0, 1) mapped back
    through the inverse scaling: what a flow exact in the scaled space reaches on its marginals
    alone. It lies above the null because such marginals are the training events' empirical
    ones (smoothed): a sample of n events drawn from them carries the training set's
    fluctuations on top of its own, variance ∝ 1/n_train + 1/n against 1/n for test_b, and the
    tree learns the shared part. It shrinks only as the training set grows."""
    normal = np.random.default_rng(seed).standard_normal(data["test_b"].shape).astype(np.float32)
    perfect = with_marginals_of(data["test_b"], scaler.inverse(normal))
    return tree_two_sample_test(data["test_a"], perfect, seed=seed).auc


def mean_pair_chi2(chi2: np.ndarray) -> float:
    """The pairs' copula χ² averaged over the pairs, in units of its degrees of freedom."""
    return float(np.nanmean(chi2[np.triu_indices(len(chi2), 1)]) / pair_chi2_dof(PAIR_BINS))


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", default=str(ROOT.parent / "shared" / "data" / "higgs-sample.csv.gz"))
    parser.add_argument("--first-row", type=int, default=0)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--models", nargs="+", default=None, help="default: every run of the config and the peers")
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--reweight", action="store_true")
    parser.add_argument("--reweighter", choices=("mlp", "tree"), default="mlp",
                        help="the classifier of --reweight (flowsim.reweighting; mlp: the first table's)")
    parser.add_argument("--overlay", help="YAML merged over config/config.yaml as a second --configfile would be "
                        f"({', '.join(OVERLAY_SECTIONS)}), checked before any training; its peers: key "
                        "resizes the zuko peers")
    parser.add_argument("--device", default="auto", help="training and C2ST device (auto: CUDA when present)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--no-symmetry", action="store_true", help="ignore symmetry.flip_signs of the config")
    parser.add_argument("--train-on-val", action="store_true",
                        help="fit the scaling and train on train and val together, for max_epochs, no early stopping")
    parser.add_argument("--select-by", choices=("nll", "pair_chi2"), default="nll",
                        help="which epoch's weights a run keeps: the best val NLL, or the sample closest "
                             "to val by the mean pair copula χ²/dof (early stopping stays on the NLL)")
    return parser.parse_args()


def main(options: argparse.Namespace) -> None:
    if options.overlay:
        apply_overlay(options.overlay)
    options.models = options.models or [*CONFIG["flows"], *PEERS]
    configure_torch(options.threads)
    device = options.device = resolve_device(options.device)
    if device.type == "cuda":  # as the workflow's GPU jobs run
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))

    data = background_splits(options.csv, options.first_row, options.rows)
    print(f"rows {options.first_row}..{options.first_row + options.rows} of {options.csv}: "
          + ", ".join(f"{k} {len(v)}" for k, v in data.items()), flush=True)  # fmt: skip
    if options.train_on_val:
        data["train"] = np.concatenate([data["train"], data["val"]])
        print(f"training on train and val: {len(data['train'])} events, val NLL in-sample", flush=True)
    scaler = fit_protocol_scaler(data["train"], [] if options.no_symmetry else None)
    print(f"sign-flip symmetry: {', '.join(scaler.odd_features) or 'none'}")
    scaled_a, scaled_b = (scaler.transform(data[k]).astype(np.float32) for k in ("test_a", "test_b"))
    settings = c2st_settings(options.device)
    nulls = [classifier_two_sample_test(scaled_a, scaled_b, settings=settings, seed=s, name="null").auc
             for s in options.seeds]  # fmt: skip
    tree_nulls = [tree_two_sample_test(data["test_a"], data["test_b"], seed=s).auc for s in options.seeds]
    pair_null = [mean_pair_chi2(copula_pair_chi2(data["test_a"], data["test_b"], seed=s)) for s in options.seeds]
    print(f"null (test_a vs test_b): C2ST {mean_std(nulls)}, tree C2ST {mean_std(tree_nulls)}, "
          f"pair χ²/dof {mean_std(pair_null)}", flush=True)  # fmt: skip
    floors = [training_sample_floor(data, scaler, s) for s in options.seeds]
    print("training-sample floor (test_b's copula, N(0, 1) marginals scaled back): "
          f"tree C2ST {mean_std(floors)}", flush=True)  # fmt: skip

    rows, ensembles = {}, {}
    for name in options.models:
        rows[name] = [evaluate_model(name, seed, data, scaler, options) for seed in options.seeds]
        runs = rows[name]
        print(f"  {name}: val NLL {mean_std([r['val_nll'] for r in runs])}, "
              f"tree C2ST {mean_std([r['tree'] for r in runs])}, C2ST {mean_std([r['c2st'] for r in runs])}",
              flush=True)  # fmt: skip
        if len(options.seeds) > 1:
            ensembles[name] = evaluate_ensemble(name, rows[name], data, scaler, options.device)

    columns = ["val NLL", "C2ST AUC", "tree C2ST AUC", "tree C2ST copula", "tree C2ST marginals",
               "pair χ²/dof", "max KS", "µs/event", "train s"]  # fmt: skip
    keys = ["val_nll", "c2st", "tree", "tree_copula", "tree_marginals", "pair_chi2", "ks", "us", "train_s"]
    if options.reweight:
        columns += ["tree C2ST weighted", "max KS weighted", "n_eff / n", "clipped", "tree C2ST rejection",
                    "acceptance"]  # fmt: skip
        keys += ["tree_w", "ks_w", "n_eff_frac", "clipped", "tree_rejected", "acceptance"]
        for runs in rows.values():
            for r in runs:
                r["n_eff_frac"] = r["n_eff"] / len(data["test_a"])
    print(f"\n{len(options.seeds)} seed(s); null: C2ST {mean_std(nulls)}, "
          f"tree C2ST {mean_std(tree_nulls)}, pair χ²/dof {mean_std(pair_null)}; "
          f"training-sample floor: tree C2ST {mean_std(floors)}")  # fmt: skip
    print("| model | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, runs in rows.items():
        cells = [mean_std([r[k] for r in runs]) if k not in ("us", "train_s", "clipped")
                 else f"{statistics.mean(r[k] for r in runs):.1f}" for k in keys]  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    if ensembles:
        print(f"\nequal-weight mixture of the {len(options.seeds)} seeds' models (one sample each)")
        print("| model | C2ST AUC | tree C2ST AUC | max KS |\n|---|---|---|---|")
        for name, e in ensembles.items():
            print(f"| {name} ensemble | {e['c2st']:.4f} | {e['tree']:.4f} | {e['ks']:.4f} |")
    if not math.isfinite(sum(nulls)):
        raise SystemExit("the null C2ST failed")


if __name__ == "__main__":
    cli_options = parse_options()
    with job_logging(None):  # every training's per-epoch progress on stderr, the tables on stdout
        main(cli_options)
