"""Architecture presets.

``study``
    The study's network: Conv(64, 6x6) - MaxPool(3) - Conv(64, 3x3) - MaxPool(3) -
    Conv(32, 3x3) - Dense(64) - Dropout(0.5) - Dense(n_classes, softmax).
``deeper``
    Four blocks of two 3x3 convolutions with batch normalisation (16 to 128
    filters), max pooling between blocks and global average pooling before a
    dropout and the softmax: twice the depth, far fewer weights in the head
    (no dense layer over a flattened map), and any input size from 16 pixels up.
    Batch-norm statistics use momentum 0.9 rather than 0.99: with a few
    hundred training steps, the slower averages would not have settled and
    validation would be scored with stale statistics.
"""

from __future__ import annotations

import keras
from keras import layers

from galmorph.errors import InputDataError

ARCHITECTURES = ("study", "deeper")


def _study(inputs, n_classes: int):
    x = layers.Conv2D(64, 6, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(3, name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(3, name="pool2")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name="classes")(x)


def _deeper(inputs, n_classes: int):
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
    x = layers.Dropout(0.3, name="dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name="classes")(x)


def min_input_size(architecture: str) -> int:
    """Smallest input side the preset accepts (``study``: every layer keeps >= 1 pixel)."""
    return {"study": 38, "deeper": 16}[architecture]


def build_model(
    architecture: str, input_size: int, n_classes: int, learning_rate: float = 1.0e-3
) -> keras.Model:
    """A compiled model: Adam, sparse categorical cross-entropy, accuracy.

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
    if n_classes < 2:
        raise InputDataError(f"{n_classes} class(es): a classifier needs at least two")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    body = {"study": _study, "deeper": _deeper}[architecture]
    model = keras.Model(inputs, body(inputs, n_classes), name=architecture)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
