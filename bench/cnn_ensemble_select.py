"""Each CNN variant's decision rule, chosen on the training split: unbalanced, balanced, ensemble.

    python bench/cnn_ensemble_select.py RUN_DIR [--candidate NAME ...] [--holdout 0.2 | --folds K]

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

With ``--folds K`` the training split is divided into K stratified folds and the
variants are built K times, each scoring the fold it did not fit: every training
galaxy is scored once (the rare classes on all their galaxies, not a fifth of them).
Several ``--candidate`` names add an unbalanced network and its ensemble each.
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
SCORES = (
    "accuracy", "f1_macro", "balanced_accuracy", "chirality_accuracy", "roc_auc_macro",
    "merger_f1",
)  # fmt: skip


def _fit_part_shard(paths, positions, side, index, path) -> None:
    """The fitted rows of the training split as one shard: the balancing stage's input."""
    from galmorph.images import hdf5

    batch = hdf5.read_images(paths, positions, crop=side)
    attrs = {"split": "train", "source_image_size": index.image_size}
    with hdf5.shard_writer(path, len(positions), side, index.class_names, attrs=attrs) as handle:
        handle["images"][:] = batch.images
        hdf5.write_rows(handle, batch.asset_id, batch.dr7objid, batch.labels)


def _fit_variants(paths, index, fit_pos, candidates, args):
    """Every variant's network built from the fitted rows, as the workflow builds it.

    One unbalanced network per candidate (the first is ``unbalanced``, the others
    ``unbalanced <name>``), one balanced network, and each unbalanced network's
    ensemble with it (``ensemble``, ``ensemble <name>``).
    """
    import cnn_select

    from galmorph.cnn import train
    from galmorph.cnn.balance import BalanceSettings, build_balanced_set
    from galmorph.cnn.ensemble import build_ensemble
    from galmorph.cnn.shards import ShardIndex
    from galmorph.cnn.views import Augmentation

    fit = index.subset(fit_pos)
    models, metadata, seconds = {}, {}, {}
    for position, candidate in enumerate(candidates):
        base = _settings(candidate, args)
        name = "unbalanced" if position == 0 else f"unbalanced {candidate}"
        start = time.perf_counter()
        result = train.train_model(fit, train.TrainSettings(**base))
        models[name], metadata[name] = result.model, result.metadata
        seconds[name] = time.perf_counter() - start
    base = _settings(candidates[0], args)
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
            seed=args.model_seed,
        ))  # fmt: skip
        # as in the workflow: the balanced set's prior is flat, no weights, no adjustment
        settings = train.TrainSettings(**{**base, "class_weights": "none", "logit_adjustment": 0.0})
        result = train.train_model(ShardIndex.from_paths([balanced]), settings)
        models["balanced"], metadata["balanced"] = result.model, result.metadata
        seconds["balanced"] = time.perf_counter() - start
    for name in [key for key in models if key.startswith("unbalanced")]:
        joined = name.replace("unbalanced", "ensemble", 1)
        models[joined], metadata[joined] = build_ensemble(
            {"unbalanced": models[name], "balanced": models["balanced"]},
            {"unbalanced": metadata[name], "balanced": metadata["balanced"]},
        )
        seconds[joined] = seconds[name] + seconds["balanced"]
    return models, metadata, seconds


def _settings(candidate: str, args) -> dict:
    import cnn_select

    base = {**cnn_select.BASE, **cnn_select.CANDIDATES[candidate], "seed": args.model_seed}
    if args.epochs:
        base["epochs"] = args.epochs
    return base


def _scores(y_true, proba, class_names) -> dict:
    import cnn_select

    from galmorph.cnn.evaluate import compute_metrics

    metrics = compute_metrics(y_true, proba, class_names, cnn_select.PAIRS)
    metrics["merger_f1"] = metrics["per_class"].get("merger", {}).get("f1", float("nan"))
    return metrics


