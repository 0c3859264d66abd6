"""Rules pack_jpg and pack_hdf5: files of one split -> a deterministic .tar.gz."""

import logging
from pathlib import Path

import _bootstrap

from galmorph.images.packing import members_under, pack


def main(snakemake):
    base = Path(snakemake.params.base)
    members = {}
    for path in map(Path, snakemake.input):
        if path.is_dir():
            members.update(members_under(path, base))
        else:
            members[path.relative_to(base).as_posix()] = path
    count = pack(
        members,
        snakemake.output.archive,
        compresslevel=snakemake.params.compresslevel,
        compressor=snakemake.params.compressor,
    )
    logging.info("packed %d files into %s", count, snakemake.output.archive)


_bootstrap.run(main, snakemake)  # noqa: F821
