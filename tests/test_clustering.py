"""Each clustering method on a tiny reduced set: fit on train only, report, summary."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from galmorph.clustering import METHODS, make_clusterer, run_clustering
from galmorph.clustering.report import REPORT_FILES, cluster_report, write_summary
from galmorph.errors import InputDataError
from galmorph.reduction import FastIncrementalPCA

CROP = 8
CLASS_NAMES = ["Er", "Ei", "SB"]

#: tiny settings of every method (the study's defaults are too large for 60 points)
PARAMS = {
    "kmeans": {"n_clusters": 3, "algorithm": "minibatch", "batch_size": 20, "max_iter": 50,
               "n_init": 2},
    "hierarchical": {"n_clusters": 3, "method": "complete", "metric": "correlation",
                     "max_fit_samples": 40},
    "hdbscan": {"min_cluster_size": 4, "min_samples": 0, "cluster_selection_epsilon": 0.05,
                "cluster_selection_method": "leaf", "metric": "cosine"},
    "som": {"rows": 2, "cols": 2, "sigma": 1.0, "learning_rate": 0.5,
            "neighborhood_function": "triangle", "activation_distance": "cosine",
            "iterations": 300},
    "gmm": {"n_components": 3, "covariance_type": "full", "tol": 1.0e-4, "max_iter": 200,
            "init_params": "k-means++"},
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
def tiny():
    """Reduced train/test sets plus a real PCA and scaler to map centroids back to pixels."""
    rng = np.random.default_rng(0)
    train_x, train_y = blobs(60, seed=1)
    test_x, test_y = blobs(30, seed=2)
    pixels = rng.uniform(0, 1, (40, CROP * CROP * 3)).astype(np.float32)
    reducer = FastIncrementalPCA(5, batch_size=20).fit(pixels).to_sklearn()
    scaler = StandardScaler().fit(reducer.transform(pixels))
    return {
        "train": reduced_split(train_x, train_y, 1000),
        "test": reduced_split(test_x, test_y, 2000),
        "reducer": reducer,
        "scaler": scaler,
    }


@pytest.mark.parametrize("method", sorted(METHODS))
def test_report_of_each_method(method, tiny, tmp_path):
    outputs = {name: tmp_path / f"{name}.csv" for name in ("labels_train", "labels_test")}
    outputs["metrics"] = tmp_path / "metrics.json"
    for name in ("class_histogram", "cluster_sizes", "centroids", "method_figure"):
        outputs[name] = tmp_path / f"{name}.png"
    assert set(outputs) == set(REPORT_FILES)
    metrics = cluster_report(
        method, PARAMS[method], 31, tiny["train"], tiny["test"], tiny["reducer"], tiny["scaler"],
        outputs,
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
    for name in ("class_histogram", "cluster_sizes", "centroids", "method_figure"):
        assert outputs[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


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
    # points outside the subsample went to their nearest centroid
    rest = np.setdiff1d(np.arange(60), clusterer.fit_index_)
    np.testing.assert_array_equal(
        result.train_labels[rest], clusterer.predict(tiny["train"]["features"][rest])
    )


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
                  "purity": 0.6, "silhouette": None, "noise_fraction": 0.0}  # fmt: skip
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
        for name in ("class_histogram", "cluster_sizes", "centroids", method):
            assert (results / "clustering" / method / f"{name}.png").stat().st_size > 0
    summary = pd.read_csv(results / "clustering" / "summary.csv")
    assert sorted(set(summary["method"])) == sorted(METHODS)
    reducer = pickle_load(results / "reduction" / "reducer.pkl")
    assert type(reducer).__name__ == "IncrementalPCA"  # plain scikit-learn


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
