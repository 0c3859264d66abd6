# One job and one report per clustering method, fitted on train and assigning test.


wildcard_constraints:
    method="|".join(CLUSTERING_METHODS),


rule map_training_split:
    input:
        train="results/reduction/train.pkl",
    output:
        table="results/clustering/map_train.csv",
    log:
        "logs/clustering/map_training_split.log",
    benchmark:
        "benchmarks/clustering/map_training_split.tsv"
    conda:
        env("ml")
    threads: config["threads"]["clustering"]
    resources:
        mem_mb=2000,
        runtime="1h",
    params:
        seed=config["seed"],
        max_points=config["clustering"]["map"]["max_points"],
        perplexity=config["clustering"]["map"]["perplexity"],
    script:
        "../../scripts/map_training_split.py"


rule cluster:
    input:
        train="results/reduction/train.pkl",
        test="results/reduction/test.pkl",
        reducer=rules.fit_reduction.output.reducer,
        train_shards=hdf5_shards("train"),
        test_shards=hdf5_shards("test"),
        train_map=rules.map_training_split.output.table,
    output:
        labels_train="results/clustering/{method}/labels_train.csv",
        labels_test="results/clustering/{method}/labels_test.csv",
        metrics="results/clustering/{method}/metrics.json",
        majority=report(
            "results/clustering/{method}/majority.csv",
            caption="../report/clustering_majority.rst",
            category="Clustering",
            subcategory="{method}",
        ),
        unusual_table="results/clustering/{method}/unusual.csv",
        class_histogram=report(
            "results/clustering/{method}/class_histogram.png",
            caption="../report/clustering_class_histogram.rst",
            category="Clustering",
            subcategory="{method}",
        ),
        cluster_sizes=report(
            "results/clustering/{method}/cluster_sizes.png",
            caption="../report/clustering_cluster_sizes.rst",
            category="Clustering",
            subcategory="{method}",
        ),
        centroids=report(
            "results/clustering/{method}/centroids.png",
            caption="../report/clustering_centroids.rst",
            category="Clustering",
            subcategory="{method}",
        ),
        method_figure=report(
            "results/clustering/{method}/{method}.png",
            caption="../report/clustering_method.rst",
            category="Clustering",
            subcategory="{method}",
        ),
        map=report(
            "results/clustering/{method}/map.png",
            caption="../report/clustering_map.rst",
            category="Clustering",
            subcategory="{method}",
        ),
        unusual=report(
            "results/clustering/{method}/unusual.png",
            caption="../report/clustering_unusual.rst",
            category="Clustering",
            subcategory="{method}",
        ),
    log:
        "logs/clustering/cluster/{method}.log",
    benchmark:
        "benchmarks/clustering/cluster/{method}.tsv"
    conda:
        env("ml")
    threads: config["threads"]["clustering"]
    resources:
        mem_mb=clustering_mem_mb,
        runtime="2h",
    params:
        method_params=clustering_method_params,
        seed=config["seed"],
    script:
        "../../scripts/cluster.py"


rule clustering_summary:
    input:
        metrics=expand(
            "results/clustering/{method}/metrics.json",
            method=config["clustering"]["methods"],
        ),
    output:
        table="results/clustering/summary.csv",
        figure=report(
            "results/clustering/summary.png",
            caption="../report/clustering_summary.rst",
            category="Clustering",
            subcategory="summary",
        ),
    log:
        "logs/clustering/clustering_summary.log",
    conda:
        env("ml")
    script:
        "../../scripts/clustering_summary.py"


TARGETS["clustering"] = [
    *expand(
        "results/clustering/{method}/{name}",
        method=config["clustering"]["methods"],
        name=[
            "labels_train.csv",
            "labels_test.csv",
            "metrics.json",
            "majority.csv",
            "map.png",
            "unusual.png",
            "unusual.csv",
            "class_histogram.png",
            "cluster_sizes.png",
            "centroids.png",
        ],
    ),
    *[f"results/clustering/{m}/{m}.png" for m in config["clustering"]["methods"]],
    "results/clustering/map_train.csv",
    "results/clustering/summary.csv",
    "results/clustering/summary.png",
]
