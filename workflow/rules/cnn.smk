# Supervised CNNs on real pixels: balance (train split only), train, fit the measures
# variant's dense networks on the measured morphology, join the trained variants into
# the ensemble, attach each variant's decision rule (test-time
# views, prior shift) to make its model, evaluate on the untouched test split, compare;
# optional k-fold; classify a folder of JPEGs. With cnn.vote_fractions on, a network
# of its own (variant "votes") learns Galaxy Zoo 2's 37 vote fractions instead.
#   snakemake results/predict/ensemble/predictions.csv --config predict_folder=path/to/jpegs


wildcard_constraints:
    variant="unbalanced|balanced|measures|ensemble|votes",


rule balance_training_set:
    input:
        shards=hdf5_shards("train"),
    output:
        h5="results/cnn/balanced/train_balanced.h5",
        counts="results/cnn/balanced/balance_counts.csv",
    log:
        "logs/cnn/balance_training_set.log",
    benchmark:
        "benchmarks/cnn/balance_training_set.tsv"
    conda:
        env("dl")
    threads: 1
    resources:
        mem_mb=1000,
        runtime="1h",
    params:
        balanced=cnn_balance_settings()["settings"],
        side=cnn_balance_settings()["side"],
        seed=config["seed"],
    script:
        "../../scripts/balance.py"


rule train_cnn:
    input:
        unpack(cnn_training_data),
    output:
        network="results/cnn/{variant}/network.keras",
        metadata="results/cnn/{variant}/network.json",
        history="results/cnn/{variant}/history.csv",
        history_figure=report(
            "results/cnn/{variant}/history.png",
            caption="../report/cnn_history.rst",
            category="CNN",
            subcategory="{variant}",
        ),
    log:
        "logs/cnn/train_cnn/{variant}.log",
    benchmark:
        "benchmarks/cnn/train_cnn/{variant}.tsv"
    wildcard_constraints:
        variant=CNN_VARIANTS,
    conda:
        env("dl")
    threads: config["threads"]["cnn"]
    resources:
        # plus disk in $TMPDIR: the crop cache, n_train x crop^2 x 3 bytes (GZ2: 0.8 GB)
        mem_mb=cnn_mem_mb,
        runtime="8h",
    params:
        settings=variant_train_settings,
    script:
        "../../scripts/train_cnn.py"


# Dense networks on the measured morphology alone (galmorph.cnn.measures_network): a
# model of another kind for the ensemble, trained in seconds once the measures are taken.
rule train_measures_network:
    input:
        shards=hdf5_shards("train"),
    output:
        network="results/cnn/measures/network.keras",
        metadata="results/cnn/measures/network.json",
        history="results/cnn/measures/history.csv",
        history_figure=report(
            "results/cnn/measures/history.png",
            caption="../report/cnn_measures_history.rst",
            category="CNN",
            subcategory="measures",
        ),
    log:
        "logs/cnn/train_measures_network.log",
    benchmark:
        "benchmarks/cnn/train_measures_network.tsv"
    conda:
        env("dl")
    threads: config["threads"]["cnn"]
    resources:
        mem_mb=2000,
        runtime="2h",
    params:
        settings=measures_train_settings(),
        network=dict(sorted(config["cnn"]["measures_network"].items())),
    script:
        "../../scripts/train_measures_network.py"


rule assemble_cnn_ensemble:
    input:
        unpack(ensemble_member_files),
    output:
        network="results/cnn/ensemble/network.keras",
        metadata="results/cnn/ensemble/network.json",
    log:
        "logs/cnn/assemble_cnn_ensemble.log",
    conda:
        env("dl")
    threads: 1
    resources:
        mem_mb=cnn_mem_mb,
        runtime="10m",
    script:
        "../../scripts/assemble_ensemble.py"


# The model a variant is scored and shared as: its network plus the decision rule
# evaluation applies, written into model.json so that the model alone reproduces
# its evaluation (galmorph.cnn.decision). A rule edit redoes this copy, not training.
rule attach_decision_rule:
    input:
        network="results/cnn/{variant}/network.keras",
        metadata="results/cnn/{variant}/network.json",
    output:
        model="results/cnn/{variant}/model.keras",
        metadata="results/cnn/{variant}/model.json",
    log:
        "logs/cnn/attach_decision_rule/{variant}.log",
    conda:
        env("dl")
    threads: 1
    resources:
        mem_mb=500,
        runtime="10m",
    params:
        rule=variant_decision_rule,
    script:
        "../../scripts/attach_decision_rule.py"


rule train_vote_network:
    input:
        shards=hdf5_shards("train"),
        votes="results/sample/train_votes.csv",
    output:
        network="results/cnn/votes/network.keras",
        metadata="results/cnn/votes/network.json",
        history="results/cnn/votes/history.csv",
        history_figure=report(
            "results/cnn/votes/history.png",
            caption="../report/cnn_votes_history.rst",
            category="CNN",
            subcategory="votes",
        ),
    log:
        "logs/cnn/train_vote_network.log",
    benchmark:
        "benchmarks/cnn/train_vote_network.tsv"
    conda:
        env("dl")
    threads: config["threads"]["cnn"]
    resources:
        mem_mb=cnn_mem_mb,
        runtime="8h",
    params:
        settings=vote_train_settings(),
        column=config["cnn"]["vote_fractions"]["column"],
    script:
        "../../scripts/train_vote_network.py"


