"""Every rule names a conda environment of workflow/envs/ that provides what its script imports.

The imports are read from the source (AST), following the project's own
modules (``_bootstrap``, ``galmorph.*``) transitively, so a package used only
deep inside ``galmorph`` still has to be in the environment of every rule
whose script reaches it.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
ENVS = ("data", "ml", "dl")

#: Top-level module -> conda packages any one of which provides it.
MODULE_PACKAGES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "scipy": ("scipy",),
    "sklearn": ("scikit-learn",),
    "threadpoolctl": ("threadpoolctl",),
    "hdbscan": ("hdbscan",),
    "minisom": ("minisom",),
    "h5py": ("h5py",),
    "matplotlib": ("matplotlib-base", "matplotlib"),
    "PIL": ("pillow",),
    "yaml": ("pyyaml",),
    "jsonschema": ("jsonschema",),
    "tqdm": ("tqdm",),
    "isal": ("python-isal",),
    "skops": ("skops",),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras", "tensorflow-cpu", "tensorflow"),
}
#: conda-forge name -> the name pinned in constraints.txt, where they differ.
PYPI_NAMES = {"matplotlib-base": "matplotlib", "python-isal": "isal"}
#: Modules the project ships itself: their imports are followed, not looked up.
LOCAL_ROOTS = {"galmorph", "_bootstrap"}

_RULE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
_TOP_LEVEL = re.compile(r"^\S", re.MULTILINE)
_CONDA = re.compile(r"^\s+conda:\s*\n\s+(.+?)\s*$", re.MULTILINE)
_ENV_CALL = re.compile(r'^env\(\s*"(\w+)"\s*\),?$')
_SCRIPT = re.compile(r'^\s+script:\s*\n\s+"([^"]+)"', re.MULTILINE)
_ACTION = re.compile(r"^\s+(script|shell|run|wrapper|notebook|cwl):", re.MULTILINE)


@dataclass(frozen=True)
class Rule:
    name: str
    smk: Path
    action: str | None  # script, shell, run, ... or None for a target-only rule
    env: str | None  # the name given to env(...)
    conda_raw: str | None  # the conda: directive as written
    script: Path | None


def parse_rules(smk_files) -> list[Rule]:
    """Read name, action, ``conda: env(...)`` and ``script:`` of every rule."""
    rules = []
    for smk in smk_files:
        text = smk.read_text()
        for match in _RULE.finditer(text):
            # The rule body runs to the next line that starts in column 0.
            end = _TOP_LEVEL.search(text, match.end())
            body = text[match.end() : end.start() if end else len(text)]
            action = _ACTION.search(body)
            conda = _CONDA.search(body)
            env_call = _ENV_CALL.match(conda.group(1)) if conda else None
            script = _SCRIPT.search(body)
            rules.append(
                Rule(
                    name=match.group(1),
                    smk=smk,
                    action=action.group(1) if action else None,
                    env=env_call.group(1) if env_call else None,
                    conda_raw=conda.group(1) if conda else None,
                    script=(smk.parent / script.group(1)).resolve() if script else None,
                )
            )
    return rules


def _module_file(name: str, roots) -> Path | None:
    """The file of a dotted module name under one of ``roots``, if it is ours."""
    parts = name.split(".")
    for root in roots:
        base = root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _package_of(path: Path, roots) -> str:
    """Dotted package that a file's relative imports start from."""
    for root in roots:
        if path.is_relative_to(root):
            return ".".join(path.relative_to(root).parts[:-1])
    raise ValueError(f"{path} is under none of {roots}")


