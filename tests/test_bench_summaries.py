"""The benchmark summaries: the score table of a run and per-stage times from
Snakemake's benchmark files and log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import stage_benchmarks  # noqa: E402
import summarise_run  # noqa: E402

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_run(run: Path) -> Path:
    """A finished run's score files: 7 ellipticals and 3 spirals in the test split."""
    sample = run / "results" / "sample"
    sample.mkdir(parents=True)
    classes = ["elliptical"] * 7 + ["spiral"] * 3
    pd.DataFrame({"dr7objid": range(10), "class": classes}).to_csv(sample / "test.csv")
    kmeans = run / "results" / "clustering" / "kmeans"
    kmeans.mkdir(parents=True)
    test = {"adjusted_rand_index": 0.25, "normalized_mutual_info": 0.5, "purity": 0.8}
    (kmeans / "metrics.json").write_text(
        json.dumps({"method": "kmeans", "test": {**test, "n_clusters": 4}})
    )
    cnn = run / "results" / "cnn" / "balanced"
    cnn.mkdir(parents=True)
    scores = {"accuracy": 0.9, "f1_macro": 0.85, "f1_weighted": 0.88, "roc_auc_macro": 0.95,
              "balanced_accuracy": 0.8, "chirality_accuracy": 0.91}  # fmt: skip
    (cnn / "metrics.json").write_text(json.dumps({"variant": "balanced", **scores}))
    return run


def test_table_has_the_majority_baseline_and_every_model(tmp_path):
    table = summarise_run.summary_table(write_run(tmp_path))
    baseline = table.loc["baseline: always elliptical"]
    assert baseline["accuracy"] == pytest.approx(0.7)
    assert baseline["purity"] == pytest.approx(0.7)
    # F1 of the majority class is 2 * 0.7 / 1.7; the spiral class scores 0
    assert baseline["macro F1"] == pytest.approx((2 * 0.7 / 1.7) / 2)
    assert baseline["weighted F1"] == pytest.approx(0.7 * 2 * 0.7 / 1.7)
    assert baseline["ARI"] == 0 and baseline["macro AUC"] == 0.5
    assert table.loc["clustering: kmeans", "NMI"] == 0.5
    assert table.loc["clustering: kmeans", "clusters"] == 4
    assert pd.isna(table.loc["clustering: kmeans", "accuracy"])
    assert table.loc["CNN: balanced", "macro AUC"] == 0.95
    markdown = summarise_run.format_table(table, markdown=True)
    assert baseline["balanced acc."] == pytest.approx(0.5)
    assert (
        "| CNN: balanced |  |  |  | 0.900 | 0.800 | 0.850 | 0.880 | 0.950 | 0.910 |  |" in markdown
    )


def test_targets_table_gives_each_variant_its_scores_and_the_count_met(tmp_path):
    run = write_run(tmp_path)
    metrics_path = run / "results" / "cnn" / "balanced" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["per_class"] = {"elliptical": {"f1": 0.95}, "spiral": {"f1": 0.4}}
    metrics_path.write_text(json.dumps(metrics))
    targets = summarise_run.parse_targets(["accuracy=0.88", "macro_f1=0.9", "f1:spiral=0.5"])
    table = summarise_run.target_table(run, targets)
    assert table.loc["CNN: balanced", "accuracy"] == 0.9
    assert table.loc["CNN: balanced", "f1:spiral"] == 0.4
    assert table.loc["CNN: balanced", "met"] == "1 of 3"
    baseline = table.loc["baseline: always elliptical"]
    assert baseline["f1:spiral"] == 0 and baseline["met"] == "0 of 3"
    assert table.loc["target", "macro_f1"] == 0.9
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "summarise_run.py"), str(run), "--targets", "f1=1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "f1:<class>" in result.stderr


def test_vote_network_is_its_own_line_beside_its_baseline(tmp_path):
    run = write_run(tmp_path)
    votes = run / "results" / "cnn" / "votes"
    votes.mkdir()
    scores = {"n_galaxies": 10, "vote_column": "debiased", "rmse": 0.13, "rmse_baseline": 0.2,
              "rmse_conditional": 0.23, "rmse_conditional_baseline": 0.3}  # fmt: skip
    (votes / "metrics.json").write_text(json.dumps(scores))
    table = summarise_run.summary_table(run)
    assert not any("votes" in model for model in table.index)
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "summarise_run.py"), str(run)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "RMSE 0.130 (training mean: 0.200)" in result.stdout
    assert "per question 0.230 (training mean: 0.300)" in result.stdout


