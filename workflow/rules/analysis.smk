# Analysis stage: a signal classifier and its cut, then luminosity scans of pyhf fits and limits
# with the MC background prediction replaced by each run's generated events (paper Sec. 4.4-4.6).


def classifier_plot(name, caption, figure):
    """A report-registered plot of the signal classifier, results/analysis/classifier/<name>.png."""
    return report_plot(
        f"results/analysis/classifier/{name}.png", "Analysis", caption, figure, subcategory="signal classifier"
    )


rule train_classifier:
    input:
        signal_train=SPLIT_FILES["sig_train"],
        background_train=SPLIT_FILES["bkg_train"],
        signal_val=SPLIT_FILES["sig_val"],
        background_val=SPLIT_FILES["bkg_val"],
        signal_test=[SPLIT_FILES["sig_test_a"], SPLIT_FILES["sig_test_b"]],
        background_test=[SPLIT_FILES["bkg_test_a"], SPLIT_FILES["bkg_test_b"]],
    output:
        model="results/analysis/classifier/model.pt",
        scaler="results/analysis/classifier/scaler.npz",
        history="results/analysis/classifier/history.tsv",
        metrics="results/analysis/classifier/metrics.tsv",
        loss=classifier_plot("loss", "classifier_loss.rst", "training"),
        roc=classifier_plot("roc", "classifier_roc.rst", "ROC"),
    params:
        features=config["features"],
        scaling_method=config["scaling"]["method"],
        section=canonical(config["analysis"]["classifier"]),
    log:
        "results/logs/train_classifier.log",
    benchmark:
        "results/benchmarks/train_classifier.tsv"
    conda:
        "../../envs/torch.yaml"
    # one core: 1.3x slower than on two, but it then runs beside the flow trainings
    threads: 1
    resources:
        gpu=classifier_uses_gpu(),
        mem_mb=lambda wc, input: 2000 + 20 * input.size_mb,
        runtime=60,
    script:
        "../scripts/train_classifier.py"


rule score_and_cut:
    input:
        model=rules.train_classifier.output.model,
        scaler=rules.train_classifier.output.scaler,
        events=scored_events,
    output:
        scores="results/analysis/scores/{source}/{sample}.root",
        counts="results/analysis/scores/{source}/{sample}.json",
    params:
        cut=config["analysis"]["cut"],
        chunk_size=config["sampling"]["chunk_size"],
        device=SETTINGS.classifier_device,
    log:
        "results/logs/score_and_cut/{source}/{sample}.log",
    benchmark:
        "results/benchmarks/score_and_cut/{source}/{sample}.tsv"
    conda:
        "../../envs/torch.yaml"
    # one core: 2 threads gain nothing here (benchmarks/README.md, "Threads per job")
    threads: 1
    resources:
        gpu=classifier_uses_gpu(),
        mem_mb=lambda wc: 2000 + config["sampling"]["chunk_size"] // 250,
        runtime=30,
    script:
        "../scripts/score_and_cut.py"


rule plot_selection:
    input:
        files=lambda wc: [f for pair in scored("sig_test_a", "sig_test_b", "bkg_test_a", wc.run) for f in pair],
    output:
        scores=run_plot("results/analysis/{run}/scores.png", "Analysis", "selection_scores.rst", "classifier scores"),
        kinematics=run_plot(
            "results/analysis/{run}/kinematics_after_cut.png", "Analysis", "selection_kinematics.rst", "features after the cut"
        ),
    params:
        signal=scored("sig_test_a", "sig_test_b"),
        mc_background=scored("bkg_test_a"),
        ml_background=lambda wc: scored(wc.run),
        features=config["features"],
        cut=config["analysis"]["cut"],
    log:
        "results/logs/plot_selection/{run}.log",
    benchmark:
        "results/benchmarks/plot_selection/{run}.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 10 * input.size_mb,
        runtime=15,
    script:
        "../scripts/plot_selection.py"


rule lumi_scan:
    input:
        files=lambda wc: [f for pair in scored(*MC_SCORED, wc.run) for f in pair],
    output:
        table="results/analysis/{run}/lumi_scan_{obs}_alpha{alpha}.tsv",
        workspaces=directory("results/analysis/{run}/workspaces/{obs}_alpha{alpha}"),
        mu=scan_plot("mu_hat", "scan_mu_hat.rst", "fitted mu"),
        pvalues=scan_plot("pvalues", "scan_pvalues.rst", "p-values and CLs"),
        limits=scan_plot("limits", "scan_limits.rst", "upper limits"),
    params:
        section=canonical({k: v for k, v in config["analysis"].items() if k != "classifier"}),
        signal=scored("sig_test_a", "sig_test_b"),
        data_background=scored("bkg_test_a"),
        mc_prediction=scored("bkg_test_b"),
        ml_prediction=lambda wc: scored(wc.run),
    log:
        "results/logs/lumi_scan/{run}/{obs}_alpha{alpha}.log",
    benchmark:
        "results/benchmarks/lumi_scan/{run}/{obs}_alpha{alpha}.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 10 * input.size_mb,
        runtime=15,
    script:
        "../scripts/lumi_scan.py"
