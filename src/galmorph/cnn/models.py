"""Architecture presets, each with its optimiser recipe.

``study``
    The study's network: Conv(64, 6x6) - MaxPool(3) - Conv(64, 3x3) - MaxPool(3) -
    Conv(32, 3x3) - Dense(64) - Dropout(0.5) - Dense(n_classes, softmax).
    Adam, learning rate halved when the validation score stalls.
``deeper``
    Four blocks of two 3x3 convolutions with batch normalisation (16 to 128
    filters), max pooling between blocks and global average pooling before a
    dropout and the softmax. Batch-norm statistics use momentum 0.9 rather
    than 0.99: with a few hundred training steps, the slower averages would
    not have settled. Same optimiser as ``study``.
``resnet``
    A small residual network for a CPU: a strided 3x3 stem, four stages of
    one basic residual block each (two 3x3 convolutions with batch
    normalisation and an identity or 1x1 projection shortcut; 24 to 192
    filters, the resolution halved at each stage), global average pooling.
    AdamW with weight decay, a linear warm-up then cosine decay of the
    learning rate over the planned epochs, and label smoothing (the labels
    are volunteers' votes, not certainties).

With ``n_features > 0`` the model takes a second input, ``measures``: the
measured morphology (:mod:`galmorph.reduction.morphometry`: winding of the arms,
concentration, asymmetry, colour ...), standardised with the training set's
mean and spread (kept in the model), joined to the pooled image features
before a small dense head. The network then need not learn chirality from a
few hundred spirals: it decides *whether* a galaxy is a spiral from the
pixels and reads *which way* it winds from the measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from galmorph.cnn.settings import MIN_INPUT_SIZE, TARGETS
from galmorph.errors import InputDataError

ARCHITECTURES = ("study", "deeper", "resnet")


@dataclass(frozen=True)
class Recipe:
    """How a preset is optimised."""

    optimizer: str  # adam | adamw
    schedule: str  # plateau (halve on a stall) | cosine (warm-up, then cosine decay)
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    warmup_epochs: int = 0


RECIPES = {
    "study": Recipe(optimizer="adam", schedule="plateau"),
    "deeper": Recipe(optimizer="adam", schedule="plateau"),
    "resnet": Recipe(
        optimizer="adamw",
        schedule="cosine",
        label_smoothing=0.05,
        weight_decay=1.0e-4,
        warmup_epochs=2,
    ),
}


@keras.saving.register_keras_serializable(package="galmorph")
class SmoothedSparseCrossEntropy(keras.losses.Loss):
    """Categorical cross-entropy of integer labels with label smoothing and logit adjustment.

    Keras' sparse cross-entropy has no smoothing; this one-hots the labels
    first. With ``smoothing=0`` and no ``logit_offset`` it equals
    ``sparse_categorical_crossentropy``.

    ``logit_offset`` (one value per class, ``tau * log(prior)``): the loss of
    Menon et al. 2021, "Long-tail learning via logit adjustment". The network's
    softmax is scored as if its logits were shifted by the offset, so that it
    learns the class likelihoods without the training split's prior: what it
    outputs is already balanced between frequent and rare classes, and
    ``cnn.prior_shift`` puts back as much of the prior as the held-out scores
    ask for. The outputs are probabilities, so the shift is made in log space.
    """

    def __init__(
        self,
        smoothing: float = 0.0,
        logit_offset=None,
        name: str = "smoothed_sparse_ce",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)
        self.logit_offset = None if logit_offset is None else [float(v) for v in logit_offset]

    def call(self, y_true, y_pred):
        n_classes = tf.shape(y_pred)[-1]
        labels = tf.one_hot(tf.cast(tf.reshape(y_true, (-1,)), tf.int32), n_classes)
        if self.logit_offset is not None:
            logits = tf.math.log(tf.clip_by_value(y_pred, 1.0e-7, 1.0))
            logits += tf.constant(self.logit_offset, dtype=logits.dtype)
            return keras.losses.categorical_crossentropy(
                labels, logits, from_logits=True, label_smoothing=self.smoothing
            )
        return keras.losses.categorical_crossentropy(labels, y_pred, label_smoothing=self.smoothing)

    def get_config(self):
        return {
            **super().get_config(),
            "smoothing": self.smoothing,
            "logit_offset": self.logit_offset,
        }


def logit_offset(class_counts, tau: float) -> list[float] | None:
    """``tau * log(prior)`` of the training rows' class counts; None when ``tau`` is 0.

    A class without a training row counts as one: its offset is the rarest
    possible, not minus infinity.
    """
    if not tau:
        return None
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    return (tau * np.log(counts / counts.sum())).tolist()


@keras.saving.register_keras_serializable(package="galmorph")
class GeometricMean(keras.layers.Layer):
    """The normalised geometric mean of several softmax outputs (an ensemble's vote).

    The mean of the log-probabilities, not of the probabilities: a member that
    is sure a galaxy is *not* of a class vetoes that class, and members trained
    on different class mixes (the training split, the balanced set) combine
    as products of their likelihoods. Probabilities are clipped at 1e-7 so
    one member's underflow to 0 does not decide alone.
    """

    def call(self, inputs):
        logs = keras.ops.stack([keras.ops.log(keras.ops.clip(p, 1e-7, 1.0)) for p in inputs])
        return keras.ops.softmax(keras.ops.mean(logs, axis=0), axis=-1)


def _head(x, measures, output, dropout: float, width: int):
    if measures is not None:
        measured = layers.Dense(32, activation="relu", name="measures_dense")(measures)
        x = layers.Concatenate(name="with_measures")([x, measures, measured])
    x = layers.Dense(width, activation="relu", name="dense")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return output(x)


def _classes_output(n_classes: int):
    """The classifier's last layer: one softmax over the classes."""
    return lambda x: layers.Dense(n_classes, activation="softmax", name="classes")(x)


def _votes_output():
    """The vote-fraction network's last layers: 37 logits, one softmax per GZ2 task."""
    from galmorph.catalogue.decision_tree import N_ANSWERS, task_sizes
    from galmorph.cnn.votes import TaskSoftmax

    return lambda x: TaskSoftmax(task_sizes(), name="votes")(
        layers.Dense(N_ANSWERS, name="vote_logits")(x)
    )


def _study(inputs, measures, output):
    x = layers.Conv2D(64, 6, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(3, name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(3, name="pool2")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv3")(x)
    x = layers.Flatten(name="flatten")(x)
    return _head(x, measures, output, dropout=0.5, width=64)


def _deeper(inputs, measures, output):
    x = inputs
    for block, filters in enumerate((16, 32, 64, 128), start=1):
        for conv in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"b{block}c{conv}")(
                x
            )
            x = layers.BatchNormalization(momentum=0.9, name=f"b{block}bn{conv}")(x)
            x = layers.ReLU(name=f"b{block}relu{conv}")(x)
        if block < 4:
            x = layers.MaxPooling2D(2, name=f"b{block}pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if measures is None:  # the preset as it was: no dense layer after pooling
        x = layers.Dropout(0.3, name="dropout")(x)
        return output(x)
    return _head(x, measures, output, dropout=0.3, width=64)


RESNET_WIDTHS = (24, 48, 96, 192)


def _conv_bn(x, filters: int, stride: int, name: str, relu: bool = True):
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _resnet(inputs, measures, output):
    x = _conv_bn(inputs, RESNET_WIDTHS[0], 2, "stem")
    for stage, filters in enumerate(RESNET_WIDTHS, start=1):
        stride = 1 if stage == 1 else 2
        shortcut = x
        y = _conv_bn(x, filters, stride, f"s{stage}a")
        y = _conv_bn(y, filters, 1, f"s{stage}b", relu=False)
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = layers.Conv2D(
                filters, 1, strides=stride, use_bias=False, name=f"s{stage}_proj"
            )(shortcut)
            shortcut = layers.BatchNormalization(momentum=0.9, name=f"s{stage}_proj_bn")(shortcut)
        x = layers.ReLU(name=f"s{stage}_out")(layers.Add(name=f"s{stage}_add")([y, shortcut]))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return _head(x, measures, output, dropout=0.3, width=96)


def min_input_size(architecture: str) -> int:
    """Smallest input side the preset accepts (:data:`galmorph.cnn.settings.MIN_INPUT_SIZE`)."""
    return MIN_INPUT_SIZE[architecture]


def learning_rate_schedule(
    architecture: str, learning_rate: float, steps_per_epoch: int, epochs: int
):
    """The preset's learning rate: a constant (plateau recipe) or warm-up + cosine decay."""
    recipe = RECIPES[architecture]
    if recipe.schedule == "plateau":
        return learning_rate
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total - 1, steps_per_epoch * recipe.warmup_epochs)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate * 0.1,
        decay_steps=max(1, total - warmup),
        alpha=0.01,
        warmup_target=learning_rate if warmup > 0 else None,
        warmup_steps=warmup,
    )


def build_model(
    architecture: str,
    input_size: int,
    n_classes: int,
    learning_rate: float = 1.0e-3,
    n_features: int = 0,
    steps_per_epoch: int = 1,
    epochs: int = 1,
    feature_mean=None,
    feature_std=None,
    target: str = "classes",
    logit_offset=None,
) -> keras.Model:
    """A compiled model of the preset with its recipe's optimiser and loss.

    Parameters
    ----------
    target : str
        ``classes``: a softmax over ``n_classes`` with cross-entropy on integer
        labels; ``vote_fractions``: the 37 answers of the Galaxy Zoo 2 tree, one
        softmax per task, with the tree's loss (:mod:`galmorph.cnn.votes`;
        ``n_classes`` is then ignored).
    n_features : int
        Size of the ``measures`` input; 0 for an image-only model.
    feature_mean, feature_std : array of n_features, optional
        Standardisation of the measures (the training set's); default 0 and 1.
    steps_per_epoch, epochs : int
        The planned training length, for a cosine schedule.
    logit_offset : list of float, optional
        ``tau * log(prior)`` per class (:func:`logit_offset`): a classifier trained
        with the logit-adjusted loss.

    Raises
    ------
    InputDataError
        Unknown preset, or an input too small for it.
    """
    if architecture not in ARCHITECTURES:
        raise InputDataError(
            f"cnn.architecture is {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    if input_size < min_input_size(architecture):
        raise InputDataError(
            f"cnn.input_size is {input_size}, too small for the {architecture!r} architecture "
            f"(at least {min_input_size(architecture)} pixels)"
        )
    if target not in TARGETS:
        raise InputDataError(f"target is {target!r}; choose one of {', '.join(TARGETS)}")
    if target == "classes" and n_classes < 2:
        raise InputDataError(f"{n_classes} class(es): a classifier needs at least two")
    image = keras.Input((input_size, input_size, 3), name="image")
    body = {"study": _study, "deeper": _deeper, "resnet": _resnet}[architecture]
    output = _classes_output(n_classes) if target == "classes" else _votes_output()
    if n_features:
        measures = keras.Input((n_features,), name="measures")
        mean = np.zeros(n_features) if feature_mean is None else np.asarray(feature_mean)
        std = np.ones(n_features) if feature_std is None else np.asarray(feature_std)
        scaled = layers.Normalization(
            mean=mean.tolist(), variance=np.maximum(std, 1.0e-6) ** 2, name="standardise"
        )(measures)
        inputs = {"image": image, "measures": measures}
        outputs = body(image, scaled, output)
    else:
        inputs, outputs = image, body(image, None, output)
    model = keras.Model(inputs, outputs, name=architecture)
    recipe = RECIPES[architecture]
    rate = learning_rate_schedule(architecture, learning_rate, steps_per_epoch, epochs)
    if recipe.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(rate, weight_decay=recipe.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(rate)
    if target == "vote_fractions":
        from galmorph.cnn.votes import DecisionTreeLoss, cumulative_rmse

        # no label smoothing: the targets are already the volunteers' spread of answers
        model.compile(optimizer=optimizer, loss=DecisionTreeLoss(), metrics=[cumulative_rmse])
        return model
    model.compile(
        optimizer=optimizer,
        loss=SmoothedSparseCrossEntropy(recipe.label_smoothing, logit_offset),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model