def imported_modules(script: Path, roots) -> tuple[set[str], set[Path]]:
    """Third-party top-level modules a script needs, following our own modules.

    Parameters
    ----------
    script : Path
        The rule's script.
    roots : sequence of Path
        Folders our own modules are imported from (``scripts/``, ``src/``).

    Returns
    -------
    third_party : set of str
        Top-level names outside the standard library and the project.
    visited : set of Path
        Our own files that were read (the script included).
    """
    third_party: set[str] = set()
    visited: set[Path] = set()
    pending = [script]
    while pending:
        path = pending.pop()
        if path in visited:
            continue
        visited.add(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        names: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    package = _package_of(path, roots).split(".")
                    package = package[: len(package) - node.level + 1]
                    base = ".".join(filter(None, [*package, node.module or ""]))
                else:
                    base = node.module
                names.append(base)
                # "from galmorph import config" imports a module, not just a name.
                names += [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            top = name.split(".")[0]
            if top in LOCAL_ROOTS:
                parts = name.split(".")
                # Importing a.b.c runs a/__init__, a/b/__init__ and a/b/c.
                for depth in range(1, len(parts) + 1):
                    found = _module_file(".".join(parts[:depth]), roots)
                    if found:
                        pending.append(found)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
    return third_party, visited


def read_env(name: str) -> dict:
    with open(REPO / "workflow" / "envs" / f"{name}.yaml") as handle:
        return yaml.safe_load(handle)


def env_packages(spec: dict) -> dict[str, str | None]:
    """Package -> pinned version of a conda environment file (pip entries included)."""
    packages = {}
    for entry in spec.get("dependencies", []):
        if isinstance(entry, dict):
            for pip_entry in entry.get("pip", []):
                name, _, version = pip_entry.partition("==")
                packages[name.strip().lower()] = version.strip() or None
        else:
            name, _, version = str(entry).partition("=")
            packages[name.strip().lower()] = version.strip() or None
    return packages


def _smk_files():
    return sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "Snakefile"]


RULES = parse_rules(_smk_files())
SCRIPT_RULES = [rule for rule in RULES if rule.script is not None]


def test_rule_parser_sees_every_rule():
    """The regex parse agrees with Snakemake's own list of rules."""
    listed = subprocess.run(
        ["snakemake", "--list-rules"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    names = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert {rule.name for rule in RULES} == names


def test_every_rule_with_an_action_names_its_environment():
    problems = []
    for rule in RULES:
        if rule.action is None or rule.action == "run":
            continue  # target-only rules run nothing; run: blocks cannot use conda
        if rule.env not in ENVS:
            problems.append(
                f"rule {rule.name} ({rule.smk.name}): conda: {rule.conda_raw!r}, "
                f'expected env("data"|"ml"|"dl")'
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("rule", SCRIPT_RULES, ids=[rule.name for rule in SCRIPT_RULES])
def test_rule_environment_provides_every_import(rule):
    assert rule.script.is_file(), f"rule {rule.name}: script {rule.script} does not exist"
    modules, _ = imported_modules(rule.script, [REPO / "scripts", SRC])
    provided = set(env_packages(read_env(rule.env)))
    unknown = sorted(module for module in modules if module not in MODULE_PACKAGES)
    assert not unknown, (
        f"rule {rule.name}: {rule.script.name} imports {unknown}; add the conda package "
        "to workflow/envs/ and to MODULE_PACKAGES in this test"
    )
    missing = {
        module: MODULE_PACKAGES[module]
        for module in modules
        if not provided.intersection(MODULE_PACKAGES[module])
    }
    assert not missing, (
        f"rule {rule.name} (env {rule.env}): workflow/envs/{rule.env}.yaml lacks a package for "
        + ", ".join(f"{module} ({' or '.join(packages)})" for module, packages in missing.items())
    )


@pytest.mark.parametrize("name", ENVS)
def test_environment_is_pinned_on_conda_forge(name):
    spec = read_env(name)
    assert spec["channels"] == ["conda-forge", "nodefaults"]
    packages = env_packages(spec)
    # the Python constraints.txt was resolved on (the install itself takes 3.11-3.13)
    assert packages.get("python") == "3.11", "the environments pin Python 3.11"
    unpinned = sorted(package for package, version in packages.items() if not version)
    assert not unpinned, f"workflow/envs/{name}.yaml: pin a version for {unpinned}"


def constraint_pins() -> dict[str, str]:
    """Package -> exact version of constraints.txt (names normalised as pip does)."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"constraints.txt: {line} is not an exact pin"
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def project_requirements() -> list[Requirement]:
    with open(REPO / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in project["dependencies"] + extras]


def test_pyproject_gives_ranges_that_hold_the_tested_pins():
    """Ranges let galmorph be installed beside other projects; the pins are in the ranges."""
    pins = constraint_pins()
    for requirement in project_requirements():
        operators = {specifier.operator for specifier in requirement.specifier}
        assert "==" not in operators and {">=", "<"} <= operators, (
            f"pyproject.toml: {requirement} should be a range >=x,<y"
        )
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt has no pin for {requirement.name}"
        assert requirement.specifier.contains(pins[name]), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"
        )


@pytest.mark.parametrize("name", ENVS)
def test_environment_versions_match_the_constraints(name):
    pins = constraint_pins()
    mismatched = []
    for package, version in env_packages(read_env(name)).items():
        pypi = canonicalize_name(PYPI_NAMES.get(package, package))
        if pypi in pins and Version(pins[pypi]) != Version(version):
            mismatched.append(f"{package}: env {version}, constraints.txt {pins[pypi]}")
    assert not mismatched, f"workflow/envs/{name}.yaml: " + "; ".join(mismatched)


def test_every_environment_is_used():
    used = {rule.env for rule in RULES if rule.env}
    assert used <= set(ENVS)


def test_import_collector_follows_the_project_package(tmp_path):
    """The collector itself: transitive, relative and in-function imports are found."""
    scripts, src = tmp_path / "scripts", tmp_path / "src"
    (src / "galmorph" / "sub").mkdir(parents=True)
    scripts.mkdir()
    (scripts / "_bootstrap.py").write_text("import sys\nimport galmorph.errors\n")
    (src / "galmorph" / "__init__.py").write_text("")
    (src / "galmorph" / "errors.py").write_text("import jsonschema\n")
    (src / "galmorph" / "sub" / "__init__.py").write_text("from . import deep\n")
    (src / "galmorph" / "sub" / "deep.py").write_text(
        "def fit():\n    from sklearn.cluster import KMeans\n    return KMeans\n"
    )
    (src / "galmorph" / "plain.py").write_text("import os, json\nfrom ..galmorph import x\n")
    (scripts / "rule.py").write_text(
        "import _bootstrap\nfrom galmorph import sub\nfrom galmorph.plain import y\n"
        "import numpy as np\n"
    )
    modules, visited = imported_modules(scripts / "rule.py", [scripts, src])
    assert modules == {"numpy", "jsonschema", "sklearn"}
    assert src / "galmorph" / "sub" / "deep.py" in visited


def test_rule_parser_reads_conda_and_script(tmp_path):
    smk = tmp_path / "rules" / "x.smk"
    smk.parent.mkdir()
    smk.write_text(
        "localrules:\n    a,\n\n\n"
        'rule a:\n    output:\n        "a.txt",\n    conda:\n        env("ml")\n'
        '    script:\n        "../scripts/a.py"\n\n\n'
        'rule b:\n    output:\n        "b.txt",\n    conda:\n        "envs/x.yaml"\n'
        '    shell:\n        "touch {output}"\n\n\n'
        "rule c:\n    input:\n        rules.a.output,\n"
    )
    a, b, c = parse_rules([smk])
    assert (a.name, a.env, a.action, a.script) == ("a", "ml", "script", tmp_path / "scripts/a.py")
    assert (b.env, b.conda_raw, b.action) == (None, '"envs/x.yaml"', "shell")
    assert (c.action, c.script) == (None, None)
