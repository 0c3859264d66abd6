"""galmorph: galaxy morphology from Galaxy Zoo 2 images.

The domain logic of the workflow, importable without Snakemake.
"""

__version__ = "0.1.0"
