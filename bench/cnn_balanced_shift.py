"""The balanced variant's decisions shifted towards the training split's class mix, held out.

    python bench/cnn_balanced_shift.py RUN_DIR [--candidate NAME] [--holdout 0.2] [--seed 31]

The workflow's ``cnn.prior_shift`` multiplies probabilities by the class
frequencies of the rows a model was trained on; for the balanced variant those
are ``per_class`` of every class, so the shift leaves it unchanged. This script
measures what the shift would do if the balanced variant's prior were the
training split's real class mix instead: it sets the same held-out part of the
training split apart as ``bench/cnn_select.py`` (only training shards are
opened), builds the balanced set from the rest as the workflow does (400 per
class, rotated copies, mirrored partners with the label swap), trains a
``cnn_select`` candidate on it without class weights, and prints accuracy,
macro-F1, balanced accuracy and chirality on the held-out part for each power.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

#: powers of the shift scored on the held-out probabilities
SHIFTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def main(argv: list[str] | None = None) -> list[dict]:
    import cnn_select

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--candidate", default="resnet-96px-measures+descriptors-3-crops",
                        choices=list(cnn_select.CANDIDATES))  # fmt: skip
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--side", type=int, default=192, help="stored side of the balanced set")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from sklearn.model_selection import train_test_split

    from galmorph.cnn import train
    from galmorph.cnn.balance import BalanceSettings, build_balanced_set
    from galmorph.cnn.evaluate import compute_metrics, predict_index, shift_to_prior, tta_views
    from galmorph.cnn.shards import ShardIndex
    from galmorph.images import hdf5

    train.configure_threads(os.cpu_count() or 1)
    paths = cnn_select.training_shards(args.run_dir)
    if not paths:
        sys.exit(f"{args.run_dir}: no training shard (results/images/hdf5/train/shard_*.h5)")
    index = ShardIndex.from_paths(paths)
    index.require_not_test("model selection")
    fit_pos, held_pos = train_test_split(
        np.arange(len(index)), test_size=args.holdout, stratify=index.labels,
        random_state=args.seed,
    )  # fmt: skip
    fit_pos, held_pos = np.sort(fit_pos), np.sort(held_pos)
    side = min(args.side, index.image_size)
    settings = {**cnn_select.BASE, **cnn_select.CANDIDATES[args.candidate]}
    settings.update(class_weights="none", seed=args.seed)
    if args.epochs:
        settings["epochs"] = args.epochs
    with tempfile.TemporaryDirectory(prefix="galmorph-balanced-shift-") as folder:
        fit_shard = Path(folder) / "fit.h5"
        batch = hdf5.read_images(paths, fit_pos, crop=side)
        with hdf5.shard_writer(fit_shard, len(fit_pos), side, index.class_names,
                               attrs={"split": "train"}) as handle:  # fmt: skip
            handle["images"][:] = batch.images
            hdf5.write_rows(handle, batch.asset_id, batch.dr7objid, batch.labels)
        balanced = Path(folder) / "balanced.h5"
        build_balanced_set([fit_shard], balanced, BalanceSettings(
            per_class=args.per_class, flips=True, crop=side, mirror_pairs=cnn_select.PAIRS,
            seed=args.seed,
        ))  # fmt: skip
        result = train.train_model(
            ShardIndex.from_paths([balanced]), train.TrainSettings(**settings)
        )
        views = tta_views(4, True)
        y_true, proba, _ = predict_index(result.model, index.subset(held_pos), result.metadata,
                                         64, views)  # fmt: skip
    split_mix = {"class_counts": np.bincount(index.labels[fit_pos], minlength=index.n_classes)}
    sizes = f"{len(fit_pos)} training galaxies, {len(held_pos)} held out (training split only)"
    print(f"balanced variant of {args.candidate}: {sizes}; shifted to the training mix")
    rows = []
    for shift in SHIFTS:
        metrics = compute_metrics(y_true, shift_to_prior(proba, split_mix, shift),
                                  index.class_names, cnn_select.PAIRS)  # fmt: skip
        rows.append({"shift": shift, **{key: metrics[key] for key in (
            "accuracy", "f1_macro", "balanced_accuracy", "chirality_accuracy")}})  # fmt: skip
        print(f"  shift {shift:.1f}: accuracy {metrics['accuracy']:.3f}, macro-F1 "
              f"{metrics['f1_macro']:.3f}, balanced accuracy {metrics['balanced_accuracy']:.3f}, "
              f"chirality {metrics['chirality_accuracy']:.3f}", flush=True)  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
