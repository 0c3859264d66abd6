"""Cheaper CNN training for a config, chosen on the training split only.

    python bench/cnn_budget_select.py RUN_DIR [--config config/config.yaml]
        [--folds 1 | --holdout 0.2] [--workers 2] [--candidates NAME ...]

RUN_DIR is a workflow run folder of that config whose images stage has run (the
default demo run, for instance); only its training shards are opened, never a
test shard. With ``--folds 1`` the part of the training split that
``bench/cnn_select.py`` sets apart (``--holdout``, seeded, stratified) is held
out; with ``--folds K`` every training galaxy is held out once (stratified
K-fold) and the held-out predictions of the folds are scored together. Each
candidate is the config's CNN settings with the keys of :data:`CANDIDATES` set:
the variant is trained on the fitted rows as the workflow trains it (the
balanced variant on a balanced set drawn from them with the config's
``cnn.balanced`` keys, no class weights; the unbalanced one with the config's
class weights) and scored on the held-out rows with the config's test-time
views. Each row gives accuracy, balanced accuracy and macro-F1 there, next to
the majority baseline, and the training's CPU time over all folds (one thread
per training, ``--workers`` at a time).

The rule, fixed before any candidate was scored: per variant, the cheapest
candidate whose held-out macro-F1 and accuracy are each at most ``--tolerance``
(0.01) below the variant's reference (its first candidate: the settings before
the selection) is kept. The workflow then trains the chosen keys on the whole
training split and scores the test split once (``bench/demo_run_time.py`` for
the default demo run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

#: name -> (variant, cnn keys set; "per_class" is cnn.balanced's). The first of a
#: variant is its reference: the demo's settings before this selection.
CANDIDATES = {
    "balanced: 30 epochs, 100 per class": ("balanced", {"epochs": 30, "per_class": 100}),
    "balanced: 20 epochs, 100 per class": ("balanced", {"epochs": 20, "per_class": 100}),
    "balanced: 30 epochs, 60 per class": ("balanced", {"epochs": 30, "per_class": 60}),
    "balanced: 20 epochs, 60 per class": ("balanced", {"epochs": 20, "per_class": 60}),
    "unbalanced: 30 epochs": ("unbalanced", {"epochs": 30}),
    "unbalanced: 20 epochs": ("unbalanced", {"epochs": 20}),
}
SCORES = ("accuracy", "balanced_accuracy", "f1_macro")


def train_settings(cnn: dict, seed: int, variant: str, changes: dict) -> dict:
    """TrainSettings keys of a variant as the workflow builds them (common.smk)."""
    from galmorph.cnn.settings import config_keys

    settings = {key: cnn[key] for key in config_keys()}
    augment = cnn["augment"]
    settings["augment"] = (
        {key: value for key, value in augment.items() if key != "enabled"}
        if augment["enabled"]
        else None
    )
    settings["mirror_pairs"] = [list(pair) for pair in cnn["mirror_pairs"]]
    settings["class_weights"] = cnn["class_weights"] if variant == "unbalanced" else "none"
    settings["seed"] = seed
    settings.update({key: value for key, value in changes.items() if key != "per_class"})
    return settings


def score_candidate(job: dict) -> dict:
    """Train one candidate on one fold's fitted rows; its held-out probabilities."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import cnn_ensemble_select

    from galmorph.cnn import train
    from galmorph.cnn.balance import BalanceSettings, build_balanced_set
    from galmorph.cnn.evaluate import predict_index, tta_views
    from galmorph.cnn.shards import ShardIndex
    from galmorph.cnn.views import Augmentation

    train.configure_threads(1)
    cpu = time.process_time()
    paths, fit_pos, held_pos = job["paths"], job["fit_pos"], job["held_pos"]
    index = ShardIndex.from_paths(paths)
    index.require_not_test("model selection")
    cnn, variant, changes = job["cnn"], job["variant"], job["changes"]
    settings = train.TrainSettings(**train_settings(cnn, job["seed"], variant, changes))
    with tempfile.TemporaryDirectory(prefix="galmorph-budget-select-") as folder:
        if variant == "balanced":
            augment = settings.augment
            side = Augmentation(**augment).region(cnn["crop"]) if augment else cnn["crop"]
            side = min(max(side, cnn["measure_crop"]), index.image_size)
            fit_shard, balanced = Path(folder) / "fit.h5", Path(folder) / "balanced.h5"
            cnn_ensemble_select._fit_part_shard(paths, fit_pos, side, index, fit_shard)
            balance = {**cnn["balanced"], **{k: v for k, v in changes.items() if k == "per_class"}}
            build_balanced_set([fit_shard], balanced, BalanceSettings(
                **balance, crop=side, mirror_pairs=tuple(map(tuple, cnn["mirror_pairs"])),
                seed=job["seed"],
            ))  # fmt: skip
            fitted = ShardIndex.from_paths([balanced])
        else:
            fitted = index.subset(fit_pos)
        result = train.train_model(fitted, settings)
    seconds = time.process_time() - cpu
    views = tta_views(cnn["tta"]["rotations"], cnn["tta"]["mirror"])
    y_true, proba, _ = predict_index(
        result.model, index.subset(held_pos), result.metadata, 64, views
    )
    return {"name": job["name"], "y_true": y_true, "proba": proba, "seconds": seconds,
            "epochs": len(result.history)}  # fmt: skip


