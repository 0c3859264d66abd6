# The demo "remote": a synthetic Galaxy Zoo 2 sky in the formats of the real
# release. The catalogue rules download it through the same download code as real URLs.


rule demo_sky:
    output:
        hart16=f"{DEMO_REMOTE}/gz2_hart16.csv.gz",
        mapping=f"{DEMO_REMOTE}/gz2_filename_mapping.csv",
        zip=f"{DEMO_REMOTE}/images_gz2.zip",
    log:
        "logs/demo/demo_sky.log",
    benchmark:
        "benchmarks/demo/demo_sky.tsv"
    conda:
        env("data")
    threads: 4
    resources:
        mem_mb=2000,
        runtime="30m",
    params:
        n_galaxies=config["demo"]["n_galaxies"],
        seed=config["demo"]["seed"],
        n_unlabelled=config["demo"]["n_unlabelled"],
        n_malformed=config["demo"]["n_malformed"],
    script:
        "../../scripts/demo_sky.py"


rule demo_contact_sheet:
    input:
        hart16=f"{DEMO_REMOTE}/gz2_hart16.csv.gz",
        mapping=f"{DEMO_REMOTE}/gz2_filename_mapping.csv",
        zip=f"{DEMO_REMOTE}/images_gz2.zip",
    output:
        sheet=report(
            "results/demo/contact_sheet.png",
            caption="../report/demo_contact_sheet.rst",
            category="Demo",
        ),
    log:
        "logs/demo/demo_contact_sheet.log",
    conda:
        env("data")
    params:
        per_class=6,
    script:
        "../../scripts/demo_contact_sheet.py"


TARGETS["demo"] = ["results/demo/contact_sheet.png"] if DATASET == "demo" else []
