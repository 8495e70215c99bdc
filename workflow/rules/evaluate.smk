# Evaluation stage: how close is each run's generated background to the MC it must replace?


rule eval_distances:
    input:
        test_a=SPLIT_FILES["bkg_test_a"],
        test_b=SPLIT_FILES["bkg_test_b"],
        generated=rules.sample_flow.output.events,
    output:
        table="results/eval/{run}/distances.tsv",
        summary=report(
            "results/eval/{run}/distances.png",
            category="Sample quality",
            subcategory="{run}",
            caption="../report/distances.rst",
            labels={"run": "{run}", "figure": "distances per feature"},
        ),
        linear=report(
            "results/eval/{run}/features_linear.png",
            category="Sample quality",
            subcategory="{run}",
            caption="../report/features.rst",
            labels={"run": "{run}", "figure": "distributions (linear)"},
        ),
        log=report(
            "results/eval/{run}/features_log.png",
            category="Sample quality",
            subcategory="{run}",
            caption="../report/features.rst",
            labels={"run": "{run}", "figure": "distributions (log)"},
        ),
        corner=report(
            "results/eval/{run}/corner.png",
            category="Sample quality",
            subcategory="{run}",
            caption="../report/corner.rst",
            labels={"run": "{run}", "figure": "correlated pairs"},
        ),
        copula_table="results/eval/{run}/copula_pairs.tsv",
        copula=report(
            "results/eval/{run}/copula_pairs.png",
            category="Sample quality",
            subcategory="{run}",
            caption="../report/copula_pairs.rst",
            labels={"run": "{run}", "figure": "copula per pair"},
        ),
    params:
        features=config["features"],
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
        scaler="results/data/scaler.npz",
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
        scaler="results/data/scaler.npz",
        null_table=rules.c2st_null.output.table,
        null_scores=rules.c2st_null.output.scores,
    output:
        table="results/eval/{run}/c2st.tsv",
        history="results/eval/{run}/c2st_history.tsv",
        loss=report(
            "results/eval/{run}/c2st_loss.png",
            category="Sample quality",
            subcategory="{run}",
            caption="../report/c2st_loss.rst",
            labels={"run": "{run}", "figure": "C2ST training"},
        ),
        roc=report(
            "results/eval/{run}/c2st_roc.png",
            category="Sample quality",
            subcategory="{run}",
            caption="../report/c2st_roc.rst",
            labels={"run": "{run}", "figure": "C2ST ROC"},
        ),
        scores=report(
            "results/eval/{run}/c2st_scores.png",
            category="Sample quality",
            subcategory="{run}",
            caption="../report/c2st_scores.rst",
            labels={"run": "{run}", "figure": "C2ST scores"},
        ),
        ratio=report(
            "results/eval/{run}/density_ratio.png",
            category="Sample quality",
            subcategory="{run}",
            caption="../report/density_ratio.rst",
            labels={"run": "{run}", "figure": "density ratio"},
        ),
        tails=report(
            "results/eval/{run}/ratio_tails.png",
            category="Sample quality",
            subcategory="{run}",
            caption="../report/ratio_tails.rst",
            labels={"run": "{run}", "figure": "density-ratio tails"},
        ),
    params:
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
        scaler="results/data/scaler.npz",
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
        features=report(
            "results/eval/{run}/features_weighted.png",
            category="Sample quality",
            subcategory="{run}",
            caption="../report/features_weighted.rst",
            labels={"run": "{run}", "figure": "distributions (weighted)"},
        ),
    params:
        features=config["features"],
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
