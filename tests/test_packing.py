"""Deterministic .tar.gz archives: byte-identical for the same files, every member intact."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tarfile

import numpy as np
import pytest

from galmorph.errors import InputDataError
from galmorph.images.packing import members_under, pack, verify


@pytest.fixture
def tree(tmp_path):
    """A split's shard folders with binary files of assorted sizes, and a failures list."""
    rng = np.random.default_rng(0)
    base = tmp_path / "jpg"
    for shard in ("shard_0001", "shard_0000"):
        folder = base / "train" / shard
        folder.mkdir(parents=True)
        # Sizes around tar's 512-byte blocks, an empty file and a larger one.
        for asset, size in zip(
            rng.integers(1, 300_000, 6), [0, 1, 511, 512, 513, 20_000], strict=True
        ):
            (folder / f"{asset}.jpg").write_bytes(rng.bytes(size))
    (base / "train" / "shard_0000.failures.csv").write_text("asset_id,reason\n7,HTTP 404\n")
    (base / "train" / "shard_0000" / ".12.jpg.tmp-x").write_bytes(b"partial")  # not a member
    return base


def split_members(base):
    members = {}
    for folder in sorted((base / "train").iterdir()):
        if folder.is_dir():
            members.update(members_under(folder, base))
        else:
            members[folder.relative_to(base).as_posix()] = folder
    return members


COMPRESSORS = pytest.mark.parametrize(("compressor", "level"), [("zlib", 6), ("isal", 1)])


@COMPRESSORS
def test_same_files_give_byte_identical_archives(tree, tmp_path, compressor, level):
    members = split_members(tree)
    first, second = tmp_path / "a" / "train_jpg.tar.gz", tmp_path / "b" / "other.tar.gz"
    options = dict(compresslevel=level, compressor=compressor, progress=False)
    assert pack(members, first, **options) == 13
    # Same contents, everything else different: copies with new mtimes, modes and
    # creation order, and the mapping given in reverse.
    copy = tmp_path / "copy"
    for name in sorted(members, reverse=True):
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(members[name], target)
        os.chmod(target, 0o600)
        os.utime(target, (1_700_000_000, 1_700_000_000))
    pack(dict(reversed(list(split_members(copy).items()))), second, **options)
    assert first.read_bytes() == second.read_bytes()


@COMPRESSORS
def test_headers_are_fixed_and_members_sorted(tree, tmp_path, compressor, level):
    archive = tmp_path / "x.tar.gz"
    pack(split_members(tree), archive, compresslevel=level, compressor=compressor, progress=False)
    raw = archive.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] == 0, "gzip header flags: no file name stored"
    assert raw[4:8] == b"\0\0\0\0", "gzip header mtime is 0"
    with tarfile.open(archive) as tar:
        infos = tar.getmembers()
    names = [info.name for info in infos]
    assert names == sorted(names)
    assert "train/shard_0000.failures.csv" in names
    assert not any(".tmp-" in name for name in names)
    for info in infos:
        assert info.isreg()
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (
            0, 0, 0, "", "", 0o644,
        )  # fmt: skip


@COMPRESSORS
def test_every_member_extracts_intact(tree, tmp_path, compressor, level):
    members = split_members(tree)
    archive = tmp_path / "train_jpg.tar.gz"
    pack(members, archive, compresslevel=level, compressor=compressor, progress=False)
    assert verify(archive, members) == len(members)
    # The system's tar and gzip agree with Python's reading.
    out = tmp_path / "extracted"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(out)], check=True)
    subprocess.run(["gzip", "-t", str(archive)], check=True)
    extracted = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert extracted == set(members)
    for name, source in members.items():
        assert (out / name).read_bytes() == source.read_bytes(), name


def test_verify_detects_damage_and_differences(tree, tmp_path):
    members = split_members(tree)
    archive = tmp_path / "x.tar.gz"
    pack(members, archive, progress=False)
    changed = dict(members)
    name = next(n for n, p in members.items() if p.stat().st_size > 1000)
    altered = tmp_path / "altered.jpg"
    altered.write_bytes(b"\xff" + members[name].read_bytes()[1:])
    changed[name] = altered
    with pytest.raises(InputDataError, match="differs"):
        verify(archive, changed)
    extra = dict(members, **{"train/new.jpg": altered})
    with pytest.raises(InputDataError, match="missing"):
        verify(archive, extra)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputDataError, match="damaged|differs"):
        verify(damaged, members)


def test_gzip_level_changes_size_not_content(tree, tmp_path):
    members = split_members(tree)
    (tree / "train" / "shard_0000" / "zeros.jpg").write_bytes(bytes(200_000))
    members = split_members(tree)
    fast, small = tmp_path / "fast.tar.gz", tmp_path / "small.tar.gz"
    pack(members, fast, compresslevel=0, progress=False)
    pack(members, small, compresslevel=9, progress=False)
    assert small.stat().st_size < fast.stat().st_size
    assert gzip.decompress(fast.read_bytes()) == gzip.decompress(small.read_bytes())


def test_both_compressors_hold_the_same_tar_stream(tree, tmp_path):
    members = split_members(tree)
    zlib_archive, isal_archive = tmp_path / "z.tar.gz", tmp_path / "i.tar.gz"
    pack(members, zlib_archive, compressor="zlib", progress=False)
    pack(members, isal_archive, compressor="isal", compresslevel=1, progress=False)
    assert zlib_archive.read_bytes() != isal_archive.read_bytes()
    assert gzip.decompress(zlib_archive.read_bytes()) == gzip.decompress(isal_archive.read_bytes())


def test_level_outside_the_compressor_range_is_refused(tmp_path):
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    with pytest.raises(ValueError, match="isal gzip level must be 0-3"):
        pack({"f": source}, tmp_path / "a.tar.gz", compressor="isal", compresslevel=6)
    with pytest.raises(ValueError, match="compressor must be"):
        pack({"f": source}, tmp_path / "a.tar.gz", compressor="zstd")
    assert not list(tmp_path.glob("*.tar.gz*"))


def test_bad_members_are_refused_and_nothing_is_left(tmp_path):
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    out = tmp_path / "out" / "a.tar.gz"
    with pytest.raises(ValueError, match="relative"):
        pack({"../escape": source}, out, progress=False)
    with pytest.raises(ValueError, match="two files"):
        pack([("a", source), ("./a", source)], out, progress=False)
    with pytest.raises(InputDataError, match="missing.bin"):
        pack({"a": source, "b": tmp_path / "missing.bin"}, out, progress=False)
    assert not out.exists() and list(out.parent.iterdir()) == []
    with pytest.raises(InputDataError, match="not a folder"):
        members_under(tmp_path / "nowhere", tmp_path)
