"""Galaxy Zoo 2 ``gz2_class`` strings: parsing and simplification to 12 classes.

The grammar (Willett et al. 2013, Hart et al. 2016)::

    A                                   star or artifact
    E{r,i,c}                            smooth: round, in between, cigar
    Se{r,b,n}                           edge-on disk: round, boxy, no bulge
    S[B]{a,b,c,d}[{1,2,3,4,+,?}{t,m,l}] face-on disk: bar, bulge, arm count and winding
    any of the above + "(r|l|d|i|o|m|u)" an odd feature

The study simplified every string to one of 12 classes by substring tests;
for every string that follows the grammar, :func:`simplify` gives the same
answer, and strings that do not follow it are rejected instead of falling
through to ``A``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: The 12 simplified classes, in morphological order (smooth, edge-on, barred,
#: unbarred by bulge prominence, artifact). Label indices follow this order.
CLASS_NAMES: tuple[str, ...] = (
    "Er", "Ei", "Ec", "Ser", "Seb", "Sen", "SB", "Sa", "Sb", "Sc", "Sd", "A",
)  # fmt: skip

ODD_FEATURES = {
    "r": "ring",
    "l": "lens or arc",
    "d": "disturbed",
    "i": "irregular",
    "o": "other",
    "m": "merger",
    "u": "dust lane",
}
ARM_COUNTS = ("1", "2", "3", "4", "+", "?")
WINDINGS = {"t": "tight", "m": "medium", "l": "loose"}

_GRAMMAR = re.compile(
    r"""^(?:
        (?P<artifact>A)
      | E(?P<roundness>[ric])
      | Se(?P<edge_bulge>[rbn])
      | S(?P<bar>B)?(?P<bulge>[abcd])(?:(?P<arms>[1234+?])(?P<winding>[tml]))?
    )(?:\((?P<odd>[rldiomu])\))?$""",
    re.VERBOSE,
)


class MalformedClassError(ValueError):
    """A ``gz2_class`` string that does not follow the grammar."""


@dataclass(frozen=True)
class GZ2Class:
    """A parsed ``gz2_class`` string.

    Attributes
    ----------
    family : {"A", "E", "Se", "S"}
        Artifact, smooth, edge-on disk or face-on disk.
    roundness : str or None
        ``r``, ``i`` or ``c`` for smooth galaxies.
    edge_bulge : str or None
        ``r``, ``b`` or ``n`` for edge-on disks.
    barred : bool
        Face-on disk with a bar.
    bulge : str or None
        ``a`` (dominant) to ``d`` (none) for face-on disks.
    arms : str or None
        Arm count ``1``-``4``, ``+`` (more than four) or ``?`` (can't tell).
    winding : str or None
        ``t``, ``m`` or ``l``.
    odd : str or None
        Odd-feature code, see :data:`ODD_FEATURES`.
    """

    family: str
    roundness: str | None = None
    edge_bulge: str | None = None
    barred: bool = False
    bulge: str | None = None
    arms: str | None = None
    winding: str | None = None
    odd: str | None = None

    @property
    def simple(self) -> str:
        """The study's 12-class label."""
        if self.family == "A":
            return "A"
        if self.family == "E":
            return "E" + self.roundness
        if self.family == "Se":
            return "Se" + self.edge_bulge
        return "SB" if self.barred else "S" + self.bulge

    @property
    def spiral(self) -> bool:
        return self.arms is not None

    def __str__(self) -> str:
        text = {
            "A": "A",
            "E": f"E{self.roundness}",
            "Se": f"Se{self.edge_bulge}",
        }.get(self.family)
        if text is None:
            text = "S" + ("B" if self.barred else "") + self.bulge
            if self.spiral:
                text += self.arms + self.winding
        return text + (f"({self.odd})" if self.odd else "")


def parse(gz2_class: str) -> GZ2Class:
    """Parse one ``gz2_class`` string.

    Raises
    ------
    MalformedClassError
        If the string does not follow the grammar.
    """
    match = _GRAMMAR.match(gz2_class.strip()) if isinstance(gz2_class, str) else None
    if match is None:
        raise MalformedClassError(f"not a Galaxy Zoo 2 class string: {gz2_class!r}")
    groups = match.groupdict()
    if groups["artifact"]:
        family = "A"
    elif groups["roundness"]:
        family = "E"
    elif groups["edge_bulge"]:
        family = "Se"
    else:
        family = "S"
    return GZ2Class(
        family=family,
        roundness=groups["roundness"],
        edge_bulge=groups["edge_bulge"],
        barred=bool(groups["bar"]),
        bulge=groups["bulge"],
        arms=groups["arms"],
        winding=groups["winding"],
        odd=groups["odd"],
    )


def simplify(gz2_class: str) -> str:
    """Map a full ``gz2_class`` string to one of :data:`CLASS_NAMES`.

    Raises
    ------
    MalformedClassError
        If the string does not follow the grammar.
    """
    return parse(gz2_class).simple


def simplify_many(values: Iterable[str]) -> tuple[list[str | None], dict[str, int]]:
    """Simplify many strings, collecting malformed ones instead of raising.

    Returns
    -------
    simple : list of str or None
        The simplified class, ``None`` where the string was malformed.
    malformed : dict
        Each malformed string and how many times it occurred.
    """
    simple: list[str | None] = []
    malformed: dict[str, int] = {}
    cache: dict[str, str | None] = {}
    for value in values:
        key = value if isinstance(value, str) else repr(value)
        if key not in cache:
            try:
                cache[key] = simplify(value)
            except MalformedClassError:
                cache[key] = None
        if cache[key] is None:
            malformed[key] = malformed.get(key, 0) + 1
        simple.append(cache[key])
    return simple, malformed


def all_class_strings() -> list[str]:
    """Every string the grammar allows (without and with each odd feature)."""
    bases = ["A"] + [f"E{r}" for r in "ric"] + [f"Se{b}" for b in "rbn"]
    for bar in ("", "B"):
        for bulge in "abcd":
            bases.append(f"S{bar}{bulge}")
            bases += [f"S{bar}{bulge}{a}{w}" for a in ARM_COUNTS for w in WINDINGS]
    return bases + [f"{b}({o})" for b in bases for o in ODD_FEATURES]


#: A class name that states a sense of winding: cw, acw, ccw, clockwise, anticlockwise ...
_CHIRAL_NAME = re.compile(r"(^|[_\-\s])(a?cw|ccw|(anti|counter)?-?clockwise|[sz]-?wise)($|[_\-\s])")


def chiral_classes(class_names: Iterable[str]) -> list[str]:
    """The classes whose name states a sense of winding, which a mirror image reverses.

    Galaxy Zoo 1 labels spirals by the sense of their arms (``spiral_cw``,
    ``spiral_acw``); the simplified GZ2 classes do not, so a mirror keeps them.
    """
    return [name for name in class_names if _CHIRAL_NAME.search(str(name).lower())]
