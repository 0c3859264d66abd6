"""Fit time of galmorph's FastIncrementalPCA vs scikit-learn's IncrementalPCA.

Same data (galaxy-like crops of 174x174x3 scaled to [0, 1], float32), same
n_components and batch size; the two fits alternate in one run so that machine
load affects both alike. Prints times, the speed-up, subspace agreement and the
explained variance difference.

    python bench/ipca_speed.py                     # 4,000 crops, 75 components, batch 250
    python bench/ipca_speed.py --n 1000 --repeats 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "src"), str(Path(__file__).parent)]

import numpy as np  # noqa: E402
from _galaxies import galaxy_images  # noqa: E402
from sklearn.decomposition import IncrementalPCA  # noqa: E402

from galmorph.reduction.pca import FastIncrementalPCA, subspace_agreement  # noqa: E402
from galmorph.reduction.pipeline import pixels  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="number of crops")
    parser.add_argument("--crop", type=int, default=174)
    parser.add_argument("--n-components", type=int, default=75)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds")
    parser.add_argument(
        "--tall-rows", type=int, default=500_000, help="rows of the tall case (2 features); 0: skip"
    )
    args = parser.parse_args()
    if args.tall_rows:
        tall_case(args.tall_rows)

    start = time.perf_counter()
    X = pixels(galaxy_images(args.n, args.crop, seed=7))
    print(
        f"data: {X.shape[0]} crops of {args.crop}x{args.crop}x3 = {X.shape[1]} features, "
        f"float32, {X.nbytes / 2**30:.2f} GiB (made in {time.perf_counter() - start:.0f} s)"
    )
    print(f"n_components={args.n_components} batch_size={args.batch_size}")
    times = {"sklearn": [], "galmorph": []}
    models = {}
    for round_ in range(args.repeats):
        for name, make in (
            ("sklearn", lambda: IncrementalPCA(args.n_components, batch_size=args.batch_size)),
            ("galmorph", lambda: FastIncrementalPCA(args.n_components, batch_size=args.batch_size)),
        ):
            model = make()
            start = time.perf_counter()
            model.fit(X)
            elapsed = time.perf_counter() - start
            times[name].append(elapsed)
            models[name] = model
            print(f"round {round_ + 1}: {name:9s} {elapsed:8.2f} s", flush=True)

    sk, ours = models["sklearn"], models["galmorph"]
    best = {name: min(values) for name, values in times.items()}
    agreement = subspace_agreement(ours.components_, sk.components_)
    ev_rel = np.abs(ours.explained_variance_ / sk.explained_variance_ - 1)
    total = ours.explained_variance_ratio_.sum(), sk.explained_variance_ratio_.sum()
    print(
        f"best of {args.repeats}: sklearn {best['sklearn']:.2f} s, "
        f"galmorph {best['galmorph']:.2f} s"
    )
    print(
        f"speed-up: {best['sklearn'] / best['galmorph']:.1f}x (median ratio "
        f"{np.median(times['sklearn']) / np.median(times['galmorph']):.1f}x)"
    )
    print(f"subspace agreement: {agreement:.6f}")
    print(
        f"explained variance: max relative difference {ev_rel.max():.2e} "
        f"(total ratio galmorph {total[0]:.5f}, sklearn {total[1]:.5f})"
    )


def tall_case(rows: int) -> None:
    """Batches taller than wide (10,000 x 2): the Gram matrix must be taken on the feature
    side, or each batch costs a 10,000-square eigendecomposition."""
    X = np.random.default_rng(3).normal(size=(rows, 2)) @ np.array([[2.0, 0.5], [0.0, 1.0]])
    timed = {}
    for name, model in (
        ("sklearn", IncrementalPCA(1, batch_size=10_000)),
        ("galmorph", FastIncrementalPCA(1, batch_size=10_000, dtype=np.float64)),
    ):
        start = time.perf_counter()
        model.fit(X)
        timed[name] = (time.perf_counter() - start, model)
    (sk_time, sk), (our_time, ours) = timed["sklearn"], timed["galmorph"]
    print(
        f"tall: {rows} x 2 in batches of 10,000: sklearn {sk_time:.2f} s, galmorph "
        f"{our_time:.2f} s ({sk_time / our_time:.1f}x); explained variance "
        f"{ours.explained_variance_[0]:.6f} vs {sk.explained_variance_[0]:.6f}"
    )


if __name__ == "__main__":
    main()
