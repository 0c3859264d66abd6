"""A synthetic Galaxy Zoo 2 sky in the formats of the real release.

The demo run cannot assume the 3.3 GB release is reachable, so it generates
a catalogue, a filename mapping and a zip of SDSS-like images whose classes
follow the study's real class proportions.

>>> from galmorph.synth import write_sky
>>> write_sky("sky", n_galaxies=100, seed=1, n_unlabelled=5, n_malformed=2)  # doctest: +SKIP
"""

from galmorph.synth.catalogue import (
    CLASS_COUNTS,
    CLASS_PROPORTIONS,
    TASKS,
    Sky,
    build_catalogue,
    catalogue_columns,
    class_answers,
    draw_class_strings,
)
from galmorph.synth.images import render, render_jpeg
from galmorph.synth.writer import FILES, contact_sheet, image_rng, write_sky

__all__ = [
    "CLASS_COUNTS",
    "CLASS_PROPORTIONS",
    "FILES",
    "TASKS",
    "Sky",
    "build_catalogue",
    "catalogue_columns",
    "class_answers",
    "contact_sheet",
    "draw_class_strings",
    "image_rng",
    "render",
    "render_jpeg",
    "write_sky",
]
