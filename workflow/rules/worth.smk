# Worth stage: what a generated event is worth. Each run's templates against a high-statistics
# truth (amplification), its background model fitted to background-only data (spurious signal),
# and, when worth.coverage is set, the coverage of the ML-background fit over replicas that
# train on their own toy sets. The truth and the replicas' training sets are toy data, made by
# the data stage (make_truth, make_replica_data).


rule amplification:
    input:
        ml_templates=lambda wc: template_files(wc.run),
        train=lambda wc: training_split(wc.run, "train"),
        truth=list(scored(TRUTH_SAMPLE)[0]),
        mc_reference=list(scored("bkg_test_b")[0]),
    output:
        table="results/worth/{run}/amplification.tsv",
    params:
        truth=scored(TRUTH_SAMPLE)[0],
        mc_reference=scored("bkg_test_b")[0],
        train_events=lambda wc: SETTINGS.run(SETTINGS.template_runs(wc.run)[0]).train_events,
        section=canonical({k: v for k, v in config["analysis"].items() if k in TEMPLATE_KEYS}),
        n_bootstrap=WORTH.n_bootstrap,
        seed=WORTH.seed,
    log:
        "results/logs/amplification/{run}.log",
    benchmark:
        "results/benchmarks/amplification/{run}.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 10 * input.size_mb,
        runtime=15,
    script:
        "../scripts/amplification.py"


rule spurious_signal:
    input:
        files=lambda wc: [f for pair in scored("sig_test_a", "sig_test_b", TRUTH_SAMPLE, "bkg_test_b") for f in pair],
        ml_templates=lambda wc: template_files(wc.run),
    output:
        table="results/worth/{run}/spurious.tsv",
        plot=run_plot("results/worth/{run}/spurious.png", "Worth", "spurious.rst", "spurious signal"),
    params:
        section=canonical({k: v for k, v in config["analysis"].items() if k != "classifier"}),
        signal=scored("sig_test_a", "sig_test_b"),
        truth=scored(TRUTH_SAMPLE),
        mc_prediction=scored("bkg_test_b"),
    log:
        "results/logs/spurious_signal/{run}.log",
    benchmark:
        "results/benchmarks/spurious_signal/{run}.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 10 * input.size_mb,
        runtime=15,
    script:
        "../scripts/spurious_signal.py"


rule coverage:
    input:
        files=[f for pair in scored("sig_test_a", "sig_test_b", TRUTH_SAMPLE, *REPLICA_TRAIN) for f in pair],
        ml_templates=[
            f"results/templates/{member}/templates.root"
            for replica in (COVERAGE.names if COVERAGE else [])
            for member in COVERAGE.template_runs[replica]
        ],
    output:
        table="results/worth/coverage.tsv",
        plot=report_plot("results/worth/coverage.png", "Worth", "coverage.rst", "coverage", subcategory="coverage"),
    params:
        section=canonical({k: v for k, v in config["analysis"].items() if k != "classifier"}),
        signal=scored("sig_test_a", "sig_test_b"),
        truth=scored(TRUTH_SAMPLE),
        # each replica's own MC training set, the background it would fit without a flow
        replica_mc={name: scored(f"{name}.train") for name in (COVERAGE.names if COVERAGE else [])},
        replicas={name: [f"results/templates/{m}/templates.root" for m in members]
                  for name, members in (COVERAGE.template_runs.items() if COVERAGE else [])},
        lumi_fb=list(COVERAGE.lumi_fb) if COVERAGE else [],
        shapesys_rel=COVERAGE.shapesys_rel if COVERAGE else None,
        seed=WORTH.seed,
    log:
        "results/logs/coverage.log",
    benchmark:
        "results/benchmarks/coverage.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 10 * input.size_mb,
        runtime=60,
    script:
        "../scripts/coverage.py"
