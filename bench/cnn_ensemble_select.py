"""Each CNN variant's decision rule, chosen on the training split: unbalanced, balanced, ensemble.

    python bench/cnn_ensemble_select.py RUN_DIR [--candidate NAME] [--holdout 0.2] [--seed 31]

RUN_DIR is a workflow run folder whose images stage has run; only its training
shards are opened (test shards are refused). The same seeded, stratified part
of the training split as ``bench/cnn_select.py`` is set apart. On the rest the
script builds the three variants as the workflow does: the unbalanced network
(the ``cnn_select`` candidate, its class weights), the balanced network
(``--per-class`` of every class, rotated copies and mirrored partners with the
label swap, no class weights) and their ensemble
(:func:`galmorph.cnn.ensemble.build_ensemble`). Each is scored on the held-out
part, averaged over 4 turns and their mirrors as in evaluation, at every power
of ``cnn.prior_shift`` in :data:`SHIFTS` (towards the fitted rows' class mix,
for every variant); the power with the best macro-F1 (ties to the smaller) is
each variant's choice, printed as the ``cnn.prior_shift`` mapping for the config.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

#: powers of cnn.prior_shift scored on every variant's held-out probabilities
SHIFTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
VARIANTS = ("unbalanced", "balanced", "ensemble")
SCORES = ("accuracy", "f1_macro", "balanced_accuracy", "chirality_accuracy", "roc_auc_macro")


def _fit_part_shard(paths, positions, side, index, path) -> None:
    """The fitted rows of the training split as one shard: the balancing stage's input."""
    from galmorph.images import hdf5

    batch = hdf5.read_images(paths, positions, crop=side)
    attrs = {"split": "train", "source_image_size": index.image_size}
    with hdf5.shard_writer(path, len(positions), side, index.class_names, attrs=attrs) as handle:
        handle["images"][:] = batch.images
        hdf5.write_rows(handle, batch.asset_id, batch.dr7objid, batch.labels)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    import cnn_select

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--candidate", default="resnet-96px-measures+descriptors-3-crops",
                        choices=list(cnn_select.CANDIDATES))  # fmt: skip
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--save-probabilities", type=Path, default=None, metavar="DIR",
                        help="write each variant's held-out labels and unshifted "
                        "probabilities to DIR/<variant>.npz")  # fmt: skip
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from galmorph.cnn import train
    from galmorph.cnn.balance import BalanceSettings, build_balanced_set
    from galmorph.cnn.ensemble import build_ensemble
    from galmorph.cnn.evaluate import compute_metrics, predict_index, shift_to_prior, tta_views
    from galmorph.cnn.shards import ShardIndex
    from galmorph.cnn.views import Augmentation

    train.configure_threads(os.cpu_count() or 1)
    paths, index, fit_pos, held_pos = cnn_select.held_out_split(
        args.run_dir, args.holdout, args.seed
    )
    fit, held = index.subset(fit_pos), index.subset(held_pos)
    base = {**cnn_select.BASE, **cnn_select.CANDIDATES[args.candidate], "seed": args.seed}
    if args.epochs:
        base["epochs"] = args.epochs
    print(f"{len(fit_pos)} training galaxies, {len(held_pos)} held out (training split only); "
          f"candidate {args.candidate}", flush=True)  # fmt: skip
    models, metadata, seconds = {}, {}, {}
    start = time.perf_counter()
    result = train.train_model(fit, train.TrainSettings(**base))
    models["unbalanced"], metadata["unbalanced"] = result.model, result.metadata
    seconds["unbalanced"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="galmorph-ensemble-select-") as folder:
        # the balancing stage's stored side: the crop's augmented reach, or the measured crop
        augment = base["augment"]
        side = Augmentation(**augment).region(base["crop"]) if augment else base["crop"]
        side = min(max(side, base["measure_crop"]), index.image_size)
        start = time.perf_counter()
        _fit_part_shard(paths, fit_pos, side, index, Path(folder) / "fit.h5")
        balanced = Path(folder) / "balanced.h5"
        build_balanced_set([Path(folder) / "fit.h5"], balanced, BalanceSettings(
            per_class=args.per_class, flips=True, crop=side, mirror_pairs=cnn_select.PAIRS,
            seed=args.seed,
        ))  # fmt: skip
        # as in the workflow: the balanced set's prior is flat, no weights, no adjustment
        settings = train.TrainSettings(**{**base, "class_weights": "none", "logit_adjustment": 0.0})
        result = train.train_model(ShardIndex.from_paths([balanced]), settings)
        models["balanced"], metadata["balanced"] = result.model, result.metadata
        seconds["balanced"] = time.perf_counter() - start
    models["ensemble"], metadata["ensemble"] = build_ensemble(
        {name: models[name] for name in ("unbalanced", "balanced")}, metadata
    )
    counts = metadata["ensemble"]["split_class_counts"]
    seconds["ensemble"] = seconds["unbalanced"] + seconds["balanced"]
    views = tta_views(4, True)
    majority = int(np.argmax(counts))
    baseline = np.zeros((len(held), index.n_classes))
    baseline[:, majority] = 1.0
    base_scores = compute_metrics(held.labels, baseline, index.class_names, cnn_select.PAIRS)
    rows = [{"variant": f"baseline: always {index.class_names[majority]}", "prior_shift": 0.0}
            | {key: base_scores[key] for key in SCORES}]  # fmt: skip
    chosen = {}
    for name in VARIANTS:
        y_true, proba, _ = predict_index(models[name], held, metadata[name], 64, views)
        if args.save_probabilities is not None:
            args.save_probabilities.mkdir(parents=True, exist_ok=True)
            np.savez(args.save_probabilities / f"{name}.npz", y_true=y_true, proba=proba,
                     split_class_counts=metadata[name]["split_class_counts"],
                     class_names=index.class_names)  # fmt: skip
        scored = {
            shift: compute_metrics(
                y_true,
                shift_to_prior(proba, metadata[name], shift),
                index.class_names,
                cnn_select.PAIRS,
            )  # fmt: skip
            for shift in SHIFTS
        }
        print(f"{name} (trained in {seconds[name]:.0f} s):")
        for shift, metrics in scored.items():
            print(f"  prior_shift {shift:.1f}: " + ", ".join(
                f"{key} {metrics[key]:.3f}" for key in SCORES))  # fmt: skip
        chosen[name] = max(SHIFTS, key=lambda shift: (scored[shift]["f1_macro"], -shift))
        rows.append({"variant": name, "prior_shift": chosen[name]}
                    | {key: scored[chosen[name]][key] for key in SCORES})  # fmt: skip
        sys.stdout.flush()
    table = pd.DataFrame(rows)
    print()
    print(table.to_markdown(index=False, floatfmt=".3f"))
    print("\nchosen on the held-out part of the training split (best macro-F1):")
    print("cnn:\n  prior_shift: {" + ", ".join(f"{k}: {v}" for k, v in chosen.items()) + "}")
    return table


if __name__ == "__main__":
    main()
