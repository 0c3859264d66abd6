"""The catalogue stage (workflow/rules/catalogue.smk): which galaxies, which class, which split.

* :mod:`~galmorph.catalogue.classes`: the GZ2 class grammar and its 12 simplified classes;
* :mod:`~galmorph.catalogue.sample`: the catalogue and mapping tables, the seeded
  train/test sample and its shard rows (the one owner of ``sample_*.csv``);
* :mod:`~galmorph.catalogue.folder`: the same rows from a folder of your own images;
* :mod:`~galmorph.catalogue.image_index`: which galaxies have an image.
"""
