"""Hostile input, each file built here: bounded zip members, ids kept as text, image bombs
and odd images, bad decision rules, alias bombs, formula-looking ids, untrusted shared
files and sizes the training split cannot hold. Every case ends in the right data or one
clear message (an InputDataError/DownloadError/ConfigError naming the file or key), never
a traceback of a library, an unbounded allocation or another galaxy's image.

docs/reliability.md lists what was tried and what the workflow does.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import threading
import tracemalloc
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, TINY_CONFIG, copy_workflow, deep_update, write_config
from PIL import Image

from galmorph import config as galmorph_config
from galmorph.catalogue import folder as folder_dataset
from galmorph.catalogue.sample import read_sample_csv, shard_rows, write_sample_csv
from galmorph.cnn.decision import DecisionRule
from galmorph.config import ConfigError
from galmorph.download import read_bytes
from galmorph.errors import DownloadError, InputDataError
from galmorph.images import acquire, imaging
from galmorph.io import atomic_path
from galmorph.remote_zip import MAX_FILE_BYTES, ZipIndex

MIB = 1024 * 1024
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


# ----------------------------------------------------------------------------- zip builder


def zip_archive(members, *, comment: bytes = b"", zip64_locator_offset: int | None = None):
    """A zip whose records say what ``members`` say, true or not.

    Each member is a dict: ``name`` (bytes), ``data`` (the stored/deflated bytes), and
    optionally ``method`` (8), ``crc``, ``size`` (declared uncompressed size),
    ``csize``, ``offset`` (declared header offset; values >= 2**32 go in a ZIP64
    extra), ``flags`` (0x800: UTF-8 name).
    """
    body, central = bytearray(), bytearray()
    for member in members:
        name, data = member["name"], member["data"]
        method, flags = member.get("method", 8), member.get("flags", 0x800)
        crc, size = member.get("crc", 0), member.get("size", 0)
        csize = member.get("csize", len(data))
        offset = member.get("offset", len(body))
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0, crc,
                            len(data), size, len(name), 0) + name + data  # fmt: skip
        extra = b""
        if offset >= 2**32:
            extra = struct.pack("<HHQ", 1, 8, offset)
            offset = 0xFFFFFFFF
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, method, 0, 0,
                               crc, csize, size, len(name), len(extra), 0, 0, 0, 0,
                               offset) + name + extra  # fmt: skip
    cd_offset = len(body)
    out = body + central
    if zip64_locator_offset is not None:
        out += struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_locator_offset, 1)
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members),
                       len(central), cd_offset, len(comment)) + comment  # fmt: skip
    return bytes(out)


def deflated(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def jpeg_bytes(colour=(200, 30, 30), size=16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, "JPEG", quality=95)
    return out.getvalue()


def good_member(name=b"images/1.jpg", data=None):
    data = data if data is not None else jpeg_bytes()
    return {"name": name, "data": deflated(data), "crc": zlib.crc32(data), "size": len(data)}


# ----------------------------------------------------------------------------- 1: zip bounds


def test_a_member_inflating_past_its_declared_size_is_refused_within_a_bounded_memory(
    tmp_path,
):
    """1,000 bytes declared, 256 MiB of zeros inside (256 kB compressed)."""
    bomb = b"\0" * (256 * MIB)
    member = {"name": b"images/1.jpg", "data": deflated(bomb), "crc": zlib.crc32(bomb),
              "size": 1000}  # fmt: skip
    del bomb
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(zip_archive([member, good_member(b"images/2.jpg")]))
    with ZipIndex.open(archive) as index:
        tracemalloc.start()
        with pytest.raises(InputDataError, match="inflates past its declared size of 1,000"):
            index.read("images/1.jpg")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 8 * MIB, f"{peak / MIB:.0f} MiB allocated to refuse a bomb"
        assert index.read("images/2.jpg") == jpeg_bytes()  # the rest stays readable


def test_declared_sizes_beyond_the_image_policy_are_refused_before_reading(tmp_path):
    huge = {"name": b"images/1.jpg", "data": b"x" * 10, "size": 3 * 1024 * MIB, "crc": 0,
            "csize": 0xFFFFFFFE}  # fmt: skip
    archive = tmp_path / "huge.zip"
    archive.write_bytes(zip_archive([huge, good_member(b"images/2.jpg")]))
    with ZipIndex.open(archive) as index:
        with pytest.raises(InputDataError, match=f"more than the {MAX_FILE_BYTES:,}"):
            index.read("images/1.jpg")


def test_a_fetch_from_a_zip_bomb_is_one_failure_row(tmp_path):
    bomb = b"\0" * (64 * MIB)
    member = {"name": b"images/1.jpg", "data": deflated(bomb), "crc": zlib.crc32(bomb),
              "size": 1000}  # fmt: skip
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(zip_archive([member, good_member(b"images/2.jpg")]))
    rows = pd.DataFrame({"asset_id": [1, 2], "dr7objid": [11, 12]})
    report = acquire.fetch_shard(
        rows, acquire.ZipSource(archive.as_uri()), tmp_path / "out", tmp_path / "failures.csv",
        size=16, progress=False, max_failure_fraction=0.9, connections=1,
    )  # fmt: skip
    failures = pd.read_csv(tmp_path / "failures.csv")
    assert failures["asset_id"].tolist() == [1]
    assert "inflates past its declared size" in failures["reason"][0]
    assert report is not None and (tmp_path / "out" / "2.jpg").is_file()


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_absurd_zip64_offsets_are_a_clear_error(tmp_path, as_url):
    far = good_member()
    far["offset"] = 2**62  # a header "past the end" of a 1 kB file
    archive = tmp_path / "far.zip"
    archive.write_bytes(zip_archive([far]))
    source = archive.as_uri() if as_url else archive
    with ZipIndex.open(source) as index:
        with pytest.raises(InputDataError, match="past the end"):
            index.read("images/1.jpg")
    locator = tmp_path / "locator.zip"
    locator.write_bytes(zip_archive([good_member()], zip64_locator_offset=2**63 + 5))
    with pytest.raises(InputDataError, match="ZIP64 locator points at offset"):
        ZipIndex.open(locator.as_uri() if as_url else locator)
    directory = tmp_path / "directory.zip"
    data = bytearray(zip_archive([good_member()]))
    struct.pack_into("<L", data, len(data) - 6, 2**31)  # the directory's offset
    directory.write_bytes(bytes(data))
    with pytest.raises(InputDataError, match="central directory"):
        ZipIndex.open(directory.as_uri() if as_url else directory)


class _RunsOn(BaseHTTPRequestHandler):
    """Answers every Range request with the asked bytes, then keeps sending."""

    payload = b""
    extra_bytes = 64 * MIB
    sent: list[int] = []

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self):  # noqa: N802
        spec = self.headers["Range"].removeprefix("bytes=")
        first, _, last = spec.partition("-")
        total = len(self.payload)
        start, stop = (total - int(last), total - 1) if not first else (int(first), int(last))
        start = max(start, 0)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{stop}/{total}")
        self.end_headers()  # no Content-Length: the body's end is the connection's
        sent = 0
        try:
            self.wfile.write(self.payload[start : stop + 1])
            block = b"\0" * MIB
            while sent < self.extra_bytes:
                self.wfile.write(block)
                sent += len(block)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.sent.append(sent)
        self.close_connection = True


@pytest.fixture
def loopback():
    servers = []

    def serve(handler):
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_an_http_body_longer_than_asked_is_cut_not_read(loopback):
    _RunsOn.payload = zip_archive([good_member()])
    url = loopback(_RunsOn) + "/images.zip"
    tracemalloc.start()
    with pytest.raises(DownloadError, match="runs past its Content-Range"):
        ZipIndex.open(url, retries=1, timeout_s=10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * MIB, f"{peak / MIB:.0f} MiB read of a 64 MiB run-on body"


class _Endless(BaseHTTPRequestHandler):
    """A cutout service whose answer never ends (or announces a gigabyte)."""

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        if "announce" in self.path:
            self.send_header("Content-Length", str(1024 * MIB))
        self.end_headers()
        block = b"\xff\xd8" + b"\0" * (MIB - 2)
        try:
            for _ in range(96):
                self.wfile.write(block)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


def test_a_cutout_answer_larger_than_an_image_may_be_is_cut(loopback):
    base = loopback(_Endless)
    tracemalloc.start()
    with pytest.raises(DownloadError, match="runs past the 2,000,000 bytes accepted"):
        read_bytes(base + "/endless", retries=1, max_bytes=2_000_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * MIB
    with pytest.raises(DownloadError, match="announces 1,073,741,824 bytes"):
        read_bytes(base + "/announce", retries=1, max_bytes=MAX_FILE_BYTES)


# ----------------------------------------------------------------------------- 2: ids as text


TRICKY_IDS = ["000123", "123", "NA", "nan", "null", "None", "1e5", "=1+1", "7"]


def test_folder_ids_stay_text_from_the_labels_to_the_fetched_image(tmp_path):
    """Each id names its own image (a colour of its own): never another galaxy's."""
    images = tmp_path / "images"
    images.mkdir()
    colours = {}
    for number, image_id in enumerate(TRICKY_IDS):
        colours[image_id] = (20 * number + 10, 255 - 20 * number, 100)
        Image.new("RGB", (16, 16), colours[image_id]).save(images / f"{image_id}.png")
    (tmp_path / "labels.csv").write_text(
        "objid,morphology\n" + "".join(f"{i},elliptical\n" for i in TRICKY_IDS)
    )
    labels = folder_dataset.read_labels(tmp_path / "labels.csv", "objid", "morphology")
    found = folder_dataset.list_images(images, "{id}.png")
    galaxies, _, counts = folder_dataset.folder_galaxies(labels, found, ["elliptical"])
    assert len(galaxies) == len(TRICKY_IDS), counts
    write_sample_csv(galaxies, tmp_path / "train.csv")
    raw = (tmp_path / "train.csv").read_text()
    assert "'=1+1" in raw and ",=1+1" not in raw  # 8: no formula for a spreadsheet
    rows = shard_rows(tmp_path / "train.csv", 1, 0)
    assert rows["image_id"].tolist() == galaxies["image_id"].tolist()
    assert sorted(rows["image_id"]) == sorted(TRICKY_IDS)
    assert rows["asset_id"].is_unique and rows["asset_id"].dtype == np.int64
    get, _ = acquire.DirectorySource(str(images), "{id}.png").open(acquire.Transfer())
    for row in rows.to_dict("records"):
        pixels = imaging.load_image(get(row), 16)
        assert np.abs(pixels[8, 8].astype(int) - colours[row["image_id"]]).max() <= 3, row