def main(argv: list[str] | None = None) -> pd.DataFrame:
    import cnn_select

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--candidate", nargs="+",
                        default=["resnet-96px-measures+descriptors-3-crops"],
                        choices=list(cnn_select.CANDIDATES),
                        help="the unbalanced network's candidate; more than one adds an "
                        "unbalanced network and its ensemble for each")  # fmt: skip
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--folds", type=int, default=0,
                        help="stratified k-fold over the training split instead of one "
                        "held-out part: every galaxy is scored once, by the networks "
                        "fitted on the other folds")  # fmt: skip
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=31, help="draws the held-out part or folds")
    parser.add_argument("--model-seed", type=int, default=None,
                        help="seeds the networks and the balanced set (default: --seed); "
                        "another value scores other networks on the same folds")  # fmt: skip
    parser.add_argument("--save-probabilities", type=Path, default=None, metavar="DIR",
                        help="write each variant's held-out labels and unshifted "
                        "probabilities to DIR/<variant>.npz")  # fmt: skip
    args = parser.parse_args(argv)
    if args.model_seed is None:
        args.model_seed = args.seed
    if args.folds == 1 or args.folds < 0:
        parser.error("--folds takes 0 (one held-out part) or at least 2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from galmorph.cnn import train
    from galmorph.cnn.evaluate import predict_index, shift_to_prior, tta_views

    train.configure_threads(os.cpu_count() or 1)
    if args.folds:
        paths, index, parts = cnn_select.fold_splits(args.run_dir, args.folds, args.seed)
    else:
        paths, index, fit_pos, held_pos = cnn_select.held_out_split(
            args.run_dir, args.holdout, args.seed
        )
        parts = [(fit_pos, held_pos)]
    print(f"{len(index)} training galaxies, {len(parts)} part(s) held out in turn "
          f"({', '.join(str(len(held)) for _, held in parts)} galaxies; training split "
          f"only); candidates {', '.join(args.candidate)}", flush=True)  # fmt: skip
    views = tta_views(4, True)
    # per variant: the held-out rows' labels, unshifted probabilities and fold, and per
    # fold the fitted rows' class counts (each fold's shift uses its own fitted mix)
    held_out: dict[str, dict[str, list]] = {}
    seconds: dict[str, float] = {}
    for fold, (fit_pos, held_pos) in enumerate(parts):
        print(f"part {fold + 1} of {len(parts)}: {len(fit_pos)} fitted, {len(held_pos)} held "
              "out", flush=True)  # fmt: skip
        models, metadata, fold_seconds = _fit_variants(paths, index, fit_pos, args.candidate, args)
        held = index.subset(held_pos)
        for name, model in models.items():
            y_true, proba, _ = predict_index(model, held, metadata[name], 64, views)
            record = held_out.setdefault(name, {"y_true": [], "proba": [], "fold": [],
                                                "counts": [], "metadata": []})  # fmt: skip
            record["y_true"].append(y_true)
            record["proba"].append(proba)
            record["fold"].append(np.full(len(y_true), fold))
            record["counts"].append(metadata[name]["split_class_counts"])
            record["metadata"].append(metadata[name])
            seconds[name] = seconds.get(name, 0.0) + fold_seconds[name]
    y_true = np.concatenate(next(iter(held_out.values()))["y_true"])
    counts = np.sum(next(iter(held_out.values()))["counts"], axis=0)
    majority = int(np.argmax(counts))
    baseline = np.zeros((len(y_true), index.n_classes))
    baseline[:, majority] = 1.0
    base_scores = _scores(y_true, baseline, index.class_names)
    rows = [{"variant": f"baseline: always {index.class_names[majority]}", "prior_shift": 0.0}
            | {key: base_scores[key] for key in SCORES}]  # fmt: skip
    chosen = {}
    for name, record in held_out.items():
        if args.save_probabilities is not None:
            args.save_probabilities.mkdir(parents=True, exist_ok=True)
            np.savez(args.save_probabilities / f"{name.replace(' ', '_')}.npz",
                     y_true=y_true, proba=np.concatenate(record["proba"]),
                     fold=np.concatenate(record["fold"]),
                     fold_class_counts=np.asarray(record["counts"]),
                     split_class_counts=np.asarray(record["counts"]).sum(axis=0),
                     class_names=index.class_names)  # fmt: skip
        scored = {
            shift: _scores(
                y_true,
                np.concatenate(
                    [
                        shift_to_prior(proba, meta, shift)
                        for proba, meta in zip(record["proba"], record["metadata"], strict=True)
                    ]
                ),
                index.class_names,
            )  # fmt: skip
            for shift in SHIFTS
        }
        print(f"{name} (trained in {seconds[name]:.0f} s over {len(parts)} part(s)):")
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
    print("\nchosen on the held-out part(s) of the training split (best macro-F1):")
    print("cnn:\n  prior_shift: {" + ", ".join(
        f"{k}: {v}" for k, v in chosen.items() if k in VARIANTS) + "}")  # fmt: skip
    return table


if __name__ == "__main__":
    main()
