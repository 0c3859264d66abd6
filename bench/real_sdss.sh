#!/usr/bin/env bash
# The real-data benchmark: the whole workflow on the SDSS sample of Galaxy Zoo 1
# galaxies (../shared/data/sdss_gz1_sample, 5,011 labelled 423x423 JPEGs, six
# classes) with config/sdss_gz1.yaml, then one table of test-split scores: per
# clustering method ARI / NMI / purity / majority-mapping accuracy (beside the study's
# chain, bench/clustering_vs_study.py), per CNN variant accuracy, balanced accuracy,
# macro F1, weighted F1, macro AUC and chirality (true spirals told clockwise from
# anticlockwise), next to the majority-class baseline.
#
#   bench/real_sdss.sh                     # run in a new temporary folder
#   RUN_DIR=/tmp/sdss CORES=2 bench/real_sdss.sh
#   SDSS_DATA=/path/to/sdss_gz1_sample bench/real_sdss.sh
#
# Finally every CNN variant classifies, with the predict_folder rule, the
# galaxies of the folder that the sample left out (images no model has seen),
# the way a user applies a trained model to new images of the same survey.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$(cd "${SDSS_DATA:-$REPO/../shared/data/sdss_gz1_sample}" && pwd)"
CORES="${CORES:-2}"
RUN_DIR="${RUN_DIR:-$(mktemp -d -t galmorph-sdss.XXXXXX)}"
mkdir -p "$RUN_DIR"
cd "$RUN_DIR"
echo "SDSS run in $RUN_DIR (data: $DATA, cores: $CORES)"

# The run happens outside the repository: absolute paths to the data.
cat >paths.yaml <<EOF
folder:
  images: $DATA/images
  labels: $DATA/labels.csv
EOF

# --configfile takes several files: it goes first, so targets can follow --cores.
smk=(snakemake --configfile "$REPO/config/config.yaml" "$REPO/config/sdss_gz1.yaml" paths.yaml
    --snakefile "$REPO/Snakefile" --directory "$RUN_DIR" --cores "$CORES")

/usr/bin/time -v -o time.txt "${smk[@]}" >snakemake.log 2>&1 || {
    echo "the workflow failed; see $RUN_DIR/snakemake.log" >&2
    tail -n 40 snakemake.log >&2
    exit 1
}
grep -E "Elapsed|User time|System time" time.txt

# Unseen galaxies: labelled images in neither split.
python - "$DATA" <<'EOF'
import sys
from pathlib import Path

import pandas as pd

data = Path(sys.argv[1])
labels = pd.read_csv(data / "labels.csv", dtype={"dr7objid": str})
used = set()
for split in ("train", "test"):
    used |= set(pd.read_csv(f"results/sample/{split}.csv", dtype={"dr7objid": str})["dr7objid"])
unseen = Path("unseen")
unseen.mkdir(exist_ok=True)
for objid in sorted(set(labels["dr7objid"]) - used):
    image = data / "images" / f"{objid}.jpeg"
    if image.exists() and not (unseen / image.name).exists():
        (unseen / image.name).symlink_to(image)
print(f"{len(list(unseen.iterdir()))} unseen galaxies in {unseen.resolve()}")
EOF
variants=$(python -c "import json,glob; print(' '.join(sorted(json.load(open(p))['variant'] for p in glob.glob('results/cnn/*/metrics.json'))))")
for variant in $variants; do
    "${smk[@]}" --config "predict_folder=$RUN_DIR/unseen" \
        -- "results/predict/$variant/predictions.csv" >>snakemake.log 2>&1
    echo "predictions of the $variant variant: $RUN_DIR/results/predict/$variant/predictions.csv"
done

# How each variant did on the unseen galaxies (their Galaxy Zoo 1 labels are in labels.csv).
python - "$DATA" $variants <<'EOF'
import sys

import pandas as pd

labels = pd.read_csv(f"{sys.argv[1]}/labels.csv", dtype={"dr7objid": str})
truth = dict(zip(labels["dr7objid"], labels["gz1_class"], strict=True))
for variant in sys.argv[2:]:
    table = pd.read_csv(f"results/predict/{variant}/predictions.csv", dtype={"id": str})
    right = (table["id"].map(truth) == table["predicted_class"]).sum()
    print(f"{variant}: {right} of {len(table)} unseen galaxies given their Galaxy Zoo 1 class")
EOF

echo
# The targets of #21 (accuracy, macro-F1, chirality, the mergers' F1) in a second table.
python "$REPO/bench/summarise_run.py" "$RUN_DIR" --markdown \
    --targets accuracy=0.88 macro_f1=0.68 chirality=0.95 f1:merger=0.50
echo
# Per clustering method: ARI, NMI, purity and "cluster -> majority class" accuracy on the
# test split, next to the study's chain fitted on the same training shards.
python "$REPO/bench/clustering_vs_study.py" "$RUN_DIR" "$REPO/config/sdss_gz1.yaml" 2>clustering_vs_study.log
echo
python "$REPO/bench/stage_benchmarks.py" "$RUN_DIR"