def test_a_sample_csv_reads_back_as_it_was_written(tmp_path):
    frame = pd.DataFrame({
        "dr7objid": [1, 2, 3], "asset_id": [10, 20, 30],
        "gz2_class": ["NA", "-x", "@y"], "class": ["null", "+z", "'quoted"],
        "ra": [1.5, np.nan, 3.0], "dec": [0.0, 1.0, np.nan],
        "image_id": ["000123", "nan", "=cmd|'/c calc'!A0"],
    })  # fmt: skip
    write_sample_csv(frame, tmp_path / "s.csv")
    back = read_sample_csv(tmp_path / "s.csv")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back["image_id"].tolist() == ["000123", "nan", "=cmd|'/c calc'!A0"]


# ----------------------------------------------------------------------------- 3, 4: images


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height`` (CRC fixed): ~100 bytes."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "PNG")
    data = bytearray(out.getvalue())
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("side", [9_000, 30_000], ids=["over-policy", "over-pillow"])
def test_a_decompression_bomb_png_is_one_failure_row(tmp_path, side):
    images = tmp_path / "images"
    images.mkdir()
    (images / "1.jpg").write_bytes(jpeg_bytes())
    (images / "2.jpg").write_bytes(_png_claiming(side, side))  # a PNG named .jpg, too
    rows = pd.DataFrame({"asset_id": [1, 2], "dr7objid": [11, 12]})
    acquire.fetch_shard(
        rows, acquire.DirectorySource(str(images)), tmp_path / "out", tmp_path / "f.csv",
        size=16, progress=False, max_failure_fraction=0.9, connections=1,
    )  # fmt: skip
    failures = pd.read_csv(tmp_path / "f.csv")
    assert failures["asset_id"].tolist() == [2]
    assert "not a usable image" in failures["reason"][0]
    assert (tmp_path / "out" / "1.jpg").is_file()
    with pytest.raises(imaging.ImageFormatError):
        imaging.load_image(_png_claiming(side, side), 16)


