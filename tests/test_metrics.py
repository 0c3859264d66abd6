"""Clustering scores on labellings small enough to check by hand."""

import numpy as np
import pytest

from galmorph.metrics import clustering_scores, contingency, purity, silhouette


def test_contingency_counts_classes_per_cluster():
    ids, table = contingency([5, 5, 7, 7, 7], [0, 1, 1, 1, 2])
    assert ids.tolist() == [5, 7]
    assert table.tolist() == [[1, 1, 0], [0, 2, 1]]


def test_purity_by_hand():
    # cluster 0: classes a a b -> 2 right; cluster 1: b b c -> 2 right; 4 of 6
    assert purity([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 2]) == pytest.approx(4 / 6)


def test_purity_perfect_and_single_cluster():
    classes = [0, 1, 2, 2]
    assert purity([3, 1, 0, 0], classes) == 1.0
    assert purity([0, 0, 0, 0], classes) == pytest.approx(2 / 4)


def test_purity_counts_noise_as_misassigned():
    # noise holds two class-0 points: they do not count although they agree
    assert purity([-1, -1, 0, 0], [0, 0, 1, 1]) == pytest.approx(2 / 4)
    assert purity([-1, -1, 0, 0], [0, 0, 1, 1], noise=None) == 1.0


def test_purity_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        purity([], [])


def test_silhouette_ignores_noise_and_needs_two_clusters():
    features = np.array([[0.0], [0.1], [10.0], [10.1], [500.0]])
    value = silhouette(features, np.array([0, 0, 1, 1, -1]))
    # a(i) = 0.1, b(i) ~ 10: silhouette ~ 0.99; the far noise point would lower it
    assert 0.98 < value <= 1.0
    assert silhouette(features, np.array([0, 0, 0, 0, -1])) is None


def test_scores_of_a_perfect_clustering():
    classes = np.array([0, 0, 1, 1, 2, 2])
    features = np.array([[0.0], [0.1], [5.0], [5.1], [9.0], [9.1]])
    scores = clustering_scores(np.array([2, 2, 0, 0, 1, 1]), classes, features)
    for key in ("adjusted_rand_index", "normalized_mutual_info", "homogeneity", "completeness",
                "v_measure", "purity"):  # fmt: skip
        assert scores[key] == pytest.approx(1.0)
    assert scores["noise_fraction"] == 0.0
    assert scores["n_clusters"] == 3
    assert scores["silhouette"] > 0.9


def test_scores_with_noise():
    scores = clustering_scores(
        np.array([-1, 0, 0, 1]), np.array([0, 0, 0, 1]), np.arange(8.0).reshape(4, 2)
    )
    assert scores["noise_fraction"] == 0.25
    assert scores["n_clusters"] == 2
    assert scores["purity"] == pytest.approx(3 / 4)
