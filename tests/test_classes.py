import pytest

from galmorph.catalogue.classes import (
    CLASS_NAMES,
    MalformedClassError,
    all_class_strings,
    parse,
    simplify,
    simplify_many,
)

STUDY_KEYS = ("Ser", "Seb", "Sen", "SB", "Sd", "Sc", "Sb", "Sa", "Er", "Ei", "Ec")


def study_mapping(text):
    """The study's rule: substring tests in this order, anything else A."""
    return next((key for key in STUDY_KEYS if key in text), "A")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Er", "Er"),
        ("Ei", "Ei"),
        ("Ec", "Ec"),
        ("Ser", "Ser"),
        ("Seb", "Seb"),
        ("Sen", "Sen"),
        ("Sa", "Sa"),
        ("Sb", "Sb"),
        ("Sc", "Sc"),
        ("Sd", "Sd"),
        ("SBa", "SB"),
        ("SBd", "SB"),
        ("A", "A"),
        ("Sc2m", "Sc"),
        ("SBb?t", "SB"),
        ("Sc?t(u)", "Sc"),
        ("Sb+l", "Sb"),
        ("Er(m)", "Er"),
        ("Sen(u)", "Sen"),
        ("SBc4l(r)", "SB"),
        ("A(o)", "A"),
    ],
)
def test_simplify_known_strings(text, expected):
    assert simplify(text) == expected


def test_parse_fields():
    parsed = parse("SBc2t(d)")
    assert parsed.family == "S"
    assert parsed.barred and parsed.bulge == "c"
    assert (parsed.arms, parsed.winding, parsed.odd) == ("2", "t", "d")
    assert parsed.spiral
    assert str(parsed) == "SBc2t(d)"
    edge = parse("Seb")
    assert edge.family == "Se" and edge.edge_bulge == "b" and not edge.barred


def test_every_grammatical_string_agrees_with_the_study_and_round_trips():
    strings = all_class_strings()
    assert len(strings) == len(set(strings)) > 1200
    simplified = set()
    for text in strings:
        assert simplify(text) == study_mapping(text), text
        assert str(parse(text)) == text
        simplified.add(simplify(text))
    assert simplified == set(CLASS_NAMES)


@pytest.mark.parametrize(
    "text",
    ["", " ", "E", "Ex", "S", "SB", "Se", "Sex", "Sc2", "Sc2x", "Scm", "SBe", "Sc(z)", "Sc()",
     "Er(r", "B", "a", "Er Ei", "sc", "SBc2m(u)(r)", None, 3.0],
)  # fmt: skip
def test_malformed_strings_are_rejected(text):
    with pytest.raises(MalformedClassError):
        simplify(text)


def test_simplify_many_counts_malformed():
    simple, malformed = simplify_many(["Er", "Sx", "SBc2m", "Sx", "E?"])
    assert simple == ["Er", None, "SB", None, None]
    assert malformed == {"Sx": 2, "E?": 1}
