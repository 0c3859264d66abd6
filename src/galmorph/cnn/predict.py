"""Classify a folder of JPEGs with a trained model.

Usage::

    python -m galmorph.cnn.predict --model results/cnn/balanced/model.keras \\
        --folder path/to/jpegs --out predictions.csv

Each image gets the preprocessing of training, read from the model's
``model.json``: resized to the stored image size if it differs, centrally
cropped, resized to the network input and scaled to [0, 1]; its morphology
(winding of the arms, shape) is measured on the same central crop as in training; the
probabilities are averaged over turned (and mirrored, labels swapped) views and
shifted towards the training prior by the model's own decision rule
(``model.json``, :mod:`galmorph.cnn.decision`), as in its evaluation; flags override it. The CSV has
``id`` (file name without extension), ``predicted_class``, ``probability``
and one ``p_<class>`` column per class; for a vote-fraction network
(:mod:`galmorph.cnn.votes`) ``id`` and the 37 ``<task>_<answer>_fraction`` columns of
Galaxy Zoo 2's decision tree instead (a mirror keeps them, no prior shift applies).
Images that cannot be read are listed in ``<out>.failures.csv`` (``file, reason``)
and skipped: one bad file does not stop the others.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from galmorph.cnn.shards import central_crop_bounds
from galmorph.errors import GalmorphError, InputDataError
from galmorph.images import imaging
from galmorph.io import atomic_path, escape_columns

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg")


def failures_path(out_csv: str | Path) -> Path:
    """Where the unreadable images of a prediction run are listed."""
    out_csv = Path(out_csv)
    return out_csv.with_name(out_csv.stem + ".failures.csv")


def list_images(folder: str | Path) -> list[Path]:
    """JPEG files of ``folder`` (not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputDataError(f"{folder}: no such folder of images to classify")
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )


def load_image(path: str | Path, image_size: int, crop: int | None) -> np.ndarray:
    """The central crop of one image as training saw it (uint8, RGB).

    Decoding and resizing are the images stage's own (:func:`galmorph.images.imaging.load_image`:
    RGB, central square, Lanczos resize to the stored size), so a folder image
    reaches the network exactly as a shard image would.

    Raises
    ------
    galmorph.images.imaging.ImageFormatError
        The file is not a readable image.
    """
    pixels = imaging.load_image(path, image_size, "resize")
    start, stop = central_crop_bounds(image_size, crop)
    return pixels[start:stop, start:stop]


