# Data stage: the HIGGS file (generated, downloaded or given), seeded splits, the scaler; and the
# worth stage's toy data: its truth and the coverage replicas' own training sets.


if config["data"]["source"] == "toy":

    rule make_toy_higgs:
        output:
            HIGGS_DOWNLOAD,
        params:
            n_events=config["data"]["toy"]["n_events"],
            seed=config["data"]["toy"]["seed"],
            signal_fraction=config["data"]["toy"]["signal_fraction"],
        log:
            "results/logs/make_toy_higgs.log",
        benchmark:
            "results/benchmarks/make_toy_higgs.tsv"
        conda:
            "../../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=lambda wc: 5 + config["data"]["toy"]["n_events"] // 1_000_000,
        script:
            "../scripts/make_toy_higgs.py"


if config["data"]["source"] == "uci":

    rule fetch_higgs:
        output:
            HIGGS_DOWNLOAD,
        params:
            url=config["data"]["url"],
            sha256=config["data"]["sha256"],
        log:
            "results/logs/fetch_higgs.log",
        benchmark:
            "results/benchmarks/fetch_higgs.tsv"
        conda:
            "../../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=180,
        script:
            "../scripts/fetch_higgs.py"


if config["data"]["source"] != "root":

    rule split_higgs:
        input:
            csv=higgs_csv(),
        output:
            **SPLIT_FILES,
            manifest="results/data/manifest.json",
        params:
            seed=config["splits"]["seed"],
            ml_fraction=config["splits"]["ml_fraction"],
            train_fraction=config["splits"]["train_fraction"],
            test_a_fraction=config["splits"]["test_a_fraction"],
            max_events=config["data"]["max_events"],
            max_rows=config["data"]["max_rows"],
            # the file read is held to the checksum however it got into resources/ (downloaded,
            # copied by hand, kept by --rerun-triggers mtime)
            sha256=config["data"]["sha256"] if config["data"]["source"] == "uci" else None,
        log:
            "results/logs/split_higgs.log",
        benchmark:
            "results/benchmarks/split_higgs.tsv"
        conda:
            "../../envs/data.yaml"
        threads: 2
        resources:
            # float32 events take ~1/6 of the CSV text; a gzip file holds ~3x its size in text
            mem_mb=lambda wc, input: 1000 + 2 * input.size_mb,
            runtime=lambda wc, input: 10 + input.size_mb // 100,
        script:
            "../scripts/split_higgs.py"


if config["data"]["source"] == "root":

    rule split_ntuples:
        input:
            ntuple_files(),
        output:
            **SPLIT_FILES,
            manifest="results/data/manifest.json",
        params:
            root=config["data"]["root"],
            features=config["features"],
            seed=config["splits"]["seed"],
            ml_fraction=config["splits"]["ml_fraction"],
            train_fraction=config["splits"]["train_fraction"],
            test_a_fraction=config["splits"]["test_a_fraction"],
            max_events=config["data"]["max_events"],
        log:
            "results/logs/split_ntuples.log",
        benchmark:
            "results/benchmarks/split_ntuples.tsv"
        conda:
            "../../envs/data.yaml"
        threads: 1
        resources:
            # the features of every event are held; awkward chunks of step_size entries besides
            mem_mb=lambda wc, input: 2000 + 2 * input.size_mb,
            runtime=lambda wc, input: 10 + input.size_mb // 50,
        script:
            "../scripts/split_ntuples.py"


rule fit_scaler:
    input:
        train=SPLIT_FILES["bkg_train"],
    output:
        SCALER,
    params:
        method=config["scaling"]["method"],
        features=FEATURES,
        odd=config["symmetry"]["flip_signs"],
    log:
        "results/logs/fit_scaler.log",
    benchmark:
        "results/benchmarks/fit_scaler.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 1000 + 10 * input.size_mb,
        runtime=10,
    script:
        "../scripts/fit_scaler.py"


rule make_truth:
    output:
        TRUTH_EVENTS,
    params:
        n_events=WORTH.truth_events,
        seed=WORTH.truth_seed,
    log:
        "results/logs/make_truth.log",
    benchmark:
        "results/benchmarks/make_truth.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: 1000 + WORTH.truth_events // 2000,
        runtime=15,
    script:
        "../scripts/make_truth.py"


rule make_replica_data:
    input:
        # the replica's training and validation sets are as large as the data's
        train=SPLIT_FILES["bkg_train"],
        val=SPLIT_FILES["bkg_val"],
    output:
        train="results/worth/replicas/{replica}/bkg_train.root",
        val="results/worth/replicas/{replica}/bkg_val.root",
    params:
        n_train=COVERAGE.train_events if COVERAGE else None,
        n_val=COVERAGE.val_events if COVERAGE else None,
        # a toy stream of its own for each replica (flowsim.worth.replica_seed)
        seed=lambda wc: replica_seed(COVERAGE.seed, int(wc.replica.removeprefix("r"))),
    log:
        "results/logs/make_replica_data/{replica}.log",
    benchmark:
        "results/benchmarks/make_replica_data/{replica}.tsv"
    conda:
        "../../envs/data.yaml"
    wildcard_constraints:
        replica=r"r\d+",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/make_replica_data.py"
