"""Ensembles of saved held-out probabilities, scored without retraining (training split only).

    python bench/ensemble_from_probabilities.py A.npz B.npz [C.npz ...] [--shifts 0 0.2 ...]

Each file is a ``--save-probabilities`` output of ``bench/cnn_select.py``,
``bench/cnn_ensemble_select.py`` or ``bench/measures_network_select.py`` for the same
held-out part of the training split, or the same folds (``--folds``; the script checks
that the labels agree): its test-time-averaged probabilities. The members are joined by
the normalised geometric mean, as ``galmorph.cnn.ensemble`` joins networks (here after the
views are averaged, so the figures can differ from a built ensemble's in the third
decimal), shifted towards the fitted rows' class mix by each power of ``--shifts``, and
the power with the best macro-F1 (ties to the smaller) is printed with its scores,
including the mergers' F1, beside each member alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

PAIRS = (("spiral_cw", "spiral_acw"),)


def geometric_mean(members: list[np.ndarray]) -> np.ndarray:
    logs = np.mean([np.log(np.clip(p, 1.0e-7, 1.0)) for p in members], axis=0)
    joined = np.exp(logs - logs.max(axis=1, keepdims=True))
    return joined / joined.sum(axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    from galmorph.cnn.evaluate import compute_metrics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+", type=Path)
    parser.add_argument("--shifts", nargs="+", type=float,
                        default=[0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0])  # fmt: skip
    args = parser.parse_args(argv)
    saved = [np.load(path, allow_pickle=True) for path in args.members]
    y_true, names = saved[0]["y_true"], [str(name) for name in saved[0]["class_names"]]
    for path, member in zip(args.members, saved, strict=True):
        if not np.array_equal(member["y_true"], y_true):
            sys.exit(f"{path}: another held-out part (its labels differ from the first file's)")
    if "fold_class_counts" in saved[0]:  # k-fold: each row shifted by its own fold's fitted mix
        counts = np.asarray(saved[0]["fold_class_counts"], dtype=float)[saved[0]["fold"]]
    else:
        key = "split_class_counts" if "split_class_counts" in saved[0] else "class_counts"
        counts = saved[0][key]
        counts = np.asarray(counts, dtype=float)[None, :]
    prior = counts / counts.sum(axis=1, keepdims=True)
    candidates = {
        path.stem: [member["proba"]] for path, member in zip(args.members, saved, strict=True)
    }
    candidates[" + ".join(path.stem for path in args.members)] = [m["proba"] for m in saved]
    rows = []
    for name, members in candidates.items():
        joined = geometric_mean(members)
        best = None
        for shift in args.shifts:
            shifted = joined * prior**shift
            scores = compute_metrics(
                y_true, shifted / shifted.sum(axis=1, keepdims=True), names, PAIRS
            )
            if best is None or scores["f1_macro"] > best[1]["f1_macro"]:
                best = (shift, scores)
        shift, scores = best
        merger = scores["per_class"].get("merger", {}).get("f1", np.nan)
        rows.append({"members": name, "prior_shift": shift, "accuracy": scores["accuracy"],
                     "macro_f1": scores["f1_macro"],
                     "balanced_accuracy": scores["balanced_accuracy"],
                     "chirality": scores["chirality_accuracy"], "merger_f1": merger})  # fmt: skip
    table = pd.DataFrame(rows)
    print(f"{len(y_true)} held-out training galaxies; each row at its best power (macro-F1):")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return table


if __name__ == "__main__":
    main()
