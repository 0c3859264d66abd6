"""The package mirrors the stages: a stage imports only earlier stages and the shared modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "galmorph"
#: the stages in workflow order (rule files catalogue, images, reduction, clustering, cnn)
STAGES = ("catalogue", "images", "reduction", "clustering", "cnn")
#: may import every stage below it; ``synth`` writes the demo sky the catalogue stage reads
EXTRA = {"synth": ("catalogue",)}


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("galmorph.")}


def _stage_of(module: str) -> str | None:
    part = module.split(".")[1]
    return part if part in STAGES or part in EXTRA else None


def test_every_stage_has_its_package():
    for stage in (*STAGES, *EXTRA):
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
    rules = {path.stem for path in (PACKAGE.parents[1] / "workflow" / "rules").glob("*.smk")}
    assert set(STAGES) <= rules, rules


def test_stages_import_only_earlier_stages():
    wrong = []
    for stage in (*STAGES, *EXTRA):
        allowed = set(STAGES[: STAGES.index(stage) + 1]) if stage in STAGES else {stage}
        allowed |= set(EXTRA.get(stage, ()))
        for path in sorted((PACKAGE / stage).rglob("*.py")):
            for module in _imported_modules(path):
                other = _stage_of(module)
                if other is not None and other not in allowed:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_no_stage_module_left_at_the_top():
    """Every top-level module is shared by several stages, not one stage's own."""
    shared = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert shared == {
        "config", "errors", "io", "download", "remote_zip", "metrics", "plots", "gallery",
    }, shared  # fmt: skip
