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
    balanced_accuracy_score,
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
    "balanced_accuracy",
    "top2_accuracy",
    "loss",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc_micro",
    "roc_auc_macro",
    "ece",
)

#: Bins of the reliability diagram and of the expected calibration error.
CALIBRATION_BINS = 10


def calibration_bins(y_true: np.ndarray, proba: np.ndarray, bins: int = CALIBRATION_BINS):
    """Per confidence bin: mean confidence, accuracy and count (the reliability diagram)."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, bins) / count
        accuracy = np.bincount(which, correct.astype(float), bins) / count
    return mean_confidence, accuracy, count


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Count-weighted mean gap between confidence and accuracy over the confidence bins."""
    confidence, accuracy, count = calibration_bins(y_true, proba)
    used = count > 0
    return float(np.sum(count[used] * np.abs(confidence[used] - accuracy[used])) / count.sum())


def chirality_accuracy(y_true: np.ndarray, proba: np.ndarray, pairs_idx) -> float | None:
    """Among galaxies whose true class has a mirror partner, how often its own class
    outscores the partner: clockwise told from anticlockwise on true spirals (a tie
    counts half, so a model blind to the winding scores 0.5)."""
    hits, total = 0.0, 0
    for a, b in pairs_idx:
        for own, other in ((a, b), (b, a)):
            rows = y_true == own
            hits += float(np.sum(proba[rows, own] > proba[rows, other]))
            hits += 0.5 * float(np.sum(proba[rows, own] == proba[rows, other]))
            total += int(rows.sum())
    return hits / total if total else None


def log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy, as Keras computes it."""
    picked = proba[np.arange(len(y_true)), y_true]
    return float(-np.mean(np.log(np.clip(picked, EPSILON, 1.0))))


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def compute_metrics(
    y_true: Sequence[int],
    proba: np.ndarray,
    class_names: Sequence[str],
    mirror_pairs: Sequence[Sequence[str]] = (),
) -> dict:
    """Every metric of a classifier's predicted probabilities.

    Parameters
    ----------
    y_true : sequence of int
        True class indices into ``class_names``.
    proba : ndarray, shape (n, n_classes)
        Predicted probabilities; the prediction is the arg max.
    class_names : sequence of str
    mirror_pairs : sequence of (str, str)
        Classes a mirror turns into each other; gives ``chirality_accuracy``.

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
    metrics["balanced_accuracy"] = float(balanced_accuracy_score(y_true, y_pred))
    top2 = np.argsort(-proba, axis=1)[:, :2]
    metrics["top2_accuracy"] = float(np.mean((top2 == y_true[:, None]).any(axis=1)))
    metrics["ece"] = expected_calibration_error(y_true, proba)
    names = list(class_names)
    metrics["chirality_accuracy"] = chirality_accuracy(
        y_true, proba, [(names.index(a), names.index(b)) for a, b in mirror_pairs]
    )
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