def predict_folder(
    model_path: str | Path,
    folder: str | Path,
    out_csv: str | Path,
    batch_size: int = 64,
    tta_rotations: int | None = None,
    tta_mirror: bool | None = None,
    prior_shift: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Classify every JPEG of ``folder``; write the predictions and the failures CSVs.

    The test-time views, prior shift and class biases are the model's own decision rule
    (:mod:`galmorph.cnn.decision`, written in ``model.json`` by the workflow), so
    the probabilities are those of the model's evaluation; a value given here
    overrides the written one.

    Returns
    -------
    predictions, failures : DataFrame
    """
    from galmorph.cnn import decision, measures
    from galmorph.cnn.data import mirror_map, to_model_input
    from galmorph.cnn.evaluate import model_measure_crops, shift_to_prior, tta_views
    from galmorph.cnn.train import check_mirror_safe_names, load

    overrides = {"tta_rotations": tta_rotations, "tta_mirror": tta_mirror,
                 "prior_shift": prior_shift}  # fmt: skip
    decision.DecisionRule().override(**overrides)  # a bad value is refused before the model loads
    model, meta = load(model_path)
    rule = decision.from_metadata(meta, **overrides)
    log.info("decision rule: %s", rule)
    class_names = meta["class_names"]
    pairs = [tuple(pair) for pair in meta.get("mirror_pairs") or ()]
    predicts_votes = meta.get("target", "classes") == "vote_fractions"
    if predicts_votes:
        from galmorph.cnn.votes import prediction_columns

        if rule.prior_shift or rule.class_bias:
            raise InputDataError(
                "a prior shift or class bias applies to classes, not to vote fractions"
            )
        output_columns = prediction_columns()
        # no answer of the GZ2 tree has a handedness: a mirrored view keeps its fractions
        mapping = np.arange(len(output_columns))
    else:
        if rule.tta_mirror:
            check_mirror_safe_names(class_names, pairs, "cnn.tta.mirror")
        mapping = mirror_map(class_names, pairs)
        output_columns = [f"p_{name}" for name in class_names]
        # refuses a model without its training split's counts before any work
        shift_to_prior(np.ones((1, len(class_names))), meta, rule.prior_shift)
        # ... and one that biases a class it does not know
        bias = rule.bias_vector(class_names)
    views = tta_views(rule.tta_rotations, rule.tta_mirror)
    crop = meta["crop"] or meta["image_size"]
    measure_crops = model_measure_crops(meta)
    measure_set = meta.get("measures", "morphometry")
    side = max((crop, *measure_crops))
    files = list_images(folder)
    if not files:
        log.warning("%s: no .jpg/.jpeg file to classify", folder)
    rows, failures, batch, ids = [], [], [], []

    def flush():
        if not batch:
            return
        regions = np.stack(batch)
        offset = (side - crop) // 2
        images = regions[:, offset : offset + crop, offset : offset + crop]
        features = None
        if measure_crops:
            features = np.stack(
                [measures.measure_regions(r, measure_set, measure_crops) for r in regions]
            )
        proba = 0.0
        for angle, flip in views:
            # one kind of array for every input: Keras refuses tensors mixed with numpy
            pixels = np.asarray(to_model_input(images, meta["input_size"], crop, (angle, flip)))
            inputs = pixels
            if features is not None:
                inputs = {
                    "image": pixels,
                    "measures": measures.mirror(features, measure_set) if flip else features,
                }
            view_proba = np.asarray(model(inputs, training=False))
            proba = proba + (view_proba[:, mapping] if flip else view_proba)
        proba = proba / len(views)
        if predicts_votes:
            rows.extend([name, *map(float, p)] for name, p in zip(ids, proba, strict=True))
            batch.clear()
            ids.clear()
            return
        proba = decision.apply_class_bias(shift_to_prior(proba, meta, rule.prior_shift), bias)
        for name, p in zip(ids, proba, strict=True):
            best = int(p.argmax())
            rows.append([name, class_names[best], float(p[best]), *map(float, p)])
        batch.clear()
        ids.clear()

    for path in tqdm(files, desc="predict", unit="image"):
        try:
            batch.append(load_image(path, meta["image_size"], side))
        except imaging.ImageFormatError as error:
            # the decoder's own complaint; the images stage's advice (re-download) does not apply
            reason = f"not a readable image ({error.__cause__ or error})"
            log.warning("%s: skipped, %s", path, reason)
            failures.append({"file": path.name, "reason": reason})
            continue
        ids.append(path.stem)
        if len(batch) == batch_size:
            flush()
    flush()
    if predicts_votes:
        columns = ["id", *output_columns]
    else:
        columns = ["id", "predicted_class", "probability", *output_columns]
    predictions = pd.DataFrame(rows, columns=columns)
    failures = pd.DataFrame(failures, columns=["file", "reason"])
    # file names and class names are the user's text: safe to open in a spreadsheet
    with atomic_path(out_csv) as temporary:
        text_columns = ("id",) if predicts_votes else ("id", "predicted_class")
        escape_columns(predictions, text_columns).to_csv(temporary, index=False)
    with atomic_path(failures_path(out_csv)) as temporary:
        escape_columns(failures, ("file", "reason")).to_csv(temporary, index=False)
    log.info("%d image(s) classified, %d skipped", len(predictions), len(failures))
    return predictions, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m galmorph.cnn.predict",
        description="Classify a folder of galaxy JPEGs with a trained galmorph CNN.",
    )
    parser.add_argument("--model", required=True, help="model.keras (with model.json beside it)")
    parser.add_argument("--folder", required=True, help="folder of .jpg/.jpeg images")
    parser.add_argument("--out", required=True, help="CSV to write (failures: <out>.failures.csv)")
    parser.add_argument("--batch-size", type=int, default=64)
    # The decision rule's defaults are the model's own (model.json); a flag overrides one.
    parser.add_argument(
        "--tta-rotations", type=int, default=None,
        help="views turned by 360/n (default: the model's own, from model.json)",
    )  # fmt: skip
    parser.add_argument(
        "--tta-mirror", action=argparse.BooleanOptionalAction, default=None,
        help="also mirrored views, labels swapped (default: the model's own)",
    )  # fmt: skip
    parser.add_argument(
        "--prior-shift", type=float, default=None,
        help="decisions shifted towards the training classes' frequencies, a power >= 0 "
        "(default: the model's own cnn.prior_shift)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        predictions, failures = predict_folder(
            args.model,
            args.folder,
            args.out,
            args.batch_size,
            tta_rotations=args.tta_rotations,
            tta_mirror=args.tta_mirror,
            prior_shift=args.prior_shift,
        )
    except GalmorphError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"{len(predictions)} image(s) classified into {args.out}; {len(failures)} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
