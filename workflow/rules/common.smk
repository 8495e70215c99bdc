# Configuration checks, paths and input functions shared by every stage.

import os
import re

from snakemake.utils import validate

from flowsim.analysis.config import alpha_label
from flowsim.config import features_of
from flowsim.data.ntuple import parse_columns
from flowsim.errors import ConfigError
from flowsim.settings import parse_settings, two_sample_device
from flowsim.worth import replica_seed


validate(config, schema="../schemas/config.schema.yaml")
try:
    SETTINGS = parse_settings(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# The flowsim package must be importable inside conda jobs too, where Snakemake blocks
# PYTHONPATH: the post-deploy scripts of envs/ install it from here.
os.environ.setdefault("FLOWSIM_ROOT", workflow.basedir)

# The names of the features (entries of `features` may define them by expressions, source root).
FEATURES = features_of(config)
# The units the configuration gives its features, for the plots' axis labels.
FEATURE_UNITS = {c.name: c.unit for c in parse_columns(config["features"]) if c.unit}
# MC with per-event weights (source root with a weight expression): the worth stage, whose
# estimators count events, is left out (README, "Your own analysis").
WEIGHTED_MC = config["data"]["source"] == "root" and any(
    (config["data"]["root"].get(cls) or {}).get("weight") for cls in ("background", "signal")
)
SPLITS = ["train", "val", "test_a", "test_b"]
CLASSES = ["bkg", "sig"]
SPLIT_FILES = {
    f"{cls}_{split}": f"results/data/{cls}_{split}.root" for cls in CLASSES for split in SPLITS
}
HIGGS_DOWNLOAD = "resources/higgs/HIGGS.csv.gz"
SCALER = "results/data/scaler.npz"
# The runs of `flows` go through the analysis and the summary; the runs that studies expand
# into are trained, sampled and evaluated like them and collected per study instead.
RUNS = list(SETTINGS.runs)
STUDIES = SETTINGS.studies
ALL_RUNS = SETTINGS.all_runs
# The analysis: fitted observables, signal fractions as they appear in file names, and the MC
# samples the classifier scores (signal hold-out; background test_a for the Asimov data and
# test_b for the MC reference prediction).
OBSERVABLES = list(config["analysis"]["observables"])
ALPHAS = [alpha_label(alpha) for alpha in config["analysis"]["alphas"]]
MC_SCORED = ["sig_test_a", "sig_test_b", "bkg_test_a", "bkg_test_b"]
# What a generated event is worth: the truth every run is judged against, a large independent
# toy sample (scored like the MC splits) or, on real data, the MC background hold-out test_a.
WORTH = SETTINGS.worth
TRUTH_SAMPLE = "bkg_truth" if WORTH.truth == "toy" else "bkg_test_a"
TRUTH_EVENTS = "results/worth/truth/bkg_truth.root"
COVERAGE = WORTH.coverage


def replica_dir(replica):
    """Where coverage replica ``replica`` (e.g. coverage.r001) keeps its own toy training set."""
    name = replica.removeprefix("coverage.")
    return f"results/worth/replicas/{name}"


# Each coverage replica's own toy training set, scored like the MC splits: the MC background the
# replica would fit without a flow (rule coverage's mc_train baseline).
REPLICA_TRAIN = {f"{r}.train": f"{replica_dir(r)}/bkg_train.root" for r in (COVERAGE.names if COVERAGE else [])}
# Every MC sample the classifier may score, by name.
MC_EVENTS = {**SPLIT_FILES, "bkg_truth": TRUTH_EVENTS, **REPLICA_TRAIN}
# The analysis keys the templates depend on (their binning and the cut); the fits' other keys
# (luminosities, systematics) leave the filled templates valid.
TEMPLATE_KEYS = ["cut", "n_bins", "observables"]


def _one_of(names):
    """A wildcard constraint matching exactly ``names`` (none: never)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    run=_one_of(ALL_RUNS),
    obs=_one_of(OBSERVABLES),
    alpha=_one_of(ALPHAS),
    source="mc|generated",
    sample=_one_of(MC_SCORED + [TRUTH_SAMPLE, *REPLICA_TRAIN] + RUNS),
    study=_one_of(STUDIES),


def canonical(value):
    """``value`` with every mapping's keys sorted, recursively.

    Snakemake compares params by their printed form, so a params dict straight from YAML would
    rerun jobs when keys are merely reordered in the config file; sorted keys make params depend
    on the settings only.
    """
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def uses_gpu(device):
    """1 when ``device`` is CUDA (a GPU must be requested), else 0. ``auto`` asks for none: it
    takes a GPU only where one is visible anyway."""
    return int(str(device).startswith("cuda"))


def run_uses_gpu(run):
    """1 when the run is set to train on CUDA, else 0."""
    return uses_gpu(SETTINGS.run(run).training.device)


def higgs_csv():
    """The HIGGS-layout file the splits are made from: generated, downloaded, or the user's."""
    if config["data"]["source"] == "path":
        return config["data"]["path"]
    return HIGGS_DOWNLOAD


def ntuple_files():
    """The ROOT files of `data.root` (source root), each glob expanded and sorted: a new or
    changed file reruns the splits."""
    from flowsim.data.ntuple import expand_files

    root = config["data"]["root"]
    return [str(p) for cls in ("background", "signal") for p in expand_files(root[cls]["files"], key=f"data.root.{cls}.files")]


def feedback_rounds(run):
    """The classifier-feedback rounds of run ``run`` (flowsim.discflow), 0 without feedback."""
    feedback = SETTINGS.run(run).feedback
    return feedback.rounds if feedback is not None else 0


def section_uses_gpu(section):
    """1 when a two-sample classifier section (``c2st``, ``reweighting``) trains on CUDA, else 0."""
    return uses_gpu(two_sample_device(section))


def classifier_uses_gpu():
    """1 when the signal classifier is set to train on CUDA, else 0."""
    return uses_gpu(SETTINGS.classifier_device)


def sample_events(sample):
    """The events file of a sample: an MC sample of MC_EVENTS (e.g. bkg_test_a) or a run's
    generated events."""
    return MC_EVENTS.get(sample, f"results/flows/{sample}/generated.root")


def score_tree(sample):
    """The score friend tree of a sample (see sample_events)."""
    source = "mc" if sample in MC_EVENTS else "generated"
    return f"results/analysis/scores/{source}/{sample}.root"


def scored(*samples):
    """(events file, score friend tree) pairs: MC split names or run names (generated events)."""
    return [(sample_events(s), score_tree(s)) for s in samples]


def run_files(run):
    """The files of a run that the summary and study tables read (see flowsim.stages.summary.run_row)."""
    return {
        "model": f"results/flows/{run}/model.pt",
        "history": f"results/flows/{run}/history.tsv",
        "sampling": f"results/flows/{run}/sampling.tsv",
        "c2st": f"results/eval/{run}/c2st.tsv",
        "distances": f"results/eval/{run}/distances.tsv",
        "copula_pairs": f"results/eval/{run}/copula_pairs.tsv",
    }


def report_plot(path, category, caption, figure, subcategory=None, **labels):
    """``path`` registered in the Snakemake report with its caption (``workflow/report/``) and
    labels; ``labels`` maps label names to wildcard names (e.g. ``run="run"``)."""
    return report(
        path,
        category=category,
        caption=f"../report/{caption}",
        **({"subcategory": subcategory} if subcategory else {}),
        labels={**{name: f"{{{wildcard}}}" for name, wildcard in labels.items()}, "figure": figure},
    )


def run_plot(path, category, caption, figure):
    """A report-registered plot of one run (``{run}`` in ``path``), filed under the run."""
    return report_plot(path, category, caption, figure, subcategory="{run}", run="run")


def study_plot(name, caption, figure):
    """A report-registered plot of a study."""
    return report_plot(
        f"results/studies/{{study}}/{name}.png", "Studies", caption, figure, subcategory="{study}", study="study"
    )


def quality_plot(name, caption, figure):
    """A report-registered plot of a run's sample quality, results/eval/{run}/<name>.png."""
    return run_plot(f"results/eval/{{run}}/{name}.png", "Sample quality", caption, figure)


def classifier_plot(name, caption, figure):
    """A report-registered plot of the signal classifier, results/analysis/classifier/<name>.png."""
    return report_plot(
        f"results/analysis/classifier/{name}.png", "Analysis", caption, figure, subcategory="signal classifier"
    )


def scan_tables(run):
    """The luminosity-scan TSVs of one run: every observable and signal fraction."""
    return expand(
        "results/analysis/{run}/lumi_scan_{obs}_alpha{alpha}.tsv", run=run, obs=OBSERVABLES, alpha=ALPHAS
    )


def template_files(run):
    """The template files behind run ``run``'s ML prediction: its ensemble members' or its own."""
    return [f"results/templates/{name}/templates.root" for name in SETTINGS.template_runs(run)]


def flow_training_inputs(wildcards):
    """The inputs of train_flow: the background splits the run trains on, the scaler, and,
    for a run conditioned on the label, the signal training and validation splits (a coverage
    replica's run replaces only the background)."""
    run = wildcards.run
    inputs = {"train": training_split(run, "train"), "val": training_split(run, "val"), "scaler": SCALER}
    condition = SETTINGS.run(run).condition
    if condition is not None and condition.by_label:
        inputs.update(signal_train=SPLIT_FILES["sig_train"], signal_val=SPLIT_FILES["sig_val"])
    return inputs


def signal_template_files(run):
    """The signal templates that run ``run``'s flow generates (a label-conditioned run with
    ``signal_templates``), for the scans' ``ml_signal`` prediction; none for any other run."""
    condition = SETTINGS.run(run).condition
    if condition is None or not condition.signal_templates:
        return []
    return [f"results/templates/{run}/signal_templates.root"]


def training_split(run, split):
    """The background ``split`` (train or val) run ``run`` trains on: the split's, or its
    coverage replica's own toy set."""
    r = SETTINGS.replica_of(run)
    if r is None:
        return SPLIT_FILES[f"bkg_{split}"]
    return f"{replica_dir(COVERAGE.names[r - 1])}/bkg_{split}.root"


def worth_files(run):
    """The tables of what run ``run``'s generated events are worth (rules amplification and
    spurious_signal), as the summary reads them; none for weighted MC."""
    if WEIGHTED_MC:
        return {}
    return {
        "amplification": f"results/worth/{run}/amplification.tsv",
        "spurious": f"results/worth/{run}/spurious.tsv",
    }


def study_run_files(run):
    """The files of a study's run that its table reads: those of run_files and its amplification."""
    return {**run_files(run), **{k: v for k, v in worth_files(run).items() if k == "amplification"}}


def scored_events(wildcards):
    """The events file behind a score file (input function of score_and_cut)."""
    wanted = f"results/analysis/scores/{wildcards.source}/{wildcards.sample}.root"
    if score_tree(wildcards.sample) != wanted:
        raise WorkflowError(f"{wanted}: no such sample; its scores are {score_tree(wildcards.sample)}")
    return sample_events(wildcards.sample)


def scan_plot(name, caption, figure):
    """A report-registered plot of a luminosity scan, one per run, observable and alpha."""
    return report_plot(
        f"results/analysis/{{run}}/{name}_{{obs}}_alpha{{alpha}}.png", "Analysis", caption, figure,
        subcategory="{run}", run="run", observable="obs", alpha="alpha",
    )


def final_outputs():
    """Everything `snakemake` builds by default."""
    return [
        *SPLIT_FILES.values(),
        "results/data/manifest.json",
        SCALER,
        *expand("results/flows/{run}/generated.root", run=RUNS),
        "results/analysis/classifier/model.pt",
        *expand("results/analysis/{run}/scores.png", run=RUNS),
        *(["results/summary/runs.tsv"] if RUNS else []),
        *([] if WEIGHTED_MC else expand("results/worth/{run}/spurious.png", run=RUNS)),
        *(["results/worth/coverage.tsv"] if COVERAGE else []),
        *expand("results/studies/{study}/summary.tsv", study=STUDIES),
        *(expand("results/eval/{run}/weighted.tsv", run=RUNS) if config["reweighting"]["enabled"] else []),
    ]
