"""The measured morphology: the winding is unchanged by any rotation, negated by a mirror,
opposite for the two senses of a spiral and blind to galaxies without arms; the shape
measures are unchanged by rotations and mirrors and tell a disk from a blob."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from galmorph.catalogue.classes import chiral_classes
from galmorph.cnn import measures
from galmorph.cnn.measures import MEASURE_SETS
from galmorph.reduction import morphometry


def spiral_image(size=96, sense=1, arms=2, pitch_deg=18.0, phase=0.0, noise=0.0, seed=0):
    """A face-on logarithmic spiral (uint8 RGB); ``sense`` +1 or -1 picks the winding."""
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2.0
    r = np.hypot(x, y) + 1e-3
    theta = np.arctan2(y, x)
    arm_phase = arms * (theta - sense * np.log(r) / np.tan(np.radians(pitch_deg)) - phase)
    light = np.exp(-r / (0.18 * size)) * (0.35 + 0.65 * (0.5 + 0.5 * np.cos(arm_phase)) ** 3)
    light += 0.8 * np.exp(-((r / (0.04 * size)) ** 2))
    light += np.random.default_rng(seed).normal(0, noise, light.shape)
    grey = np.clip(light / light.max() * 230, 0, 255)
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def blob_image(size=96, q=0.6, angle=30.0):
    """A smooth elliptical galaxy: no arms."""
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2.0
    a = np.radians(angle)
    u, v = x * np.cos(a) + y * np.sin(a), (-x * np.sin(a) + y * np.cos(a)) / q
    grey = 230 * np.exp(-np.hypot(u, v) / (0.1 * size))
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    return np.asarray(Image.fromarray(image).rotate(angle, resample=Image.Resampling.BILINEAR))


def test_exact_quarter_turns_keep_every_feature_and_a_mirror_negates_the_winding():
    image = spiral_image(sense=1)
    features = morphometry.winding_features(image)
    for k in (1, 2, 3):
        np.testing.assert_allclose(morphometry.winding_features(np.rot90(image, k)), features,
                                   atol=1e-5)  # fmt: skip
    mirrored = morphometry.winding_features(image[:, ::-1])
    np.testing.assert_allclose(mirrored, features * morphometry.MIRROR_PARITY[:6], atol=1e-5)
    parity = morphometry.MIRROR_PARITY
    assert [n for n, p in zip(morphometry.FEATURE_NAMES, parity, strict=True) if p < 0] == [
        n for n in morphometry.WINDING_NAMES if n.startswith("winding")
    ]  # fmt: skip
    everything = morphometry.measure(image)
    np.testing.assert_allclose(morphometry.measure(image[:, ::-1]), everything * parity, atol=1e-5)
    np.testing.assert_allclose(morphometry.measure(np.rot90(image)), everything, atol=1e-5)


@pytest.mark.parametrize("angle", [17.0, 45.0, 133.0, 250.0])
def test_any_rotation_keeps_the_sign_of_the_winding(angle):
    for sense in (1, -1):
        image = spiral_image(sense=sense, phase=0.3)
        before = morphometry.winding_features(image)[1::2].sum()
        after = morphometry.winding_features(rotate(image, angle))[1::2].sum()
        assert np.sign(after) == np.sign(before) != 0
        assert after == pytest.approx(before, rel=0.25)


def test_the_two_senses_have_opposite_winding_and_it_survives_noise():
    for pitch in (12.0, 20.0, 30.0):
        for phase in (0.0, 1.0, 2.5):
            shape = dict(pitch_deg=pitch, phase=phase, noise=0.03)
            one = morphometry.winding_features(spiral_image(sense=1, **shape))
            other = morphometry.winding_features(spiral_image(sense=-1, **shape))
            # the same sense always gives the same sign, the other sense the opposite one
            assert one[1::2].sum() < -0.05 and other[1::2].sum() > 0.05


def test_a_galaxy_without_arms_has_almost_no_winding():
    features = morphometry.winding_features(blob_image())
    assert np.abs(features[1::2]).max() < 0.05
    assert features[::2].min() > 0.5  # gradients along the radius: ring-like, not spoke-like


def test_non_square_images_are_refused():
    with pytest.raises(ValueError, match="square"):
        morphometry.winding_features(np.zeros((10, 12)))


def test_chiral_class_names():
    names = ["elliptical", "edge_on", "spiral_cw", "spiral_acw", "merger", "Sc", "SBa", "Ec"]
    assert chiral_classes(names) == ["spiral_cw", "spiral_acw"]
    assert chiral_classes(["clockwise", "counter-clockwise", "Sd"]) == [
        "clockwise", "counter-clockwise"
    ]  # fmt: skip


def test_shape_measures_tell_a_round_smooth_blob_from_a_flat_disk_and_a_merger():
    names = list(morphometry.SHAPE_NAMES)
    round_blob = morphometry.shape_features(blob_image(q=1.0))
    flat = morphometry.shape_features(blob_image(q=0.25, angle=70))
    assert round_blob[names.index("axis_ratio")] > 0.9 > 0.4 > flat[names.index("axis_ratio")]
    pair = np.maximum(blob_image(q=1.0), np.roll(blob_image(q=1.0), 20, axis=1))
    merger = morphometry.shape_features(pair)
    assert merger[names.index("asymmetry")] > 3 * round_blob[names.index("asymmetry")]
    spiral = morphometry.shape_features(spiral_image(sense=1))
    assert spiral[names.index("smoothness")] > round_blob[names.index("smoothness")]
    red = blob_image().astype(float)
    red[..., 2] *= 0.5
    assert morphometry.shape_features(red.astype(np.uint8))[names.index("colour_core")] > 0.2


@pytest.mark.parametrize("kind", MEASURE_SETS)
def test_each_measure_set_mirrors_by_its_parity_and_keeps_quarter_turns(kind):
    image = spiral_image(sense=1, noise=0.01)
    values = measures.measure(image, kind)
    assert values.shape == (len(measures.feature_names(kind)),) and values.dtype == np.float32
    turned = measures.measure(np.rot90(image), kind)
    # the aligner's turn to the major axis differs by rounding between the two: allow it
    np.testing.assert_allclose(turned, values, atol=0.02 * (np.abs(values).max() + 1))
    mirrored = measures.measure(image[:, ::-1], kind)
    winding = measures.mirror_parity(kind) < 0
    assert np.all(np.sign(mirrored[winding]) == -np.sign(values[winding]))
    np.testing.assert_allclose(measures.mirror(values, kind)[~winding], values[~winding], atol=1e-6)
    with pytest.raises(ValueError, match="cnn.measures"):
        measures.measure(image, "pixels")


@pytest.mark.parametrize("kind", MEASURE_SETS)
def test_several_crops_are_each_crops_measures_side_by_side_and_mirror_crop_by_crop(kind):
    assert measures.measure_crops(128, (1.0, 0.5, 0.75)) == (64, 96, 128)
    assert measures.measure_crops(0, (0.5, 1.0)) == ()
    image = spiral_image(sense=1, noise=0.01)  # 96 px
    crops = measures.measure_crops(96, (0.5, 1.0))
    values = measures.measure_regions(image, kind, crops)
    width = len(measures.feature_names(kind))
    assert values.shape == (2 * width,)
    np.testing.assert_array_equal(values[:width], measures.measure(image[24:72, 24:72], kind))
    np.testing.assert_array_equal(values[width:], measures.measure(image, kind))
    mirrored = measures.measure_regions(image[:, ::-1], kind, crops)
    winding = measures.mirror_parity(kind, 2) < 0
    assert winding[:width].tolist() == winding[width:].tolist() and winding.any()
    assert np.all(np.sign(mirrored[winding]) == -np.sign(values[winding]))
    np.testing.assert_array_equal(measures.mirror(values, kind)[winding], -values[winding])
    np.testing.assert_array_equal(measures.mirror(values, kind)[~winding], values[~winding])
