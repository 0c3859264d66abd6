"""The images stage (workflow/rules/images.smk): JPEGs fetched, verified, converted, packed.

* :mod:`~galmorph.images.acquire`: fetching a shard's JPEGs from a zip, a cutout
  service or a folder, and the failures CSV;
* :mod:`~galmorph.images.imaging`: the one size/mode policy and JPEG decoding;
* :mod:`~galmorph.images.hdf5`: the HDF5 shard format (writer, validator, readers);
* :mod:`~galmorph.images.packing`: the tar.gz archives.
"""
