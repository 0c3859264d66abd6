"""Each clustering method on a tiny reduced set: fit on train only, report, summary."""

import json

import numpy as np
import pandas as pd
import pytest
from shardfiles import CLASS_NAMES, blob_images, write_shard

from galmorph.clustering import METHODS, make_clusterer, run_clustering
from galmorph.clustering.embedding import read_map, training_map, write_map
from galmorph.clustering.report import (
    N_UNUSUAL,
    REPORT_FILES,
    cluster_report,
    majority_table,
    write_summary,
)
from galmorph.errors import InputDataError
from galmorph.reduction.pipeline import fit_reduction
from galmorph.reduction.sharing import load_pipeline

CROP = 8

#: tiny settings of every method (the study's defaults are too large for 60 points)
PARAMS = {
    "kmeans": {"n_clusters": 3, "algorithm": "minibatch", "batch_size": 20, "max_iter": 50,
               "n_init": 2},
    "hierarchical": {"n_clusters": 3, "method": "complete", "metric": "correlation",
                     "max_fit_samples": 40},
    "hdbscan": {"min_cluster_size": 4, "min_samples": 0, "cluster_selection_epsilon": 0.05,
                "cluster_selection_method": "leaf", "metric": "cosine", "n_dimensions": 0},
    "som": {"rows": 2, "cols": 2, "sigma": 1.0, "learning_rate": 0.5,
            "neighborhood_function": "triangle", "activation_distance": "cosine",
            "iterations": 300},
    "gmm": {"n_components": 3, "covariance_type": "full", "tol": 1.0e-4, "max_iter": 200,
            "init_params": "k-means++", "reg_covar": 1.0e-6},
}  # fmt: skip


def blobs(n, seed, shift=0.0):
    """Three well separated classes in 5 dimensions, labelled 0, 1, 2."""
    rng = np.random.default_rng(seed)
    centres = np.array([[6, 0, 0, 0, 0], [0, 6, 0, 0, 0], [0, 0, 6, 0, 0]], float)
    classes = np.arange(n) % 3
    return centres[classes] + rng.normal(0, 0.6, (n, 5)) + shift, classes


