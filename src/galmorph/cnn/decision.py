"""A model's decision rule: how its probabilities on an image are made and decided.

A trained network gives probabilities for one view of an image; the workflow's
evaluation averages them over turned and mirrored views (test-time augmentation),
shifts them towards the training split's class mix (``cnn.prior_shift``) and
multiplies each class by ``exp`` of its bias (``cnn.class_bias``, chosen on the
training split by :func:`fit_class_bias`).
Those settings are part of the model as it was scored, so rule
``attach_decision_rule`` writes them into the model's ``model.json`` (key
``decision``), and evaluation, rule ``predict_folder`` and
``python -m galmorph.cnn.predict`` all read them from there: a saved model
reproduces its evaluation by itself. Arguments given by hand override them.

This module is the one owner of that key and of what a valid rule is.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from galmorph.errors import InputDataError
from galmorph.io import atomic_path

log = logging.getLogger(__name__)

#: the model.json key that holds the rule
KEY = "decision"


@dataclass(frozen=True)
class DecisionRule:
    """Test-time views, prior shift and class biases of one model.

    Attributes
    ----------
    tta_rotations : int
        Views turned by 360/n degrees (1: the image as it is).
    tta_mirror : bool
        Each view also mirrored, with the labels of the mirror pairs swapped.
    prior_shift : float
        Power (>= 0, finite) of the training split's class frequencies that the
        averaged probabilities are multiplied by (0 leaves them as trained).
    class_bias : dict of str to float
        Per class name, a log-offset added to the shifted log-probabilities before
        they are summed to 1 again (a class left out: 0). It moves the decision
        between classes where one power of the prior cannot (a rare class the
        network under-calls next to one it over-calls).
    """

    tta_rotations: int = 1
    tta_mirror: bool = False
    prior_shift: float = 0.0
    class_bias: dict = field(default_factory=dict)

    def __post_init__(self):
        rotations = self.tta_rotations
        if isinstance(rotations, bool) or not isinstance(rotations, int) or rotations < 1:
            raise InputDataError(f"tta_rotations is {rotations!r}; it must be a whole number >= 1")
        if not isinstance(self.tta_mirror, bool):
            raise InputDataError(f"tta_mirror is {self.tta_mirror!r}; it must be true or false")
        shift = self.prior_shift
        if isinstance(shift, bool) or not isinstance(shift, int | float):
            raise InputDataError(f"prior_shift is {shift!r}; it must be a number")
        if not math.isfinite(shift) or shift < 0:
            raise InputDataError(f"prior_shift is {shift!r}; it must be a finite number >= 0")
        object.__setattr__(self, "prior_shift", float(shift))
        if not isinstance(self.class_bias, dict):
            raise InputDataError(
                f"class_bias is {self.class_bias!r}; it must map class names to numbers"
            )
        for name, value in self.class_bias.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not isinstance(name, str) or not number or not math.isfinite(value):
                raise InputDataError(
                    f"class_bias {name!r}: {value!r}; each class's bias must be a finite number"
                )
        object.__setattr__(
            self, "class_bias", {name: float(value) for name, value in self.class_bias.items()}
        )

    def bias_vector(self, class_names) -> np.ndarray:
        """The class biases in the order of ``class_names``; an unknown class is refused."""
        unknown = sorted(set(self.class_bias) - set(class_names))
        if unknown:
            raise InputDataError(
                f"class_bias names {unknown}, which the model does not know (its classes: "
                f"{list(class_names)})"
            )
        return np.array([self.class_bias.get(name, 0.0) for name in class_names])

    def override(self, **values) -> DecisionRule:
        """This rule with the given fields replaced; ``None`` keeps a field as it is."""
        return replace(self, **{key: value for key, value in values.items() if value is not None})


def from_metadata(metadata: dict, **overrides) -> DecisionRule:
    """The rule written in ``metadata`` (a ``model.json``), with ``overrides`` applied.

    A model without a written rule (a network straight from training, or one
    saved by an earlier release) gets the plain rule: one view, no shift.
    """
    written = metadata.get(KEY)
    if written is None:
        log.info("the model carries no decision rule: one view, no prior shift")
        rule = DecisionRule()
    else:
        unknown = set(written) - set(asdict(DecisionRule()))
        if unknown:
            raise InputDataError(f"model.json: unknown decision keys {sorted(unknown)}")
        rule = DecisionRule(**written)
    return rule.override(**overrides)


def attach(metadata: dict, rule: DecisionRule) -> dict:
    """A copy of ``metadata`` that carries ``rule`` (its class biases checked against it)."""
    if rule.class_bias and metadata.get("target", "classes") != "classes":
        raise InputDataError("a class bias applies to classes, not to vote fractions")
    rule.bias_vector(metadata.get("class_names", ()))
    return {**metadata, KEY: asdict(rule)}


def apply_class_bias(proba: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``proba`` times ``exp(bias)`` per class, summed to 1 per row (no bias: unchanged)."""
    if not np.any(bias):
        return proba
    biased = np.asarray(proba, dtype=np.float64) * np.exp(np.asarray(bias, dtype=np.float64))
    return biased / biased.sum(axis=1, keepdims=True)


