# Evaluation stage: how close is each run's generated background to the MC it must replace?


rule eval_distances:
    input:
        test_a=SPLIT_FILES["bkg_test_a"],
        test_b=SPLIT_FILES["bkg_test_b"],
        generated=rules.sample_flow.output.events,
    output:
        table="results/eval/{run}/distances.tsv",
        summary=quality_plot("distances", "distances.rst", "distances per feature"),
        linear=quality_plot("features_linear", "features.rst", "distributions (linear)"),
        log=quality_plot("features_log", "features.rst", "distributions (log)"),
        corner=quality_plot("corner", "corner.rst", "correlated pairs"),
        copula_table="results/eval/{run}/copula_pairs.tsv",
        copula=quality_plot("copula_pairs", "copula_pairs.rst", "copula per pair"),
    params:
        features=FEATURES,
        units=FEATURE_UNITS,
        n_bins=config["evaluation"]["n_bins"],
        n_resamples=config["evaluation"]["n_resamples"],
        seed=config["evaluation"]["seed"],
    log:
        "results/logs/eval_distances/{run}.log",
    benchmark:
        "results/benchmarks/eval_distances/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    # one core: 2 threads gain nothing here (benchmarks/README.md, "Threads per job")
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 20 * input.size_mb,
        runtime=30,
    script:
        "../scripts/eval_distances.py"


rule c2st_null:
    input:
        test_a=SPLIT_FILES["bkg_test_a"],
        test_b=SPLIT_FILES["bkg_test_b"],
        scaler=SCALER,
    output:
        table="results/eval/c2st_null.tsv",
        scores="results/eval/c2st_null_scores.npz",
    params:
        section=canonical(config["c2st"]),
    log:
        "results/logs/c2st_null.log",
    benchmark:
        "results/benchmarks/c2st_null.tsv"
    conda:
        "../../envs/torch.yaml"
    # one core: 2 threads gain nothing here (benchmarks/README.md, "Threads per job")
    threads: 1
    resources:
        gpu=section_uses_gpu(config["c2st"]),
        mem_mb=lambda wc, input: 2000 + 20 * input.size_mb,
        runtime=60,
    script:
        "../scripts/c2st_null.py"


rule c2st:
    input:
        test_a=SPLIT_FILES["bkg_test_a"],
        generated=rules.sample_flow.output.events,
        scaler=SCALER,
        null_table=rules.c2st_null.output.table,
        null_scores=rules.c2st_null.output.scores,
    output:
        table="results/eval/{run}/c2st.tsv",
        history="results/eval/{run}/c2st_history.tsv",
        loss=quality_plot("c2st_loss", "c2st_loss.rst", "C2ST training"),
        roc=quality_plot("c2st_roc", "c2st_roc.rst", "C2ST ROC"),
        scores=quality_plot("c2st_scores", "c2st_scores.rst", "C2ST scores"),
        ratio=quality_plot("density_ratio", "density_ratio.rst", "density ratio"),
        tails=quality_plot("ratio_tails", "ratio_tails.rst", "density-ratio tails"),
    params:
        units=FEATURE_UNITS,
        section=canonical(config["c2st"]),
    log:
        "results/logs/c2st/{run}.log",
    benchmark:
        "results/benchmarks/c2st/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    # one core: 2 threads gain nothing here (benchmarks/README.md, "Threads per job")
    threads: 1
    resources:
        gpu=section_uses_gpu(config["c2st"]),
        mem_mb=lambda wc, input: 2000 + 20 * input.size_mb,
        runtime=60,
    script:
        "../scripts/c2st.py"


# Optional (reweighting.enabled): classifier weights for each run's generated events, and the
# evaluation of the weighted sample next to the unweighted one.
rule reweight:
    input:
        model=rules.train_flow.output.model,
        scaler=SCALER,
        reference=SPLIT_FILES["bkg_val"],
        generated=rules.sample_flow.output.events,
    output:
        weights="results/flows/{run}/weights.root",
        info="results/flows/{run}/weights.json",
    params:
        section=canonical(config["reweighting"]),
    log:
        "results/logs/reweight/{run}.log",
    benchmark:
        "results/benchmarks/reweight/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    # one core, as c2st: its classifier of the same kind gained nothing from a second thread
    threads: 1
    resources:
        # it draws a second sample of the run's flow (a GPU run's flow is sized for one), and an
        # MLP classifier trains on reweighting.training.device
        gpu=lambda wc: max(run_uses_gpu(wc.run), section_uses_gpu(config["reweighting"])),
        mem_mb=lambda wc, input: 2000 + 20 * input.size_mb,
        runtime=60,
    script:
        "../scripts/reweight.py"


rule eval_weighted:
    input:
        test_a=SPLIT_FILES["bkg_test_a"],
        generated=rules.sample_flow.output.events,
        weights=rules.reweight.output.weights,
    output:
        table="results/eval/{run}/weighted.tsv",
        features=quality_plot("features_weighted", "features_weighted.rst", "distributions (weighted)"),
    params:
        features=FEATURES,
        seed=config["reweighting"]["seed"],
    log:
        "results/logs/eval_weighted/{run}.log",
    benchmark:
        "results/benchmarks/eval_weighted/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    # sklearn's tree C2ST runs OpenMP threads on every core it sees
    threads: 2
    resources:
        mem_mb=lambda wc, input: 2000 + 20 * input.size_mb,
        runtime=30,
    script:
        "../scripts/eval_weighted.py"
