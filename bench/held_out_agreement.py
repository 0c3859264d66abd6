"""Where models of different kinds agree against the label: held-out training galaxies only.

    python bench/held_out_agreement.py A.npz B.npz [C.npz ...] [--shifts 0.5 0.5 0]

Each file is a ``--save-probabilities`` output for the same held-out galaxies of the
training split (``bench/cnn_ensemble_select.py --folds K``,
``bench/measures_network_select.py``, ...); each member's probabilities are shifted
towards its fold's fitted class mix by its power of ``--shifts`` (its
``cnn.prior_shift``) and decided by the largest. The script prints how often every
member calls the same class, how often they all call one class that is not the label
(and how sure the least sure of them is then), how often at least one member is right,
and the commonest (label, unanimous call) pairs.

A galaxy that networks of another kind, each fitted without it, all call against its
label (the volunteers' majority vote of Galaxy Zoo 1) is either one the labels get wrong
or one the images cannot settle; either way no member is likely to get it right, so
the share bounds what a member, or their vote, can reach on these galaxies.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np
import pandas as pd

#: the least sure member's probability of the unanimous call, for the table's rows
SURENESS = (0.5, 0.6, 0.7, 0.8, 0.9)


def shifted_calls(saved, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's call and its probability, with the decision shifted by ``shift``."""
    counts = np.asarray(saved["fold_class_counts"], dtype=float)[saved["fold"]]
    prior = counts / counts.sum(axis=1, keepdims=True)
    proba = np.asarray(saved["proba"], dtype=float) * prior**shift
    proba /= proba.sum(axis=1, keepdims=True)
    return proba.argmax(axis=1), proba.max(axis=1)


def agreement(members: list, shifts: list[float]) -> dict:
    """The shares the script prints, from the members' saved held-out probabilities."""
    y_true = members[0]["y_true"]
    for saved in members[1:]:
        if not np.array_equal(saved["y_true"], y_true):
            raise ValueError("the files hold other held-out galaxies (their labels differ)")
    decided = [shifted_calls(m, s) for m, s in zip(members, shifts, strict=True)]
    calls = np.array([call for call, _ in decided])
    least_sure = np.min([sure for _, sure in decided], axis=0)
    unanimous = (calls == calls[0]).all(axis=0)
    against = unanimous & (calls[0] != y_true)
    names = [str(name) for name in members[0]["class_names"]]
    pairs = collections.Counter(
        (names[label], names[call])
        for label, call in zip(y_true[against], calls[0][against], strict=True)
    )
    return {
        "n": len(y_true),
        "unanimous": unanimous.mean(),
        "against": against.mean(),
        "against_sure": {t: (against & (least_sure >= t)).mean() for t in SURENESS},
        "one_right": (calls == y_true).any(axis=0).mean(),
        "each_accuracy": (calls == y_true).mean(axis=1),
        "pairs": pairs,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+", type=Path)
    parser.add_argument("--shifts", nargs="+", type=float, default=None,
                        help="each member's power of cnn.prior_shift (default 0)")  # fmt: skip
    args = parser.parse_args(argv)
    shifts = args.shifts or [0.0] * len(args.members)
    if len(shifts) != len(args.members):
        parser.error(f"{len(args.members)} members but {len(shifts)} shifts")
    members = [np.load(path, allow_pickle=True) for path in args.members]
    try:
        found = agreement(members, shifts)
    except ValueError as error:
        sys.exit(str(error))
    print(f"{found['n']} held-out training galaxies; members (accuracy at their shift): "
          + ", ".join(f"{p.stem} {a:.3f}" for p, a in zip(args.members, found["each_accuracy"],
                                                           strict=True)))  # fmt: skip
    rows = [("every member calls the same class", found["unanimous"]),
            ("at least one member calls the label", found["one_right"]),
            ("every member calls one class that is not the label", found["against"])]  # fmt: skip
    rows += [(f"... the least sure of them at >= {t}", share)
             for t, share in found["against_sure"].items()]  # fmt: skip
    table = pd.DataFrame(rows, columns=["held-out galaxies", "share"])
    print(table.to_markdown(index=False, floatfmt=".3f"))
    print("\ncommonest unanimous calls against the label:")
    for (label, call), count in found["pairs"].most_common(8):
        print(f"  label {label}, every member says {call}: {count}")
    return found


if __name__ == "__main__":
    main()