rule evaluate_vote_network:
    input:
        model="results/cnn/votes/model.keras",
        metadata="results/cnn/votes/model.json",
        test=hdf5_shards("test"),
        votes="results/sample/test_votes.csv",
    output:
        metrics="results/cnn/votes/metrics.json",
        per_answer="results/cnn/votes/per_answer.csv",
        predictions="results/cnn/votes/test_predictions.csv",
        per_answer_figure=report(
            "results/cnn/votes/per_answer.png",
            caption="../report/cnn_votes_per_answer.rst",
            category="CNN",
            subcategory="votes",
        ),
        scatter=report(
            "results/cnn/votes/true_vs_predicted.png",
            caption="../report/cnn_votes_scatter.rst",
            category="CNN",
            subcategory="votes",
        ),
    log:
        "logs/cnn/evaluate_vote_network.log",
    benchmark:
        "benchmarks/cnn/evaluate_vote_network.tsv"
    conda:
        env("dl")
    threads: config["threads"]["cnn"]
    resources:
        mem_mb=cnn_mem_mb,
        runtime="1h",
    params:
        batch_size=config["cnn"]["batch_size"],
    script:
        "../../scripts/evaluate_vote_network.py"


rule evaluate_cnn:
    input:
        model="results/cnn/{variant}/model.keras",
        metadata="results/cnn/{variant}/model.json",
        test=hdf5_shards("test"),
    output:
        metrics="results/cnn/{variant}/metrics.json",
        per_class="results/cnn/{variant}/per_class.csv",
        predictions="results/cnn/{variant}/test_predictions.csv",
        confusion=report(
            "results/cnn/{variant}/confusion_matrix.png",
            caption="../report/cnn_confusion.rst",
            category="CNN",
            subcategory="{variant}",
        ),
        roc=report(
            "results/cnn/{variant}/roc.png",
            caption="../report/cnn_roc.rst",
            category="CNN",
            subcategory="{variant}",
        ),
        misclassified=report(
            "results/cnn/{variant}/misclassified.png",
            caption="../report/cnn_misclassified.rst",
            category="CNN",
            subcategory="{variant}",
        ),
        calibration=report(
            "results/cnn/{variant}/calibration.png",
            caption="../report/cnn_calibration.rst",
            category="CNN",
            subcategory="{variant}",
        ),
        per_class_figure=report(
            "results/cnn/{variant}/per_class.png",
            caption="../report/cnn_per_class.rst",
            category="CNN",
            subcategory="{variant}",
        ),
        saliency=report(
            "results/cnn/{variant}/saliency.png",
            caption="../report/cnn_saliency.rst",
            category="CNN",
            subcategory="{variant}",
        ),
    log:
        "logs/cnn/evaluate_cnn/{variant}.log",
    benchmark:
        "benchmarks/cnn/evaluate_cnn/{variant}.tsv"
    wildcard_constraints:
        variant=CLASSIFIER_VARIANTS,
    conda:
        env("dl")
    threads: config["threads"]["cnn"]
    resources:
        mem_mb=cnn_mem_mb,
        runtime="1h",
    params:
        batch_size=config["cnn"]["batch_size"],
        n_misclassified=24,
    script:
        "../../scripts/evaluate_cnn.py"


rule cnn_kfold:
    input:
        unpack(cnn_training_data),
    output:
        folds="results/cnn/{variant}/kfold.csv",
        summary="results/cnn/{variant}/kfold_summary.csv",
    log:
        "logs/cnn/cnn_kfold/{variant}.log",
    benchmark:
        "benchmarks/cnn/cnn_kfold/{variant}.tsv"
    wildcard_constraints:
        variant=CNN_VARIANTS,
    conda:
        env("dl")
    threads: config["threads"]["cnn"]
    resources:
        mem_mb=cnn_mem_mb,
        runtime="24h",
    params:
        settings=variant_train_settings,
        k=config["cnn"]["kfold"],
    script:
        "../../scripts/cnn_kfold.py"


rule cnn_summary:
    input:
        unpack(cnn_summary_inputs),
    output:
        table="results/cnn/summary.csv",
        figure=report(
            "results/cnn/summary.png",
            caption="../report/cnn_summary.rst",
            category="CNN",
            subcategory="summary",
        ),
    log:
        "logs/cnn/cnn_summary.log",
    conda:
        env("dl")
    params:
        variants=config["cnn"]["variants"],
    script:
        "../../scripts/cnn_summary.py"


rule predict_folder:
    input:
        model="results/cnn/{variant}/model.keras",
        metadata="results/cnn/{variant}/model.json",
        folder=predict_folder_input,
    output:
        predictions="results/predict/{variant}/predictions.csv",
        failures="results/predict/{variant}/predictions.failures.csv",
    log:
        "logs/cnn/predict_folder/{variant}.log",
    conda:
        env("dl")
    threads: config["threads"]["cnn"]
    resources:
        mem_mb=cnn_mem_mb,
        runtime="1h",
    params:
        folder=config.get("predict_folder", ""),
        batch_size=config["cnn"]["batch_size"],
    script:
        "../../scripts/predict_folder.py"


TARGETS["cnn"] = cnn_targets()