def plot_history(
    history: pd.DataFrame, path: str | Path, metrics: Sequence[str] = ("loss", "accuracy")
) -> None:
    """``metrics`` (loss and accuracy) per epoch, training and validation."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4))
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
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


def plot_calibration(y_true: np.ndarray, proba: np.ndarray, path: str | Path) -> None:
    """Reliability diagram: accuracy against confidence per bin, with the ECE and bin counts."""
    confidence, accuracy, count = calibration_bins(y_true, proba)
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    fig, (ax, bars) = plt.subplots(
        2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    used = count > 0
    ax.bar(centres[used], accuracy[used], width=1 / CALIBRATION_BINS, edgecolor="black",
           color="tab:blue", alpha=0.7, label="accuracy")  # fmt: skip
    ax.plot(confidence[used], accuracy[used], "o", color="tab:red", label="mean confidence")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    ece = expected_calibration_error(y_true, proba)
    ax.set(ylabel="accuracy", title=f"reliability (ECE {ece:.3f})", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8, loc="upper left")
    bars.bar(centres, count, width=1 / CALIBRATION_BINS, color="grey", edgecolor="black")
    bars.set(xlabel="confidence (top probability)", ylabel="galaxies")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_per_class(metrics: dict, path: str | Path) -> None:
    """Precision, recall and F1 of every class, beside its number of test galaxies."""
    names = list(metrics["class_names"])
    table = metrics["per_class"]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * len(names)))
    for offset, (key, colour) in zip(
        (-0.27, 0.0, 0.27),
        (("precision", "tab:blue"), ("recall", "tab:orange"), ("f1", "tab:green")),
        strict=True,
    ):
        ax.barh(y + offset, [table[name][key] for name in names], height=0.26, color=colour,
                label=key)  # fmt: skip
    ax.set_yticks(y, [f"{name} (n={table[name]['support']})" for name in names])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="score on the test split",
           title=f"per class (balanced accuracy {metrics['balanced_accuracy']:.3f})")  # fmt: skip
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tta_views(rotations: int, mirror: bool) -> list[tuple[float, bool]]:
    """The fixed views of test-time augmentation: ``rotations`` turns, each also mirrored."""
    angles = [360.0 * k / max(1, rotations) for k in range(max(1, rotations))]
    return [(angle, flip) for flip in ((False, True) if mirror else (False,)) for angle in angles]


def model_measure_crops(metadata: dict) -> tuple[int, ...]:
    """The central crops a trained model's measures input is measured in; () if it has none."""
    from galmorph.cnn.measures import measure_crops

    return measure_crops(metadata.get("measure_crop") or 0, metadata.get("measure_scales", (1.0,)))


def shift_to_prior(proba: np.ndarray, metadata: dict, power: float) -> np.ndarray:
    """``proba`` times the training split's class frequencies to ``power``, summed to 1 per row.

    A model trained with class weights (or on a balanced set) learns as if the rare
    classes were common, which costs accuracy on the real mix; ``power`` moves its
    decisions part of the way back (``cnn.prior_shift``; 0 leaves them as trained).
    The frequencies are the training split's (``split_class_counts`` of
    ``model.json``), for the balanced variant too: the mix the survey really has.
    """
    if not power:
        return proba
    counts = metadata.get("split_class_counts")
    if counts is None:
        raise InputDataError(
            "the model's model.json has no split_class_counts (it was trained by an earlier "
            "release): retrain it, or set cnn.prior_shift to 0"
        )
    prior = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    shifted = np.asarray(proba, dtype=np.float64) * (prior / prior.sum()) ** float(power)
    return shifted / shifted.sum(axis=1, keepdims=True)


def predict_index(
    model,
    index,
    metadata: dict,
    batch_size: int = 64,
    views=((0.0, False),),
    prior_shift: float = 0.0,
    class_bias=None,
):
    """Probabilities of every row of ``index``, averaged over ``views`` (test-time augmentation).

    A mirrored view's probabilities are mapped back through the mirror pairs
    (a mirrored clockwise spiral is scored as anticlockwise, and counted for
    clockwise); the mean is then shifted towards the training prior
    (:func:`shift_to_prior`) and biased per class by ``class_bias`` (one log-offset
    per class, :func:`galmorph.cnn.decision.apply_class_bias`; ``None``: none).
    Returns ``(y_true, proba, features)``.
    """
    from galmorph.cnn.data import index_measures, make_dataset, mirror_map
    from galmorph.cnn.decision import apply_class_bias

    pairs = metadata.get("mirror_pairs") or ()
    mapping = mirror_map(metadata["class_names"], pairs)
    features = None
    measure_set = metadata.get("measures", "morphometry")
    crops = model_measure_crops(metadata)
    if crops:
        features = index_measures(index, crops, measure_set)
    total, y_true = None, None
    for angle, flip in views:
        dataset = make_dataset(
            index,
            crop=metadata["crop"],
            input_size=metadata["input_size"],
            batch_size=batch_size,
            features=features,
            measure_set=measure_set,
            view=(angle, flip),
        )
        y_true, proba, _ = predict_batches(model, dataset)
        if flip:
            proba = proba[:, mapping]
        total = proba if total is None else total + proba
    proba = shift_to_prior(total / len(views), metadata, prior_shift)
    if class_bias is not None:
        proba = apply_class_bias(proba, class_bias)
    return y_true, proba, features


