"""The synthetic catalogue: class strings, Galaxy Zoo 2 votes, ids and positions.

Everything is drawn from a :class:`numpy.random.Generator`; nothing here
renders pixels (see :mod:`galmorph.synth.images`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from galmorph.catalogue.classes import CLASS_NAMES, MalformedClassError, parse
from galmorph.catalogue.decision_tree import TASKS, answer_columns

#: Class counts of the study's real 20,000-galaxy sample (train + test,
#: the internship report's appendix A). Users' machines do not have the sample, so the
#: counts live here; a test checks them against the real files.
CLASS_COUNTS: dict[str, int] = {
    "Er": 1674 + 1599,
    "Ei": 1968 + 1955,
    "Ec": 425 + 431,
    "Ser": 646 + 660,
    "Seb": 5 + 2,
    "Sen": 203 + 199,
    "SB": 1917 + 1949,
    "Sa": 19 + 19,
    "Sb": 1197 + 1192,
    "Sc": 1795 + 1849,
    "Sd": 133 + 128,
    "A": 18 + 17,
}
_TOTAL = sum(CLASS_COUNTS.values())
#: The 12-class proportions the generator draws from, in CLASS_NAMES order.
CLASS_PROPORTIONS: dict[str, float] = {name: CLASS_COUNTS[name] / _TOTAL for name in CLASS_NAMES}

# Sub-codes within a class. The study's counts fix only the 12 classes; these
# shares follow the broad trends of the GZ2 catalogue: barred disks have
# obvious or just-noticeable bulges, most disks show arms, arms wind more
# tightly around bigger bulges, two arms are the commonest count.
_BAR_BULGE = {"a": 0.06, "b": 0.44, "c": 0.42, "d": 0.08}
_SPIRAL_GIVEN_BULGE = {"a": 0.45, "b": 0.75, "c": 0.85, "d": 0.7}
_ARM_COUNT = {"1": 0.04, "2": 0.46, "3": 0.1, "4": 0.04, "+": 0.05, "?": 0.31}
_WINDING_GIVEN_BULGE = {
    "a": {"t": 0.6, "m": 0.3, "l": 0.1},
    "b": {"t": 0.45, "m": 0.4, "l": 0.15},
    "c": {"t": 0.25, "m": 0.5, "l": 0.25},
    "d": {"t": 0.15, "m": 0.45, "l": 0.4},
}
# Odd features: how often each family carries one, and which.
_ODD_RATE = {"A": 0.0, "E": 0.12, "Se": 0.25, "S": 0.15}
_ODD_GIVEN_FAMILY = {
    "E": {"r": 0.2, "l": 0.15, "d": 0.15, "i": 0.05, "o": 0.25, "m": 0.2, "u": 0.0},
    "Se": {"r": 0.05, "l": 0.05, "d": 0.1, "i": 0.05, "o": 0.15, "m": 0.1, "u": 0.5},
    "S": {"r": 0.3, "l": 0.05, "d": 0.15, "i": 0.1, "o": 0.2, "m": 0.15, "u": 0.05},
}
#: Strings outside the grammar written into ``n_malformed`` rows.
MALFORMED_EXAMPLES = ("", "Sx", "E?", "SBe2m", "Se", "Ex(r)", "S(q)", "Sc2")


def _choice(rng: np.random.Generator, table: dict[str, float], size: int) -> np.ndarray:
    keys = list(table)
    p = np.array([table[k] for k in keys], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=size, p=p / p.sum())]


def draw_class_strings(rng: np.random.Generator, n: int) -> list[str]:
    """Draw ``n`` full ``gz2_class`` strings whose 12-class shares follow the real sample.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int

    Returns
    -------
    list of str
        Strings of the grammar of :mod:`galmorph.catalogue.classes`, e.g. ``"SBc2m(r)"``.
    """
    simple = _choice(rng, CLASS_PROPORTIONS, n)
    u_spiral = rng.random(n)
    bar_bulge = _choice(rng, _BAR_BULGE, n)
    arms = _choice(rng, _ARM_COUNT, n)
    winding_u = rng.random(n)
    odd_u = rng.random(n)
    odd_kind = {family: _choice(rng, table, n) for family, table in _ODD_GIVEN_FAMILY.items()}
    strings = []
    for i, name in enumerate(simple):
        if name == "A":
            family, text = "A", "A"
        elif name[0] == "E":
            family, text = "E", name
        elif name.startswith("Se"):
            family, text = "Se", name
        else:
            family = "S"
            bulge = bar_bulge[i] if name == "SB" else name[1]
            text = name if name != "SB" else "SB" + bulge
            if u_spiral[i] < _SPIRAL_GIVEN_BULGE[bulge]:
                windings = _WINDING_GIVEN_BULGE[bulge]
                cumulative = np.cumsum(list(windings.values()))
                winding = list(windings)[int(np.searchsorted(cumulative, winding_u[i]))]
                text += arms[i] + winding
        if odd_u[i] < _ODD_RATE[family]:
            text += f"({odd_kind[family][i]})"
        strings.append(text)
    return strings


# ---------------------------------------------------------------------------
# The Galaxy Zoo 2 decision tree and its votes

# The tree itself has one owner (galmorph.catalogue.decision_tree).
ANSWER_SUFFIXES = ("count", "weight", "fraction", "weighted_fraction", "debiased", "flag")
LEADING_COLUMNS = (
    "dr7objid",
    "ra",
    "dec",
    "rastring",
    "decstring",
    "sample",
    "gz2_class",
    "total_classifications",
    "total_votes",
)


def catalogue_columns() -> list[str]:
    """Every column of gz2_hart16, in order."""
    return list(LEADING_COLUMNS) + [
        f"{answer}_{suffix}" for answer in answer_columns() for suffix in ANSWER_SUFFIXES
    ]


_TASK_INDEX = {task: i for i, (task, _) in enumerate(TASKS)}
_ODD_ANSWER = {"r": 0, "l": 1, "d": 2, "i": 3, "o": 4, "m": 5, "u": 6}
_ARMS_ANSWER = {"1": 0, "2": 1, "3": 2, "4": 3, "+": 4, "?": 5}


def class_answers(gz2_class: str) -> dict[str, int]:
    """The answer (index within its task) that each task on the class's path must win.

    Tasks off the path (e.g. the bar question for a smooth galaxy) are absent.
    """
    c = parse(gz2_class)
    path: dict[str, int] = {}
    if c.family == "A":
        path["t01_smooth_or_features"] = 2
    elif c.family == "E":
        path["t01_smooth_or_features"] = 0
        path["t07_rounded"] = "ric".index(c.roundness)
    else:
        path["t01_smooth_or_features"] = 1
        if c.family == "Se":
            path["t02_edgeon"] = 0
            path["t09_bulge_shape"] = "rbn".index(c.edge_bulge)
        else:
            path["t02_edgeon"] = 1
            path["t03_bar"] = 0 if c.barred else 1
            path["t04_spiral"] = 0 if c.spiral else 1
            if c.spiral:
                path["t10_arms_winding"] = "tml".index(c.winding)
                path["t11_arms_number"] = _ARMS_ANSWER[c.arms]
            path["t05_bulge_prominence"] = "dcba".index(c.bulge)
    if c.family != "A":
        path["t06_odd"] = 0 if c.odd else 1
        if c.odd:
            path["t08_odd_feature"] = _ODD_ANSWER[c.odd]
    return path


def _task_votes(rng: np.random.Generator, n_voters: int, n_answers: int, winner: int | None):
    """Counts of one task; ``winner`` (if given) gets strictly the most votes."""
    if n_voters == 0:
        return np.zeros(n_answers, dtype=np.int64)
    alpha = np.full(n_answers, 0.6)
    if winner is not None:
        alpha[winner] = 0.6 + 6.0 * rng.random() + 1.0
    counts = rng.multinomial(n_voters, rng.dirichlet(alpha))
    if winner is not None:
        top = int(np.argmax(counts))
        counts[[winner, top]] = counts[[top, winner]]
        # Break a tie in the winner's favour by moving one vote to it.
        rivals = np.flatnonzero(counts == counts[winner])
        rival = next((r for r in rivals if r != winner), None)
        if rival is not None:
            counts[rival] -= 1
            counts[winner] += 1
    return counts


def draw_votes(rng: np.random.Generator, gz2_class: str) -> dict[str, np.ndarray]:
    """Vote counts of every task for one galaxy, following the GZ2 tree.

    Each classifier answers T01; only those who took an answer leading to a
    task answer it, so a task off the class's path gets few or no votes.
    """
    path = class_answers(gz2_class)
    n_classifiers = int(rng.integers(25, 61))
    counts: dict[str, np.ndarray] = {}

    def vote(task: str, n: int) -> np.ndarray:
        n_answers = len(TASKS[_TASK_INDEX[task]][1])
        counts[task] = _task_votes(rng, n, n_answers, path.get(task))
        return counts[task]

    smooth, features, _ = vote("t01_smooth_or_features", n_classifiers)
    vote("t07_rounded", smooth)
    edge_on, not_edge_on = vote("t02_edgeon", features)
    vote("t09_bulge_shape", edge_on)
    vote("t03_bar", not_edge_on)
    spiral, _ = vote("t04_spiral", not_edge_on)
    vote("t10_arms_winding", spiral)
    vote("t11_arms_number", spiral)
    vote("t05_bulge_prominence", not_edge_on)
    odd_yes, _ = vote("t06_odd", smooth + features)
    vote("t08_odd_feature", odd_yes)
    return {task: counts[task] for task, _ in TASKS} | {"_classifiers": n_classifiers}


def _normalise(values: np.ndarray) -> np.ndarray:
    total = values.sum()
    return values / total if total > 0 else np.zeros_like(values, dtype=float)


def vote_columns(rng: np.random.Generator, gz2_class: str) -> dict[str, float | int]:
    """The 37 x 6 answer columns (and totals) of one catalogue row.

    ``fraction`` is count over the task's votes; ``weight`` down-weights a few
    inconsistent classifiers; ``debiased`` nudges the weighted fraction (as the
    redshift debiasing does) without changing the task's winner; ``flag`` marks
    a clean answer (debiased fraction >= 0.8 from at least 10 votes).
    Fractions of a task sum to 1 where the task was reached, and are 0 elsewhere.
    """
    votes = draw_votes(rng, gz2_class)
    path = class_answers(gz2_class)
    row: dict[str, float | int] = {
        "total_classifications": votes["_classifiers"],
        "total_votes": int(sum(votes[task].sum() for task, _ in TASKS)),
    }
    for task, answers in TASKS:
        count = votes[task]
        weight = count * rng.uniform(0.85, 1.0, size=count.size)
        winner = path.get(task)
        if winner is not None and count.sum() > 0:
            top = int(np.argmax(weight))
            weight[[winner, top]] = weight[[top, winner]]
        fraction = _normalise(count.astype(float))
        weighted = _normalise(weight)
        debiased = _normalise(weighted * rng.uniform(0.9, 1.1, size=count.size))
        if winner is not None and count.sum() > 0:
            top = int(np.argmax(debiased))
            debiased[[winner, top]] = debiased[[top, winner]]
        flag = ((debiased >= 0.8) & (count.sum() >= 10)).astype(int)
        for j, answer in enumerate(answers):
            name = f"{task}_{answer}"
            row[f"{name}_count"] = int(count[j])
            row[f"{name}_weight"] = round(float(weight[j]), 4)
            row[f"{name}_fraction"] = round(float(fraction[j]), 6)
            row[f"{name}_weighted_fraction"] = round(float(weighted[j]), 6)
            row[f"{name}_debiased"] = round(float(debiased[j]), 6)
            row[f"{name}_flag"] = int(flag[j])
    return row


# ---------------------------------------------------------------------------
# Ids and positions


def draw_objids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` unique SDSS DR7 ``objID`` values (18 digits), built from their bit fields.

    Bits: sky version (59-62), rerun (48-58), run (32-47), camcol (29-31),
    field (16-27), object number within the field (0-15).
    """
    ids: np.ndarray = np.empty(0, dtype=np.int64)
    while ids.size < n:
        m = 2 * (n - ids.size) + 8
        rerun = np.where(rng.random(m) < 0.9, 40, 42).astype(np.int64)
        run = rng.integers(752, 5000, m, dtype=np.int64)  # the runs of the GZ2 sample
        camcol = rng.integers(1, 7, m, dtype=np.int64)
        field = rng.integers(11, 800, m, dtype=np.int64)
        obj = rng.integers(1, 1000, m, dtype=np.int64)
        new = (1 << 59) | (rerun << 48) | (run << 32) | (camcol << 29) | (field << 16) | obj
        ids = np.concatenate([ids, new])
        _, first = np.unique(ids, return_index=True)
        ids = ids[np.sort(first)]
    return ids[:n]


