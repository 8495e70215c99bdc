# Classifier stage: the signal-vs-background classifier trained on the ML set, and every sample
# scored by it with its counts at the cut (paper Sec. 4.4).


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
        features=FEATURES,
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
