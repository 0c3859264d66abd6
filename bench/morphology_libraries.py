"""statmorph and sep against galmorph's own measures, on the training split only.

    pip install statmorph sep      # not dependencies of galmorph: only this script needs them
    python bench/morphology_libraries.py RUN_DIR [--n 600] [--folds 5] [--seed 31]

RUN_DIR is a workflow run folder whose images stage has run (for example the folder of
``bench/real_sdss.sh``); only its training shards are opened. A seeded, stratified
``--n`` of the training galaxies is measured three ways, each timed per galaxy:

* galmorph: ``cnn.measures`` of ``config/sdss_gz1.yaml`` (morphometry + descriptors in the
  central 64, 96 and 128 pixels, :mod:`galmorph.cnn.measures`);
* statmorph (Rodriguez-Gomez et al. 2019): Gini, M20, concentration, asymmetry,
  smoothness, Sersic index and the rest of its scalar measures of the central 128 pixels,
  on the galaxy's segment from sep (Source Extractor's background and extraction:
  the segment under the centre, the other sources masked);
* both together.

Each set feeds the same gradient-boosted trees in stratified ``--folds``-fold
cross-validation of those galaxies (the measures alone, no network): accuracy, macro-F1,
balanced accuracy and the chirality of the true spirals, beside the majority baseline.
statmorph has no measure of the sense of winding, so it can only add to the shape
measures, not replace the winding.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

#: the scalar measures of statmorph's SourceMorphology kept as features
STATMORPH_NAMES = (
    "gini", "m20", "gini_m20_bulge", "gini_m20_merger", "concentration", "asymmetry",
    "smoothness", "multimode", "intensity", "deviation", "outer_asymmetry", "shape_asymmetry",
    "sersic_n", "sersic_ellip", "ellipticity_asymmetry", "elongation_asymmetry", "r20", "r80",
    "rhalf_circ", "flag", "flag_sersic",
)  # fmt: skip
CROPS = (64, 96, 128)
PAIRS = (("spiral_cw", "spiral_acw"),)


def central_segment(grey: np.ndarray):
    """sep's background-subtracted image, its noise and the segment of the central source."""
    import sep

    data = np.ascontiguousarray(grey, dtype=np.float64)
    background = sep.Background(data)
    subtracted = data - background
    _, segmap = sep.extract(
        subtracted, 1.5, err=background.globalrms, segmentation_map=True, minarea=10
    )
    centre = grey.shape[0] // 2
    label = segmap[centre, centre]
    if label == 0 and segmap.max() > 0:  # the nearest segment to the centre
        ys, xs = np.nonzero(segmap)
        nearest = np.argmin((ys - centre) ** 2 + (xs - centre) ** 2)
        label = segmap[ys[nearest], xs[nearest]]
    return subtracted, float(background.globalrms), segmap, int(label)


def statmorph_measures(image: np.ndarray) -> np.ndarray:
    """statmorph's scalar measures of one RGB crop (NaN where it fails)."""
    import statmorph

    grey = image.astype(np.float64).mean(axis=2)
    subtracted, rms, segmap, label = central_segment(grey)
    if label == 0:
        return np.full(len(STATMORPH_NAMES), np.nan)
    mask = (segmap > 0) & (segmap != label)  # the other sources
    weights = np.full_like(subtracted, max(rms, 1.0e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            (morph,) = statmorph.source_morphology(
                subtracted, (segmap == label).astype(int), weightmap=weights, mask=mask
            )
        except Exception:  # noqa: BLE001 - statmorph raises many kinds on odd sources
            return np.full(len(STATMORPH_NAMES), np.nan)
        return np.array([float(getattr(morph, name)) for name in STATMORPH_NAMES])


def cross_validated(features: np.ndarray, labels: np.ndarray, class_names, folds: int, seed: int):
    """Out-of-fold probabilities of gradient-boosted trees (NaN-tolerant) on ``features``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold

    proba = np.zeros((labels.size, len(class_names)))
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels)
    for fit, held in splits:
        model = HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, class_weight="balanced", random_state=seed
        )
        model.fit(features[fit], labels[fit])
        proba[np.ix_(held, model.classes_)] = model.predict_proba(features[held])
    return proba


def main(argv: list[str] | None = None) -> pd.DataFrame:
    import cnn_select
    from sklearn.model_selection import train_test_split

    from galmorph.cnn import measures
    from galmorph.cnn.evaluate import compute_metrics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--n", type=int, default=600, help="training galaxies measured")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args(argv)
    try:
        import sep  # noqa: F401
        import statmorph  # noqa: F401
    except ImportError as error:
        sys.exit(f"this benchmark needs statmorph and sep ({error}): pip install statmorph sep")

    paths, index, _, _ = cnn_select.held_out_split(args.run_dir, 0.2, args.seed)
    chosen, _ = train_test_split(
        np.arange(len(index)), train_size=args.n, stratify=index.labels, random_state=args.seed
    )
    chosen = np.sort(chosen)
    images = index.read_images(chosen, crop=max(CROPS))
    labels = index.labels[chosen]
    counts = np.bincount(labels, minlength=index.n_classes).tolist()
    mix = ", ".join(f"{n} {name}" for name, n in zip(index.class_names, counts, strict=True))
    print(f"{len(chosen)} training galaxies ({mix})", flush=True)

    start = time.perf_counter()
    ours = np.stack(
        [measures.measure_regions(im, "morphometry+descriptors", CROPS) for im in images]
    )
    ours_ms = 1000 * (time.perf_counter() - start) / len(images)
    start = time.perf_counter()
    theirs = np.stack([statmorph_measures(image) for image in images])
    theirs_ms = 1000 * (time.perf_counter() - start) / len(images)
    failed = int(np.isnan(theirs[:, 0]).sum())
    print(f"galmorph measures: {ours.shape[1]} per galaxy, {ours_ms:.1f} ms per galaxy")
    print(f"sep + statmorph: {theirs.shape[1]} per galaxy, {theirs_ms:.1f} ms per galaxy "
          f"({theirs_ms / ours_ms:.1f} times galmorph's); none for {failed} galaxies")  # fmt: skip

    majority = np.zeros((labels.size, index.n_classes))
    majority[:, np.bincount(labels).argmax()] = 1.0
    sets = {
        "baseline: the majority class": majority,
        "galmorph measures": cross_validated(
            ours, labels, index.class_names, args.folds, args.seed
        ),
        "sep + statmorph": cross_validated(
            theirs, labels, index.class_names, args.folds, args.seed
        ),
        "both": cross_validated(
            np.hstack([ours, theirs]), labels, index.class_names, args.folds, args.seed
        ),
    }
    rows = []
    for name, proba in sets.items():
        scores = compute_metrics(labels, proba, index.class_names, PAIRS)
        rows.append({"features": name, **{key: scores[key] for key in (
            "accuracy", "f1_macro", "balanced_accuracy", "chirality_accuracy")}})  # fmt: skip
    table = pd.DataFrame(rows)
    print(f"\n{args.folds}-fold cross-validation of gradient-boosted trees on the measures alone:")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return table


if __name__ == "__main__":
    main()