def test_a_16_bit_png_keeps_its_greys(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)  # mode I;16
    assert Image.open(path).mode in imaging._WIDE_GREY
    pixels = imaging.load_image(path, 32)
    expected = np.rint(ramp / 257.0).astype(int)
    assert np.abs(pixels[..., 0].astype(int) - expected).max() <= 1
    assert pixels.min() == 0 and pixels.max() == 255 and (pixels < 250).mean() > 0.9
    # the same through the image source that re-encodes non-JPEG files
    stored = imaging.load_image(acquire._as_jpeg(path.read_bytes(), "deep.png"), 32)
    assert np.abs(stored[..., 0].astype(int) - expected).max() <= 6


def test_exif_orientation_is_applied_so_a_mirrored_file_keeps_its_winding(tmp_path):
    """The file's pixels are stored mirrored with orientation 2 (mirror): a viewer shows
    red on the left; so must the workflow (or cw and acw spirals swap)."""
    shown = np.zeros((32, 48, 3), np.uint8)
    shown[:, :24] = (220, 20, 20)
    shown[:, 24:] = (20, 20, 220)
    stored = Image.fromarray(shown[:, ::-1].copy())
    exif = Image.Exif()
    exif[0x0112] = 2
    path = tmp_path / "mirrored.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif)
    pixels = imaging.load_image(path, 32, "resize")  # central 32x32 of the upright image
    assert pixels[16, 2, 0] > 150 and pixels[16, 2, 2] < 100  # red on the left
    assert pixels[16, 29, 2] > 150 and pixels[16, 29, 0] < 100
    turned = tmp_path / "turned.jpg"
    exif[0x0112] = 6  # stored on its side (32 wide, 48 high): 48 wide once turned
    Image.fromarray(np.rot90(shown).copy()).save(turned, "JPEG", quality=95, exif=exif)
    with Image.open(turned) as image:
        assert image.size == (32, 48) and imaging.upright_size(image) == (48, 32)


