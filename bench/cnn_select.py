"""Choose CNN settings on the training split only: candidates scored on an internal held-out part.

    python bench/cnn_select.py RUN_DIR [--holdout 0.2] [--candidates NAME ...]

RUN_DIR is a workflow run folder whose images stage has run (for example the
folder of ``bench/real_sdss.sh``); only its *training* shards are opened,
never a test shard (the script refuses test shards outright). A seeded,
stratified part of the training split (``--holdout``) is set apart; every
candidate is trained on the rest (with its own validation tenth for choosing
the epoch, as in the workflow) and scored on the held-out part. The table
gives, per candidate, accuracy, macro-F1, balanced accuracy, chirality (true
spirals told clockwise from anticlockwise) and training time, next to the
majority baseline. Each candidate's held-out probabilities are also scored with
the decision shifted towards the training prior (``cnn.prior_shift``, a power in
:data:`PRIOR_SHIFTS`; no retraining): the row gives the power with the best
macro-F1 and its scores. The winner (highest macro-F1, ties to the smaller
shift) is printed as the ``cnn:`` keys to put in the config; the workflow then
trains it on the whole training split and scores the test split once
(``bench/real_sdss.sh``).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

AUGMENT = {
    "rotate": True,
    "max_zoom": 0.1,
    "max_shift": 0.04,
    "brightness": 0.05,
    "contrast": 0.15,
    "noise": 0.02,
    "mirror": True,
}
PAIRS = (("spiral_cw", "spiral_acw"),)
BASE = dict(
    architecture="resnet",
    crop=96,
    input_size=64,
    epochs=30,
    batch_size=64,
    learning_rate=2.0e-3,
    validation_fraction=0.1,
    class_weights="sqrt",
    early_stopping_patience=10,
    reduce_lr_patience=3,
    selection_metric="macro_f1",
    measure_crop=96,
    augment=AUGMENT,
    mirror_pairs=PAIRS,
)
#: powers of cnn.prior_shift tried on every candidate's held-out probabilities (up to 1:
#: a logit-adjusted network's softmax leaves the whole prior out)
PRIOR_SHIFTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
#: name -> changes to BASE
CANDIDATES = {
    "resnet-96px-measures": {},
    "resnet-96px-no-measures": {"measure_crop": 0},
    "resnet-96px-measures-45-epochs": {"epochs": 45, "early_stopping_patience": 15},
    "resnet-128px-measures": {"crop": 128},
    "resnet-96px-measures-inverse-weights": {"class_weights": "inverse"},
    "resnet-96px-at-96-measures": {"input_size": 96},
    "resnet-96px-measures-unweighted": {"class_weights": "none"},
    "resnet-96px-measures+descriptors": {"measures": "morphometry+descriptors"},
    "resnet-96px-measures+descriptors-3-crops": {
        "measures": "morphometry+descriptors", "measure_crop": 128,
        "measure_scales": (0.5, 0.75, 1.0),
    },
    # the logit-adjusted loss (Menon et al. 2021) in place of the sqrt class weights
    "resnet-96px-measures+descriptors-3-crops-logit-adjusted": {
        "measures": "morphometry+descriptors", "measure_crop": 128,
        "measure_scales": (0.5, 0.75, 1.0), "class_weights": "none", "logit_adjustment": 1.0,
    },
    "study-174px (before)": dict(
        architecture="study", crop=174, class_weights="inverse", learning_rate=1.0e-3,
        selection_metric="loss", measure_crop=0, augment=None, mirror_pairs=(),
        early_stopping_patience=6,
    ),
}  # fmt: skip


def training_shards(run_dir: Path) -> list[str]:
    """The training split's shards of a run folder; the test split's are never listed."""
    return sorted(glob.glob(str(run_dir / "results/images/hdf5/train/shard_*.h5")))


def held_out_split(run_dir: Path, holdout: float, seed: int):
    """The training shards, their row index and the fitted / held-out rows (sorted).

    The one place the held-out part is drawn: every selection script sets the same
    galaxies apart for the same ``holdout`` and ``seed``. Test shards are refused.
    """
    from sklearn.model_selection import train_test_split

    from galmorph.cnn.shards import ShardIndex

    paths = training_shards(run_dir)
    if not paths:
        sys.exit(f"{run_dir}: no training shard (results/images/hdf5/train/shard_*.h5)")
    index = ShardIndex.from_paths(paths)
    index.require_not_test("model selection")
    # A class with a single training galaxy cannot be stratified: it is fitted, not held out.
    counts = np.bincount(index.labels, minlength=index.n_classes)
    single = counts[index.labels] < 2
    rows = np.flatnonzero(~single)
    fit_pos, held_pos = train_test_split(
        rows, test_size=holdout, stratify=index.labels[rows], random_state=seed
    )
    fit_pos = np.concatenate([fit_pos, np.flatnonzero(single)])
    return paths, index, np.sort(fit_pos), np.sort(held_pos)


def fold_splits(run_dir: Path, folds: int, seed: int):
    """The training shards, their row index and ``folds`` (fitted, held-out) row pairs.

    Stratified k-fold over the training split: every galaxy is held out once, so a
    rare class is scored on all its galaxies rather than on a fifth of them. As in
    :func:`held_out_split`, a class with a single galaxy is always fitted, and test
    shards are refused.
    """
    from sklearn.model_selection import StratifiedKFold

    from galmorph.cnn.shards import ShardIndex

    paths = training_shards(run_dir)
    if not paths:
        sys.exit(f"{run_dir}: no training shard (results/images/hdf5/train/shard_*.h5)")
    index = ShardIndex.from_paths(paths)
    index.require_not_test("model selection")
    counts = np.bincount(index.labels, minlength=index.n_classes)
    single = np.flatnonzero(counts[index.labels] < 2)
    rows = np.flatnonzero(counts[index.labels] >= 2)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pairs = [
        (np.sort(np.concatenate([rows[fit], single])), np.sort(rows[held]))
        for fit, held in splitter.split(rows, index.labels[rows])
    ]
    return paths, index, pairs


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--epochs", type=int, default=None, help="override every candidate's")
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument(
        "--save-probabilities", type=Path, default=None, metavar="DIR",
        help="write each candidate's held-out labels, probabilities (before any prior shift) "
        "and training class counts to DIR/<candidate>.npz, to try decision rules later "
        "without retraining",
    )  # fmt: skip
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE",
        help="override a setting of every candidate (YAML value), e.g. input_size=32",
    )  # fmt: skip
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from galmorph.cnn import train
    from galmorph.cnn.evaluate import compute_metrics, predict_index, shift_to_prior, tta_views

    train.configure_threads(os.cpu_count() or 1)
    _, index, fit_pos, held_pos = held_out_split(args.run_dir, args.holdout, args.seed)
    fit, held = index.subset(fit_pos), index.subset(held_pos)
    majority = np.bincount(fit.labels).argmax()
    baseline = np.zeros((len(held), index.n_classes))
    baseline[:, majority] = 1.0
    rows = []

    def row(name, metrics, seconds, shift=0.0, shifted=None):
        rows.append({
            "candidate": name,
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["f1_macro"],
            "balanced_accuracy": metrics["balanced_accuracy"],
            "chirality": metrics["chirality_accuracy"],
            "macro_auc": metrics["roc_auc_macro"],
            "train_s": seconds,
            "prior_shift": shift,
            "shifted_accuracy": (shifted or metrics)["accuracy"],
            "shifted_macro_f1": (shifted or metrics)["f1_macro"],
            "shifted_balanced_accuracy": (shifted or metrics)["balanced_accuracy"],
        })  # fmt: skip

    row("baseline: always " + index.class_names[majority],
        compute_metrics(held.labels, baseline, index.class_names, PAIRS), 0.0)  # fmt: skip
    print(f"{len(fit)} training galaxies, {len(held)} held out (training split only)")
    for name in args.candidates:
        changes = {**CANDIDATES[name], **overrides, "seed": args.seed}
        settings = train.TrainSettings(**{**BASE, **changes})
        if args.epochs:
            settings = replace(settings, epochs=args.epochs)
        start = time.perf_counter()
        result = train.train_model(fit, settings)
        seconds = time.perf_counter() - start
        # scored as the workflow scores the test split: averaged over 4 turns and their mirrors
        views = tta_views(4, bool(settings.mirror_pairs))
        y_true, proba, _ = predict_index(result.model, held, result.metadata, 64, views)
        if args.save_probabilities is not None:
            args.save_probabilities.mkdir(parents=True, exist_ok=True)
            np.savez(args.save_probabilities / f"{name}.npz", y_true=y_true, proba=proba,
                     class_counts=result.metadata["class_counts"],
                     class_names=index.class_names)  # fmt: skip
        scored = {
            shift: compute_metrics(
                y_true, shift_to_prior(proba, result.metadata, shift), index.class_names, PAIRS
            )
            for shift in PRIOR_SHIFTS
        }
        best_shift = max(PRIOR_SHIFTS, key=lambda shift: (scored[shift]["f1_macro"], -shift))
        for shift, metrics in scored.items():
            print(f"  prior_shift {shift:.1f}: accuracy {metrics['accuracy']:.3f}, macro-F1 "
                  f"{metrics['f1_macro']:.3f}, balanced accuracy "
                  f"{metrics['balanced_accuracy']:.3f}")  # fmt: skip
        row(name, scored[0.0], seconds, best_shift, scored[best_shift])
        print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format="%.3f"), flush=True)
        import keras

        keras.backend.clear_session()
    table = pd.DataFrame(rows)
    print()
    print(table.to_markdown(index=False, floatfmt=".3f"))
    candidates = table.iloc[1:]
    winner = candidates.loc[candidates["shifted_macro_f1"].idxmax()]
    best = winner["candidate"]
    print(f"\nchosen on the held-out part of the training split: {best}, "
          f"prior_shift {winner['prior_shift']}")  # fmt: skip
    chosen = {**BASE, **CANDIDATES[best], **overrides, "prior_shift": winner["prior_shift"]}
    print("cnn:")
    for key, value in chosen.items():
        print(f"  {key}: {value}")
    return table


if __name__ == "__main__":
    main()