def _model_inputs(index, metadata: dict, positions: np.ndarray, features) -> tuple:
    """Unaugmented model inputs of the rows at ``positions``: (images, features or None)."""
    from galmorph.cnn.data import make_dataset

    subset = index.subset(positions)
    dataset = make_dataset(
        subset,
        crop=metadata["crop"],
        input_size=metadata["input_size"],
        batch_size=len(positions),
        features=None if features is None else features[positions],
    )
    inputs, _ = next(iter(dataset))
    if isinstance(inputs, dict):
        return np.asarray(inputs["image"]), np.asarray(inputs["measures"])
    return np.asarray(inputs), None


def occlusion_maps(model, images: np.ndarray, features, targets: np.ndarray, patches: int = 8):
    """How much the probability of ``targets`` drops when each patch is blacked out.

    The image is cut into ``patches x patches`` squares; each is set to the
    black sky in turn. Large drops mark the pixels the decision rests on.
    Returns an array (n, patches, patches).
    """
    n, size = images.shape[0], images.shape[1]
    edges = np.linspace(0, size, patches + 1).astype(int)

    def probability(batch, feats):
        inputs = batch if feats is None else {"image": batch, "measures": feats}
        return np.asarray(model(inputs, training=False))

    base = probability(images, features)[np.arange(n), targets]
    maps = np.zeros((n, patches, patches), dtype=np.float32)
    for i in range(n):
        batch = np.repeat(images[i : i + 1], patches * patches, axis=0)
        for k, (row, col) in enumerate(np.ndindex(patches, patches)):
            batch[k, edges[row] : edges[row + 1], edges[col] : edges[col + 1]] = 0.0
        feats = None if features is None else np.repeat(features[i : i + 1], len(batch), axis=0)
        maps[i] = (base[i] - probability(batch, feats)[:, targets[i]]).reshape(patches, patches)
    return maps


def saliency_examples(y_true: np.ndarray, proba: np.ndarray) -> list[tuple[int, bool]]:
    """Per true class, its most confident correct and its most confident wrong galaxy."""
    predicted = proba.argmax(axis=1)
    picked = []
    for label in np.unique(y_true):
        for correct in (True, False):
            rows = np.flatnonzero((y_true == label) & ((predicted == label) == correct))
            if rows.size:
                picked.append((int(rows[np.argmax(proba[rows].max(axis=1))]), correct))
    return picked


