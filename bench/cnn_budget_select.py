"""Cheaper CNN training for a config, chosen on the training split only.

    python bench/cnn_budget_select.py RUN_DIR [--config config/config.yaml]
        [--holdout 0.2] [--workers 2] [--candidates NAME ...]

RUN_DIR is a workflow run folder of that config whose images stage has run (the
default demo run, for instance); only its training shards are opened, never a
test shard. The part of the training split that ``bench/cnn_select.py`` sets
apart (``--holdout``, seeded, stratified) is held out. Each candidate is the
config's own CNN settings with a few of them changed (:data:`CANDIDATES`): the
variant is trained on the rest of the training split as the workflow trains it
(the balanced variant on a balanced set drawn from that rest with the config's
``cnn.balanced`` keys, no class weights; the unbalanced one with the config's
class weights) and scored on the held-out part with the config's test-time
views. Each row gives accuracy, balanced accuracy and macro-F1 there, next to
the majority baseline, and the training's CPU time (one thread per candidate,
``--workers`` candidates at a time).

The rule, fixed before any candidate was scored: per variant, the cheapest
candidate whose held-out macro-F1 and accuracy are each at most ``--tolerance``
(0.01) below the configured settings' is kept. The chosen keys are printed;
the workflow then trains them on the whole training split and scores the test
split once (``bench/demo_run_time.py`` for the default demo run).
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

#: name -> (variant, changes to the config's cnn keys; "per_class" is cnn.balanced's)
CANDIDATES = {
    "balanced: as configured": ("balanced", {}),
    "balanced: 20 epochs": ("balanced", {"epochs": 20}),
    "balanced: 60 per class": ("balanced", {"per_class": 60}),
    "balanced: 60 per class, 20 epochs": ("balanced", {"per_class": 60, "epochs": 20}),
    "unbalanced: as configured": ("unbalanced", {}),
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
    """Train one candidate on the fitted rows and score it on the held-out rows."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import cnn_ensemble_select
    import cnn_select

    from galmorph.cnn import train
    from galmorph.cnn.balance import BalanceSettings, build_balanced_set
    from galmorph.cnn.evaluate import compute_metrics, predict_index, tta_views
    from galmorph.cnn.shards import ShardIndex
    from galmorph.cnn.views import Augmentation

    train.configure_threads(1)
    cpu = time.process_time()
    paths, index, fit_pos, held_pos = cnn_select.held_out_split(
        Path(job["run_dir"]), job["holdout"], job["seed"]
    )
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
    held = index.subset(held_pos)
    views = tta_views(cnn["tta"]["rotations"], cnn["tta"]["mirror"])
    y_true, proba, _ = predict_index(result.model, held, result.metadata, 64, views)
    pairs = tuple(map(tuple, cnn["mirror_pairs"]))
    metrics = compute_metrics(y_true, proba, index.class_names, pairs)
    row = {"candidate": job["name"], "variant": variant, "train CPU s": seconds}
    return row | {key: metrics[key] for key in SCORES} | {"epochs run": len(result.history)}


def choose(table: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Per variant: the cheapest row within ``tolerance`` of the configured one's scores."""
    chosen = []
    for _, rows in table.groupby("variant", sort=False):
        configured = rows[rows["candidate"].str.endswith("as configured")].iloc[0]
        good = rows[
            (rows["f1_macro"] >= configured["f1_macro"] - tolerance)
            & (rows["accuracy"] >= configured["accuracy"] - tolerance)
        ]
        chosen.append(good.sort_values("train CPU s").iloc[0])
    return pd.DataFrame(chosen)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES), metavar="NAME")  # fmt: skip
    args = parser.parse_args(argv)
    import cnn_select

    from galmorph.cnn.evaluate import compute_metrics

    config = yaml.safe_load(args.config.read_text())
    seed = config["seed"]
    _, index, fit_pos, held_pos = cnn_select.held_out_split(args.run_dir, args.holdout, seed)
    print(f"{args.config.name}: {len(fit_pos)} training galaxies fitted, {len(held_pos)} "
          f"held out (training split only)", flush=True)  # fmt: skip
    jobs = [
        {
            "name": name,
            "variant": CANDIDATES[name][0],
            "changes": CANDIDATES[name][1],
            "cnn": config["cnn"],
            "seed": seed,
            "run_dir": str(args.run_dir),
            "holdout": args.holdout,
        }  # fmt: skip
        for name in args.candidates
    ]
    rows = []
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        for row in pool.map(score_candidate, jobs):
            print(f"  {row['candidate']}: macro-F1 {row['f1_macro']:.3f}, accuracy "
                  f"{row['accuracy']:.3f}, {row['train CPU s']:.0f} s CPU", flush=True)  # fmt: skip
            rows.append(row)
    held_labels = index.labels[held_pos]
    majority = int(np.bincount(index.labels[fit_pos]).argmax())
    baseline = np.zeros((len(held_pos), index.n_classes))
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
    if any(name.endswith("as configured") for name in table["candidate"]):
        print(f"\nchosen (cheapest within {args.tolerance} of the configured macro-F1 and "
              "accuracy, held-out part of the training split):")  # fmt: skip
        for _, row in choose(table, args.tolerance).iterrows():
            print(f"  {row['variant']}: {row['candidate']}")
    return table


if __name__ == "__main__":
    main()
