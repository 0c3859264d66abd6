# Crop, preprocessing (recentre, align, stretch), PCA or descriptors, StandardScaler:
# fitted on the training split only.


rule fit_reduction:
    input:
        shards=hdf5_shards("train"),
    output:
        reducer="results/reduction/reducer.pkl",
        scaler="results/reduction/scaler.pkl",
        # reducer then scaler as one fitted scikit-learn Pipeline (crops in, features
        # out) in skops's format, which runs no code when loaded: the one to share
        pipeline="results/reduction/pipeline.skops",
        variance=report(
            "results/reduction/explained_variance.png",
            caption="../report/reduction_explained_variance.rst",
            category="Reduction",
        ),
        reconstructions=report(
            "results/reduction/reconstructions.png",
            caption="../report/reduction_reconstructions.rst",
            category="Reduction",
        ),
    log:
        "logs/reduction/fit_reduction.log",
    benchmark:
        "benchmarks/reduction/fit_reduction.tsv"
    conda:
        env("ml")
    threads: config["threads"]["clustering"]
    resources:
        # Bounded by the batch, not the split (bench/ipca_memory.py).
        mem_mb=reduction_mem_mb(),
        runtime="2h",
    params:
        crop=config["reduction"]["crop"],
        # Sorted keys: merging config files in another order must not look like an edit.
        preprocess=dict(sorted(config["reduction"]["preprocess"].items())),
        representation=config["reduction"]["representation"],
        n_components=config["reduction"]["n_components"],
        batch_size=config["reduction"]["batch_size"],
        n_examples=config["reduction"]["n_reconstruction_examples"],
    script:
        "../../scripts/fit_reduction.py"


rule reduce_split:
    input:
        shards=split_hdf5_shards,
        reducer=rules.fit_reduction.output.reducer,
        scaler=rules.fit_reduction.output.scaler,
    output:
        reduced="results/reduction/{split}.pkl",
    log:
        "logs/reduction/reduce_split/{split}.log",
    benchmark:
        "benchmarks/reduction/reduce_split/{split}.tsv"
    conda:
        env("ml")
    threads: config["threads"]["clustering"]
    resources:
        mem_mb=reduction_mem_mb(),
        runtime="1h",
    params:
        crop=config["reduction"]["crop"],
        batch_size=config["reduction"]["batch_size"],
    script:
        "../../scripts/reduce_split.py"


TARGETS["reduction"] = [
    "results/reduction/reducer.pkl",
    "results/reduction/scaler.pkl",
    "results/reduction/pipeline.skops",
    "results/reduction/explained_variance.png",
    "results/reduction/reconstructions.png",
    *expand("results/reduction/{split}.pkl", split=SPLITS),
]
