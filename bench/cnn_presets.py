"""The architecture presets compared on real galaxies: test metrics and training time.

    python bench/cnn_presets.py [--train 1200] [--test 600] [--epochs 6] [--input-size 64]

Real SDSS galaxy images with Galaxy Zoo 1 labels (../shared/data/sdss_gz1_sample,
six classes, heavily unbalanced) are split at random (seeded) into train and
test shards in the project's HDF5 format (stored at 424 pixels like GZ2, so the
crop is the study's 174). Each preset is trained with the workflow's own
training function (early stopping, learning-rate reduction, seeded) and
scored on the untouched test shards. Macro F1 and macro AUC matter more than
accuracy here: always answering "elliptical" scores about 0.7.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from sdss_shards import read_labels, write_shard  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--test", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--presets", nargs="+", default=["study", "deeper"])
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from galmorph.cnn import train
    from galmorph.cnn.data import make_dataset
    from galmorph.cnn.evaluate import compute_metrics, predict_batches
    from galmorph.cnn.shards import ShardIndex

    train.configure_threads(os.cpu_count() or 1)
    labels = read_labels().sample(frac=1.0, random_state=31)
    names = sorted(labels["gz1_class"].unique())
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        train_path = write_shard(
            Path(folder) / "train.h5", labels.iloc[: args.train], names, "train"
        )
        test_rows = labels.iloc[args.train : args.train + args.test]
        test_path = write_shard(Path(folder) / "test.h5", test_rows, names, "test")
        train_index, test_index = (
            ShardIndex.from_paths([train_path]),
            ShardIndex.from_paths([test_path]),
        )
        for preset in args.presets:
            settings = train.TrainSettings(
                architecture=preset, crop=174, input_size=args.input_size, epochs=args.epochs,
                batch_size=64, early_stopping_patience=3, reduce_lr_patience=2, seed=31,
            )  # fmt: skip
            start = time.perf_counter()
            result = train.train_model(train_index, settings)
            seconds = time.perf_counter() - start
            test = make_dataset(test_index, crop=174, input_size=args.input_size, batch_size=64)
            y_true, proba, _ = predict_batches(result.model, test)
            metrics = compute_metrics(y_true, proba, names)
            rows.append(
                {
                    "preset": preset,
                    "params": result.model.count_params(),
                    "epochs": len(result.history),
                    "train_s": round(seconds, 1),
                    **{
                        key: round(metrics[key], 3)
                        for key in ("accuracy", "f1_macro", "f1_weighted", "roc_auc_macro")
                    },
                }
            )
    print(f"{args.train} train / {args.test} test images, input {args.input_size} px")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
