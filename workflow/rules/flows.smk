# Flow stage: train each named run (SETTINGS.runs, the study runs, the ensemble members) on the
# scaled background, then sample it (stored events, for the evaluation) or fill its templates
# (many more events, never stored, for the analysis).


rule train_flow:
    input:
        # the background splits (or a coverage replica's own toy training set), the scaler,
        # and the signal splits for a run conditioned on the label
        unpack(flow_training_inputs),
    output:
        model="results/flows/{run}/model.pt",
        history="results/flows/{run}/history.tsv",
        loss=run_plot("results/flows/{run}/loss.png", "Training", "loss.rst", "loss curve"),
    params:
        spec=lambda wc: canonical(SETTINGS.run(wc.run).training_params()),
        checkpoint=lambda wc: f"results/flows/{wc.run}/checkpoint.pt",
    log:
        "results/logs/train_flow/{run}.log",
    benchmark:
        "results/benchmarks/train_flow/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    # One core per training, so that two train at once on a 2-core machine: their second
    # thread gains rqs 1.6x and glow 1.15x, less than a second training gains. More cores
    # per training: --set-threads train_flow=N (README, "Running on a cluster").
    threads: 1
    # Longest planned training first, and trainings before the short evaluation jobs, which
    # then fill the free cores: on 2 cores the 80-epoch rqs run no longer starts last.
    priority: lambda wc: SETTINGS.run(wc.run).training.max_epochs
    resources:
        gpu=lambda wc: run_uses_gpu(wc.run),
        mem_mb=lambda wc, input: 2000 + 20 * input.size_mb,
        # each classifier-feedback round fine-tunes for up to max_epochs again
        runtime=lambda wc: (30 + 2 * SETTINGS.run(wc.run).training.max_epochs) * (1 + feedback_rounds(wc.run)),
    script:
        "../scripts/train_flow.py"


rule sample_flow:
    input:
        model=rules.train_flow.output.model,
        scaler=SCALER,
        reference=SPLIT_FILES["bkg_test_a"],
    output:
        events="results/flows/{run}/generated.root",
        timing="results/flows/{run}/sampling.tsv",
    params:
        n_generated=lambda wc: SETTINGS.run(wc.run).n_generated,
        chunk_size=config["sampling"]["chunk_size"],
        seed=config["sampling"]["seed"],
        max_nonfinite_fraction=config["sampling"]["max_nonfinite_fraction"],
        device=lambda wc: SETTINGS.run(wc.run).training.device,
    log:
        "results/logs/sample_flow/{run}.log",
    benchmark:
        "results/benchmarks/sample_flow/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    # one core: 2 threads gain nothing here (benchmarks/README.md, "Threads per job")
    threads: 1
    resources:
        gpu=lambda wc: run_uses_gpu(wc.run),
        mem_mb=lambda wc: 2000 + config["sampling"]["chunk_size"] // 250,
        runtime=60,
    script:
        "../scripts/sample_flow.py"


rule fill_templates:
    input:
        # a weight draw of a Bayesian run samples that run's model file
        model=lambda wc: f"results/flows/{SETTINGS.trained_run(wc.run)}/model.pt",
        scaler=SCALER,
        # paths, not rules.train_classifier: classifier.smk is included after this file
        classifier="results/analysis/classifier/model.pt",
        classifier_scaler="results/analysis/classifier/scaler.npz",
        reference=SPLIT_FILES["bkg_test_a"],
    output:
        templates="results/templates/{run}/templates.root",
        summary="results/templates/{run}/templates.json",
    params:
        n_events=SETTINGS.n_template_events,
        section=canonical({k: v for k, v in config["analysis"].items() if k in TEMPLATE_KEYS}),
        chunk_size=config["sampling"]["chunk_size"],
        seed=config["sampling"]["seed"],
        max_nonfinite_fraction=config["sampling"]["max_nonfinite_fraction"],
        device=lambda wc: SETTINGS.run(wc.run).training.device,
        weight_draw=lambda wc: SETTINGS.weight_draw(wc.run),
        # the features' marginals before the cut, for the amplification (rule amplification)
        marginal_bins=SETTINGS.worth.marginal_bins,
    log:
        "results/logs/fill_templates/{run}.log",
    benchmark:
        "results/benchmarks/fill_templates/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    # one core, as sample_flow: the sampling dominates and does not gain from a second thread
    threads: 1
    resources:
        gpu=lambda wc: run_uses_gpu(wc.run),
        mem_mb=lambda wc: 2000 + config["sampling"]["chunk_size"] // 250,
        runtime=60,
    script:
        "../scripts/fill_templates.py"


# A run conditioned on the label (flows.<run>.condition) with signal_templates: its flow at
# label 1 fills the signal's templates too, and the scans fit them as one more prediction.
rule fill_signal_templates:
    input:
        model="results/flows/{run}/model.pt",
        scaler=SCALER,
        classifier="results/analysis/classifier/model.pt",
        classifier_scaler="results/analysis/classifier/scaler.npz",
        reference=SPLIT_FILES["bkg_test_a"],
    output:
        templates="results/templates/{run}/signal_templates.root",
        summary="results/templates/{run}/signal_templates.json",
    params:
        n_events=SETTINGS.n_template_events,
        section=canonical({k: v for k, v in config["analysis"].items() if k in TEMPLATE_KEYS}),
        chunk_size=config["sampling"]["chunk_size"],
        seed=config["sampling"]["seed"],
        max_nonfinite_fraction=config["sampling"]["max_nonfinite_fraction"],
        device=lambda wc: SETTINGS.run(wc.run).training.device,
    log:
        "results/logs/fill_signal_templates/{run}.log",
    benchmark:
        "results/benchmarks/fill_signal_templates/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        gpu=lambda wc: run_uses_gpu(wc.run),
        mem_mb=lambda wc: 2000 + config["sampling"]["chunk_size"] // 250,
        runtime=60,
    script:
        "../scripts/fill_signal_templates.py"