def folds(run_dir: Path, holdout: float, n_folds: int, seed: int):
    """The training shards, their index and (fitted, held-out) rows of each fold.

    One fold: the held-out part of ``bench/cnn_select.py``. Several: stratified
    k-fold over the training split (a class with a single galaxy is always fitted).
    """
    import cnn_select

    paths, index, fit_pos, held_pos = cnn_select.held_out_split(run_dir, holdout, seed)
    if n_folds < 2:
        return paths, index, [(fit_pos, held_pos)]
    from sklearn.model_selection import StratifiedKFold

    single = np.bincount(index.labels)[index.labels] < 2
    rows = np.flatnonzero(~single)
    splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    parts = []
    for fit, held in splitter.split(rows, index.labels[rows]):
        parts.append((np.sort(np.concatenate([rows[fit], np.flatnonzero(single)])), rows[held]))
    return paths, index, parts


def choose(table: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Per variant: the cheapest row within ``tolerance`` of its reference's scores (the
    variant's first row)."""
    chosen = []
    for _, rows in table.groupby("variant", sort=False):
        reference = rows.iloc[0]
        good = rows[
            (rows["f1_macro"] >= reference["f1_macro"] - tolerance)
            & (rows["accuracy"] >= reference["accuracy"] - tolerance)
        ]
        chosen.append(good.sort_values("train CPU s", kind="stable").iloc[0])
    return pd.DataFrame(chosen)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--holdout", type=float, default=0.2, help="with --folds 1")
    parser.add_argument("--folds", type=int, default=1, help="k-fold over the training split")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES), metavar="NAME")  # fmt: skip
    args = parser.parse_args(argv)
    from galmorph.cnn.evaluate import compute_metrics

    config = yaml.safe_load(args.config.read_text())
    seed = config["seed"]
    paths, index, parts = folds(args.run_dir, args.holdout, args.folds, seed)
    n_held = sum(len(held) for _, held in parts)
    print(f"{args.config.name}: {len(parts)} fold(s), {n_held} training galaxies held out "
          f"in all (training split only)", flush=True)  # fmt: skip
    jobs = [
        {
            "name": name,
            "variant": CANDIDATES[name][0],
            "changes": CANDIDATES[name][1],
            "cnn": config["cnn"],
            "seed": seed,
            "paths": [str(p) for p in paths],
            "fit_pos": fit,
            "held_pos": held,
        }  # fmt: skip
        for name in args.candidates
        for fit, held in parts
    ]
    pooled = {name: [] for name in args.candidates}
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        for done in pool.map(score_candidate, jobs):
            pooled[done["name"]].append(done)
            print(f"  {done['name']}: a fold trained in {done['seconds']:.0f} s CPU, "
                  f"{done['epochs']} epochs", flush=True)  # fmt: skip
    pairs = tuple(map(tuple, config["cnn"]["mirror_pairs"]))
    rows = []
    for name, runs in pooled.items():
        y_true = np.concatenate([run["y_true"] for run in runs])
        proba = np.concatenate([run["proba"] for run in runs])
        metrics = compute_metrics(y_true, proba, index.class_names, pairs)
        rows.append({"candidate": name, "variant": CANDIDATES[name][0],
                     "train CPU s": sum(run["seconds"] for run in runs)}
                    | {key: metrics[key] for key in SCORES}
                    | {"epochs run": "/".join(str(run["epochs"]) for run in runs)})  # fmt: skip
    held_labels = np.concatenate([index.labels[held] for _, held in parts])
    majority = int(np.bincount(index.labels).argmax())
    baseline = np.zeros((len(held_labels), index.n_classes))
    baseline[:, majority] = 1.0
    scores = compute_metrics(held_labels, baseline, index.class_names, ())
    table = pd.DataFrame(rows)
    shown = pd.concat([
        pd.DataFrame([{"candidate": f"baseline: always {index.class_names[majority]}",
                       "variant": ""} | {key: scores[key] for key in SCORES}]),
        table,
    ])  # fmt: skip
    print()
    print(shown.to_markdown(index=False, floatfmt=".3f"))
    print(f"\nchosen (cheapest within {args.tolerance} of the reference's macro-F1 and "
          "accuracy, held-out training galaxies):")  # fmt: skip
    for _, row in choose(table, args.tolerance).iterrows():
        print(f"  {row['variant']}: {row['candidate']}")
    return table


if __name__ == "__main__":
    main()