def reduced_split(features, classes, first_id):
    n = len(features)
    return {
        "asset_id": np.arange(first_id, first_id + n),
        "dr7objid": np.arange(n) + 10**15,
        "class": classes.astype(np.int16),
        "class_names": CLASS_NAMES,
        "features": features,
        "crop": CROP,
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Reduced train/test sets, their image shards, a fitted reduction and the 2-D map."""
    folder = tmp_path_factory.mktemp("tiny")
    train_x, train_y = blobs(60, seed=1)
    test_x, test_y = blobs(30, seed=2)
    shards = {
        "train": [write_shard(folder / "train.h5", blob_images(60, 16, 1), 1000, train_y)],
        "test": [write_shard(folder / "test.h5", blob_images(30, 16, 2), 2000, test_y)],
    }
    reducer, _ = fit_reduction(shards["train"], CROP, 5, 20, preprocess={"size": 8})
    train = reduced_split(train_x, train_y, 1000)
    map_path = folder / "map.csv"
    write_map(training_map(train, seed=31, max_points=40), map_path)
    return {
        "train": train,
        "test": reduced_split(test_x, test_y, 2000),
        "reducer": reducer,
        "shards": shards,
        "map": read_map(map_path),
    }


def report_outputs(folder):
    outputs = {name: folder / f"{name}.csv" for name in REPORT_FILES}
    outputs["metrics"] = folder / "metrics.json"
    for name in ("class_histogram", "cluster_sizes", "centroids", "method_figure", "map",
                 "unusual"):  # fmt: skip
        outputs[name] = folder / f"{name}.png"
    return outputs


@pytest.mark.parametrize("method", sorted(METHODS))
def test_report_of_each_method(method, tiny, tmp_path):
    outputs = report_outputs(tmp_path)
    metrics = cluster_report(
        method, PARAMS[method], 31, tiny["train"], tiny["test"], tiny["reducer"], tiny["shards"],
        tiny["map"], outputs,
    )  # fmt: skip
    assert json.loads(outputs["metrics"].read_text()) == metrics
    for split, n in (("train", 60), ("test", 30)):
        scores = metrics[split]
        assert scores["n_samples"] == n
        for key in ("homogeneity", "completeness", "v_measure", "purity", "noise_fraction",
                    "normalized_mutual_info"):  # fmt: skip
            assert 0.0 <= scores[key] <= 1.0, (split, key)
        assert -1.0 <= scores["adjusted_rand_index"] <= 1.0
        # three well separated classes: every method finds them on both splits
        assert scores["adjusted_rand_index"] > 0.6, (method, split, scores)
        assert scores["silhouette"] is None or -1 <= scores["silhouette"] <= 1
        labels = pd.read_csv(outputs[f"labels_{split}"])
        assert list(labels.columns) == ["asset_id", "dr7objid", "class", "cluster"]
        assert labels["asset_id"].tolist() == tiny[split]["asset_id"].tolist()
        assert set(labels["class"]) <= set(CLASS_NAMES)
        # well separated classes: "cluster -> its majority class" is nearly always right
        assert scores["majority_accuracy"] > 0.8, (method, split, scores)
    assert metrics["majority_baseline"]["test_accuracy"] == pytest.approx(1 / 3)
    for name in ("class_histogram", "cluster_sizes", "centroids", "method_figure", "map",
                 "unusual"):  # fmt: skip
        assert outputs[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    majority = pd.read_csv(outputs["majority"])
    assert list(majority.columns) == [
        "cluster", "n_train", "majority_class", "majority_share", "n_test", "test_accuracy"
    ]  # fmt: skip
    assert majority["n_train"].sum() == 60 and majority["n_test"].sum() == 30
    unusual = pd.read_csv(outputs["unusual_table"])
    assert len(unusual) == min(N_UNUSUAL, 30)
    assert unusual["outlier_score"].is_monotonic_decreasing
    assert set(unusual["asset_id"]) <= set(tiny["test"]["asset_id"])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_unusual_galaxies_are_the_ones_far_from_every_cluster(method, tiny):
    """Three points far from the three blobs rank above every ordinary test point."""
    clusterer = make_clusterer(method, PARAMS[method], seed=31)
    clusterer.fit(tiny["train"]["features"])
    strange = np.array([[20.0, 20, 20, 20, 20], [-15, 8, -15, 8, 0], [0, 0, 0, 0, 30]])
    scores = clusterer.outlier_score(np.vstack([tiny["test"]["features"], strange]))
    assert np.all(np.argsort(-scores)[:3] >= 30), (method, scores[-3:], np.sort(scores)[-6:])


def test_majority_table_maps_each_cluster_to_its_training_majority():
    train_labels = np.array([0, 0, 0, 1, 1, -1])
    train_classes = np.array([2, 2, 1, 0, 0, 1])
    test_labels = np.array([0, 0, 1, -1, 5])
    test_classes = np.array([2, 1, 0, 1, 0])
    table = majority_table(train_labels, train_classes, test_labels, test_classes, CLASS_NAMES)
    rows = table.set_index("cluster").to_dict("index")
    assert rows[0]["majority_class"] == "SB" and rows[0]["majority_share"] == pytest.approx(
        2 / 3, abs=1e-4
    )
    assert rows[0]["test_accuracy"] == 0.5 and rows[1]["test_accuracy"] == 1.0
    assert rows["noise"]["majority_class"] == "Ei" and rows["noise"]["test_accuracy"] == 1.0


@pytest.mark.parametrize("method", sorted(METHODS))
def test_test_split_never_reaches_the_fit(method, tiny):
    """Fitting with two different test sets gives the same model and train labels.

    A method that refit (or partially fit) on the test split would change its
    training labels or its assignment of a fixed probe set.
    """
    probe, _ = blobs(15, seed=9)
    runs = []
    for test_features in (tiny["test"]["features"], blobs(30, seed=3, shift=4.0)[0][::-1]):
        clusterer = make_clusterer(method, PARAMS[method], seed=31)
        result = run_clustering(clusterer, tiny["train"]["features"], test_features)
        runs.append((result.train_labels, clusterer.predict(probe)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_hierarchical_bounded_mode_fits_a_subsample(tiny):
    params = dict(PARAMS["hierarchical"], max_fit_samples=20)
    clusterer = make_clusterer("hierarchical", params, seed=31)
    result = run_clustering(clusterer, tiny["train"]["features"], tiny["test"]["features"])
    assert len(clusterer.fit_index_) == 20
    assert len(clusterer.linkage_) == 19  # the tree has the subsample's points only
    assert result.train_labels.shape == (60,)


def test_hierarchical_labels_train_and_test_by_the_same_rule(tiny):
    """Every training point, in the tree or not, gets the label a test point at the same
    place would: its nearest centroid. The scores of the two splits are comparable."""
    params = dict(PARAMS["hierarchical"], max_fit_samples=20)
    clusterer = make_clusterer("hierarchical", params, seed=31)
    result = run_clustering(clusterer, tiny["train"]["features"], tiny["test"]["features"])
    np.testing.assert_array_equal(result.train_labels, clusterer.predict(tiny["train"]["features"]))
    assert len(clusterer.tree_labels_) == 20


def test_hdbscan_cosine_epsilon_is_converted():
    clusterer = make_clusterer("hdbscan", PARAMS["hdbscan"] | {"cluster_selection_epsilon": 0.3},
                               seed=0)  # fmt: skip
    assert clusterer.euclidean_epsilon_ == pytest.approx(np.sqrt(0.6))
    # for unit vectors the converted distance is exactly the cosine one
    a, b = np.array([1.0, 0.0]), np.array([0.6, 0.8])
    assert np.linalg.norm(a - b) == pytest.approx(np.sqrt(2 * (1 - a @ b)))


def test_unknown_key_or_method_is_refused():
    with pytest.raises(ValueError, match="n_cluster"):
        make_clusterer("kmeans", {"n_cluster": 3}, seed=0)
    with pytest.raises(ValueError, match="unknown clustering method"):
        make_clusterer("dbscan", {}, seed=0)
    with pytest.raises(ValueError, match="euclidean"):
        make_clusterer("hierarchical", PARAMS["hierarchical"] | {"method": "ward"}, 0).fit(
            np.random.default_rng(0).normal(size=(10, 3))
        )


def test_summary_compares_methods(tmp_path):
    paths = []
    for method, ari in (("kmeans", 0.5), ("gmm", 0.25)):
        scores = {"adjusted_rand_index": ari, "normalized_mutual_info": 0.3, "v_measure": 0.3,
                  "purity": 0.6, "majority_accuracy": 0.7, "silhouette": None,
                  "noise_fraction": 0.0}  # fmt: skip
        path = tmp_path / f"{method}.json"
        path.write_text(json.dumps({"method": method, "train": scores, "test": scores}))
        paths.append(path)
    table = write_summary(paths, tmp_path / "summary.csv", tmp_path / "summary.png")
    assert table[["method", "split"]].values.tolist() == [
        ["kmeans", "train"], ["kmeans", "test"], ["gmm", "train"], ["gmm", "test"]
    ]  # fmt: skip
    read = pd.read_csv(tmp_path / "summary.csv")
    assert read.loc[read["method"] == "gmm", "adjusted_rand_index"].tolist() == [0.25, 0.25]
    assert (tmp_path / "summary.png").stat().st_size > 0
    bad = tmp_path / "broken.json"
    bad.write_text("{")
    with pytest.raises(InputDataError, match="broken.json"):
        write_summary([bad], tmp_path / "s.csv", tmp_path / "s.png")


# -- the rules, on the tiny workflow run once per session (tests/conftest.py) ---------------


def planned_jobs(result) -> dict[str, int]:
    """Job counts of a dry run's summary table."""
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job ")) + 2
    counts = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.slow
def test_rules_write_every_report(finished_run):
    results = finished_run.workdir / "results"
    for method in sorted(METHODS):
        metrics = json.loads((results / "clustering" / method / "metrics.json").read_text())
        for split in ("train", "test"):
            assert 0 <= metrics[split]["purity"] <= 1
            assert -1 <= metrics[split]["adjusted_rand_index"] <= 1
            assert 0 <= metrics[split]["majority_accuracy"] <= 1
        for name in ("class_histogram", "cluster_sizes", "centroids", method, "map", "unusual"):
            assert (results / "clustering" / method / f"{name}.png").stat().st_size > 0
        for name in ("majority", "unusual"):
            assert len(pd.read_csv(results / "clustering" / method / f"{name}.csv")) > 0
    summary = pd.read_csv(results / "clustering" / "summary.csv")
    assert sorted(set(summary["method"])) == sorted(METHODS)
    reducer = pickle_load(results / "reduction" / "reducer.pkl")
    assert list(reducer.named_steps)[0] == "align"  # the preprocessing travels with the model
    # reducer + scaler as one pipeline: the test split's features from its crops
    # the shareable copy, read back without running code
    pipeline = load_pipeline(results / "reduction" / "pipeline.skops")
    assert list(pipeline.named_steps)[-1] == "scale"
    from galmorph.images import hdf5

    test = pickle_load(results / "reduction" / "test.pkl")
    shards = sorted((results / "images" / "hdf5" / "test").glob("shard_*.h5"))
    batch = hdf5.read_images(shards, [0, 1, 2], crop=int(test["crop"]))
    np.testing.assert_allclose(pipeline.transform(batch.images), test["features"][:3], atol=1e-6)


def pickle_load(path):
    import pickle

    with open(path, "rb") as handle:
        return pickle.load(handle)


@pytest.mark.slow
def test_editing_one_method_reruns_only_it_and_the_summary(finished_run, tmp_path):
    change = tmp_path / "change.yaml"
    change.write_text("clustering:\n  gmm:\n    n_components: 3\n")
    result = finished_run.snakemake(
        "-n", "--configfile", finished_run.configfile, str(change), "--until", "clustering_summary"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result) == {"cluster": 1, "clustering_summary": 1}
    assert "wildcards: method=gmm" in result.stdout
    assert "wildcards: method=kmeans" not in result.stdout


@pytest.mark.slow
def test_test_shards_never_reach_the_reduction_fit(finished_run):
    """The jobs that fit (reduction, clustering) take no test-split file as input."""
    result = finished_run.snakemake(
        "-n", "--forcerun", "fit_reduction", "--until", "clustering_summary"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    inputs = {}
    rule = None
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("input:") and rule:
            inputs.setdefault(rule, []).append(line.split(":", 1)[1])
    assert inputs["fit_reduction"], result.stdout[-3000:]
    for text in inputs["fit_reduction"]:
        assert "hdf5/train/shard_" in text
        assert "/test/" not in text
    # the clustering jobs read the test features, to assign them with the fitted model
    assert all("results/reduction/test.pkl" in text for text in inputs["cluster"])


def test_map_covers_the_training_split_or_a_seeded_subsample(tiny, tmp_path):
    full = training_map(tiny["train"], seed=31, max_points=100)
    assert full["row"].tolist() == list(range(60))
    assert full["asset_id"].tolist() == tiny["train"]["asset_id"].tolist()
    part = training_map(tiny["train"], seed=31, max_points=25)
    again = training_map(tiny["train"], seed=31, max_points=25)
    assert len(part) == 25 and part["row"].is_monotonic_increasing
    pd.testing.assert_frame_equal(part, again)
    # t-SNE keeps the three blobs apart: neighbours on the map share a class
    points = full[["x", "y"]].to_numpy()
    distances = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    nearest = distances.argmin(axis=1)
    classes = tiny["train"]["class"]
    assert np.mean(classes[nearest] == classes) > 0.9
    bad = tmp_path / "map.csv"
    bad.write_text("row,x\n0,1\n")
    with pytest.raises(InputDataError, match="lacks columns"):
        read_map(bad)


def test_hdbscan_on_leading_components_uses_the_training_projection(tiny):
    params = dict(PARAMS["hdbscan"], n_dimensions=2, metric="euclidean")
    clusterer = make_clusterer("hdbscan", params, seed=31)
    result = run_clustering(clusterer, tiny["train"]["features"], tiny["test"]["features"])
    assert clusterer.projection_.n_components_ == 2
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(tiny["test"]["class"], result.test_labels) > 0.6


def test_the_schema_lists_the_methods_and_keys_the_code_takes():
    """One fact, two readers: the schema's method names and each method's keys are the
    code's (METHODS and the estimators' parameters), so neither can drift."""
    import yaml
    from conftest import REPO

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    clustering = schema["properties"]["clustering"]["properties"]
    assert sorted(clustering["methods"]["items"]["enum"]) == sorted(METHODS)
    for method, cls in METHODS.items():
        assert sorted(clustering[method]["properties"]) == sorted(cls.config_keys()), method
        assert sorted(clustering[method]["required"]) == sorted(cls.config_keys()), method
