"""Each class's bias (``cnn.class_bias``), chosen on held-out probabilities of the training split.

    python bench/class_bias_select.py DIR/ensemble.npz --prior-shift 0.4 [--outer-folds 5]

The file is a ``--save-probabilities`` output of ``bench/cnn_ensemble_select.py``
(best with ``--folds``: every training galaxy scored once by networks that did not
fit it). Its probabilities are shifted by ``--prior-shift`` (the variant's
``cnn.prior_shift``, each row by its own fold's fitted mix) and the biases of
:func:`galmorph.cnn.decision.fit_class_bias` are fitted on them.

Fitted and scored on the same galaxies, a bias would look better than it is, so
the gain is measured nested: the rows are split into ``--outer-folds`` stratified
parts, the biases are fitted on all parts but one and decide the one left out,
and the pooled decisions are scored beside those of the shift alone and the
majority baseline. Mirror pairs share one bias. The biases fitted on every row
are then printed as the variant's ``cnn.class_bias`` entry, with each outer fit's
biases to show how stable they are. The test split is never read.
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


def _row_prior(saved) -> np.ndarray:
    """Each row's fitted class mix: its fold's under --folds, else the one fitted part's."""
    if "fold_class_counts" in saved:
        counts = np.asarray(saved["fold_class_counts"], dtype=float)[saved["fold"]]
    else:
        key = "split_class_counts" if "split_class_counts" in saved else "class_counts"
        counts = np.asarray(saved[key], dtype=float)[None, :]
    counts = np.maximum(counts, 1.0)
    return counts / counts.sum(axis=1, keepdims=True)


def _row(name, y_true, proba, class_names) -> dict:
    from galmorph.cnn.evaluate import compute_metrics

    scores = compute_metrics(y_true, proba, class_names, PAIRS)
    return {
        "decision": name,
        "accuracy": scores["accuracy"],
        "macro_f1": scores["f1_macro"],
        "balanced_accuracy": scores["balanced_accuracy"],
        "chirality": scores["chirality_accuracy"],
        "merger_f1": scores["per_class"].get("merger", {}).get("f1", np.nan),
    }


def main(argv: list[str] | None = None) -> pd.DataFrame:
    from sklearn.model_selection import StratifiedKFold

    from galmorph.cnn.decision import apply_class_bias, fit_class_bias

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probabilities", type=Path)
    parser.add_argument("--prior-shift", type=float, required=True)
    parser.add_argument("--outer-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args(argv)
    if args.outer_folds < 2:
        parser.error("--outer-folds must be at least 2")
    saved = np.load(args.probabilities, allow_pickle=True)
    y_true = np.asarray(saved["y_true"])
    names = [str(name) for name in saved["class_names"]]
    shifted = np.asarray(saved["proba"], dtype=float) * _row_prior(saved) ** args.prior_shift
    shifted /= shifted.sum(axis=1, keepdims=True)

    counts = np.bincount(y_true, minlength=len(names))
    baseline = np.zeros_like(shifted)
    baseline[:, int(np.argmax(counts))] = 1.0
    nested = np.empty_like(shifted)
    outer_biases = []
    # a class too rare to stratify over the outer folds is still scored, just unevenly
    splitter = StratifiedKFold(
        n_splits=min(args.outer_folds, max(2, counts[counts > 0].min())),
        shuffle=True,
        random_state=args.seed,
    )
    # the senses of winding share one bias: a mirror turns one into the other
    tied = tuple((names.index(a), names.index(b)) for a, b in PAIRS if {a, b} <= set(names))
    for fit, held in splitter.split(shifted, y_true):
        bias = fit_class_bias(shifted[fit], y_true[fit], tied=tied)
        outer_biases.append(bias)
        nested[held] = apply_class_bias(shifted[held], bias)
    rows = [
        _row(f"baseline: always {names[int(np.argmax(counts))]}", y_true, baseline, names),
        _row(f"prior shift {args.prior_shift:g}", y_true, shifted, names),
        _row(f"prior shift {args.prior_shift:g} + class bias (nested)", y_true, nested, names),
    ]
    table = pd.DataFrame(rows)
    variant = args.probabilities.stem
    print(f"{variant}: {len(y_true)} held-out training galaxies; the biases decide rows "
          f"they were not fitted on ({splitter.get_n_splits()} outer folds)")  # fmt: skip
    print(table.to_markdown(index=False, floatfmt=".3f"))
    print("\nthe outer fits' biases (a stable bias moves little between them):")
    print(pd.DataFrame(outer_biases, columns=names).to_markdown(index=False, floatfmt=".1f"))
    bias = fit_class_bias(shifted, y_true, tied=tied)
    entry = ", ".join(
        f"{name}: {value:.1f}" for name, value in zip(names, bias, strict=True) if value
    )
    print("\nfitted on every row, for the config:")
    print(f"cnn:\n  class_bias:\n    {variant}: {{{entry}}}")
    return table


if __name__ == "__main__":
    main()
