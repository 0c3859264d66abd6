"""The workflow used the way the Snakemake workflow catalog deploys it: as a module of a
user's own Snakefile with its own config/, and run from another directory."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO, TINY_CONFIG, deep_update, explain, run_command, run_snakemake

#: What ``snakedeploy deploy-workflow`` writes, pointing at this checkout instead of GitHub.
MODULE_SNAKEFILE = """\
configfile: "config/config.yaml"


module galmorph:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from galmorph as galmorph_*
"""


def user_config() -> dict:
    """The user's own config/config.yaml: the defaults, made tiny."""
    defaults = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return deep_update(defaults, TINY_CONFIG)


@pytest.mark.slow
def test_deployed_as_a_module_the_tiny_demo_runs_to_its_report(tmp_path):
    deploy = tmp_path / "deploy"
    (deploy / "config").mkdir(parents=True)
    (deploy / "config" / "config.yaml").write_text(yaml.safe_dump(user_config()))
    (deploy / "Snakefile").write_text(MODULE_SNAKEFILE.format(snakefile=REPO / "Snakefile"))
    before = sorted(path.name for path in REPO.iterdir())
    result = run_snakemake(deploy)
    assert result.returncode == 0, explain(result)
    for name in ("clustering/summary.csv", "cnn/summary.csv", "reduction/pipeline.skops"):
        assert (deploy / "results" / name).stat().st_size > 0, name
    report = run_snakemake(deploy, "--report", "report.html")
    assert report.returncode == 0, explain(report)
    assert (deploy / "report.html").stat().st_size > 0
    # everything happened in the deployment folder, nothing in the checkout
    assert sorted(path.name for path in REPO.iterdir()) == before


def test_runs_from_another_directory_with_the_repository_defaults(tmp_path):
    """``snakemake --snakefile REPO/Snakefile --directory ELSEWHERE`` finds the defaults."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_command(
        [
            "snakemake",
            "-n",
            "--cores",
            "1",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(elsewhere),
        ],  # fmt: skip
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, explain(result)
    assert "missing key" not in result.stdout + result.stderr
    assert "fit_reduction" in result.stdout
