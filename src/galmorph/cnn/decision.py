"""A model's decision rule: how its probabilities on an image are made and decided.

A trained network gives probabilities for one view of an image; the workflow's
evaluation averages them over turned and mirrored views (test-time augmentation)
and shifts them towards the training split's class mix (``cnn.prior_shift``).
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from galmorph.errors import InputDataError
from galmorph.io import atomic_path

log = logging.getLogger(__name__)

#: the model.json key that holds the rule
KEY = "decision"


@dataclass(frozen=True)
class DecisionRule:
    """Test-time views and prior shift of one model.

    Attributes
    ----------
    tta_rotations : int
        Views turned by 360/n degrees (1: the image as it is).
    tta_mirror : bool
        Each view also mirrored, with the labels of the mirror pairs swapped.
    prior_shift : float
        Power (>= 0, finite) of the training split's class frequencies that the
        averaged probabilities are multiplied by (0 leaves them as trained).
    """

    tta_rotations: int = 1
    tta_mirror: bool = False
    prior_shift: float = 0.0

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
    """A copy of ``metadata`` that carries ``rule``."""
    return {**metadata, KEY: asdict(rule)}


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
