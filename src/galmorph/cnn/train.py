"""Training: seeded, online augmentation, model selection on a rare-class-aware score, k-fold.

The validation set (for model selection and the learning-rate schedule) is
carved out of the training rows by whole groups: all synthetic copies of one
source image fall on the same side as the source, so validation never sees a
rotated twin of a training image. The test split is refused outright.

Model selection watches the validation macro-F1 (or balanced accuracy) by
default, not the loss: with 70% ellipticals, the unweighted loss is lowest
for a model that calls almost everything elliptical.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import StratifiedGroupKFold, train_test_split
from tqdm import tqdm

from galmorph.cnn.checkpoint import Checkpoint, training_key
from galmorph.cnn.data import Augmentation, index_measures, make_dataset, mirror_map
from galmorph.cnn.decision import metadata_path  # noqa: F401 - part of train's API
from galmorph.cnn.evaluate import SCALAR_METRICS, compute_metrics, predict_index
from galmorph.cnn.models import RECIPES, build_model
from galmorph.cnn.settings import CLASS_WEIGHTS, SELECTION_METRICS, TrainSettings  # noqa: F401
from galmorph.cnn.shards import ShardIndex, source_class_counts, source_image_size
from galmorph.errors import InputDataError
from galmorph.io import atomic_path

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: keras.Model
    history: pd.DataFrame
    metadata: dict


def configure_threads(threads: int) -> None:
    """Let TensorFlow use ``threads`` cores (the rule's ``threads``).

    Must run before TensorFlow starts its runtime; later calls cannot change
    the pools and are logged, not fatal.
    """
    threads = max(1, int(threads))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError as error:
        log.warning("TensorFlow thread pools already started, left as they are: %s", error)


def validation_split(
    labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of training and validation rows; whole groups, stratified by class if possible.

    Raises
    ------
    InputDataError
        Fewer than two groups: nothing left to train on or to validate with.
    """
    unique, first = np.unique(groups, return_index=True)
    if unique.size < 2:
        raise InputDataError(
            f"{labels.size} training image(s) from {unique.size} source(s): too few to set "
            "a validation set apart; enlarge sample.n_train"
        )
    n_val = min(max(1, round(fraction * unique.size)), unique.size - 1)
    try:
        _, val_groups = train_test_split(
            unique, test_size=n_val, stratify=labels[first], random_state=seed
        )
    except ValueError:  # a class with a single group cannot be stratified
        _, val_groups = train_test_split(unique, test_size=n_val, random_state=seed)
    is_val = np.isin(groups, val_groups)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def class_weight_map(labels: np.ndarray, n_classes: int, kind: str = "inverse") -> dict:
    """Loss weight per class from its training frequency; absent classes weigh 1.

    ``inverse``: ``n / (n_present_classes * count)``, every class weighs as much
    in total. ``sqrt``: the square root of that, a milder push towards rare
    classes that costs the common ones less accuracy.
    """
    counts = np.bincount(labels, minlength=n_classes)
    present = np.count_nonzero(counts)
    power = {"inverse": 1.0, "sqrt": 0.5}[kind]
    return {
        label: float((labels.size / (present * count)) ** power) if count else 1.0
        for label, count in enumerate(counts)
    }


def check_mirror_safe_names(class_names, pairs, key: str) -> None:
    """Refuse mirror images when a class has a winding and no declared mirror partner.

    A mirror turns a clockwise spiral into an anticlockwise one: without the
    label swap, every mirrored spiral would be labelled wrong. ``key`` is the
    config key that asked for mirrors, named in the message.
    """
    from galmorph.catalogue.classes import chiral_classes

    paired = {name for pair in pairs for name in pair}
    unpaired = [name for name in chiral_classes(class_names) if name not in paired]
    if unpaired:
        raise InputDataError(
            f"mirror images are on ({key}) but class(es) {', '.join(unpaired)} have a winding "
            "that a mirror reverses; declare their partners in cnn.mirror_pairs "
            f"(e.g. [[spiral_cw, spiral_acw]]) or set {key}: false"
        )


def check_mirror_safe(class_names, augment: Augmentation | None, pairs) -> None:
    """:func:`check_mirror_safe_names` for the training augmentation."""
    if augment is not None and augment.mirror:
        check_mirror_safe_names(class_names, pairs, "cnn.augment.mirror")


class ValidationScores(keras.callbacks.Callback):
    """The validation scores of each epoch, from one pass over the validation set.

    Adds ``val_loss`` and ``val_accuracy`` (what Keras' own validation would
    give), ``val_macro_f1`` and ``val_balanced_accuracy`` to the epoch's logs.
    The classifier is fitted without ``validation_data``: Keras would otherwise
    run the same images through the network a second time every epoch.
    Put before the callbacks that watch them (early stopping, checkpoint).
    """

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_end(self, epoch, logs=None):
        truths, predicted, loss_sum = [], [], 0.0
        for inputs, labels in self.dataset:
            proba = self.model(inputs, training=False)
            # the compiled loss is a batch mean: weigh each batch by its size
            loss_sum += float(self.model.loss(labels, proba)) * int(labels.shape[0])
            truths.append(np.asarray(labels))
            predicted.append(np.asarray(proba).argmax(axis=1))
        y_true, y_pred = np.concatenate(truths), np.concatenate(predicted)
        if logs is not None:
            logs["val_loss"] = loss_sum / y_true.size
            logs["val_accuracy"] = float(np.mean(y_true == y_pred))
            logs["val_macro_f1"] = float(f1_score(y_true, y_pred, average="macro", zero_division=0))
            logs["val_balanced_accuracy"] = float(balanced_accuracy_score(y_true, y_pred))


def train_model(
    index: ShardIndex,
    settings: TrainSettings,
    cache_crops: bool = True,
    checkpoint_dir: str | Path | None = None,
    targets: np.ndarray | None = None,
) -> TrainResult:
    """Train a fresh model on the rows of ``index`` (a training split or balanced set).

    With ``targets`` (``settings.target`` ``vote_fractions``: the (n, 37) vote
    fractions of the rows, :func:`galmorph.catalogue.decision_tree.targets_for`)
    the network predicts those instead of the class (:mod:`galmorph.cnn.votes`);
    the validation rows are still drawn stratified by class, and the epoch is
    chosen by the validation loss.

    With ``checkpoint_dir``, the state is saved there after every epoch
    (:class:`galmorph.cnn.checkpoint.Checkpoint`) and a run killed midway
    resumes from its last complete epoch, with the same result as an
    uninterrupted run; a checkpoint of other settings or data is ignored.

    With ``cache_crops``, every training region is read and resized once, into
    an uncompressed temporary file (in ``$TMPDIR``, removed afterwards), so
    that the epochs skip the decompression and the resize
    (:class:`galmorph.cnn.data.PresizedCache`).

    Raises
    ------
    InputDataError
        ``index`` is test data, or too small to split.
    """
    index.require_not_test("training")
    votes = _check_targets(settings, targets, len(index))
    keras.utils.set_random_seed(settings.seed)
    train_pos, val_pos = validation_split(
        index.labels, index.groups, settings.validation_fraction, settings.seed
    )
    train_rows, val_rows = index.subset(train_pos), index.subset(val_pos)
    counts = dict(zip(index.class_names, train_rows.class_counts().tolist(), strict=True))
    log.info("training on %d images, validating on %d (%s)", len(train_pos), len(val_pos), counts)
    augment = settings.augmentation()
    if not votes:  # no answer of the GZ2 tree has a handedness: mirrors keep vote targets
        check_mirror_safe(index.class_names, augment, settings.mirror_pairs)
    features = None
    if settings.measure_crop:
        features = index_measures(index, settings.measure_crops(), settings.measures)

    def features_of(positions):
        return None if features is None else features[positions]

    def targets_of(positions):
        return None if targets is None else np.asarray(targets, np.float32)[positions]

    offset = None
    if settings.logit_adjustment and not votes:
        from galmorph.cnn.models import logit_offset

        # the prior of the rows the network is fitted on (without the validation tenth)
        offset = logit_offset(train_rows.class_counts(), settings.logit_adjustment)
    model = _fresh_model(settings, index.n_classes, len(train_rows), features_of(train_pos), offset)
    weights = None
    if settings.class_weights != "none" and not votes:
        weights = class_weight_map(train_rows.labels, index.n_classes, settings.class_weights)
    pipeline = dict(
        crop=settings.crop,
        input_size=settings.input_size,
        batch_size=settings.batch_size,
        mirror=mirror_map(index.class_names, settings.mirror_pairs),
        measure_set=settings.measures,
    )
    with contextlib.ExitStack() as stack:
        folder = None
        if cache_crops:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="galmorph-crops-"))
        validation = make_dataset(
            val_rows,
            shuffle=False,
            features=features_of(val_pos),
            targets=targets_of(val_pos),
            **pipeline,
        )
        callbacks = _selection_callbacks(settings, validation, class_scores=not votes)
        first_epoch, epochs, saver = 0, settings.epochs, None
        if checkpoint_dir is not None:
            key = asdict(settings)
            if votes:  # the targets are training data as much as the rows are
                digest = hashlib.sha256(np.ascontiguousarray(targets, np.float32))
                key["targets"] = digest.hexdigest()
            first_epoch, epochs, saver = _resume(
                Checkpoint(checkpoint_dir, training_key(key, index)),
                model,
                callbacks,
                epochs,
            )
        fitted = model.fit(
            make_dataset(
                train_rows,
                shuffle=True,
                seed=settings.seed,
                first_epoch=first_epoch,
                cache_dir=folder,
                augment=augment,
                features=features_of(train_pos),
                targets=targets_of(train_pos),
                **pipeline,
            ),
            # a classifier's validation pass is ValidationScores' (see there)
            validation_data=validation if votes else None,
            epochs=epochs,
            initial_epoch=first_epoch,
            class_weight=weights,
            callbacks=callbacks,
            shuffle=False,  # the pipeline shuffles, seeded, per epoch
            verbose=2,
        )
    # after a resume the checkpoint's history holds the epochs before it, too
    history = pd.DataFrame(saver.history if saver is not None else fitted.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    metadata = {
        **asdict(settings),
        "class_names": list(index.class_names),
        "image_size": source_image_size(index.paths[0]),
        "trained_on": list(index.paths),
        "n_train": len(train_pos),
        "n_validation": len(val_pos),
        "best_epoch": _best_epoch(history, settings.selection_metric),
        "n_features": 0 if features is None else int(features.shape[1]),
        "class_weight_values": weights,
        "logit_offset": offset,
        # the class frequencies the model learnt from (400 of each for the balanced set) ...
        "class_counts": index.class_counts().tolist(),
        # ... and those of the training split, the prior of cnn.prior_shift
        "split_class_counts": source_class_counts(index).tolist(),
    }
    if votes:
        from galmorph.catalogue.decision_tree import ANSWERS
        from galmorph.cnn.votes import mean_prediction

        metadata["answers"] = list(ANSWERS)
        # the predict-the-mean baseline of the scores, from the training rows alone
        baseline = mean_prediction(targets_of(train_pos))
        metadata["vote_baseline"] = {kind: values.tolist() for kind, values in baseline.items()}
    return TrainResult(model=model, history=history, metadata=metadata)


def _fresh_model(settings: TrainSettings, n_classes: int, n_train: int, features, offset=None):
    """The untrained network of ``settings``; measures standardised by the training rows'.

    ``offset``: the logit adjustment of the loss (:func:`galmorph.cnn.models.logit_offset`).
    """
    return build_model(
        settings.architecture,
        settings.input_size,
        n_classes,
        settings.learning_rate,
        n_features=0 if features is None else features.shape[1],
        steps_per_epoch=int(np.ceil(n_train / settings.batch_size)),
        epochs=settings.epochs,
        feature_mean=None if features is None else features.mean(axis=0),
        feature_std=None if features is None else features.std(axis=0),
        target=settings.target,
        logit_offset=offset,
    )


def _check_targets(settings: TrainSettings, targets, n_rows: int) -> bool:
    """Whether the run learns vote fractions; refuses targets that do not fit the settings."""
    if settings.target == "classes":
        if targets is not None:
            raise InputDataError("targets given for a classifier (target 'classes')")
        return False
    if targets is None:
        raise InputDataError(f"target {settings.target!r} needs the rows' vote fractions")
    shape = np.shape(targets)
    if len(shape) != 2 or shape[0] != n_rows:
        raise InputDataError(f"vote fractions of shape {shape} for {n_rows} training rows")
    if settings.selection_metric != "loss":
        raise InputDataError(
            "the vote-fraction network is selected by its validation loss, not "
            f"{settings.selection_metric!r}"
        )
    return True


def _monitor(selection_metric: str) -> tuple[str, str]:
    return f"val_{selection_metric}", ("min" if selection_metric == "loss" else "max")


def _best_epoch(history: pd.DataFrame, selection_metric: str) -> int:
    monitor, mode = _monitor(selection_metric)
    best = history[monitor].idxmin() if mode == "min" else history[monitor].idxmax()
    return int(best) + 1


def _selection_callbacks(settings: TrainSettings, validation, class_scores: bool = True) -> list:
    """Validation scores, early stopping on the selection metric and, by recipe, LR on plateau."""
    monitor, mode = _monitor(settings.selection_metric)
    callbacks = [ValidationScores(validation)] if class_scores else []
    callbacks += [
        keras.callbacks.EarlyStopping(
            monitor=monitor,
            mode=mode,
            patience=settings.early_stopping_patience,
            restore_best_weights=True,
        ),
    ]
    if RECIPES[settings.architecture].schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                mode=mode,
                factor=0.5,
                patience=settings.reduce_lr_patience,
                min_lr=1.0e-6,
            )
        )
    return callbacks