# ----------------------------------------------------------------------------- 5: decision rule


@pytest.mark.parametrize("value", ["nan", "-0.5", "inf"])
def test_predict_refuses_a_prior_shift_that_is_not_a_finite_power(tmp_path, value):
    done = subprocess.run(
        [sys.executable, "-m", "galmorph.cnn.predict", "--model", str(tmp_path / "m.keras"),
         "--folder", str(tmp_path), "--out", str(tmp_path / "p.csv"), "--prior-shift", value],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "prior_shift" in done.stderr and not (tmp_path / "p.csv").exists()
    with pytest.raises(InputDataError, match="prior_shift"):
        DecisionRule(prior_shift=float(value))


# ----------------------------------------------------------------------------- 6: alias bomb


def alias_bomb(levels: int = 9) -> str:
    """``clustering.methods`` as nine lists of nine aliases of the list before: 9**9 values
    from under 1 kB of YAML."""
    text = "x0: &c0 [kmeans, kmeans, kmeans, kmeans, kmeans, kmeans, kmeans, kmeans, kmeans]\n"
    for level in range(1, levels - 1):
        text += f"x{level}: &c{level} [" + ", ".join([f"*c{level - 1}"] * 9) + "]\n"
    return text + "clustering:\n  methods: [" + ", ".join([f"*c{levels - 2}"] * 9) + "]\n"


def test_a_yaml_alias_bomb_is_refused_before_the_schema_check(tmp_path):
    bomb = yaml.safe_load(alias_bomb())
    assert galmorph_config.expanded_size(bomb) > galmorph_config.MAX_CONFIG_NODES
    schema = galmorph_config.load_schema(REPO / "workflow/schemas/config.schema.yaml")
    with pytest.raises(ConfigError, match="YAML aliases"):
        galmorph_config.validate(deep_update(TINY_CONFIG, bomb), schema)
    # through Snakemake: the config check answers in seconds (it took 8 GB and minutes)
    workdir = copy_workflow(tmp_path / "run")
    write_config(workdir / "config/tiny.yaml")
    (workdir / "config/bomb.yaml").write_text(alias_bomb())
    done = subprocess.run(
        ["snakemake", "-n", "--configfile", "config/tiny.yaml", "config/bomb.yaml"],
        cwd=workdir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "once its YAML aliases (*name) are expanded" in done.stdout + done.stderr


def test_a_config_with_shared_but_small_aliases_passes():
    shared = yaml.safe_load("a: &a [1, 2, 3]\nb: *a\nc: *a\n")
    assert galmorph_config.expanded_size(shared) == 13


# ----------------------------------------------------------------------------- 7: zip, keras


def test_a_member_name_that_is_not_utf8_is_left_out_with_a_warning(tmp_path, caplog):
    archive = tmp_path / "names.zip"
    archive.write_bytes(zip_archive([good_member(b"images/\xff\xfe1.jpg"), good_member()]))
    with ZipIndex.open(archive) as index:
        assert index.names() == ["images/1.jpg"]
        assert index.read("images/1.jpg") == jpeg_bytes()
    assert "not valid UTF-8" in caplog.text


def test_a_fake_end_record_in_the_zip_comment_is_refused(tmp_path):
    fake = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0)  # "an empty archive"
    archive = tmp_path / "fake.zip"
    archive.write_bytes(zip_archive([good_member()], comment=fake))
    with pytest.raises(InputDataError, match="ambiguous"):
        ZipIndex.open(archive)
    # the same bytes in a comment that does not end the file are just a comment
    honest = tmp_path / "honest.zip"
    honest.write_bytes(zip_archive([good_member()], comment=fake + b"a comment"))
    assert ZipIndex.open(honest).names() == ["images/1.jpg"]


def test_a_keras_model_holding_python_code_is_refused_with_one_message(tmp_path):
    import keras

    from galmorph.cnn.train import load

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "model.keras")
    (tmp_path / "model.json").write_text(json.dumps({"class_names": ["a", "b"]}))
    with pytest.raises(InputDataError, match="holds Python code"):
        load(tmp_path / "model.keras")
    (tmp_path / "model.keras").write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(InputDataError, match="not a Keras model galmorph can read"):
        load(tmp_path / "model.keras")
    (tmp_path / "model.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(InputDataError, match="not a model's JSON metadata"):
        load(tmp_path / "model.keras")


# ----------------------------------------------------------------------------- 8: predictions


def test_predictions_of_formula_looking_file_names_are_escaped(tmp_path):
    """A hand-built two-class network: the CSV's ids are the files' names as text."""
    import keras

    from galmorph.cnn import decision, predict
    from galmorph.cnn.train import save_model

    inputs = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    meta = {"class_names": ["=elliptical", "edge_on"], "mirror_pairs": [], "crop": 32,
            "image_size": 32, "input_size": 16,
            "split_class_counts": {"=elliptical": 3, "edge_on": 1}}  # fmt: skip
    save_model(model, meta, tmp_path / "network.keras")
    decision.write_model(tmp_path / "network.keras", tmp_path / "model.keras",
                         decision.DecisionRule())  # fmt: skip
    images = tmp_path / "images"
    images.mkdir()
    names = ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "plain"]
    for name in names:
        (images / f"{name}.jpg").write_bytes(jpeg_bytes(size=32))
    (images / "=broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "predictions.csv"
    predict.predict_folder(tmp_path / "model.keras", images, out, batch_size=2)
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert sorted(written["id"]) == sorted(f"'{n}" if n != "plain" else n for n in names)
    assert set(written["predicted_class"]) <= {"'=elliptical", "edge_on"}
    failures = pd.read_csv(predict.failures_path(out), dtype=str)
    assert failures["file"].tolist() == ["'=broken.jpg"]


# ----------------------------------------------------------------------------- 9: sharing


def test_the_shared_pipeline_loads_without_running_code_and_refuses_other_types(tmp_path):
    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from galmorph.reduction.alignment import GalaxyAligner
    from galmorph.reduction.descriptors import MorphologyDescriptors
    from galmorph.reduction.sharing import load_pipeline, save_pipeline

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
    steps = [("align", GalaxyAligner(size=16)), ("describe", MorphologyDescriptors())]
    pipeline = Pipeline([*steps, ("scale", StandardScaler())]).fit(crops)
    save_pipeline(pipeline, tmp_path / "pipeline.skops")
    np.testing.assert_allclose(
        load_pipeline(tmp_path / "pipeline.skops").transform(crops), pipeline.transform(crops)
    )
    hostile = Pipeline([("run", FunctionTransformer(os.system))])
    skops.io.dump(hostile, tmp_path / "hostile.skops")
    with pytest.raises(InputDataError, match="types galmorph does not trust: .*system"):
        load_pipeline(tmp_path / "hostile.skops")
    (tmp_path / "pickle.skops").write_bytes(b"\x80\x04not skops")
    with pytest.raises(InputDataError, match="not a skops file"):
        load_pipeline(tmp_path / "pickle.skops")


# ----------------------------------------------------------------------------- 10: sizes, temps


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"clustering": {"hdbscan": {"min_cluster_size": 41}}}, "hdbscan.min_cluster_size"),
        ({"clustering": {"som": {"rows": 7, "cols": 6}}}, "clustering.som.rows"),
    ],
)
def test_cluster_sizes_the_training_split_cannot_hold_are_refused(overrides, key):
    schema = galmorph_config.load_schema(REPO / "workflow/schemas/config.schema.yaml")
    with open(REPO / "config/config.yaml") as handle:
        defaults = yaml.safe_load(handle)
    config = deep_update(deep_update(defaults, TINY_CONFIG), overrides)  # n_train = 40
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        galmorph_config.validate(config, schema)
    fits = deep_update(defaults, TINY_CONFIG)
    galmorph_config.validate(fits, schema)


def test_a_concurrent_writers_temporary_file_is_left_alone(tmp_path):
    final = tmp_path / "out.csv"
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.stdin.read(); time.sleep(0)"],
        stdin=subprocess.PIPE,
    )
    try:
        host = __import__("galmorph.io", fromlist=["_host"])._host()
        theirs = tmp_path / f".out.csv.tmp-{writer.pid}@{host}-abcd"
        theirs.write_text("half written by a live process")
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        left = tmp_path / f".out.csv.tmp-{int(dead.stdout)}@{host}-efgh"
        left.write_text("left by a killed run")
        with atomic_path(final) as temporary:
            Path(temporary).write_text("mine")
        assert final.read_text() == "mine"
        assert theirs.read_text() == "half written by a live process"
        assert not left.exists()
    finally:
        writer.communicate(b"")
