"""The ``measures`` variant: small dense networks on the measured morphology alone, voting.

The CNNs take the measures (:mod:`galmorph.cnn.measures`: winding of the arms,
concentration, asymmetry, colours, the aligned galaxy's descriptors, in several
central crops) beside the pixels, but a few thousand training galaxies are
not enough for their dense head to use all of them: on the SDSS training split a
plain one-hidden-layer network on the measures alone called as many galaxies
right as either CNN, and erred on other galaxies (three folds, docs/cnn.md). As
a member of the ensemble it adds a model of another kind; on its own it is a
fast, pixel-free classifier.

It is :attr:`MeasuresNetworkSettings.members` networks, each fitted on its own
seeded validation split with early stopping on the validation loss, whose
probabilities are averaged: one such network moves by several hundredths with
its seed, their mean does not. Every galaxy is also seen mirrored, its
winding measures negated and its label swapped through ``cnn.mirror_pairs``
(as the CNNs' mirrored views are), so that neither sense of winding is learnt
as the more likely one.

The saved model takes the CNNs' two inputs, ``image`` and ``measures``, and
reads only the second: evaluation, test-time views, the ensemble and
``predict`` treat it like any variant (its occlusion maps are flat, since no
pixel reaches it).
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import keras
import numpy as np
import pandas as pd

from galmorph.cnn import measures
from galmorph.cnn.data import index_measures
from galmorph.cnn.settings import MeasuresNetworkSettings, TrainSettings
from galmorph.cnn.shards import ShardIndex, source_class_counts, source_image_size
from galmorph.cnn.views import mirror_map
from galmorph.errors import InputDataError

log = logging.getLogger(__name__)

#: the architecture name in the model's metadata
ARCHITECTURE = "measures"


def with_mirrors(features, labels, measure_set: str, mirror, use: bool):
    """The rows and, with ``use``, their mirrored copies (winding negated, label swapped)."""
    if not use:
        return features, labels
    mirrored = measures.mirror(features, measure_set)
    return np.concatenate([features, mirrored]), np.concatenate([labels, mirror[labels]])


def _member(n_features: int, n_classes: int, mean, std, network: MeasuresNetworkSettings, name):
    """One dense network: standardised measures, one hidden ReLU layer, a softmax."""
    inputs = keras.Input((n_features,), name="measures")
    scaled = keras.layers.Normalization(
        mean=np.asarray(mean).tolist(),
        variance=(np.maximum(np.asarray(std), 1.0e-6) ** 2).tolist(),
        name="standardise",
    )(inputs)
    hidden = keras.layers.Dense(network.hidden, activation="relu", name="hidden")(scaled)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="classes")(hidden)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(network.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def fit_members(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    settings: TrainSettings,
    network: MeasuresNetworkSettings,
    mirror: np.ndarray,
) -> tuple[list[keras.Model], pd.DataFrame, list[int]]:
    """The member networks fitted on ``features``; their history and the validation rows' count.

    Member ``k`` is seeded with ``settings.seed + k`` and sets its own validation
    part apart (whole groups, :func:`galmorph.cnn.train.validation_split`).
    """
    from galmorph.cnn.train import validation_split

    use_mirrors = bool(settings.augment and settings.augment.get("mirror"))
    members, histories, n_validation = [], [], []
    for k in range(network.members):
        seed = settings.seed + k
        keras.utils.set_random_seed(seed)
        fit_pos, val_pos = validation_split(labels, groups, settings.validation_fraction, seed)
        x_fit, y_fit = with_mirrors(
            features[fit_pos], labels[fit_pos], settings.measures, mirror, use_mirrors
        )
        x_val, y_val = with_mirrors(
            features[val_pos], labels[val_pos], settings.measures, mirror, use_mirrors
        )
        model = _member(
            features.shape[1], n_classes, x_fit.mean(axis=0), x_fit.std(axis=0), network,
            name=f"member_{k}",
        )  # fmt: skip
        stop = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=network.patience, restore_best_weights=True
        )
        fitted = model.fit(
            x_fit, y_fit, batch_size=network.batch_size, epochs=network.max_epochs,
            validation_data=(x_val, y_val), callbacks=[stop], shuffle=True, verbose=0,
        )  # fmt: skip
        history = pd.DataFrame(fitted.history)
        history.insert(0, "epoch", np.arange(1, len(history) + 1))
        history.insert(0, "member", k)
        best = int(history["val_loss"].idxmin()) + 1
        log.info(
            "member %d: %d epochs, best %d (validation loss %.4f, accuracy %.3f)",
            k, len(history), best, history["val_loss"].min(),
            history["val_accuracy"].iloc[best - 1],
        )  # fmt: skip
        members.append(model)
        histories.append(history)
        n_validation.append(len(val_pos))
    return members, pd.concat(histories, ignore_index=True), n_validation


def join_members(members: list[keras.Model], input_size: int, n_features: int) -> keras.Model:
    """One model with the CNNs' inputs (``image``, ``measures``) whose output is the members' mean.

    The image input is taken and not read, so that evaluation, the ensemble and
    ``predict`` feed this model as they feed a CNN.
    """
    inputs = {
        "image": keras.Input((input_size, input_size, 3), name="image"),
        "measures": keras.Input((n_features,), name="measures"),
    }
    outputs = [member(inputs["measures"]) for member in members]
    joined = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="mean")(outputs)
    return keras.Model(inputs, joined, name=ARCHITECTURE)


def train_measures_model(
    index: ShardIndex, settings: TrainSettings, network: MeasuresNetworkSettings
):
    """Train the ``measures`` variant on the rows of ``index`` (a training split).

    ``settings`` gives what the CNNs share with it: the measured crops and set,
    the input size its model takes, the validation fraction, the mirror pairs
    (with ``augment.mirror``: mirrored rows) and the seed.

    Returns
    -------
    galmorph.cnn.train.TrainResult
        The joined model, the members' histories (column ``member``) and the
        metadata, with the keys the ensemble needs its members to share.

    Raises
    ------
    InputDataError
        ``index`` is test data, or the settings measure nothing.
    """
    from galmorph.cnn.train import TrainResult

    index.require_not_test("training")
    crops = settings.measure_crops()
    if not crops:
        raise InputDataError(
            "the measures variant needs measured morphology: set cnn.measure_crop above 0"
        )
    features = index_measures(index, crops, settings.measures)
    mirror = mirror_map(index.class_names, settings.mirror_pairs)
    members, history, n_validation = fit_members(
        features, index.labels, index.groups, index.n_classes, settings, network, mirror
    )
    model = join_members(members, settings.input_size, features.shape[1])
    best = [
        int(rows["epoch"].to_numpy()[rows["val_loss"].to_numpy().argmin()])
        for _, rows in history.groupby("member", sort=True)
    ]
    metadata = {
        **asdict(settings),
        "architecture": ARCHITECTURE,
        "measures_network": asdict(network),
        "class_names": list(index.class_names),
        "image_size": source_image_size(index.paths[0]),
        "trained_on": list(index.paths),
        "n_train": len(index) - n_validation[0],
        "n_validation": n_validation[0],
        "best_epoch": best,
        "n_features": int(features.shape[1]),
        "class_weight_values": None,
        "logit_offset": None,
        "class_counts": index.class_counts().tolist(),
        "split_class_counts": source_class_counts(index).tolist(),
    }
    return TrainResult(model=model, history=history, metadata=metadata)


def plot_member_history(history: pd.DataFrame, path) -> None:
    """Training and validation loss and accuracy per epoch, one line per member."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for member, rows in history.groupby("member", sort=True):
            line = ax.plot(rows["epoch"], rows[metric], "-", alpha=0.6, label=f"member {member}")
            ax.plot(rows["epoch"], rows[f"val_{metric}"], "--", color=line[0].get_color())
        ax.set(
            xlabel="epoch", ylabel=metric, title=f"{metric} (solid: training, dashed: validation)"
        )
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
