"""CNN training throughput and peak memory, input pipeline vs model, demo and study sizes.

    python bench/cnn_throughput.py [--images 256] [--batch-size 64] [--sizes 64 174]

Real SDSS galaxy images (../shared/data/sdss_gz1_sample, 423 pixels, resized to
the stored 424) are written to HDF5 shards in the project's format, then for each
network input size, in its own process (so peak memory is that size's alone):

- pipeline_shards: images/s the tf.data pipeline streams from the shards
  (decompress, crop, resize, scale), no model;
- pipeline_cached: the same from the crop cache that later epochs use;
- model_only: images/s of training steps on batches already in memory;
- e2e_epoch1 / e2e_later: images/s of training fed by the pipeline, in the
  first epoch (reads the shards, fills the cache) and in later ones;
- peak_rss_mb: peak resident memory of the process.

e2e_later / model close to 1 means the input pipeline is not the bottleneck.
All sizes run in one invocation so their ratios are comparable; figures are
images per second unless named otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from sdss_shards import read_labels, write_shard  # noqa: E402


def write_shards(folder: Path, n_images: int, n_shards: int = 2) -> list[Path]:
    labels = read_labels().sort_values("dr7objid").iloc[:n_images]
    names = sorted(labels["gz1_class"].unique())
    paths = []
    bounds = np.linspace(0, len(labels), n_shards + 1).astype(int)
    for shard in range(n_shards):
        rows = labels.iloc[bounds[shard] : bounds[shard + 1]]
        path = write_shard(folder / f"shard_{shard:04d}.h5", rows, names, "train")
        paths.append(path)
    return paths


def measure(paths: list[str], input_size: int, crop: int, batch_size: int, architecture: str):
    """One input size; runs in a child process. Returns a dict of figures."""
    import tensorflow as tf

    from galmorph.cnn.data import make_dataset
    from galmorph.cnn.models import build_model
    from galmorph.cnn.shards import ShardIndex
    from galmorph.cnn.train import configure_threads

    configure_threads(os.cpu_count() or 1)
    tf.keras.utils.set_random_seed(0)
    index = ShardIndex.from_paths(paths)
    n = len(index)
    cache_dir = tempfile.mkdtemp(prefix="bench-crops-")

    def stream(cache=False):
        return make_dataset(
            index,
            crop=crop,
            input_size=input_size,
            batch_size=batch_size,
            shuffle=True,
            seed=0,
            cache_dir=cache_dir if cache else None,
        )

    def images_per_s(run):
        start = time.perf_counter()
        run()
        return round(n / (time.perf_counter() - start), 1)

    def drain(dataset):
        return lambda: [None for _ in dataset]

    drain(stream())()  # trace the pipeline's functions once
    pipeline_shards = images_per_s(drain(stream()))
    cached = stream(cache=True)
    drain(cached)()  # fills the crop cache
    pipeline_cached = images_per_s(drain(cached))

    batches = [(np.asarray(x), np.asarray(y)) for x, y in stream()]
    model = build_model(architecture, input_size, index.n_classes)
    in_memory = tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=(
            tf.TensorSpec((None, input_size, input_size, 3), tf.float32),
            tf.TensorSpec((None,), tf.int32),
        ),
    ).cache()
    model.fit(in_memory, epochs=1, verbose=0)  # build, trace, fill the cache
    model_only = images_per_s(lambda: model.fit(in_memory, epochs=1, verbose=0))

    streamed = stream(cache=True)
    # first epoch reads the shards (and fills the crop cache), later ones read the cache
    end_to_end_first = images_per_s(lambda: model.fit(streamed, epochs=1, verbose=0))
    end_to_end_cached = images_per_s(lambda: model.fit(streamed, epochs=1, verbose=0))
    shutil.rmtree(cache_dir)
    return {
        "input": input_size,
        "images": n,
        "pipeline_shards": pipeline_shards,
        "pipeline_cached": pipeline_cached,
        "model_only": model_only,
        "e2e_epoch1": end_to_end_first,
        "e2e_later": end_to_end_cached,
        "e2e_later/model": round(end_to_end_cached / model_only, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--crop", type=int, default=174)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 174], help="input sizes")
    parser.add_argument("--architecture", default="study")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        paths, size = json.loads(args.child)
        figures = measure(paths, size, args.crop, args.batch_size, args.architecture)
        print(json.dumps(figures))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        paths = [str(p) for p in write_shards(Path(folder), args.images)]
        print(f"wrote {args.images} real galaxy images in {time.perf_counter() - start:.1f} s")
        rows = []
        for size in args.sizes:
            child = [sys.executable, __file__, "--child", json.dumps([paths, size])]
            child += ["--crop", str(args.crop), "--batch-size", str(args.batch_size)]
            child += ["--architecture", args.architecture]
            done = subprocess.run(child, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.exit(f"input size {size} failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    table = pd.DataFrame(rows)
    print(f"CPU cores: {os.cpu_count()}")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
