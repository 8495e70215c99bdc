# Flow stage: train each named run of config["flows"] on the scaled background, then sample it.


rule train_flow:
    input:
        train=SPLIT_FILES["bkg_train"],
        val=SPLIT_FILES["bkg_val"],
        scaler="results/data/scaler.npz",
    output:
        model="results/flows/{run}/model.pt",
        history="results/flows/{run}/history.tsv",
        loss=report(
            "results/flows/{run}/loss.png",
            category="Training",
            subcategory="{run}",
            caption="../report/loss.rst",
            labels={"run": "{run}", "figure": "loss curve"},
        ),
    params:
        model=lambda wc: config["flows"][wc.run]["model"],
        flow_params=lambda wc: canonical(config["flows"][wc.run].get("params", {})),
        training=lambda wc: canonical(training_settings(config, wc.run)),
        train_events=lambda wc: config["flows"][wc.run].get("train_events"),
        checkpoint=lambda wc: f"results/flows/{wc.run}/checkpoint.pt",
    log:
        "results/logs/train_flow/{run}.log",
    benchmark:
        "results/benchmarks/train_flow/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        gpu=lambda wc: run_uses_gpu(wc.run),
        mem_mb=lambda wc, input: 2000 + 20 * input.size_mb,
        runtime=lambda wc: 30 + 2 * training_settings(config, wc.run)["max_epochs"],
    script:
        "../scripts/train_flow.py"


rule sample_flow:
    input:
        model=rules.train_flow.output.model,
        scaler="results/data/scaler.npz",
        reference=SPLIT_FILES["bkg_test_a"],
    output:
        events="results/flows/{run}/generated.root",
        timing="results/flows/{run}/sampling.tsv",
    params:
        n_generated=lambda wc: config["flows"][wc.run].get(
            "n_generated", config["sampling"]["n_generated"]
        ),
        chunk_size=config["sampling"]["chunk_size"],
        seed=config["sampling"]["seed"],
        device=lambda wc: training_settings(config, wc.run)["device"],
    log:
        "results/logs/sample_flow/{run}.log",
    benchmark:
        "results/benchmarks/sample_flow/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        gpu=lambda wc: run_uses_gpu(wc.run),
        mem_mb=lambda wc: 2000 + config["sampling"]["chunk_size"] // 250,
        runtime=60,
    script:
        "../scripts/sample_flow.py"