def test_missing_test_split_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "summarise_run.py"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "test.csv" in result.stderr and "Traceback" not in result.stderr


LOG = """\
[Wed Nov 25 09:52:29 2026]
localrule fetch_images:
    input: results/sample/train.csv
    log: logs/images/fetch_images/train_0000.log
    jobid: 9
[Wed Nov 25 09:52:31 2026]
localrule sample:
    log: logs/sample/sample.log
    jobid: 3
[Wed Nov 25 09:52:40 2026]
Finished jobid: 9 (Rule: fetch_images)
[Wed Nov 25 09:52:45 2026]
Finished jobid: 3 (Rule: sample)
[Wed Nov 25 09:52:46 2026]
localrule jpg_to_hdf5:
    log: logs/images/jpg_to_hdf5/train_0000.log
    jobid: 4
[Wed Nov 25 09:52:50 2026]
Finished jobid: 4 (Rule: jpg_to_hdf5)
"""


def write_benchmarks(run: Path) -> Path:
    folder = run / "benchmarks" / "images" / "jpg_to_hdf5"
    folder.mkdir(parents=True)
    for shard, (seconds, rss, cpu) in enumerate([(4.0, 90.5, 3.0), (6.0, 120.0, 5.0)]):
        row = f"{seconds}\t0:00:0{int(seconds)}\t{rss}\t0\t0\t0\t0\t0\t50\t{cpu}\n"
        (folder / f"train_{shard:04d}.tsv").write_text(BENCH_HEADER + row)
    (run / "snakemake.log").write_text(LOG)
    return run


def test_stage_times_sum_jobs_and_keep_the_largest_peak(tmp_path):
    run = write_benchmarks(tmp_path)
    jobs = stage_benchmarks.with_unbenchmarked(stage_benchmarks.read_benchmarks(run), run)
    stages = stage_benchmarks.per_stage(jobs)
    # benchmark files: 4 + 6 s; the log adds fetch_images (11 s), not jpg_to_hdf5 again
    assert stages.loc["images", "jobs"] == 3
    assert stages.loc["images", "wall_s"] == pytest.approx(21.0)
    assert stages.loc["images", "cpu_s"] == pytest.approx(8.0)
    assert stages.loc["images", "peak_rss_mb"] == pytest.approx(120.0)
    assert stages.loc["sample", "wall_s"] == pytest.approx(14.0)
    assert pd.isna(stages.loc["sample", "cpu_s"])
    assert list(stages.index) == ["sample", "images"]


def test_side_by_side_runs_and_projection(tmp_path):
    small, large = write_benchmarks(tmp_path / "small"), write_benchmarks(tmp_path / "large")
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "stage_benchmarks.py"), str(small), str(large),
         "--labels", "100", "200", "--project", "2000"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "Linear projection to 2,000 galaxies from the 200-galaxy run" in result.stdout
    # images: 21 s for 200 galaxies -> 210 s for 2,000
    assert "210.0" in result.stdout


def test_a_file_that_is_not_a_benchmark_is_refused(tmp_path):
    folder = tmp_path / "benchmarks" / "images"
    folder.mkdir(parents=True)
    (folder / "broken.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(SystemExit, match="not a Snakemake benchmark"):
        stage_benchmarks.read_benchmarks(tmp_path)


def test_budget_selection_keeps_the_cheapest_candidate_within_tolerance():
    import cnn_budget_select

    table = pd.DataFrame(
        [
            ("balanced: reference", "balanced", 100.0, 0.85, 0.80),
            ("balanced: cheap", "balanced", 60.0, 0.845, 0.795),  # within 0.01: kept
            ("balanced: cheapest", "balanced", 40.0, 0.83, 0.81),  # macro-F1 0.02 lower
            ("unbalanced: reference", "unbalanced", 50.0, 0.80, 0.70),
            ("unbalanced: cheap", "unbalanced", 30.0, 0.70, 0.70),  # accuracy 0.1 lower
        ],
        columns=["candidate", "variant", "train CPU s", "accuracy", "f1_macro"],
    )
    chosen = cnn_budget_select.choose(table, tolerance=0.01)
    assert chosen["candidate"].tolist() == ["balanced: cheap", "unbalanced: reference"]


def test_demo_run_time_lists_the_longest_jobs(tmp_path):
    import demo_run_time

    for name, wall, cpu in (("cnn/train_cnn/balanced", 90.5, 80.0), ("demo/demo_sky", 4.0, 3.0)):
        path = tmp_path / "benchmarks" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BENCH_HEADER + f"{wall}\t0:01:30\t1\t1\t1\t1\t0\t0\t90\t{cpu}\n")
    assert demo_run_time.longest_jobs(tmp_path, n=1) == "cnn/train_cnn/balanced 90 s (80 s CPU)"


