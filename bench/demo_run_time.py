"""Wall time and scores of the default demo run, from fresh clones, several times.

    python bench/demo_run_time.py [--runs 3] [--cores 2] [--compare REV] [--keep DIR]
                                  [-- SNAKEMAKE_ARGS]

Each run clones the repository's committed HEAD into a new folder and runs
``snakemake --cores N`` there on ``config/config.yaml`` (the README's first command,
without the install). It prints, per run, the wall time, the CPU time of the whole
run (Snakemake and every job), the scores of every CNN variant on the test split
beside the majority baseline, and the jobs that took longest (from ``benchmarks/``).
The last lines say in how many runs the demo met its budget: wall time at most
``--budget-s`` (240 s) and a CNN variant with test accuracy at least
``--min-accuracy`` (0.85). Uncommitted changes are not measured: commit first.

``--compare REV`` first runs the demo once at another revision, on the same machine
just before, and ends with the ratio of HEAD's mean wall time to it: a change's
effect apart from the machine's speed of the day.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import summarise_run  # noqa: E402

SCORES = ["accuracy", "balanced acc.", "macro F1"]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def longest_jobs(run_dir: Path, n: int = 5) -> str:
    """The n jobs with the longest wall time, from Snakemake's benchmark files."""
    jobs = []
    for path in (run_dir / "benchmarks").rglob("*.tsv"):
        table = pd.read_csv(path, sep="\t")
        name = str(path.relative_to(run_dir / "benchmarks").with_suffix(""))
        jobs.append((float(table["s"].iloc[-1]), float(table["cpu_time"].iloc[-1]), name))
    jobs.sort(reverse=True)
    return ", ".join(f"{name} {wall:.0f} s ({cpu:.0f} s CPU)" for wall, cpu, name in jobs[:n])


def one_run(run_dir: Path, cores: str, extra: list[str], rev: str | None = None) -> dict:
    subprocess.run(["git", "clone", "-q", str(REPO), str(run_dir)], check=True)
    if rev is not None:
        subprocess.run(["git", "-C", str(run_dir), "checkout", "-q", rev], check=True)
    commit = subprocess.run(
        ["git", "-C", str(run_dir), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    log = run_dir / "demo_run.log"
    cpu_before, start = children_cpu_s(), time.perf_counter()
    with log.open("w") as out:
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", cores, *extra],
            cwd=run_dir, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    wall, cpu = time.perf_counter() - start, children_cpu_s() - cpu_before
    if result.returncode != 0:
        sys.exit(f"the demo run in {run_dir} failed (exit {result.returncode}); see {log}")
    table = summarise_run.summary_table(run_dir)
    cnn = table[table.index.str.startswith("CNN:")]
    baseline = table[table.index.str.startswith("baseline")]
    return {
        "commit": commit,
        "wall": wall,
        "cpu": cpu,
        "scores": pd.concat([baseline, cnn])[SCORES],
        "longest": longest_jobs(run_dir),
        "best_accuracy": float(cnn["accuracy"].max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh clones to run (3)")
    parser.add_argument("--cores", default="all", help="snakemake --cores (all)")
    parser.add_argument("--budget-s", type=float, default=240.0, help="wall time budget")
    parser.add_argument("--min-accuracy", type=float, default=0.85)
    parser.add_argument("--compare", metavar="REV", help="first run once at this revision")
    parser.add_argument("--keep", help="keep the runs in this folder (default: deleted)")
    parser.add_argument("snakemake_args", nargs="*", help="after --: passed to snakemake")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    parent = Path(args.keep or tempfile.mkdtemp(prefix="galmorph-demo-runs."))
    parent.mkdir(parents=True, exist_ok=True)
    met, walls, reference = 0, [], None

    def report(label: str, run: dict, ok: bool) -> None:
        print(
            f"{label} (commit {run['commit']}, --cores {args.cores}): "
            f"wall {run['wall']:.1f} s, CPU {run['cpu']:.1f} s"
            f"{'' if ok else '  [outside the budget]'}"
        )
        print(run["scores"].to_string(float_format=lambda v: f"{v:.3f}"))
        print(f"  longest jobs: {run['longest']}", flush=True)

    try:
        names = ([("compare", args.compare)] if args.compare else []) + [
            (f"run{number}", None) for number in range(1, args.runs + 1)
        ]
        for name, rev in names:
            run_dir = parent / name
            if run_dir.exists():
                sys.exit(f"{run_dir} exists: give --keep an empty folder")
            run = one_run(run_dir, args.cores, args.snakemake_args, rev)
            ok = run["wall"] <= args.budget_s and run["best_accuracy"] >= args.min_accuracy
            if rev is not None:
                reference = run
                report(f"reference run at {rev}", run, ok)
                continue
            met += ok
            walls.append(run["wall"])
            report(f"run {len(walls)}", run, ok)
    finally:
        if not args.keep:
            shutil.rmtree(parent, ignore_errors=True)
    print(
        f"{met} of {args.runs} runs within {args.budget_s:.0f} s wall with a CNN test "
        f"accuracy >= {args.min_accuracy:.2f}"
    )
    if reference is not None:
        mean = sum(walls) / len(walls)
        print(
            f"HEAD's mean wall {mean:.1f} s against {reference['wall']:.1f} s at "
            f"{args.compare} ({reference['commit']}): ratio {mean / reference['wall']:.2f}"
        )


if __name__ == "__main__":
    main()