def _resume(checkpoint: Checkpoint, model, callbacks: list, epochs: int):
    """Restore ``checkpoint`` into ``model`` and ``callbacks``; add its saver (last).

    Returns ``(first_epoch, epochs, saver)``.
    """
    first_epoch, history = checkpoint.restore(model, callbacks)
    if checkpoint.stopped:  # killed after early stopping: only the best weights remain
        epochs = first_epoch
    saver = checkpoint.callback(history)
    saver.others = list(callbacks)
    callbacks.append(saver)  # last: sees the counters after the others' update
    return first_epoch, epochs, saver


def save_model(model: keras.Model, metadata: dict, model_path: str | Path) -> None:
    """Write the model (.keras) and its metadata JSON beside it, each atomically."""
    with atomic_path(model_path, suffix=".keras") as temporary:
        model.save(temporary)
    with atomic_path(metadata_path(model_path)) as temporary:
        temporary.write_text(json.dumps(metadata, indent=2) + "\n")


def save(result: TrainResult, model_path: str | Path, history_path: str | Path) -> None:
    """Write the model (.keras), its metadata JSON and the history CSV, each atomically."""
    save_model(result.model, result.metadata, model_path)
    with atomic_path(history_path) as temporary:
        result.history.to_csv(temporary, index=False)


