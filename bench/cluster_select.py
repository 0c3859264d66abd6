"""Choose the clustering's preprocessing, representation and method settings on the training split.

    python bench/cluster_select.py RUN_DIR [--folds 3] [--stage all|representation|methods]

RUN_DIR is a workflow run folder whose images stage has run (for example the
folder of ``bench/real_sdss.sh``, or a demo run). Only its *training* shards are
opened, never a test shard. The training split is cut into seeded, stratified
folds; each candidate is fitted (reduction and clustering) on the other folds
and scored on the held-out one, the way the workflow fits on train and assigns
test. Scores are the mean over folds of ARI, NMI and the accuracy of
"cluster -> its majority class" (the majority mapping learnt on the fitting folds).

1. Representations: every preprocessing / representation candidate, clustered
   with k-means at k = number of classes, so that only the representation
   differs. The winner has the highest mean ARI.
2. Methods: on the winning representation, each method's settings grid; each
   method's winner (highest mean ARI) is printed as config keys.

The workflow then fits the winners on the whole training split and scores the
test split once (``bench/real_sdss.sh``; docs/clustering.md has the tables).
"""

from __future__ import annotations

import argparse
import glob
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from galmorph.clustering import make_clusterer, run_clustering  # noqa: E402
from galmorph.images import hdf5  # noqa: E402
from galmorph.metrics import majority_accuracy, majority_mapping  # noqa: E402
from galmorph.reduction.descriptors import MorphologyDescriptors  # noqa: E402
from galmorph.reduction.pca import FastIncrementalPCA  # noqa: E402
from galmorph.reduction.pipeline import STUDY_PREPROCESS, flatten, make_aligner  # noqa: E402

ALIGNED = {
    "size": 48,
    "recentre": True,
    "align": True,
    "mask_neighbours": True,
    "flux": "total",
    "stretch": "log",
}
#: name -> (crop, representation, preprocess); ``{crop}`` is the run's reduction crop
REPRESENTATIONS = {
    "study: raw 174 px, PCA 75": (174, "pca", STUDY_PREPROCESS),
    "aligned pixels, PCA 75": (None, "pca", ALIGNED),
    "descriptors": (None, "descriptors", ALIGNED),
    "descriptors, asinh": (None, "descriptors", {**ALIGNED, "stretch": "asinh"}),
    "descriptors, no neighbour mask": (None, "descriptors", {**ALIGNED, "mask_neighbours": False}),
    "descriptors, not aligned": (
        None, "descriptors", {**ALIGNED, "align": False, "recentre": False}
    ),
    "descriptors, linear": (None, "descriptors", {**ALIGNED, "stretch": "linear"}),
}  # fmt: skip


def method_grid(n_classes: int) -> dict[str, list[dict]]:
    """Candidate settings of every method, around the number of classes."""
    ks = sorted({max(2, n_classes - 1), n_classes, n_classes + 2, 2 * n_classes})
    grid = {
        "kmeans": [
            dict(n_clusters=k, algorithm="full", batch_size=250, max_iter=500, n_init=10)
            for k in ks
        ],
        "hierarchical": [
            dict(n_clusters=k, method=m, metric=d, max_fit_samples=5000)
            for k in ks
            for m, d in (("ward", "euclidean"), ("average", "cosine"), ("complete", "correlation"))
        ],
        "hdbscan": [
            dict(
                min_cluster_size=size,
                min_samples=samples,
                cluster_selection_epsilon=0.0,
                cluster_selection_method=how,
                metric="euclidean",
                n_dimensions=dims,
            )
            for dims, size, samples, how in itertools.product(
                (2, 3, 0), (10, 25, 60), (0, 5), ("eom", "leaf")
            )
        ],
        "som": [
            dict(
                rows=r,
                cols=c,
                sigma=1.0,
                learning_rate=0.5,
                neighborhood_function="gaussian",
                activation_distance="euclidean",
                iterations=10000,
            )  # fmt: skip
            for r, c in ((2, 3), (3, 3), (3, 4), (4, 4))
        ],
        "gmm": [
            dict(
                n_components=k,
                covariance_type=cov,
                tol=1.0e-4,
                max_iter=500,
                init_params="k-means++",
                reg_covar=1.0e-3,
            )  # fmt: skip
            for k in ks
            for cov in ("full", "diag")
        ],
    }
    return grid


def training_shards(run_dir: Path) -> list[str]:
    """The training split's shards of a run folder; the test split's are never listed."""
    return sorted(glob.glob(str(run_dir / "results/images/hdf5/train/shard_*.h5")))


def load_training(run_dir: Path, crop: int):
    shards = training_shards(run_dir)
    if not shards:
        raise SystemExit(f"no training shards under {run_dir}/results/images/hdf5/train")
    if any("/test/" in path for path in shards):
        raise SystemExit("refusing to read a test shard")
    batch = hdf5.read_images(shards, np.arange(hdf5.count(shards)), crop=crop)
    return batch.images, np.asarray(batch.labels, dtype=np.int64), hdf5.read_class_names(shards)


def representation_features(images, crop: int, representation: str, preprocess: dict):
    """Per-image inputs of the representation (fit-free part): aligned rows or descriptors."""
    side = images.shape[1]
    start = (side - crop) // 2
    aligned = make_aligner(preprocess).transform(
        images[:, start : start + crop, start : start + crop]
    )
    if representation == "descriptors":
        return MorphologyDescriptors().transform(aligned)
    return flatten(aligned)


