# Images of the sample: download per shard, convert to HDF5 per shard, archive per split.


# Compute nodes are often offline: downloads run on the submitting host.
localrules:
    fetch_images,


rule fetch_images:
    input:
        unpack(demo_zip_input),
        sample="results/sample/{split}.csv",
    output:
        jpg=directory("results/images/jpg/{split}/shard_{shard}"),
        failures="results/images/jpg/{split}/shard_{shard}.failures.csv",
    log:
        "logs/images/fetch_images/{split}_{shard}.log",
    benchmark:
        "benchmarks/images/fetch_images/{split}_{shard}.tsv"
    conda:
        env("data")
    params:
        n_shards=config["images"]["n_shards"],
        source=images_source(),
        connections=config["images"]["connections"],
        retries=config["images"]["retries"],
        backoff_s=config["images"]["backoff_s"],
        timeout_s=config["images"]["timeout_s"],
        max_failure_fraction=config["images"]["max_failure_fraction"],
        size=config["images"]["size"],
        size_policy=config["images"]["size_policy"],
    script:
        "../../scripts/fetch_images.py"


rule jpg_to_hdf5:
    input:
        jpg="results/images/jpg/{split}/shard_{shard}",
        failures="results/images/jpg/{split}/shard_{shard}.failures.csv",
        sample="results/sample/{split}.csv",
        classes="results/sample/classes.txt",
    output:
        h5="results/images/hdf5/{split}/shard_{shard}.h5",
    log:
        "logs/images/jpg_to_hdf5/{split}_{shard}.log",
    benchmark:
        "benchmarks/images/jpg_to_hdf5/{split}_{shard}.tsv"
    conda:
        env("data")
    threads: 1
    resources:
        # Peak RSS ~95 MB at 500 and at 2,000 images (bench/convert_memory.py);
        # the margin covers decoding larger images under size_policy resize.
        mem_mb=500,
        runtime="30m",
    params:
        n_shards=config["images"]["n_shards"],
        source=f"{DATASET}:{config['images']['source']}",
        size=config["images"]["size"],
        size_policy=config["images"]["size_policy"],
        compression=config["images"]["compression"],
        gzip_level=config["images"]["gzip_level"],
    script:
        "../../scripts/jpg_to_hdf5.py"


rule pack_jpg:
    input:
        unpack(jpg_archive_inputs),
    output:
        archive="results/images/archives/{split}_jpg.tar.gz",
    log:
        "logs/images/pack_jpg/{split}.log",
    benchmark:
        "benchmarks/images/pack_jpg/{split}.tsv"
    conda:
        env("data")
    resources:
        mem_mb=500,
        runtime="60m",
    params:
        base="results/images/jpg",
        compresslevel=config["images"]["archive_gzip_level"],
        compressor=config["images"]["archive_compressor"],
    script:
        "../../scripts/pack.py"


rule pack_hdf5:
    input:
        shards=split_hdf5_shards,
    output:
        archive="results/images/archives/{split}_hdf5.tar.gz",
    log:
        "logs/images/pack_hdf5/{split}.log",
    benchmark:
        "benchmarks/images/pack_hdf5/{split}.tsv"
    conda:
        env("data")
    resources:
        mem_mb=500,
        runtime="60m",
    params:
        base="results/images/hdf5",
        compresslevel=config["images"]["archive_gzip_level"],
        compressor=config["images"]["archive_compressor"],
    script:
        "../../scripts/pack.py"


rule image_examples:
    input:
        shards=split_hdf5_shards,
    output:
        figure=report(
            "results/images/examples_{split}.png",
            category="Images",
            caption="../report/images_examples.rst",
            labels={"split": "{split}"},
        ),
    log:
        "logs/images/image_examples/{split}.log",
    conda:
        env("data")
    params:
        per_class=6,
        crop=config["reduction"]["crop"],
    script:
        "../../scripts/image_examples.py"


TARGETS["images"] = [
    *hdf5_shards("train"),
    *hdf5_shards("test"),
    *expand(
        "results/images/archives/{split}_{kind}.tar.gz",
        split=SPLITS,
        kind=("jpg", "hdf5"),
    ),
    *expand("results/images/examples_{split}.png", split=SPLITS),
]
