"""The CNN's settings without TensorFlow: what the workflow and the config checks read.

:class:`TrainSettings` is the one list of the ``cnn.*`` keys that shape a training run
(``workflow/rules/common.smk`` builds each variant's settings from its fields), and
:data:`MIN_INPUT_SIZE` the one table of the presets' smallest inputs (the config check
and :func:`galmorph.cnn.models.build_model` both read it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from galmorph.cnn.views import Augmentation
from galmorph.errors import InputDataError

#: Values of ``cnn.class_weights``.
CLASS_WEIGHTS = ("none", "sqrt", "inverse")
#: Values of ``cnn.selection_metric``, each a validation score in the history.
SELECTION_METRICS = ("macro_f1", "balanced_accuracy", "loss")
#: What a network predicts (``TrainSettings.target``): a class, or the GZ2 tree's vote fractions.
TARGETS = ("classes", "vote_fractions")
#: Smallest input side each preset accepts (``study``: every layer keeps >= 1 pixel).
MIN_INPUT_SIZE = {"study": 38, "deeper": 16, "resnet": 16}


@dataclass(frozen=True)
class TrainSettings:
    """The ``cnn.*`` config keys that shape a training run."""

    architecture: str = "study"
    crop: int | None = 174
    input_size: int = 64
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1.0e-3
    validation_fraction: float = 0.1
    #: none | sqrt | inverse: loss weight of a class from its training frequency
    class_weights: str = "none"
    #: tau of the logit-adjusted loss (Menon et al. 2021): the softmax is trained
    #: against labels as if its logits had tau * log(prior) added; 0: plain cross-entropy
    logit_adjustment: float = 0.0
    early_stopping_patience: int = 5
    reduce_lr_patience: int = 3
    #: macro_f1 | balanced_accuracy | loss: the validation score that picks the epoch
    selection_metric: str = "loss"
    #: native pixels of the central crop whose morphology is measured; 0: no measures input
    measure_crop: int = 0
    #: the measures are taken in measure_crop times each of these scales (at most 1)
    measure_scales: tuple = (1.0,)
    #: which measures (galmorph.cnn.measures.MEASURE_SETS) the measures input takes
    measures: str = "morphometry"
    #: the cnn.augment keys (Augmentation); None: every epoch sees the stored pixels
    augment: dict | None = None
    #: class pairs a mirror turns into each other (clockwise <-> anticlockwise)
    mirror_pairs: tuple = ()
    seed: int = 31
    #: classes | vote_fractions: what the network predicts (TARGETS)
    target: str = "classes"

    def __post_init__(self):
        # config files of earlier releases had a boolean
        if isinstance(self.class_weights, bool):
            object.__setattr__(self, "class_weights", "inverse" if self.class_weights else "none")
        if self.class_weights not in CLASS_WEIGHTS:
            raise InputDataError(
                f"cnn.class_weights is {self.class_weights!r}; choose one of "
                f"{', '.join(CLASS_WEIGHTS)}"
            )
        object.__setattr__(self, "logit_adjustment", float(self.logit_adjustment))
        if not 0.0 <= self.logit_adjustment <= 4.0:
            raise InputDataError(
                f"cnn.logit_adjustment is {self.logit_adjustment}; give a tau in [0, 4] "
                "(0: plain cross-entropy, 1: Menon et al.'s logit adjustment)"
            )
        if self.logit_adjustment and self.class_weights != "none":
            raise InputDataError(
                f"cnn.logit_adjustment is {self.logit_adjustment} and cnn.class_weights is "
                f"{self.class_weights!r}: both favour the rare classes; set class_weights: none "
                "or logit_adjustment: 0"
            )
        if self.selection_metric not in SELECTION_METRICS:
            raise InputDataError(
                f"cnn.selection_metric is {self.selection_metric!r}; choose one of "
                f"{', '.join(SELECTION_METRICS)}"
            )
        if self.target not in TARGETS:
            raise InputDataError(f"target is {self.target!r}; choose one of {', '.join(TARGETS)}")
        object.__setattr__(self, "mirror_pairs", tuple(tuple(p) for p in self.mirror_pairs))
        scales = tuple(float(scale) for scale in self.measure_scales)
        if not scales or not all(0.0 < scale <= 1.0 for scale in scales):
            raise InputDataError(
                f"cnn.measure_scales is {list(scales)}; give one or more scales in (0, 1]"
            )
        object.__setattr__(self, "measure_scales", scales)

    def measure_crops(self) -> tuple[int, ...]:
        """The central crops (native pixels) the measures input is measured in; () if none."""
        from galmorph.cnn.measures import measure_crops

        return measure_crops(self.measure_crop, self.measure_scales)

    def augmentation(self) -> Augmentation | None:
        return None if self.augment is None else Augmentation(**self.augment)


@dataclass(frozen=True)
class MeasuresNetworkSettings:
    """``cnn.measures_network``: the ``measures`` variant's dense networks
    (:mod:`galmorph.cnn.measures_network`)."""

    #: networks fitted with seeds seed, seed + 1, ...; their probabilities are averaged
    members: int = 5
    #: units of the one hidden layer
    hidden: int = 64
    learning_rate: float = 1.0e-3
    batch_size: int = 200
    #: epochs at most; each member stops when its validation loss has not improved ...
    max_epochs: int = 300
    #: ... for this many epochs, and keeps its best epoch
    patience: int = 10

    def __post_init__(self):
        for name in ("members", "hidden", "batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputDataError(
                    f"cnn.measures_network.{name} is {value!r}; it must be a whole number >= 1"
                )
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise InputDataError(
                f"cnn.measures_network.learning_rate is {rate!r}; it must be a number > 0"
            )
        object.__setattr__(self, "learning_rate", float(rate))


#: TrainSettings fields the workflow sets per variant or from elsewhere in the config,
#: not copied from ``cnn.<field>``.
DERIVED_FIELDS = (
    "class_weights", "logit_adjustment", "augment", "mirror_pairs", "seed", "target"
)  # fmt: skip


def config_keys() -> tuple[str, ...]:
    """The ``cnn.*`` config keys copied into :class:`TrainSettings` as they are."""
    return tuple(f.name for f in fields(TrainSettings) if f.name not in DERIVED_FIELDS)
