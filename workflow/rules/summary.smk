# Summary: one row per flow run, from training to the analysis, for the report's first page.


rule summary:
    input:
        models=expand("results/flows/{run}/model.pt", run=RUNS),
        c2st=expand("results/eval/{run}/c2st.tsv", run=RUNS),
        distances=expand("results/eval/{run}/distances.tsv", run=RUNS),
        sampling=expand("results/flows/{run}/sampling.tsv", run=RUNS),
        scans=[table for run in RUNS for table in scan_tables(run)],
    output:
        report(
            "results/summary/runs.tsv",
            category="Summary",
            caption="../report/summary.rst",
            labels={"table": "runs"},
        ),
    params:
        runs=RUNS,
        scans={run: scan_tables(run) for run in RUNS},
    log:
        "results/logs/summary.log",
    benchmark:
        "results/benchmarks/summary.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/summary.py"
