# Catalogue download and the labelled train/test sample.


localrules:
    download_catalogue,
    image_index,


rule download_catalogue:
    input:
        unpack(demo_catalogue_inputs),
    output:
        hart16=f"resources/{DATASET}/gz2_hart16.csv.gz",
        mapping=f"resources/{DATASET}/gz2_filename_mapping.csv",
    log:
        "logs/catalogue/download_catalogue.log",
    conda:
        env("data")
    params:
        urls={"hart16": catalogue_url("hart16"), "mapping": catalogue_url("mapping")},
        sha256={
            "hart16": config["catalogue"].get("hart16_sha256", ""),
            "mapping": config["catalogue"].get("mapping_sha256", ""),
        },
        retries=config["catalogue"]["retries"],
        backoff_s=config["catalogue"]["backoff_s"],
        timeout_s=config["catalogue"]["timeout_s"],
    script:
        "../../scripts/download_catalogue.py"


rule image_index:
    input:
        unpack(demo_zip_input),
    output:
        index=f"resources/{DATASET}/image_index.txt",
    log:
        "logs/catalogue/image_index.log",
    conda:
        env("data")
    params:
        source=config["images"]["source"],
        zip_url=images_zip_url(),
        directory=config["images"]["directory"],
        retries=config["images"]["retries"],
        timeout_s=config["images"]["timeout_s"],
    script:
        "../../scripts/image_index.py"


rule sample:
    input:
        unpack(sample_inputs),
    output:
        train="results/sample/train.csv",
        test="results/sample/test.csv",
        summary="results/sample/summary.json",
        classes="results/sample/classes.txt",
        histogram_train=report(
            "results/sample/class_histogram_train.png",
            category="Sample",
            caption="../report/sample_histogram.rst",
            labels={"split": "train"},
        ),
        histogram_test=report(
            "results/sample/class_histogram_test.png",
            category="Sample",
            caption="../report/sample_histogram.rst",
            labels={"split": "test"},
        ),
    log:
        "logs/sample/sample.log",
    conda:
        env("data")
    resources:
        mem_mb=4000,
    params:
        dataset=DATASET,
        n_train=config["sample"]["n_train"],
        n_test=config["sample"]["n_test"],
        seed=config["seed"],
        folder=config.get("folder", {}),
    script:
        "../../scripts/sample.py"


# The 37 vote fractions of a split's galaxies, the targets of the vote-fraction network.
rule vote_table:
    input:
        hart16=f"resources/{DATASET}/gz2_hart16.csv.gz",
        sample="results/sample/{split}.csv",
    output:
        votes="results/sample/{split}_votes.csv",
    log:
        "logs/sample/vote_table/{split}.log",
    conda:
        env("data")
    resources:
        mem_mb=2000,
    params:
        column=config["cnn"]["vote_fractions"]["column"],
    script:
        "../../scripts/vote_table.py"


TARGETS["sample"] = [
    "results/sample/train.csv",
    "results/sample/test.csv",
    "results/sample/summary.json",
    "results/sample/classes.txt",
    *sample_figures(),
]
