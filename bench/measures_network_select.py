"""The ``measures`` variant scored on the training split's folds, its probabilities saved.

    python bench/measures_network_select.py RUN_DIR [--folds 3] [--members 5 ...]
        [--save-probabilities DIR]

RUN_DIR is a workflow run folder whose images stage has run; only its training
shards are opened (test shards are refused). The folds are
``bench/cnn_select.py``'s (:func:`cnn_select.fold_splits`, the same ``--seed``), so
the saved ``DIR/measures.npz`` joins the CNNs' held-out probabilities of
``bench/cnn_ensemble_select.py --folds K --save-probabilities`` in
``bench/ensemble_from_probabilities.py``: the three-member ensemble scored without
training a CNN again.

On every fold the members (:mod:`galmorph.cnn.measures_network`, the settings of
``cnn.measures_network`` given by the options) are fitted on the other folds as
the workflow fits them, and the held-out galaxies are scored with the
evaluation's views: the model reads no pixel, so a turned view gives the same
measures and only the mirrored view (winding negated, probabilities mapped back
through the mirror pairs) differs from the galaxy as it is. The measures of every
training galaxy are taken once and sliced per fold. The table gives the variant
at each power of ``cnn.prior_shift`` beside the majority baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

SHIFTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
SCORES = ("accuracy", "f1_macro", "balanced_accuracy", "chirality_accuracy", "merger_f1")


def held_out_probabilities(model, features, measure_set: str, mirror: np.ndarray, tta_mirror):
    """The evaluation's view average for a pixel-free model: as it is, and mirrored."""
    from galmorph.cnn import measures

    image = np.zeros((len(features), *model.input["image"].shape[1:]), np.float32)
    proba = model.predict({"image": image, "measures": features}, verbose=0)
    if not tta_mirror:
        return proba
    mirrored = measures.mirror(features, measure_set)
    flipped = model.predict({"image": image, "measures": mirrored}, verbose=0)
    # column j of a mirrored view counts for class mirror[j]
    return (proba + flipped[:, mirror]) / 2.0


def main(argv: list[str] | None = None) -> pd.DataFrame:
    import cnn_select

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=31, help="draws the folds, as cnn_select's")
    parser.add_argument("--model-seed", type=int, default=None,
                        help="seeds the members (default: --seed)")  # fmt: skip
    parser.add_argument("--candidate", default="resnet-96px-measures+descriptors-3-crops",
                        choices=list(cnn_select.CANDIDATES),
                        help="the cnn_select candidate whose measures are read")  # fmt: skip
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--save-probabilities", type=Path, default=None, metavar="DIR")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds takes at least 2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from galmorph.cnn import train
    from galmorph.cnn.data import index_measures
    from galmorph.cnn.evaluate import compute_metrics, shift_to_prior
    from galmorph.cnn.measures_network import fit_members, join_members
    from galmorph.cnn.settings import MeasuresNetworkSettings
    from galmorph.cnn.views import mirror_map

    train.configure_threads(os.cpu_count() or 1)
    base = {**cnn_select.BASE, **cnn_select.CANDIDATES[args.candidate]}
    base |= {"seed": args.seed if args.model_seed is None else args.model_seed}
    settings = train.TrainSettings(**base)
    network = MeasuresNetworkSettings(members=args.members, hidden=args.hidden)
    paths, index, parts = cnn_select.fold_splits(args.run_dir, args.folds, args.seed)
    mirror = mirror_map(index.class_names, settings.mirror_pairs)
    start = time.perf_counter()
    features = index_measures(index, settings.measure_crops(), settings.measures)
    measured = time.perf_counter() - start
    print(f"{len(index)} training galaxies measured in {measured:.0f} s; {len(parts)} folds; "
          f"{network}", flush=True)  # fmt: skip
    y_true, proba, fold, counts, fit_seconds = [], [], [], [], 0.0
    for number, (fit_pos, held_pos) in enumerate(parts):
        start = time.perf_counter()
        fit = index.subset(fit_pos)
        members, _, _ = fit_members(
            features[fit_pos], fit.labels, fit.groups, index.n_classes, settings, network, mirror
        )
        fit_seconds += time.perf_counter() - start
        model = join_members(members, settings.input_size, features.shape[1])
        proba.append(held_out_probabilities(
            model, features[held_pos], settings.measures, mirror, tta_mirror=True
        ))  # fmt: skip
        y_true.append(index.labels[held_pos])
        fold.append(np.full(len(held_pos), number))
        counts.append(np.bincount(fit.labels, minlength=index.n_classes))
    y_true, proba, fold = np.concatenate(y_true), np.concatenate(proba), np.concatenate(fold)
    if args.save_probabilities is not None:
        args.save_probabilities.mkdir(parents=True, exist_ok=True)
        np.savez(args.save_probabilities / "measures.npz", y_true=y_true, proba=proba, fold=fold,
                 fold_class_counts=np.asarray(counts), split_class_counts=np.sum(counts, axis=0),
                 class_names=index.class_names)  # fmt: skip
    majority = int(np.argmax(np.sum(counts, axis=0)))
    rows = []
    for name, shift, scored in [("baseline: the majority class", 0.0, np.eye(index.n_classes)[
        np.full(len(y_true), majority)])] + [
        ("measures", shift, np.concatenate([
            shift_to_prior(proba[fold == k], {"split_class_counts": counts[k]}, shift)
            for k in range(len(parts))
        ])) for shift in SHIFTS
    ]:  # fmt: skip
        metrics = compute_metrics(y_true, scored, index.class_names, cnn_select.PAIRS)
        metrics["merger_f1"] = metrics["per_class"].get("merger", {}).get("f1", float("nan"))
        rows.append({"variant": name, "prior_shift": shift} | {k: metrics[k] for k in SCORES})
    table = pd.DataFrame(rows)
    print(f"members fitted in {fit_seconds:.0f} s over {len(parts)} folds "
          f"(measuring: {measured:.0f} s)")  # fmt: skip
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return table


if __name__ == "__main__":
    main()