def draw_positions(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Right ascension and declination (degrees) inside the SDSS Legacy footprint.

    Most galaxies lie in the northern Galactic cap, the rest on the southern
    equatorial stripes (Stripe 82 among them); uniform on the sphere within each.
    """
    north = rng.random(n) < 0.88
    ra = np.where(north, rng.uniform(112.0, 262.0, n), rng.uniform(-50.0, 58.0, n) % 360.0)
    sin_lo = np.where(north, np.sin(np.radians(-4.0)), np.sin(np.radians(-11.0)))
    sin_hi = np.where(north, np.sin(np.radians(68.0)), np.sin(np.radians(16.0)))
    dec = np.degrees(np.arcsin(rng.uniform(sin_lo, sin_hi)))
    return ra, dec


def sexagesimal(ra: np.ndarray, dec: np.ndarray) -> tuple[list[str], list[str]]:
    """``rastring`` (``hh:mm:ss.ss``) and ``decstring`` (``+dd:mm:ss.s``) as in gz2_hart16."""

    def split(value: float, decimals: int) -> tuple[int, int, float]:
        scale = 10**decimals
        total = round(value * 3600 * scale)
        whole, frac = divmod(total, scale)
        hours, rest = divmod(whole, 3600)
        minutes, seconds = divmod(rest, 60)
        return hours, minutes, seconds + frac / scale

    rastrings, decstrings = [], []
    for a, d in zip(ra, dec, strict=True):
        h, m, s = split(a / 15.0, 2)
        rastrings.append(f"{h % 24:02d}:{m:02d}:{s:05.2f}")
        dd, dm, ds = split(abs(d), 1)
        decstrings.append(f"{'-' if d < 0 else '+'}{dd:02d}:{dm:02d}:{ds:04.1f}")
    return rastrings, decstrings


def malformed_strings(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` class strings outside the grammar (each checked to fail parsing)."""
    picks = [MALFORMED_EXAMPLES[i] for i in rng.integers(0, len(MALFORMED_EXAMPLES), n)]
    for text in picks:
        try:
            parse(text)
        except MalformedClassError:
            continue
        raise AssertionError(f"{text!r} parses; it cannot stand for a malformed row")
    return picks


@dataclass(frozen=True)
class Sky:
    """A synthetic sky before it is written.

    Attributes
    ----------
    catalogue : DataFrame
        The gz2_hart16 table, columns :func:`catalogue_columns`.
    mapping : DataFrame
        ``objid, sample, asset_id``, sorted by ``asset_id``; it has
        ``n_unlabelled`` more rows than the catalogue.
    classes : list of str
        The class each catalogue row's image shows (for malformed rows, the
        string before it was corrupted).
    asset_ids : ndarray
        The image id of each catalogue row, in catalogue order.
    """

    catalogue: pd.DataFrame
    mapping: pd.DataFrame
    classes: list[str]
    asset_ids: np.ndarray


def build_catalogue(
    seed: int | np.random.SeedSequence,
    n_galaxies: int,
    n_unlabelled: int,
    n_malformed: int,
) -> Sky:
    """The gz2_hart16 table and the filename mapping of a synthetic sky.

    Parameters
    ----------
    seed : int or SeedSequence
        The catalogue is a pure function of it.
    n_galaxies : int
        Catalogue rows; each has a mapping row (and, when written, an image).
    n_unlabelled : int
        Extra mapping rows whose ``objid`` is not in the catalogue.
    n_malformed : int
        Catalogue rows whose ``gz2_class`` is replaced by a string outside the
        grammar; their votes still describe the galaxy in the image.

    Returns
    -------
    Sky
    """
    if n_galaxies < 1:
        raise ValueError(f"n_galaxies must be at least 1, got {n_galaxies}")
    if not 0 <= n_malformed <= n_galaxies:
        raise ValueError(f"n_malformed must be in 0..n_galaxies ({n_galaxies}), got {n_malformed}")
    if n_unlabelled < 0:
        raise ValueError(f"n_unlabelled must be >= 0, got {n_unlabelled}")
    streams = np.random.SeedSequence(seed).spawn(4) if isinstance(seed, int) else seed.spawn(4)
    rng_class, rng_votes, rng_sky, rng_bad = (np.random.default_rng(s) for s in streams)
    n_total = n_galaxies + n_unlabelled

    classes = draw_class_strings(rng_class, n_galaxies)
    rows = [vote_columns(rng_votes, gz2_class) for gz2_class in classes]
    objids = draw_objids(rng_sky, n_total)
    ra, dec = draw_positions(rng_sky, n_total)
    rastrings, decstrings = sexagesimal(ra, dec)
    stripe = (np.abs(dec) < 1.26) & ((ra > 300.0) | (ra < 60.0))
    sample = np.where(
        stripe, "stripe82", np.where(rng_sky.random(n_total) < 0.85, "original", "extra")
    )
    id_range = max(300_000, 2 * n_total)
    asset_ids = rng_sky.choice(id_range, size=n_total, replace=False).astype(np.int64) + 1

    gz2_classes = list(classes)
    bad_rows = rng_bad.choice(n_galaxies, size=n_malformed, replace=False)
    for row, text in zip(bad_rows, malformed_strings(rng_bad, n_malformed), strict=True):
        gz2_classes[row] = text

    catalogue = pd.DataFrame.from_records(rows)
    catalogue.insert(0, "dr7objid", objids[:n_galaxies])
    catalogue.insert(1, "ra", np.round(ra[:n_galaxies], 6))
    catalogue.insert(2, "dec", np.round(dec[:n_galaxies], 6))
    catalogue.insert(3, "rastring", rastrings[:n_galaxies])
    catalogue.insert(4, "decstring", decstrings[:n_galaxies])
    catalogue.insert(5, "sample", sample[:n_galaxies])
    catalogue.insert(6, "gz2_class", gz2_classes)
    catalogue = catalogue[catalogue_columns()]

    mapping = pd.DataFrame({"objid": objids, "sample": sample, "asset_id": asset_ids})
    mapping = mapping.sort_values("asset_id", kind="stable").reset_index(drop=True)
    return Sky(catalogue, mapping, classes, asset_ids[:n_galaxies])
