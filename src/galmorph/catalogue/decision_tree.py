"""The Galaxy Zoo 2 decision tree: its 11 tasks, 37 answers and which answer leads where.

This module is the one owner of the tree. The demo sky draws its votes along it
(:mod:`galmorph.synth.catalogue`), the vote-fraction network predicts one
softmax per task and weighs each task's loss by how many volunteers reached it
(:mod:`galmorph.cnn.votes`), and its scores weigh the answers the same way.

A task's *reach* is the fraction of a galaxy's volunteers who were asked it: 1
for the first task, and for any other the reach of its parent task times the
fraction that gave the answer(s) leading to it. The odd-feature question (t06)
follows both the smooth and the features answer, so its reach is
``1 - star_or_artifact``. A task's answer fractions times its reach are the
*cumulative* fractions that the Galaxy Zoo challenge scored (Willett et al.
2013, Dieleman et al. 2015); the catalogue's own ``_fraction`` and
``_debiased`` columns are conditional (each task's answers sum to 1 where it
was reached).

The vote table of a sample (rule ``vote_targets``) has ``dr7objid``,
``asset_id`` and one column per answer, named ``<task>_<answer>``: the
catalogue's ``<task>_<answer>_<kind>`` with ``kind`` ``debiased`` or
``fraction``, each task normalised to sum to 1 where it was reached.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from galmorph.errors import InputDataError

#: Tasks of the GZ2 tree: (task column prefix, answer column names).
TASKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("t01_smooth_or_features", ("a01_smooth", "a02_features_or_disk", "a03_star_or_artifact")),
    ("t02_edgeon", ("a04_yes", "a05_no")),
    ("t03_bar", ("a06_bar", "a07_no_bar")),
    ("t04_spiral", ("a08_spiral", "a09_no_spiral")),
    (
        "t05_bulge_prominence",
        ("a10_no_bulge", "a11_just_noticeable", "a12_obvious", "a13_dominant"),
    ),
    ("t06_odd", ("a14_yes", "a15_no")),
    ("t07_rounded", ("a16_completely_round", "a17_in_between", "a18_cigar_shaped")),
    (
        "t08_odd_feature",
        (
            "a19_ring",
            "a20_lens_or_arc",
            "a21_disturbed",
            "a22_irregular",
            "a23_other",
            "a24_merger",
            "a38_dust_lane",
        ),
    ),
    ("t09_bulge_shape", ("a25_rounded", "a26_boxy", "a27_no_bulge")),
    ("t10_arms_winding", ("a28_tight", "a29_medium", "a30_loose")),
    (
        "t11_arms_number",
        ("a31_1", "a32_2", "a33_3", "a34_4", "a36_more_than_4", "a37_cant_tell"),
    ),
)

#: The answer(s) whose volunteers are asked each task; absent: everybody is.
LEADS_TO: dict[str, tuple[str, ...]] = {
    "t02_edgeon": ("t01_smooth_or_features_a02_features_or_disk",),
    "t03_bar": ("t02_edgeon_a05_no",),
    "t04_spiral": ("t02_edgeon_a05_no",),
    "t05_bulge_prominence": ("t02_edgeon_a05_no",),
    "t06_odd": ("t01_smooth_or_features_a01_smooth", "t01_smooth_or_features_a02_features_or_disk"),
    "t07_rounded": ("t01_smooth_or_features_a01_smooth",),
    "t08_odd_feature": ("t06_odd_a14_yes",),
    "t09_bulge_shape": ("t02_edgeon_a04_yes",),
    "t10_arms_winding": ("t04_spiral_a08_spiral",),
    "t11_arms_number": ("t04_spiral_a08_spiral",),
}

#: The catalogue column kinds a vote table can be made of.
VOTE_KINDS = ("debiased", "fraction")


def answer_columns() -> list[str]:
    """The 37 answer names, ``<task>_<answer>``, in catalogue order."""
    return [f"{task}_{answer}" for task, answers in TASKS for answer in answers]


ANSWERS: tuple[str, ...] = tuple(answer_columns())
N_ANSWERS = len(ANSWERS)


def task_slices() -> list[tuple[int, int]]:
    """``(start, stop)`` of each task's answers among the 37, in :data:`TASKS` order."""
    bounds, start = [], 0
    for _, answers in TASKS:
        bounds.append((start, start + len(answers)))
        start += len(answers)
    return bounds


def task_sizes() -> tuple[int, ...]:
    return tuple(len(answers) for _, answers in TASKS)


def parent_answers() -> list[tuple[int | None, tuple[int, ...]]]:
    """Per task: the index of its parent task (None: asked first) and of the answers leading to it.

    Parents come before their children in :data:`TASKS`, so reaches can be
    computed in one pass.
    """
    task_of = {
        f"{task}_{answer}": i for i, (task, answers) in enumerate(TASKS) for answer in answers
    }
    position = {name: i for i, name in enumerate(ANSWERS)}
    out = []
    for i, (task, _) in enumerate(TASKS):
        leads = LEADS_TO.get(task, ())
        parents = {task_of[name] for name in leads}
        if len(parents) > 1:
            raise AssertionError(f"{task}: answers of several tasks lead to it")
        parent = parents.pop() if parents else None
        if parent is not None and parent >= i:
            raise AssertionError(f"{task}: its parent comes after it")
        out.append((parent, tuple(position[name] for name in leads)))
    return out


