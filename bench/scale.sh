#!/usr/bin/env bash
# Scale benchmark: demo skies of growing size through the images stage (fetch,
# conversion, both archives), the reduction and k-means, with per-stage wall time,
# CPU time and peak memory from Snakemake's benchmark files.
#
#   bench/scale.sh [SIZES...]            # default: 2000 10000 50000
#   SCALE_DIR=/tmp/scale CORES=2 bench/scale.sh 2000 10000
#   COMPRESSION=lzf bench/scale.sh 100000   # shards compressed (disk: 100,000 images
#                                           # uncompressed would need about 55 GB)
#
# Each size N is a demo sky of N galaxies; the sample takes 48% of them for the
# training split and 48% for the test split (the rest: malformed and spare
# rows). Shards hold at most SHARD_SIZE images (default 1000), so one job's
# memory is bounded by the shard and the reduction batch, never by N. Runs go
# to $SCALE_DIR/<N>/ (default: a new temporary folder); nothing is written in
# the repository. At the end bench/stage_benchmarks.py prints the runs side by
# side (seconds per 1,000 images should stay flat, and so should peak RSS) and
# a linear projection to the full release of 243,434 images.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZES=("${@:-2000 10000 50000}")
# shellcheck disable=SC2206  # split the default list on spaces
SIZES=(${SIZES[*]})
CORES="${CORES:-2}"
SHARD_SIZE="${SHARD_SIZE:-1000}"
COMPRESSION="${COMPRESSION:-none}"
SCALE_DIR="${SCALE_DIR:-$(mktemp -d -t galmorph-scale.XXXXXX)}"
mkdir -p "$SCALE_DIR"
echo "scale runs in $SCALE_DIR (cores: $CORES, shard size: $SHARD_SIZE, shards: $COMPRESSION)"

run_dirs=()
labels=()
for n in "${SIZES[@]}"; do
    per_split=$((n * 48 / 100))
    shards=$(((per_split + SHARD_SIZE - 1) / SHARD_SIZE))
    ((shards < 2)) && shards=2
    run="$SCALE_DIR/$n"
    mkdir -p "$run"
    cat >"$run/scale.yaml" <<EOF
demo:
  n_galaxies: $n
sample:
  n_train: $per_split
  n_test: $per_split
images:
  n_shards: $shards
  compression: $COMPRESSION
EOF
    echo "== $n galaxies: $per_split + $per_split images, $shards shards per split"
    # Targets: the archives, the reduced splits and the k-means report (no CNN, no
    # other method); /usr/bin/time -v records the whole invocation.
    (
        cd "$run"
        /usr/bin/time -v -o time.txt \
            snakemake --configfile "$REPO/config/config.yaml" "$run/scale.yaml" \
            --snakefile "$REPO/Snakefile" --directory "$run" --cores "$CORES" \
            results/images/archives/{train,test}_{jpg,hdf5}.tar.gz \
            results/reduction/train.pkl results/reduction/test.pkl \
            results/clustering/kmeans/metrics.json \
            >snakemake.log 2>&1
    ) || {
        echo "run of $n galaxies failed; see $run/snakemake.log" >&2
        tail -n 30 "$run/snakemake.log" >&2
        exit 1
    }
    grep -E "Elapsed|Maximum resident" "$run/time.txt"
    run_dirs+=("$run")
    labels+=($((2 * per_split)))
done

# Rates per 1,000 images of the sample; the demo sky is not part of a real run.
python "$REPO/bench/stage_benchmarks.py" "${run_dirs[@]}" --labels "${labels[@]}" \
    --project 243434 --exclude-from-projection demo
