"""Test-split metrics against values computed by hand, figures and the summary table."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from galmorph.cnn.evaluate import (
    SCALAR_METRICS,
    compute_metrics,
    plot_confusion,
    plot_history,
    plot_misclassified,
    plot_roc,
)
from galmorph.cnn.summary import plot_summary, summarize
from galmorph.errors import InputDataError

NAMES = ("A", "B", "C", "D")  # D: absent from the test set and never predicted
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
PROBA = np.array(
    [
        [0.7, 0.2, 0.1, 0.0],  # A -> A
        [0.4, 0.5, 0.1, 0.0],  # A -> B
        [0.6, 0.3, 0.1, 0.0],  # A -> A
        [0.2, 0.7, 0.1, 0.0],  # B -> B
        [0.1, 0.3, 0.6, 0.0],  # B -> C
        [0.3, 0.1, 0.6, 0.0],  # C -> C
    ]
)


@pytest.fixture(scope="module")
def metrics():
    return compute_metrics(Y_TRUE, PROBA, NAMES)


def test_accuracy_and_loss(metrics):
    assert metrics["n"] == 6
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    by_hand = -(math.log(0.7) + math.log(0.4) + math.log(0.6) * 2 + math.log(0.7) + math.log(0.3))
    assert metrics["loss"] == pytest.approx(by_hand / 6)


def test_per_class_precision_recall_f1_support(metrics):
    per_class = metrics["per_class"]
    # A: predicted {0, 2}, both right; 2 of 3 found
    assert per_class["A"]["precision"] == pytest.approx(1.0)
    assert per_class["A"]["recall"] == pytest.approx(2 / 3)
    assert per_class["A"]["f1"] == pytest.approx(0.8)
    # B: predicted {1, 3}, one right; true {3, 4}, one found
    assert per_class["B"]["precision"] == pytest.approx(0.5)
    assert per_class["B"]["recall"] == pytest.approx(0.5)
    assert per_class["B"]["f1"] == pytest.approx(0.5)
    # C: predicted {4, 5}, one right; the only C found
    assert per_class["C"]["precision"] == pytest.approx(0.5)
    assert per_class["C"]["recall"] == pytest.approx(1.0)
    assert per_class["C"]["f1"] == pytest.approx(2 / 3)
    assert [per_class[name]["support"] for name in NAMES] == [3, 2, 1, 0]
    assert per_class["D"] == {"precision": 0, "recall": 0, "f1": 0, "support": 0, "roc_auc": None}


def test_averages(metrics):
    # macro over the classes that occur (A, B, C), weighted by support 3, 2, 1
    assert metrics["precision_macro"] == pytest.approx(2 / 3)
    assert metrics["recall_macro"] == pytest.approx(13 / 18)
    assert metrics["f1_macro"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert metrics["precision_weighted"] == pytest.approx(0.75)
    assert metrics["recall_weighted"] == pytest.approx(4 / 6)
    assert metrics["f1_weighted"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)


def test_roc_auc(metrics):
    per_class = metrics["per_class"]
    # A: every positive scores above every negative
    assert per_class["A"]["roc_auc"] == pytest.approx(1.0)
    # B: positives .7 (beats 4) and .3 (beats .2 and .1, ties .3, loses to .5): 6.5 / 8
    assert per_class["B"]["roc_auc"] == pytest.approx(6.5 / 8)
    # C: positive .6 beats four .1 and ties one .6: 4.5 / 5
    assert per_class["C"]["roc_auc"] == pytest.approx(0.9)
    assert metrics["roc_auc_macro"] == pytest.approx((1 + 6.5 / 8 + 0.9) / 3)
    # micro: 6 positives x 18 negatives of the flattened one-vs-rest matrix, 102 pairs won
    assert metrics["roc_auc_micro"] == pytest.approx(102 / 108)


def test_confusion_matrix_and_json(metrics):
    assert metrics["confusion_matrix"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert json.loads(json.dumps(metrics)) == metrics  # plain JSON, no NaN
    assert set(SCALAR_METRICS) <= set(metrics)


def test_probability_zero_on_the_true_class_is_clipped_like_keras():
    metrics = compute_metrics([0, 1], np.array([[0.0, 1.0], [0.0, 1.0]]), ("a", "b"))
    assert metrics["loss"] == pytest.approx(-math.log(1.0e-7) / 2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(InputDataError, match="do not match"):
        compute_metrics([0, 1, 2], PROBA, NAMES)


def test_figures_are_written(tmp_path, metrics):
    plot_confusion(metrics["confusion_matrix"], NAMES, tmp_path / "confusion.png")
    plot_roc(Y_TRUE, PROBA, NAMES, tmp_path / "roc.png")
    image = np.random.default_rng(0).random((16, 16, 3))
    plot_misclassified([(image, 0, 1, 0.5)] * 7, NAMES, tmp_path / "wrong.png")
    plot_misclassified([], NAMES, tmp_path / "none.png")
    history = pd.DataFrame(
        {"epoch": [1, 2], "loss": [1.0, 0.8], "val_loss": [1.1, 0.9], "accuracy": [0.3, 0.4]}
    )
    plot_history(history, tmp_path / "history.png")
    for name in ("confusion", "roc", "wrong", "none", "history"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_summary_joins_variants_and_clustering(tmp_path, metrics):
    paths = {}
    for variant, accuracy in (("unbalanced", 0.4), ("balanced", 0.5)):
        paths[variant] = tmp_path / f"{variant}.json"
        paths[variant].write_text(json.dumps(metrics | {"accuracy": accuracy}))
    clustering = tmp_path / "clustering.csv"
    clustering.write_text("method,split,ari,purity\nkmeans,train,0.4,0.6\nkmeans,test,0.1,0.3\n")
    table = summarize(paths, clustering)
    assert table["name"].tolist() == ["unbalanced", "balanced", "kmeans"]
    assert table["stage"].tolist() == ["cnn", "cnn", "clustering"]
    assert table["accuracy"].tolist()[:2] == [0.4, 0.5]
    assert table.loc[2, "purity"] == 0.3
    assert summarize(paths, tmp_path / "absent.csv")["name"].tolist() == ["unbalanced", "balanced"]
    plot_summary(table, tmp_path / "summary.png")
    assert (tmp_path / "summary.png").stat().st_size > 1000
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputDataError, match="bad.json: missing metric"):
        summarize({"x": tmp_path / "bad.json"})
