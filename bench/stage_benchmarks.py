"""Per-stage wall time, CPU time and peak memory of workflow runs, from Snakemake's
benchmark files.

    python bench/stage_benchmarks.py RUN_DIR [RUN_DIR ...] [--labels N ...]
        [--project 243434] [--exclude-from-projection demo]

Each RUN_DIR is a working directory the workflow ran in. Every job with a
``benchmark:`` directive wrote ``benchmarks/<stage>/<rule>[/<wildcards>].tsv``
(columns ``s``, ``max_rss`` in MB, ``cpu_time`` in s, ...). Per stage and run this
prints the summed job wall time (the time the stage takes on one core, jobs
one after another), the summed CPU time (user + system) and the largest
``max_rss`` of any one job (the peak that a node must hold). With ``--labels``
(the number of galaxies of each run) it adds the seconds per 1,000 galaxies,
so linear growth shows as a constant, and projects the largest run's rate to
``--project`` galaxies. If the run directory holds ``time.txt`` (the output of
``/usr/bin/time -v snakemake ...``), the whole invocation's wall time and CPU
time are shown too; if it holds ``snakemake.log`` (Snakemake's output), the
jobs of rules without a benchmark file are timed from its stamps (wall time
only, to the second; CPU and RSS left empty).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd


def read_benchmarks(run_dir: str | Path) -> pd.DataFrame:
    """One row per benchmarked job: stage, rule, job, s, cpu_time, max_rss."""
    root = Path(run_dir) / "benchmarks"
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        parts = path.relative_to(root).with_suffix("").parts
        if len(parts) < 2:
            continue
        try:
            frame = pd.read_csv(path, sep="\t")
        except (OSError, ValueError, pd.errors.EmptyDataError) as error:
            sys.exit(f"{path}: cannot read the benchmark ({error})")
        missing = {"s", "max_rss", "cpu_time"} - set(frame.columns)
        if missing or frame.empty:
            sys.exit(f"{path}: not a Snakemake benchmark (missing {sorted(missing)} or no row)")
        # A benchmark that repeats a job holds several rows: keep the last run.
        last = frame.iloc[-1]
        rss = pd.to_numeric(last["max_rss"], errors="coerce")
        rows.append(
            {
                "stage": parts[0],
                "rule": parts[1],
                "job": "/".join(parts[1:]),
                "s": float(last["s"]),
                "cpu_s": float(pd.to_numeric(last["cpu_time"], errors="coerce")),
                "max_rss_mb": float(rss) if pd.notna(rss) else float("nan"),
            }
        )
    if not rows:
        sys.exit(f"{root}: no benchmark file; run the workflow in {run_dir} first")
    return pd.DataFrame(rows)


STAGE_ORDER = ("demo", "catalogue", "sample", "images", "reduction", "clustering", "cnn")
_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def log_job_times(log_path: str | Path) -> pd.DataFrame:
    """Wall seconds of every job from Snakemake's own log (start and finish stamps).

    Covers the rules without a ``benchmark:`` file (to the second; no CPU time
    or memory). The stage is the folder under ``logs/`` of the job's log file.
    """
    rows, started, stamp, current = [], {}, None, None
    for line in Path(log_path).read_text(errors="replace").splitlines():
        line = line.strip()
        if match := _STAMP.match(line):
            stamp = pd.Timestamp(match.group(1))
        elif re.match(r"^(local)?rule \w+:$", line):
            current = {"rule": line.split()[-1].rstrip(":"), "start": stamp, "stage": ""}
        elif current is not None and line.startswith("log: logs/"):
            current["stage"] = line.split("/")[1]
        elif current is not None and line.startswith("jobid: "):
            started[line.split()[1]] = current
            current = None
        elif match := re.match(r"^Finished jobid: (\d+) \(Rule: (\w+)\)", line):
            job = started.pop(match.group(1), None)
            if job is not None and job["rule"] != "all":
                seconds = (stamp - job["start"]).total_seconds()
                rows.append({**job, "job": f"{job['rule']}#{match.group(1)}", "s": seconds})
    return pd.DataFrame(rows, columns=["stage", "rule", "job", "s"])


def with_unbenchmarked(jobs: pd.DataFrame, run_dir: str | Path) -> pd.DataFrame:
    """Add the jobs of rules without a benchmark file, timed from ``snakemake.log``."""
    log = Path(run_dir) / "snakemake.log"
    if not log.exists():
        return jobs
    timed = log_job_times(log)
    timed = timed[~timed["rule"].isin(jobs["rule"])].assign(cpu_s=float("nan"))
    timed = timed.assign(max_rss_mb=float("nan"), stage=timed["stage"].replace("", "other"))
    return pd.concat([jobs, timed.drop(columns="start", errors="ignore")], ignore_index=True)


def per_stage(jobs: pd.DataFrame, by: str | list[str] = "stage") -> pd.DataFrame:
    """Jobs, summed wall and CPU seconds, and the largest job's peak RSS per stage (or rule)."""
    order = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    jobs = jobs.sort_values("stage", key=lambda s: s.map(order).fillna(len(order)), kind="stable")
    return jobs.groupby(by, sort=False).agg(
        jobs=("job", "size"),
        wall_s=("s", "sum"),
        # NaN, not 0, where no job of the group has a benchmark file
        cpu_s=("cpu_s", lambda values: values.sum(min_count=1)),
        peak_rss_mb=("max_rss_mb", "max"),
    )


