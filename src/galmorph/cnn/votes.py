"""Galaxy Zoo 2's own product: the 37 vote fractions of its decision tree, predicted and scored.

The network ends in 37 logits and one softmax per task (:class:`TaskSoftmax`),
so each task's predicted answers sum to 1, as the catalogue's conditional
fractions do. Its loss (:class:`DecisionTreeLoss`) is each task's
cross-entropy against the volunteers' fractions, weighted by the task's reach
(the fraction of the galaxy's volunteers who were asked it,
:func:`galmorph.catalogue.decision_tree.reach`): a question few people
answered, such as the arms of a galaxy most called smooth, counts little, as
in Dieleman et al. (2015) and Zoobot's per-question losses.

Scores (:func:`vote_scores`):

``rmse``
    RMSE over the 37 *cumulative* fractions (each answer times its task's
    reach; the Galaxy Zoo challenge's measure), beside the same for a
    constant prediction: the training split's mean cumulative fractions.
``rmse_conditional``
    RMSE of the conditional fractions, each answer weighted by its true
    reach, beside the training split's reach-weighted mean answers.

No answer of the tree has a handedness (the winding question asks how tight,
not which way), so mirrored views keep their targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from galmorph.catalogue import decision_tree as tree  # noqa: E402

_EPSILON = 1.0e-7


@keras.saving.register_keras_serializable(package="galmorph")
class TaskSoftmax(keras.layers.Layer):
    """A softmax over each consecutive group of ``sizes`` inputs (one per task)."""

    def __init__(self, sizes: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.sizes = tuple(int(size) for size in sizes)

    def call(self, logits):
        parts, start = [], 0
        for size in self.sizes:
            parts.append(keras.ops.softmax(logits[:, start : start + size], axis=-1))
            start += size
        return keras.ops.concatenate(parts, axis=-1)

    def get_config(self):
        return {**super().get_config(), "sizes": list(self.sizes)}


def _reach_ops(fractions):
    """:func:`galmorph.catalogue.decision_tree.reach` in Keras ops, (b, 37) -> list of 11 (b,)."""
    reaches = []
    for parent, leads in tree.parent_answers():
        if parent is None:
            reaches.append(keras.ops.ones_like(fractions[:, 0]))
        else:
            led = sum(fractions[:, answer] for answer in leads)
            reaches.append(reaches[parent] * led)
    return reaches


@keras.saving.register_keras_serializable(package="galmorph")
class DecisionTreeLoss(keras.losses.Loss):
    """Sum over the tree's tasks of cross-entropy, each weighted by the task's true reach."""

    def __init__(self, name: str = "decision_tree_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        reaches = _reach_ops(y_true)
        log_pred = keras.ops.log(keras.ops.clip(y_pred, _EPSILON, 1.0))
        total = 0.0
        for (start, stop), task_reach in zip(tree.task_slices(), reaches, strict=True):
            entropy = -keras.ops.sum(y_true[:, start:stop] * log_pred[:, start:stop], axis=-1)
            total = total + task_reach * entropy
        return total


@keras.saving.register_keras_serializable(package="galmorph")
def cumulative_rmse(y_true, y_pred):
    """RMSE of the cumulative fractions of a batch (the history's ``cumulative_rmse``)."""
    y_true = keras.ops.cast(y_true, y_pred.dtype)
    true_reach, pred_reach = _reach_ops(y_true), _reach_ops(y_pred)
    errors = []
    for (start, stop), t_reach, p_reach in zip(
        tree.task_slices(), true_reach, pred_reach, strict=True
    ):
        t = y_true[:, start:stop] * t_reach[:, None]
        p = y_pred[:, start:stop] * p_reach[:, None]
        errors.append(keras.ops.sum((t - p) ** 2, axis=-1))
    return keras.ops.sqrt(sum(errors) / tree.N_ANSWERS)


def mean_prediction(train_targets: np.ndarray) -> dict[str, np.ndarray]:
    """The predict-the-mean baselines, from the training split's vote table.

    ``cumulative``: the mean cumulative fractions (the best constant for
    ``rmse``); ``conditional``: each answer's mean over the galaxies, weighted
    by its task's reach (the mean answer of the volunteers who were asked).
    """
    train_targets = np.asarray(train_targets, dtype=np.float64)
    weights = tree.answer_reach(train_targets)
    total = weights.sum(axis=0)
    conditional = np.divide(
        (weights * train_targets).sum(axis=0), total, out=np.zeros(tree.N_ANSWERS), where=total > 0
    )
    return {
        "cumulative": tree.cumulative(train_targets).mean(axis=0),
        "conditional": tree.normalise_tasks(conditional[None, :])[0],
    }


def _rmse(errors: np.ndarray, weights: np.ndarray | None = None) -> float:
    if weights is None:
        return float(np.sqrt(np.mean(errors**2)))
    return float(np.sqrt((weights * errors**2).sum() / max(weights.sum(), _EPSILON)))


def vote_scores(
    y_true: np.ndarray, y_pred: np.ndarray, baseline: dict[str, np.ndarray]
) -> tuple[dict, pd.DataFrame]:
    """Scores of predicted conditional fractions against the true ones, and per answer.

    Returns ``(metrics, per_answer)``: the scalar scores with their baselines,
    and a table of each answer's cumulative RMSE (model and baseline) and its
    mean true and predicted fraction.
    """
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    true_cum, pred_cum = tree.cumulative(y_true), tree.cumulative(y_pred)
    base_cum = np.broadcast_to(baseline["cumulative"], true_cum.shape)
    base_cond = np.broadcast_to(baseline["conditional"], y_true.shape)
    weights = tree.answer_reach(y_true)
    metrics = {
        "n_galaxies": int(y_true.shape[0]),
        "rmse": _rmse(pred_cum - true_cum),
        "rmse_baseline": _rmse(base_cum - true_cum),
        "rmse_conditional": _rmse(y_pred - y_true, weights),
        "rmse_conditional_baseline": _rmse(base_cond - y_true, weights),
    }
    per_answer = pd.DataFrame(
        {
            "answer": list(tree.ANSWERS),
            "rmse": np.sqrt(((pred_cum - true_cum) ** 2).mean(axis=0)),
            "rmse_baseline": np.sqrt(((base_cum - true_cum) ** 2).mean(axis=0)),
            "mean_true": true_cum.mean(axis=0),
            "mean_predicted": pred_cum.mean(axis=0),
        }
    )
    return metrics, per_answer


def predict_index(model, index, metadata: dict, batch_size: int = 64, views=((0.0, False),)):
    """(n, 37) conditional fractions of every row of ``index``, averaged over ``views``.

    The mean of per-task softmaxes still sums to 1 per task; a mirrored view
    needs no mapping back (no answer has a handedness).
    """
    from galmorph.cnn.data import index_measures, make_dataset
    from galmorph.cnn.evaluate import model_measure_crops, predict_batches

    features = None
    measure_set = metadata.get("measures", "morphometry")
    crops = model_measure_crops(metadata)
    if crops:
        features = index_measures(index, crops, measure_set)
    total = None
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
        _, proba, _ = predict_batches(model, dataset)
        total = proba if total is None else total + proba
    return total / len(views)


def prediction_columns() -> list[str]:
    """Columns of the predicted fractions in a predictions CSV: ``<answer>_fraction``."""
    return [f"{answer}_fraction" for answer in tree.ANSWERS]


def plot_per_answer(per_answer: pd.DataFrame, path: str | Path) -> None:
    """Each answer's cumulative RMSE, the network's beside the predict-the-mean baseline."""
    fig, ax = plt.subplots(figsize=(8, 9))
    positions = np.arange(len(per_answer))
    ax.barh(positions + 0.2, per_answer["rmse_baseline"], 0.4, label="training mean", color="0.7")
    ax.barh(positions - 0.2, per_answer["rmse"], 0.4, label="network", color="tab:blue")
    ax.set_yticks(positions, per_answer["answer"], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="RMSE of the cumulative vote fraction (test split)", title="per answer")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


#: Answers shown in the scatter figure: the tree's main branches and the rare merger.
SCATTER_ANSWERS = (
    "t01_smooth_or_features_a01_smooth",
    "t01_smooth_or_features_a02_features_or_disk",
    "t02_edgeon_a04_yes",
    "t03_bar_a06_bar",
    "t04_spiral_a08_spiral",
    "t08_odd_feature_a24_merger",
)


def plot_true_vs_predicted(y_true: np.ndarray, y_pred: np.ndarray, path: str | Path) -> None:
    """Predicted against true cumulative fraction for six answers of the tree."""
    true_cum, pred_cum = tree.cumulative(y_true), tree.cumulative(y_pred)
    fig, axes = plt.subplots(2, 3, figsize=(11, 7), sharex=True, sharey=True)
    for ax, answer in zip(axes.ravel(), SCATTER_ANSWERS, strict=True):
        column = tree.ANSWERS.index(answer)
        ax.scatter(true_cum[:, column], pred_cum[:, column], s=6, alpha=0.4)
        ax.plot([0, 1], [0, 1], color="0.5", lw=1)
        ax.set(xlim=(0, 1), ylim=(0, 1), title=answer, xlabel="volunteers", ylabel="network")
        ax.title.set_fontsize(8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate_on_shards(
    model, metadata: dict, test_shards, votes_csv, outputs: dict, batch_size: int = 64
) -> dict:
    """Score the vote-fraction network once on the test split; write its outputs.

    The views are the model's own decision rule (``model.json``); the baseline
    is the training split's mean (``vote_baseline``, written at training).
    ``outputs`` has ``metrics``, ``per_answer``, ``predictions``,
    ``per_answer_figure`` and ``scatter`` paths. Returns the metrics.
    """
    import json

    from galmorph.cnn import decision
    from galmorph.cnn.evaluate import tta_views
    from galmorph.cnn.shards import ShardIndex
    from galmorph.errors import InputDataError
    from galmorph.io import atomic_path

    if metadata.get("target") != "vote_fractions":
        raise InputDataError(
            "not a vote-fraction network (model.json target is not 'vote_fractions')"
        )
    index = ShardIndex.from_paths(test_shards)
    y_true = tree.targets_for(tree.read_vote_table(votes_csv), index.asset_id, str(votes_csv))
    rule = decision.from_metadata(metadata)
    y_pred = predict_index(
        model, index, metadata, batch_size, tta_views(rule.tta_rotations, rule.tta_mirror)
    )
    baseline = {kind: np.asarray(values) for kind, values in metadata["vote_baseline"].items()}
    metrics, per_answer = vote_scores(y_true, y_pred, baseline)
    metrics["vote_column"] = metadata.get("vote_column")
    metrics["decision"] = {"tta_rotations": rule.tta_rotations, "tta_mirror": rule.tta_mirror}
    predictions = pd.DataFrame(y_pred, columns=prediction_columns())
    predictions.insert(0, "asset_id", index.asset_id)
    with atomic_path(outputs["metrics"]) as temporary:
        temporary.write_text(json.dumps(metrics, indent=2) + "\n")
    with atomic_path(outputs["per_answer"]) as temporary:
        per_answer.to_csv(temporary, index=False, float_format="%.6g")
    with atomic_path(outputs["predictions"]) as temporary:
        predictions.to_csv(temporary, index=False, float_format="%.6g")
    with atomic_path(outputs["per_answer_figure"], suffix=".png") as temporary:
        plot_per_answer(per_answer, temporary)
    with atomic_path(outputs["scatter"], suffix=".png") as temporary:
        plot_true_vs_predicted(y_true, y_pred, temporary)
    return metrics
