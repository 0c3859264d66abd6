"""Metrics on the untouched test split, and the figures of a trained model.

Metrics are computed with scikit-learn from predicted probabilities and are
robust to classes missing from the test set: their per-class AUC is
undefined (``null``) and left out of the macro AUC; precision/recall/F1
averages run over the classes that occur in the true or predicted labels
(scikit-learn's convention).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from tqdm import tqdm  # noqa: E402

from galmorph.errors import InputDataError  # noqa: E402

#: Keras clips probabilities at this value in its cross-entropy; so does :func:`log_loss`.
EPSILON = 1.0e-7

#: The scalar metrics of :func:`compute_metrics`, in report order (k-fold and summary tables).
SCALAR_METRICS = (
    "accuracy",
    "loss",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc_micro",
    "roc_auc_macro",
)


def log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy, as Keras computes it."""
    picked = proba[np.arange(len(y_true)), y_true]
    return float(-np.mean(np.log(np.clip(picked, EPSILON, 1.0))))


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def compute_metrics(y_true: Sequence[int], proba: np.ndarray, class_names: Sequence[str]) -> dict:
    """Every metric of a classifier's predicted probabilities.

    Parameters
    ----------
    y_true : sequence of int
        True class indices into ``class_names``.
    proba : ndarray, shape (n, n_classes)
        Predicted probabilities; the prediction is the arg max.
    class_names : sequence of str

    Returns
    -------
    dict
        The :data:`SCALAR_METRICS`, ``n`` and ``per_class`` (precision, recall,
        F1, support and ROC AUC of every class, AUC ``None`` where undefined),
        ``confusion_matrix`` (rows true, columns predicted) and ``class_names``.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = len(class_names)
    if proba.ndim != 2 or proba.shape != (y_true.size, n_classes):
        raise InputDataError(
            f"probabilities of shape {proba.shape} do not match {y_true.size} labels "
            f"and {n_classes} classes"
        )
    if y_true.size == 0:
        raise InputDataError("no test image to evaluate")
    y_pred = proba.argmax(axis=1)
    everything = list(range(n_classes))
    metrics: dict = {"n": int(y_true.size), "accuracy": float(np.mean(y_pred == y_true))}
    metrics["loss"] = log_loss(y_true, proba)
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        metrics[f"precision_{average}"] = float(precision)
        metrics[f"recall_{average}"] = float(recall)
        metrics[f"f1_{average}"] = float(f1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=everything, average=None, zero_division=0
    )
    onehot = np.eye(n_classes, dtype=np.int64)[y_true]
    aucs = []
    for label in everything:
        positives = onehot[:, label].sum()
        defined = 0 < positives < y_true.size
        aucs.append(roc_auc_score(onehot[:, label], proba[:, label]) if defined else math.nan)
    metrics["roc_auc_micro"] = float(roc_auc_score(onehot.ravel(), proba.ravel()))
    defined_aucs = [auc for auc in aucs if not math.isnan(auc)]
    metrics["roc_auc_macro"] = float(np.mean(defined_aucs)) if defined_aucs else None
    metrics["per_class"] = {
        name: {
            "precision": float(precision[label]),
            "recall": float(recall[label]),
            "f1": float(f1[label]),
            "support": int(support[label]),
            "roc_auc": _none_if_nan(aucs[label]),
        }
        for label, name in enumerate(class_names)
    }
    metrics["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=everything).tolist()
    metrics["class_names"] = list(class_names)
    return metrics


def predict_batches(model, dataset, keep_misclassified: int = 0):
    """Run ``model`` over a dataset of ``(images, labels)`` batches.

    Returns
    -------
    y_true : ndarray of int
    proba : ndarray, shape (n, n_classes)
    misclassified : list of (image, true, predicted, probability)
        The first ``keep_misclassified`` wrong predictions, with their input image.
    """
    truths, probas, misclassified = [], [], []
    steps = int(dataset.cardinality()) if int(dataset.cardinality()) > 0 else None
    for images, labels in tqdm(dataset, total=steps, desc="predict", unit="batch"):
        proba = np.asarray(model(images, training=False))
        labels = np.asarray(labels)
        truths.append(labels)
        probas.append(proba)
        if len(misclassified) < keep_misclassified:
            predicted = proba.argmax(axis=1)
            for i in np.flatnonzero(predicted != labels)[: keep_misclassified - len(misclassified)]:
                image = np.asarray(images[i])
                misclassified.append(
                    (image, int(labels[i]), int(predicted[i]), float(proba[i].max()))
                )
    if not truths:
        raise InputDataError("the dataset to predict is empty")
    return np.concatenate(truths), np.concatenate(probas), misclassified


def metrics_table(metrics: dict) -> pd.DataFrame:
    """The per-class part of :func:`compute_metrics` as a table."""
    table = pd.DataFrame.from_dict(metrics["per_class"], orient="index")
    table.index.name = "class"
    return table.reset_index()


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str | Path) -> None:
    """Counts and row-normalised (recall) confusion matrices side by side."""
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    n = len(class_names)
    fig, axes = plt.subplots(1, 2, figsize=(2 * (3 + 0.45 * n), 3 + 0.45 * n))
    for ax, values, title, fmt in (
        (axes[0], matrix, "counts", "{:.0f}"),
        (axes[1], normalised, "normalised by true class", "{:.2f}"),
    ):
        ax.imshow(values, cmap="Blues", vmin=0)
        ax.set(
            xticks=range(n),
            yticks=range(n),
            xticklabels=class_names,
            yticklabels=class_names,
            xlabel="predicted",
            ylabel="true",
            title=title,
        )
        ax.tick_params(axis="x", rotation=90)
        top = values.max() if values.size else 0
        for (i, j), value in np.ndenumerate(values):
            if value:
                colour = "white" if value > top / 2 else "black"
                ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7, color=colour)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_roc(
    y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str], path: str | Path
) -> None:
    """One-vs-rest ROC curve of every class present in the test set, with its AUC."""
    y_true = np.asarray(y_true)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    colours = plt.get_cmap("tab20")
    for label, name in enumerate(class_names):
        positives = y_true == label
        if not 0 < positives.sum() < y_true.size:
            continue
        fpr, tpr, _ = roc_curve(positives, proba[:, label])
        auc = roc_auc_score(positives, proba[:, label])
        ax.plot(fpr, tpr, color=colours(label % 20), label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, one vs rest")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_misclassified(
    examples: list, class_names: Sequence[str], path: str | Path, columns: int = 6
) -> None:
    """A grid of misclassified test images titled ``true -> predicted (p)``."""
    rows = max(1, math.ceil(len(examples) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.8 * columns, 2.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (image, true, predicted, probability) in zip(axes.ravel(), examples, strict=False):
        ax.imshow(np.clip(image, 0, 1))
        ax.set_title(
            f"{class_names[true]} -> {class_names[predicted]} ({probability:.2f})", fontsize=7
        )
    if not examples:
        axes[0, 0].text(0.5, 0.5, "no misclassified image", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_history(history: pd.DataFrame, path: str | Path) -> None:
    """Loss and accuracy per epoch, training and validation."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            column = prefix + metric
            if column in history:
                label = "validation" if prefix else "training"
                ax.plot(history["epoch"], history[column], style, marker="o", label=label)
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_on_shards(
    model,
    metadata: dict,
    test_paths: Sequence[str | Path],
    outputs: dict,
    batch_size: int = 64,
    n_misclassified: int = 24,
) -> dict:
    """Evaluate ``model`` on the test shards and write every report file.

    Parameters
    ----------
    model : keras.Model
    metadata : dict
        The model's ``model.json`` (class names, crop, input size).
    test_paths : sequence of path
        The test split's shards: never seen by training, balancing or model selection.
    outputs : dict
        Paths of ``metrics`` (JSON), ``per_class`` (CSV), ``predictions`` (CSV, one row
        per test image) and the figures ``confusion``, ``roc`` and ``misclassified``.

    Returns
    -------
    dict
        The metrics of :func:`compute_metrics`.
    """
    import json

    from galmorph.cnn.data import make_dataset
    from galmorph.cnn.shards import ShardIndex
    from galmorph.io import atomic_path

    index = ShardIndex.from_paths(test_paths)
    class_names = metadata["class_names"]
    if list(index.class_names) != list(class_names):
        raise InputDataError(
            f"{index.paths[0]}: test classes {list(index.class_names)} differ from the model's "
            f"{class_names}; train and evaluate on shards of the same run"
        )
    dataset = make_dataset(
        index, crop=metadata["crop"], input_size=metadata["input_size"], batch_size=batch_size
    )
    y_true, proba, wrong = predict_batches(model, dataset, keep_misclassified=n_misclassified)
    metrics = compute_metrics(y_true, proba, class_names)
    metrics["variant"] = metadata.get("variant")
    predicted = proba.argmax(axis=1)
    table = pd.DataFrame(
        {
            "asset_id": index.asset_id,
            "class": np.asarray(class_names)[y_true],
            "predicted_class": np.asarray(class_names)[predicted],
            "probability": proba.max(axis=1),
        }
    )
    for label, name in enumerate(class_names):
        table[f"p_{name}"] = proba[:, label]
    writers = {
        "metrics": lambda path: Path(path).write_text(json.dumps(metrics, indent=2) + "\n"),
        "per_class": lambda path: metrics_table(metrics).to_csv(path, index=False),
        "predictions": lambda path: table.to_csv(path, index=False),
        "confusion": lambda path: plot_confusion(metrics["confusion_matrix"], class_names, path),
        "roc": lambda path: plot_roc(y_true, proba, class_names, path),
        "misclassified": lambda path: plot_misclassified(wrong, class_names, path),
    }
    for name, write in writers.items():
        with atomic_path(outputs[name], suffix=Path(outputs[name]).suffix) as temporary:
            write(temporary)
    return metrics