def read_time_file(run_dir: str | Path) -> dict | None:
    """Wall, user+sys CPU and max RSS of the whole run from ``/usr/bin/time -v`` output."""
    path = Path(run_dir) / "time.txt"
    if not path.exists():
        return None
    text = path.read_text()

    def field(name: str) -> str:
        match = re.search(rf"{re.escape(name)}: (.+)", text)
        if not match:
            sys.exit(f"{path}: no '{name}' line; is it the output of /usr/bin/time -v?")
        return match.group(1).strip()

    clock = [
        float(part) for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
    ]
    wall = sum(value * 60**power for power, value in enumerate(reversed(clock)))
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "snakemake_rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024,
    }


def _print_run(run_dir: str, label: str | None) -> pd.DataFrame:
    jobs = with_unbenchmarked(read_benchmarks(run_dir), run_dir)
    title = f"{run_dir}" + (f" ({label} galaxies)" if label else "")
    print(f"\n## {title}")
    print(per_stage(jobs, ["stage", "rule"]).round(1).to_string())
    whole = read_time_file(run_dir)
    if whole:
        print(
            f"whole run: wall {whole['wall_s']:.0f} s, CPU (user+sys, all processes) "
            f"{whole['cpu_s']:.0f} s"
        )
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--labels", nargs="+", type=int, help="galaxies of each run")
    parser.add_argument("--project", type=int, default=0, help="project to this many galaxies")
    parser.add_argument(
        "--exclude-from-projection",
        nargs="*",
        default=["demo"],
        help="stages the projected run would not have (the real release has no demo sky)",
    )
    args = parser.parse_args()
    if args.labels and len(args.labels) != len(args.run_dirs):
        sys.exit("give one --labels value per run directory")
    labels = args.labels or [None] * len(args.run_dirs)

    stages = {}
    for run_dir, label in zip(args.run_dirs, labels, strict=True):
        stages[label or run_dir] = per_stage(_print_run(run_dir, label))
    if not args.labels:
        return

    print("\n## Per stage, side by side (wall and CPU: summed job seconds; RSS: largest job)")
    table = pd.concat(stages, names=["galaxies", "stage"]).reset_index()
    table["wall_s_per_1000"] = 1000 * table["wall_s"] / table["galaxies"]
    table["cpu_s_per_1000"] = 1000 * table["cpu_s"] / table["galaxies"]
    print(table.round(2).to_string(index=False))

    if args.project:
        largest = max(args.labels)
        rates = table[(table["galaxies"] == largest)].set_index("stage")
        rates = rates.drop(index=[s for s in args.exclude_from_projection if s in rates.index])
        scale = args.project / largest
        projected = pd.DataFrame(
            {
                "wall_s": rates["wall_s"] * scale,
                "cpu_s": rates["cpu_s"] * scale,
                "peak_rss_mb (flat)": rates["peak_rss_mb"],
            }
        )
        projected["wall_h"] = projected["wall_s"] / 3600
        print(
            f"\n## Linear projection to {args.project:,} galaxies from the {largest:,}-galaxy "
            f"run's rates (one core, jobs one after another; stages "
            f"{', '.join(args.exclude_from_projection) or 'none'} left out)"
        )
        print(projected.round(1).to_string())
        print(f"total: {projected['wall_h'].sum():.1f} h of job time on one core")


if __name__ == "__main__":
    main()
