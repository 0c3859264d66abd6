"""Supervised convolutional networks trained on the pixels of the HDF5 shards.

Modules
-------
settings
    The training settings and the presets' smallest inputs (no TensorFlow).
shards
    Row index over HDF5 shards (h5py only, no TensorFlow).
balance
    The balanced training set: N per class, distinct synthetic images.
data
    tf.data pipelines: crop, resize, scale to [0, 1], seeded shuffle, prefetch.
models
    Architecture presets ``study``, ``deeper`` and ``resnet``; the ensemble's vote.
train
    Training with early stopping and learning-rate reduction; k-fold.
measures_network
    Dense networks on the measured morphology alone (the ``measures`` variant).
ensemble
    The trained variants' networks joined into one model (the ``ensemble`` variant).
evaluate
    Metrics on the untouched test split and their figures.
predict
    Classify a folder of JPEGs (also a command: ``python -m galmorph.cnn.predict``).
"""

import os

# TensorFlow's C++ start-up chatter would bury the useful lines of a rule's log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The variants that train a CNN: the training split as drawn, or N images per class.
CNN_VARIANTS = ("unbalanced", "balanced")
#: The variants that train a network of their own: the CNNs and ``measures`` (dense networks
#: on the measured morphology, :mod:`galmorph.cnn.measures_network`). The ``ensemble``
#: variant joins those that ``cnn.variants`` lists.
VARIANTS = (*CNN_VARIANTS, "measures")
