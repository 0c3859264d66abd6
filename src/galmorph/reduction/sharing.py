"""The fitted reduction in a format that runs no code when loaded (``pipeline.skops``).

Loading a pickle (``reducer.pkl``, ``scaler.pkl``, the reduced splits) runs
whatever code the file names: open only pickles this workflow wrote. To give
the fitted pipeline (crops in, standardised features out) to someone else, the
workflow also writes it with skops (``skops.io``), which stores the objects'
state as data and, when loading, builds only the types it is told to trust:
scikit-learn's and NumPy's, which skops trusts itself, and the galmorph
transformers listed in :data:`TRUSTED_TYPES`. A file that names any other type
(a function to call, say) is refused before anything in it is built.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import skops.io

from galmorph.errors import InputDataError
from galmorph.io import atomic_path

#: The galmorph types (and the one function) a shared pipeline may hold: the steps
#: of :func:`galmorph.reduction.pipeline.fit_reduction`.
TRUSTED_TYPES = (
    "galmorph.reduction.alignment.GalaxyAligner",
    "galmorph.reduction.descriptors.MorphologyDescriptors",
    "galmorph.reduction.pipeline.flatten",
)


def save_pipeline(pipeline, path: str | Path) -> None:
    """Write ``pipeline`` to ``path`` with skops, atomically and byte-reproducibly.

    skops names the objects of a file by their memory address (``__id__``, the
    arrays' member names) and stamps each member with the time of writing; both
    are renumbered in order of appearance and the time fixed, so a rerun (or an
    interrupted run resumed) gives the same bytes for the same model.
    """
    written = zipfile.ZipFile(io.BytesIO(skops.io.dumps(pipeline)))
    schema = json.loads(written.read("schema.json"))
    numbers: dict[int, int] = {}
    files: dict[str, str] = {}

    def renumber(node):
        if isinstance(node, dict):
            if "__id__" in node:
                node["__id__"] = numbers.setdefault(node["__id__"], len(numbers) + 1)
            if isinstance(node.get("file"), str):
                node["file"] = files.setdefault(node["file"], f"{len(files) + 1}.npy")
            for value in node.values():
                renumber(value)
        elif isinstance(node, list):
            for value in node:
                renumber(value)

    renumber(schema)
    members = {"schema.json": json.dumps(schema, indent=2).encode()}
    for old, new in files.items():
        members[new] = written.read(old)
    unnamed = set(written.namelist()) - set(files) - {"schema.json"}
    if unnamed:  # a member the schema does not name: keep the format as skops wrote it
        raise RuntimeError(f"skops wrote members galmorph does not know: {sorted(unnamed)}")
    with atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w") as archive:
        for name, data in members.items():
            fixed = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            archive.writestr(fixed, data)


def load_pipeline(path: str | Path):
    """A pipeline written by :func:`save_pipeline`; nothing in the file is run.

    Raises
    ------
    InputDataError
        The file is not a skops file, or it names a type outside scikit-learn,
        NumPy and :data:`TRUSTED_TYPES` (the names are listed).
    """
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as error:  # noqa: BLE001 - skops raises zipfile/JSON/Key errors
        raise InputDataError(
            f"{path}: not a skops file ({type(error).__name__}: {error})"
        ) from error
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise InputDataError(
            f"{path}: refused, it names types galmorph does not trust: {', '.join(refused)}"
        )
    return skops.io.load(path, trusted=list(untrusted))