#: the log-offsets :func:`fit_class_bias` tries for each class
BIAS_GRID = tuple(np.round(np.arange(-2.0, 2.0001, 0.1), 1))


def fit_class_bias(
    proba: np.ndarray,
    y_true: np.ndarray,
    grid: tuple[float, ...] = BIAS_GRID,
    sweeps: int = 3,
    tied: tuple[tuple[int, int], ...] = (),
) -> np.ndarray:
    """Class biases that raise the macro-F1 of ``proba``'s decisions on ``y_true``.

    Coordinate ascent from no bias: each class in turn takes the value of ``grid``
    with the best macro-F1 (ties keep the value it has, so a bias moves only for a
    gain), for ``sweeps`` rounds or until a round changes nothing. The column pairs
    of ``tied`` share one value: for mirror pairs, so that the bias leaves the sense
    of winding to the (mirror-averaged) network and the prior, instead of fitting a
    preference for one sense to a few galaxies. ``proba`` must be held-out
    probabilities of the training split (out-of-fold), never the test split's.
    Returns one log-offset per class.
    """
    from sklearn.metrics import f1_score

    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true)
    if proba.ndim != 2 or len(proba) != len(y_true) or not len(y_true):
        raise InputDataError(f"probabilities of shape {proba.shape} for {len(y_true)} labels")
    log_proba = np.log(np.clip(proba, 1.0e-12, 1.0))
    labels = np.arange(proba.shape[1])

    def score(bias):
        predicted = (log_proba + bias).argmax(axis=1)
        return f1_score(y_true, predicted, labels=labels, average="macro", zero_division=0)

    groups, seen = [], set()
    partner = {a: b for a, b in tied} | {b: a for a, b in tied}
    for column in labels:
        if column not in seen:
            group = [column] + ([partner[column]] if column in partner else [])
            groups.append(group)
            seen.update(group)
    bias = np.zeros(proba.shape[1])
    best = score(bias)
    for _ in range(sweeps):
        moved = False
        for group in groups:
            for value in grid:
                trial = bias.copy()
                trial[group] = value
                trial_score = score(trial)
                if trial_score > best + 1.0e-12:
                    best, bias, moved = trial_score, trial, True
        if not moved:
            break
    return bias


def metadata_path(model_path: str | Path) -> Path:
    """The JSON written beside a model: class names and preprocessing (``model.json``)."""
    return Path(model_path).with_suffix(".json")


def write_model(network_path: str | Path, model_path: str | Path, rule: DecisionRule) -> dict:
    """Save the trained network at ``network_path`` as ``model_path``, carrying ``rule``.

    The ``.keras`` file is copied byte for byte (no TensorFlow needed) and the
    network's JSON is written beside the copy with the rule added, each atomically.
    Returns the new ``model.json`` contents.
    """
    network_meta = metadata_path(network_path)
    for path in (Path(network_path), network_meta):
        if not path.is_file():
            raise InputDataError(f"{path}: not found; train the network first (rule train_cnn)")
    metadata = attach(json.loads(network_meta.read_text()), rule)
    with atomic_path(model_path, suffix=".keras") as temporary:
        shutil.copyfile(network_path, temporary)
    with atomic_path(metadata_path(model_path)) as temporary:
        temporary.write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata
