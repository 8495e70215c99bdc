# Analysis stage: the selection after the classifier cut, then luminosity scans of pyhf fits and
# limits with the MC background prediction replaced by each run's generated events (paper Sec. 4.5-4.6):
# the templates of fill_templates, pooled over the run's ensemble members when it has them.


rule plot_selection:
    input:
        files=lambda wc: [f for pair in scored(*MC_SCORED, wc.run) for f in pair],
        ml_templates=lambda wc: template_files(wc.run),
    output:
        scores=run_plot("results/analysis/{run}/scores.png", "Analysis", "selection_scores.rst", "classifier scores"),
        kinematics=run_plot(
            "results/analysis/{run}/kinematics_after_cut.png", "Analysis", "selection_kinematics.rst", "features after the cut"
        ),
        templates=run_plot("results/analysis/{run}/templates.png", "Analysis", "templates.rst", "fitted templates"),
    params:
        signal=scored("sig_test_a", "sig_test_b"),
        mc_background=scored("bkg_test_a"),
        ml_background=lambda wc: scored(wc.run),
        mc_prediction=scored("bkg_test_b"),
        features=FEATURES,
        units=FEATURE_UNITS,
        cut=config["analysis"]["cut"],
        section=canonical({k: v for k, v in config["analysis"].items() if k in TEMPLATE_KEYS}),
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
        files=lambda wc: [f for pair in scored(*MC_SCORED) for f in pair],
        ml_templates=lambda wc: template_files(wc.run),
        # the signal's templates from a label-conditioned run's flow (scan rows "ml_signal")
        ml_signal_templates=lambda wc: signal_template_files(wc.run),
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