def load(model_path: str | Path) -> tuple[keras.Model, dict]:
    """A saved model and its metadata; a clear error if either is missing."""
    model_path, meta_path = Path(model_path), metadata_path(model_path)
    for path in (model_path, meta_path):
        if not path.is_file():
            raise InputDataError(f"{path}: not found; train the model first (rule train_cnn)")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputDataError(f"{meta_path}: not a model's JSON metadata ({error})") from error
    if not isinstance(metadata, dict):
        raise InputDataError(f"{meta_path}: not a model's JSON metadata (not an object)")
    # The vote-fraction network's layer, loss and metric are registered with Keras
    # when their module is imported; a saved votes network names them.
    from galmorph.cnn import votes  # noqa: F401

    try:
        # safe_mode (Keras's default, kept): a model file that holds Python code
        # (a Lambda layer's function) is refused rather than run.
        model = keras.models.load_model(model_path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises ValueError, TypeError, OSError...
        if "safe_mode" in str(error):
            reason = (
                "it holds Python code (a Lambda layer), which galmorph never runs from a "
                "model file; rebuild it from layers that Keras can load safely"
            )
        else:
            reason = f"not a Keras model galmorph can read ({type(error).__name__}: {error})"
        raise InputDataError(f"{model_path}: refused, {reason}") from error
    return model, metadata


def cross_validate(index: ShardIndex, settings: TrainSettings, k: int) -> pd.DataFrame:
    """k-fold cross-validation on training data: one row of metrics per fold.

    Folds are stratified by class and keep groups whole; each fold's model
    sets its own validation set apart from its training part, and is scored
    on the held-out fold's original (non-synthetic) images.
    """
    index.require_not_test("cross-validation")
    n_groups = np.unique(index.groups).size
    if not 2 <= k <= n_groups:
        raise InputDataError(f"cnn.kfold is {k}; it must be between 2 and {n_groups} (sources)")
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=settings.seed)
    rows = []
    splits = folds.split(np.zeros(len(index)), index.labels, index.groups)
    for fold, (train_pos, held_pos) in enumerate(tqdm(list(splits), desc="folds", unit="fold")):
        held_pos = held_pos[~index.synthetic[held_pos]]
        result = train_model(index.subset(train_pos), replace(settings, seed=settings.seed + fold))
        y_true, proba, _ = predict_index(
            result.model, index.subset(held_pos), result.metadata, settings.batch_size
        )
        metrics = compute_metrics(y_true, proba, index.class_names, settings.mirror_pairs)
        rows.append(
            {
                "fold": fold + 1,
                "n_train": len(train_pos),
                "n_held_out": len(held_pos),
                "epochs": len(result.history),
                **{name: metrics[name] for name in SCALAR_METRICS},
            }
        )
        keras.backend.clear_session()
    return pd.DataFrame(rows)


def summarize_folds(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1), min and max of every metric over the folds."""
    values = folds[list(SCALAR_METRICS)].astype(float)
    summary = pd.DataFrame(
        {
            "metric": list(SCALAR_METRICS),
            "mean": values.mean().to_numpy(),
            "std": values.std(ddof=1).to_numpy(),
            "min": values.min().to_numpy(),
            "max": values.max().to_numpy(),
        }
    )
    summary.insert(1, "folds", len(folds))
    return summary
