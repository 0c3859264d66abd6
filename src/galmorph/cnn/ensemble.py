"""The ensemble variant: the trained variants' networks voting as one model.

The unbalanced network learns the training split's class mix and the balanced
one learns every class equally often; the measures variant reads the measured
morphology alone. They err on different galaxies, and their normalised
geometric mean (:class:`galmorph.cnn.models.GeometricMean`)
beat either alone on the held-out part of the training split
(``bench/cnn_ensemble_select.py``, docs/cnn.md). The ensemble is an ordinary
Keras model with an ordinary ``model.json``, so evaluation, test-time
augmentation, the saliency maps and ``predict`` treat it like any variant.

Its prior for ``cnn.prior_shift`` is the training split's class mix
(``split_class_counts``, which the members share), not the rows either member
learnt from: the balanced one saw 400 of every class.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from galmorph.errors import InputDataError

#: model.json keys that must agree between members: each decides how an image
#: becomes the network's input, or what the outputs mean
SHARED_KEYS = (
    "class_names",
    "image_size",
    "crop",
    "input_size",
    "measure_crop",
    "measure_scales",
    "measures",
    "n_features",
    "mirror_pairs",
    "split_class_counts",
)

#: what the ensemble's model.json keeps of each member
MEMBER_KEYS = (
    "variant", "architecture", "trained_on", "n_train", "best_epoch", "seed", "class_counts",
)  # fmt: skip


def check_members(metadata: Mapping[str, Mapping]) -> None:
    """Refuse members that would read an image, or name their outputs, differently."""
    if len(metadata) < 2:
        raise InputDataError(
            f"an ensemble needs two or more trained variants, got {list(metadata)}"
        )
    (first, reference), *others = metadata.items()
    for name, meta in others:
        differ = [key for key in SHARED_KEYS if meta.get(key) != reference.get(key)]
        if differ:
            raise InputDataError(
                f"variants {first} and {name} differ in {', '.join(differ)}: "
                "their networks cannot share one input; retrain them with the same cnn settings"
            )


def build_ensemble(
    members: Mapping[str, keras.Model],
    metadata: Mapping[str, Mapping],
) -> tuple[keras.Model, dict]:
    """One model whose output is the members' normalised geometric mean, and its metadata.

    Parameters
    ----------
    members, metadata
        Each member's trained model and its ``model.json``, by variant name.
    """
    from galmorph.cnn.models import GeometricMean

    check_members(metadata)
    reference = next(iter(metadata.values()))
    first = next(iter(members.values()))
    if isinstance(first.input, dict):
        inputs = {
            name: keras.Input(shape=t.shape[1:], name=name) for name, t in first.input.items()
        }
    else:
        inputs = keras.Input(shape=first.input.shape[1:], name=first.input.name)
    # Each member re-wrapped under its variant's name (two CNNs are both "resnet" when
    # trained), suffixed: the measures variant's name is also the name of an input.
    outputs = [
        keras.Model(model.input, model.output, name=f"{name}_network")(inputs)
        for name, model in members.items()
    ]
    model = keras.Model(inputs, GeometricMean(name="geometric_mean")(outputs), name="ensemble")
    meta = {key: reference.get(key) for key in SHARED_KEYS}
    meta |= {
        "architecture": "ensemble",
        "combination": "geometric mean",
        "members": [
            {key: metadata[name].get(key) for key in MEMBER_KEYS} | {"variant": name}
            for name in members
        ],
        "variant": "ensemble",
    }
    return model, meta