def test_class_bias_selection_scores_its_biases_on_rows_they_were_not_fitted_on(tmp_path, capsys):
    """Out-of-fold probabilities of three folds in which edge-on galaxies are under-called:
    the nested biases call them, lift macro-F1, keep the two senses of winding tied, and the
    entry for the config is printed."""
    import class_bias_select
    import numpy as np

    names = ["elliptical", "edge_on", "spiral_cw", "spiral_acw", "merger", "dont_know"]
    rng = np.random.default_rng(3)
    y_true = np.repeat(np.arange(6), [300, 60, 40, 40, 20, 10])
    proba = rng.dirichlet(np.ones(6), len(y_true)) * 0.3
    proba[np.arange(len(y_true)), y_true] += 0.7
    edge_on = np.flatnonzero(y_true == 1)
    proba[edge_on, 0] = proba[edge_on, 1] + 0.05  # elliptical, just ahead
    proba /= proba.sum(axis=1, keepdims=True)
    fold = np.arange(len(y_true)) % 3
    counts = np.stack([np.bincount(y_true[fold != k], minlength=6) for k in range(3)])
    path = tmp_path / "ensemble.npz"
    np.savez(path, y_true=y_true, proba=proba, fold=fold, fold_class_counts=counts,
             split_class_counts=counts.sum(axis=0), class_names=names)  # fmt: skip
    table = class_bias_select.main([str(path), "--prior-shift", "0"])
    assert table["decision"].tolist() == [
        "baseline: always elliptical", "prior shift 0", "prior shift 0 + class bias (nested)"
    ]  # fmt: skip
    shift_only, nested = table.iloc[1], table.iloc[2]
    assert nested["macro_f1"] > shift_only["macro_f1"] + 0.05
    assert nested["accuracy"] > shift_only["accuracy"]
    printed = capsys.readouterr().out
    entry = printed.split("ensemble: {")[1].split("}")[0]
    biases = dict(item.split(": ") for item in entry.split(", "))
    assert float(biases.get("edge_on", 0)) - float(biases.get("elliptical", 0)) > 0
    assert biases.get("spiral_cw") == biases.get("spiral_acw")


def _held_out(path, proba, y_true):
    np.savez(path, y_true=np.asarray(y_true), proba=np.asarray(proba, dtype=float),
             fold=np.zeros(len(y_true), int), fold_class_counts=np.array([[1, 1, 1]]),
             class_names=np.array(["a", "b", "c"]))  # fmt: skip
    return path


def test_agreement_counts_unanimous_calls_against_the_label(tmp_path, capsys):
    import held_out_agreement

    y_true = [0, 1, 2, 0]
    # galaxy 0: both right; 1: both call c (against b), sure; 2: they differ, the first right;
    # 3: both say b (against a)
    first = [[0.9, 0.05, 0.05], [0.05, 0.05, 0.9], [0.2, 0.2, 0.6], [0.3, 0.6, 0.1]]
    second = [[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2], [0.45, 0.55, 0.0]]
    paths = [_held_out(tmp_path / "one.npz", first, y_true),
             _held_out(tmp_path / "two.npz", second, y_true)]  # fmt: skip
    found = held_out_agreement.main([str(p) for p in paths])
    assert found["unanimous"] == 0.75 and found["against"] == 0.5 and found["one_right"] == 0.5
    # galaxy 3's least sure member gives its call 0.55: under the 0.6 row, not galaxy 1
    assert found["against_sure"][0.5] == 0.5 and found["against_sure"][0.6] == 0.25
    assert found["against_sure"][0.9] == 0.0
    assert found["pairs"] == {("b", "c"): 1, ("a", "b"): 1}
    np.testing.assert_allclose(found["each_accuracy"], [0.5, 0.25])
    assert "every member calls one class that is not the label |   0.500" in capsys.readouterr().out
    # a shift towards the fitted mix (flat here) changes nothing; other galaxies are refused
    assert held_out_agreement.main([*map(str, paths), "--shifts", "1", "1"])["against"] == 0.5
    other = _held_out(tmp_path / "other.npz", first, [0, 1, 2, 1])
    with pytest.raises(SystemExit, match="other held-out galaxies"):
        held_out_agreement.main([str(paths[0]), str(other)])