def fold_features(rows: np.ndarray, representation: str, fit, hold, n_components: int):
    """Fit PCA (if any) and the scaler on ``fit`` rows only; features of fit and hold."""
    if representation == "pca":
        pca = FastIncrementalPCA(n_components, batch_size=max(250, n_components)).fit(rows[fit])
        reduced = pca.transform(rows).astype(np.float64)
    else:
        reduced = rows.astype(np.float64)
    mean, std = reduced[fit].mean(axis=0), reduced[fit].std(axis=0)
    scaled = (reduced - mean) / np.where(std > 0, std, 1.0)
    return scaled[fit], scaled[hold]


def score(method: str, params: dict, folds, labels, seed: int) -> dict:
    from sklearn import metrics as skm

    results = []
    for (fit, hold), (train_x, hold_x) in folds:
        clusterer = make_clusterer(method, params, seed)
        result = run_clustering(clusterer, train_x, hold_x)
        mapping, fallback = majority_mapping(result.train_labels, labels[fit])
        results.append(
            (
                skm.adjusted_rand_score(labels[hold], result.test_labels),
                skm.normalized_mutual_info_score(labels[hold], result.test_labels),
                majority_accuracy(result.test_labels, labels[hold], mapping, fallback),
                float(np.mean(result.test_labels == -1)),
            )
        )
    values = np.asarray(results)
    return dict(
        ari=values[:, 0].mean(),
        ari_sd=values[:, 0].std(),
        nmi=values[:, 1].mean(),
        majority_accuracy=values[:, 2].mean(),
        noise=values[:, 3].mean(),
    )


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--crop", type=int, default=None, help="default: the run's config")
    parser.add_argument("--n-components", type=int, default=75)
    parser.add_argument("--stage", choices=("all", "representation", "methods"), default="all")
    parser.add_argument("--representation", default=None, help="skip stage 1: use this one")
    parser.add_argument("--methods", nargs="*", default=None)
    args = parser.parse_args(argv)
    from sklearn.model_selection import StratifiedKFold

    crop = args.crop or _run_crop(args.run_dir)
    images, labels, names = load_training(args.run_dir, 174 if crop <= 174 else crop)
    counts = np.bincount(labels, minlength=len(names))
    usable = counts[counts > 0]
    folds = args.folds if usable.min() >= args.folds else 2
    splits = list(
        StratifiedKFold(folds, shuffle=True, random_state=args.seed).split(images, labels)
    )
    print(f"{len(labels)} training galaxies, {len(names)} classes, {folds} folds; "
          f"majority class {names[counts.argmax()]} {counts.max() / len(labels):.3f}",
          flush=True)  # fmt: skip
    cache: dict = {}

    def features_of(name):
        if name not in cache:
            own_crop, representation, preprocess = REPRESENTATIONS[name]
            rows = representation_features(images, own_crop or crop, representation, preprocess)
            cache[name] = (
                representation,
                [
                    ((fit, hold), fold_features(rows, representation, fit, hold, args.n_components))
                    for fit, hold in splits
                ],
            )
        return cache[name]

    tables = []
    chosen = args.representation
    if args.stage in ("all", "representation") and chosen is None:
        rows = []
        for name in REPRESENTATIONS:
            start = time.process_time()
            _, folded = features_of(name)
            k = int(len(usable))
            params = dict(n_clusters=k, algorithm="full", batch_size=250, max_iter=500, n_init=10)
            rows.append({"stage": "representation", "candidate": name, "method": f"kmeans k={k}",
                         **score("kmeans", params, folded, labels, args.seed),
                         "cpu_s": time.process_time() - start})  # fmt: skip
            print(_row(rows[-1]), flush=True)
        table = pd.DataFrame(rows)
        tables.append(table)
        chosen = table.loc[table["ari"].idxmax(), "candidate"]
        print(f"chosen representation: {chosen}\n", flush=True)
    chosen = chosen or "descriptors"
    if args.stage in ("all", "methods"):
        _, folded = features_of(chosen)
        rows, winners = [], {}
        grid = method_grid(int(len(usable)))
        for method in args.methods or list(grid):
            best = None
            for params in grid[method]:
                flow = yaml.safe_dump(params, default_flow_style=True, width=1000).strip()
                scores = score(method, params, folded, labels, args.seed)
                row = {"stage": "methods", "candidate": chosen, "method": method,
                       "params": flow, **scores}  # fmt: skip
                rows.append(row)
                print(_row(row), flush=True)
                if best is None or row["ari"] > best[0]:
                    best = (row["ari"], params)
            winners[method] = best[1]
        tables.append(pd.DataFrame(rows))
        own_crop, representation, preprocess = REPRESENTATIONS[chosen]
        print("\nchosen settings (training split only):")
        print(yaml.safe_dump({
            "reduction": {"crop": own_crop or crop, "representation": representation,
                          "preprocess": dict(preprocess)},
            "clustering": winners,
        }, sort_keys=False))  # fmt: skip
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _row(row: dict) -> str:
    params = f" {row['params']}" if "params" in row else ""
    return (f"{row['candidate'][:34]:34s} {row['method']:13s} ARI {row['ari']:.3f}"
            f"±{row['ari_sd']:.3f} NMI {row['nmi']:.3f} maj.acc {row['majority_accuracy']:.3f}"
            f" noise {row['noise']:.2f}{params}")  # fmt: skip


def _run_crop(run_dir: Path) -> int:
    """The reduction crop of the run's config (config.yaml merged with the run's overlays)."""
    for candidate in (run_dir / "config" / "config.yaml", REPO / "config" / "config.yaml"):
        if candidate.exists():
            return int(yaml.safe_load(candidate.read_text())["reduction"]["crop"])
    return 174


if __name__ == "__main__":
    main()
