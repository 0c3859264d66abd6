"""Time to build the DAG (``snakemake -n``) with 1,000 image shards per split.

Runs in a copy of the workflow under a temporary folder with the demo config,
``images.n_shards: 1000`` and 2,000 galaxies per split: 2,000 download and
2,000 conversion jobs plus everything downstream. Reports the wall and CPU time
of a dry run of the images stage and of the whole workflow (median of
--repeats); on a busy machine the CPU time is the steadier figure.
Target: under 10 s.

    python bench/dag_shards.py [--shards 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_PATHS = ("Snakefile", "workflow", "scripts", "src", "config", "profiles")


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dry_run(workdir: Path, *targets: str) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and job count of one ``snakemake -n``."""
    start, cpu = time.perf_counter(), child_cpu()
    result = subprocess.run(
        ["snakemake", "-n", "--quiet", "rules", "--configfile=config/bench.yaml", *targets],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    elapsed, cpu = time.perf_counter() - start, child_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    total = re.search(r"^total\s+(\d+)$", result.stdout, flags=re.MULTILINE)
    return elapsed, cpu, int(total.group(1)) if total else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dag_shards-") as tmp:
        workdir = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", ".snakemake")
        for name in WORKFLOW_PATHS:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, workdir / name, ignore=ignore)
            elif source.exists():
                shutil.copy2(source, workdir / name)
        config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
        per_split = 2 * args.shards
        config["images"]["n_shards"] = args.shards
        config["sample"] = {"n_train": per_split, "n_test": per_split}
        config["demo"]["n_galaxies"] = 2 * per_split + config["demo"]["n_malformed"] + 10
        (workdir / "config" / "bench.yaml").write_text(yaml.safe_dump(config))
        archives = [f"results/images/archives/{s}_{k}.tar.gz" for s in ("train", "test")
                    for k in ("jpg", "hdf5")]  # fmt: skip
        print(f"snakemake -n with images.n_shards = {args.shards} per split")
        for label, targets in (("images stage", archives), ("whole workflow", [])):
            runs = [dry_run(workdir, *targets) for _ in range(args.repeats)]
            seconds = statistics.median(run[0] for run in runs)
            cpu = statistics.median(run[1] for run in runs)
            verdict = "met" if seconds < 10 else "NOT met"
            print(
                f"{label:15s} {runs[0][2]:6d} jobs  wall {seconds:5.1f} s  CPU {cpu:5.1f} s"
                f"  (median of {args.repeats})  target < 10 s wall {verdict}"
            )


if __name__ == "__main__":
    main()
