"""The checks CI enforces on the workflow and the code: lint and formatting."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE_FILES = ["Snakefile", "workflow"]


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_is_clean():
    result = _run("snakemake", "--lint")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_snakefmt_check_is_clean():
    result = _run("snakefmt", "--check", *SNAKEMAKE_FILES)
    assert result.returncode == 0, (
        "run `snakefmt Snakefile workflow`:\n"
        + _run("snakefmt", "--diff", *SNAKEMAKE_FILES).stdout[-6000:]
    )


@pytest.mark.parametrize(
    "command", [("ruff", "check", "."), ("ruff", "format", "--check", ".")], ids=" ".join
)
def test_ruff_is_clean(command):
    result = _run(*command)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