def reach(fractions: np.ndarray) -> np.ndarray:
    """(n, 37) conditional answer fractions -> (n, 11) fraction of volunteers asked each task."""
    fractions = np.asarray(fractions, dtype=np.float64)
    out = np.ones((fractions.shape[0], len(TASKS)))
    for i, (parent, leads) in enumerate(parent_answers()):
        if parent is not None:
            out[:, i] = out[:, parent] * fractions[:, list(leads)].sum(axis=1)
    return out


def answer_reach(fractions: np.ndarray) -> np.ndarray:
    """(n, 37): the reach of each answer's task, repeated over its answers."""
    return np.repeat(reach(fractions), task_sizes(), axis=1)


def cumulative(fractions: np.ndarray) -> np.ndarray:
    """(n, 37) conditional fractions -> cumulative ones (each times its task's reach)."""
    return np.asarray(fractions, dtype=np.float64) * answer_reach(fractions)


def normalise_tasks(values: np.ndarray) -> np.ndarray:
    """Each task's answers rescaled to sum to 1; a task with no (or missing) votes is all 0.

    The debiased fractions of gz2_hart16 need not sum to exactly 1 per task;
    a missing value counts as 0.
    """
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if values.ndim != 2 or values.shape[1] != N_ANSWERS:
        raise InputDataError(f"vote fractions of shape {values.shape}; expected (n, {N_ANSWERS})")
    if (values < 0).any():
        raise InputDataError("vote fractions must not be negative")
    out = np.zeros_like(values)
    for start, stop in task_slices():
        total = values[:, start:stop].sum(axis=1, keepdims=True)
        np.divide(values[:, start:stop], total, out=out[:, start:stop], where=total > 0)
    return out


def catalogue_vote_columns(kind: str) -> list[str]:
    """The gz2_hart16 columns of one kind: ``<task>_<answer>_<kind>``."""
    if kind not in VOTE_KINDS:
        raise InputDataError(
            f"cnn.vote_fractions.column is {kind!r}; choose one of {', '.join(VOTE_KINDS)}"
        )
    return [f"{answer}_{kind}" for answer in ANSWERS]


def vote_table(catalogue_path: str | Path, sample: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The vote table of the sample's galaxies, in sample order, read from gz2_hart16.

    Raises
    ------
    InputDataError
        The catalogue lacks the columns (a Galaxy Zoo 1 catalogue, say) or a
        sample galaxy.
    """
    columns = catalogue_vote_columns(kind)
    header = pd.read_csv(catalogue_path, nrows=0).columns
    missing = [column for column in ("dr7objid", *columns) if column not in header]
    if missing:
        raise InputDataError(
            f"{catalogue_path}: no column {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}; vote fractions need the gz2_hart16 "
            "catalogue of Galaxy Zoo 2"
        )
    wanted = set(sample["dr7objid"].astype(np.int64))
    parts = []
    for chunk in pd.read_csv(
        catalogue_path, usecols=["dr7objid", *columns], dtype={"dr7objid": np.int64},
        chunksize=100_000,
    ):  # fmt: skip
        parts.append(chunk[chunk["dr7objid"].isin(wanted)])
    votes = pd.concat(parts).drop_duplicates("dr7objid").set_index("dr7objid")
    absent = sorted(wanted - set(votes.index))
    if absent:
        raise InputDataError(
            f"{catalogue_path}: no row for dr7objid {', '.join(map(str, absent[:5]))}"
            f"{' ...' if len(absent) > 5 else ''} of the sample"
        )
    values = normalise_tasks(votes.loc[sample["dr7objid"].astype(np.int64), columns].to_numpy())
    table = pd.DataFrame(values, columns=list(ANSWERS))
    table.insert(0, "asset_id", sample["asset_id"].astype(np.int64).to_numpy())
    table.insert(0, "dr7objid", sample["dr7objid"].astype(np.int64).to_numpy())
    return table


def write_vote_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    from galmorph.io import atomic_path

    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")


def read_vote_table(path: str | os.PathLike) -> pd.DataFrame:
    """A vote table, checked: ids, the 37 answers, fractions per task summing to 0 or 1."""
    try:
        table = pd.read_csv(path, dtype={"dr7objid": np.int64, "asset_id": np.int64})
    except (ValueError, pd.errors.ParserError) as error:
        raise InputDataError(f"{path}: not a vote table ({error})") from error
    missing = [c for c in ("dr7objid", "asset_id", *ANSWERS) if c not in table.columns]
    if missing:
        raise InputDataError(f"{path}: not a vote table, no column {', '.join(missing[:3])}")
    values = table[list(ANSWERS)].to_numpy(np.float64)
    if not np.isfinite(values).all() or (values < 0).any():
        raise InputDataError(f"{path}: vote fractions must be finite and >= 0")
    for start, stop in task_slices():
        total = values[:, start:stop].sum(axis=1)
        if not np.all((np.abs(total) < 1e-4) | (np.abs(total - 1) < 1e-4)):
            raise InputDataError(f"{path}: a task's fractions sum to neither 0 nor 1")
    return table


def targets_for(table: pd.DataFrame, asset_ids: np.ndarray, path: str = "vote table"):
    """(n, 37) fractions of the rows with ``asset_ids`` (a shard index's), in that order."""
    by_asset = table.drop_duplicates("asset_id").set_index("asset_id")[list(ANSWERS)]
    asset_ids = np.asarray(asset_ids, dtype=np.int64)
    absent = np.setdiff1d(asset_ids, by_asset.index.to_numpy())
    if absent.size:
        raise InputDataError(
            f"{path}: no votes for asset_id {', '.join(map(str, absent[:5]))}; "
            "the vote table and the shards come from different samples"
        )
    return by_asset.loc[asset_ids].to_numpy(np.float32)