def plot_saliency(images, maps, titles, path: str | Path, columns: int = 4) -> None:
    """Each galaxy beside its occlusion map (red: the probability falls when hidden)."""
    n = len(images)
    rows = max(1, math.ceil(n / columns))
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(2.2 * columns * 2 / 1.6, 2.3 * rows),
                             squeeze=False)  # fmt: skip
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        row, col = divmod(i, columns)
        picture, heat = axes[row, 2 * col], axes[row, 2 * col + 1]
        picture.imshow(np.clip(images[i], 0, 1))
        picture.set_title(titles[i], fontsize=6)
        top = max(float(np.abs(maps[i]).max()), 1.0e-6)
        heat.imshow(np.clip(images[i], 0, 1).mean(axis=2), cmap="gray")
        side = images[i].shape[0]
        extent = (-0.5, side - 0.5, side - 0.5, -0.5)
        heat.imshow(maps[i], cmap="bwr", vmin=-top, vmax=top, alpha=0.6, extent=extent)
        heat.set_title("occlusion", fontsize=6)
    if not n:
        axes[0, 0].text(0.5, 0.5, "no galaxy to show", ha="center", va="center")
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
    tta_rotations: int | None = None,
    tta_mirror: bool | None = None,
    prior_shift: float | None = None,
) -> dict:
    """Evaluate ``model`` on the test shards and write every report file.

    Parameters
    ----------
    model : keras.Model
    metadata : dict
        The model's ``model.json`` (class names, crop, input size, measures, mirror pairs,
        and the decision rule of :mod:`galmorph.cnn.decision`).
    test_paths : sequence of path
        The test split's shards: never seen by training, balancing or model selection.
    outputs : dict
        Paths of ``metrics`` (JSON), ``per_class`` (CSV), ``predictions`` (CSV, one row
        per test image) and the figures ``confusion``, ``roc``, ``misclassified``,
        ``calibration``, ``per_class_figure`` and ``saliency``.
    tta_rotations, tta_mirror, prior_shift :
        Override the model's decision rule (``None``: as written in ``metadata``):
        probabilities averaged over this many turns, each also mirrored (with the
        label swap of the mirror pairs), then shifted by :func:`shift_to_prior`
        (and biased per class by the rule's ``class_bias``).

    Returns
    -------
    dict
        The metrics of :func:`compute_metrics`.
    """
    import json

    from galmorph.cnn import decision
    from galmorph.cnn.shards import ShardIndex
    from galmorph.cnn.train import check_mirror_safe_names
    from galmorph.io import atomic_path, escape_columns

    rule = decision.from_metadata(
        metadata, tta_rotations=tta_rotations, tta_mirror=tta_mirror, prior_shift=prior_shift
    )
    index = ShardIndex.from_paths(test_paths)
    class_names = metadata["class_names"]
    if list(index.class_names) != list(class_names):
        raise InputDataError(
            f"{index.paths[0]}: test classes {list(index.class_names)} differ from the model's "
            f"{class_names}; train and evaluate on shards of the same run"
        )
    pairs = [tuple(pair) for pair in metadata.get("mirror_pairs") or ()]
    if rule.tta_mirror:
        check_mirror_safe_names(class_names, pairs, "cnn.tta.mirror")
    views = tta_views(rule.tta_rotations, rule.tta_mirror)
    y_true, proba, features = predict_index(
        model, index, metadata, batch_size, views, prior_shift=rule.prior_shift,
        class_bias=rule.bias_vector(class_names),
    )  # fmt: skip
    metrics = compute_metrics(y_true, proba, class_names, pairs)
    metrics["variant"] = metadata.get("variant")
    metrics["tta_views"] = len(views)
    metrics["prior_shift"] = rule.prior_shift
    metrics["class_bias"] = rule.class_bias
    predicted = proba.argmax(axis=1)
    wrong_rows = np.flatnonzero(predicted != y_true)[:n_misclassified]
    wrong = []
    if wrong_rows.size:
        images, _ = _model_inputs(index, metadata, wrong_rows, features)
        wrong = [
            (images[k], int(y_true[row]), int(predicted[row]), float(proba[row].max()))
            for k, row in enumerate(wrong_rows)
        ]
    examples = saliency_examples(y_true, proba)
    positions = np.array([row for row, _ in examples], dtype=np.int64)
    saliency_images, maps, titles = [], [], []
    if positions.size:
        saliency_images, saliency_features = _model_inputs(index, metadata, positions, features)
        maps = occlusion_maps(model, saliency_images, saliency_features, predicted[positions])
        titles = [
            f"{'right' if correct else 'wrong'}: {class_names[y_true[row]]}"
            f" -> {class_names[predicted[row]]}"
            for row, correct in examples
        ]
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
        "predictions": lambda path: escape_columns(table, ("class", "predicted_class")).to_csv(
            path, index=False
        ),
        "confusion": lambda path: plot_confusion(metrics["confusion_matrix"], class_names, path),
        "roc": lambda path: plot_roc(y_true, proba, class_names, path),
        "misclassified": lambda path: plot_misclassified(wrong, class_names, path),
        "calibration": lambda path: plot_calibration(y_true, proba, path),
        "per_class_figure": lambda path: plot_per_class(metrics, path),
        "saliency": lambda path: plot_saliency(saliency_images, maps, titles, path),
    }
    for name, write in writers.items():
        if name not in outputs:
            continue
        with atomic_path(outputs[name], suffix=Path(outputs[name]).suffix) as temporary:
            write(temporary)
    return metrics
