# Summary: one row per flow run, from training to the analysis, for the report's first page;
# and per study, one row per point and the study plots.


rule summary:
    input:
        runs=[path for run in RUNS for path in run_files(run).values()],
        scans=[table for run in RUNS for table in scan_tables(run)],
        worth=[path for run in RUNS for path in worth_files(run).values()],
    output:
        report(
            "results/summary/runs.tsv",
            category="Summary",
            caption="../report/summary.rst",
            labels={"table": "runs"},
        ),
    params:
        files={run: {**run_files(run), "scans": scan_tables(run), **worth_files(run)} for run in RUNS},
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


rule study:
    input:
        lambda wc: [path for run in STUDIES[wc.study].runs for path in study_run_files(run).values()],
    output:
        points="results/studies/{study}/points.tsv",
        summary=report(
            "results/studies/{study}/summary.tsv",
            category="Studies",
            subcategory="{study}",
            caption="../report/study_summary.rst",
            labels={"study": "{study}", "figure": "table"},
        ),
        curves=study_plot("val_loss_curves", "study_curves.rst", "validation loss per epoch"),
        val_nll=study_plot("val_nll", "study_val_nll.rst", "validation NLL vs scan"),
        c2st=study_plot("c2st_auc", "study_c2st.rst", "C2ST AUC vs scan"),
        copula=study_plot("copula_chi2_dof", "study_copula.rst", "copula chi2/dof vs scan"),
        amplification=study_plot("amplification", "study_amplification.rst", "amplification vs scan"),
    params:
        scan=lambda wc: STUDIES[wc.study].scan,
        points=lambda wc: canonical(STUDIES[wc.study].point_params()),
        files=lambda wc: {run: study_run_files(run) for run in STUDIES[wc.study].runs},
    log:
        "results/logs/study/{study}.log",
    benchmark:
        "results/benchmarks/study/{study}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/study.py"
