"""Preprocessing before the reduction: recentre, align, mask, normalise, stretch; never a mirror."""

import numpy as np
import pytest
from scipy import ndimage

from galmorph.reduction.alignment import GalaxyAligner
from galmorph.reduction.descriptors import (
    FEATURE_NAMES,
    MIRROR_PARITY,
    MorphologyDescriptors,
    describe,
)
from galmorph.reduction.morphometry import winding_features
from galmorph.reduction.pca import FastIncrementalPCA
from galmorph.reduction.pipeline import flatten, make_aligner, pixels

SIZE = 96


def spiral(angle=0.0, sense=1, shift=(0.0, 0.0), elongation=1.0, size=SIZE, seed=0):
    """A two-armed log spiral with a bulge (uint8 RGB), winding ``sense`` (+1 / -1)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(float) - (size - 1) / 2
    x, y = x - shift[1], y - shift[0]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * x + sin * y, (-sin * x + cos * y) * elongation
    r = np.hypot(u, v) + 1e-6
    theta = np.arctan2(v, u)
    arms = np.cos(2 * (theta - sense * 2.5 * np.log(r / 3.0))) ** 8 * np.exp(-r / 14)
    light = 0.7 * arms * (r > 4) + np.exp(-r / 3.0)
    colour = np.array([1.0, 0.85, 0.7])
    image = light[..., None] * colour * 230 + rng.normal(8, 2, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def winding_sign(aligned):
    return np.sign(winding_features(aligned.mean(axis=2))[1::2].sum())


@pytest.mark.parametrize("angle", np.linspace(0, 2 * np.pi, 9)[:-1])
@pytest.mark.parametrize("sense", [1, -1])
def test_alignment_keeps_the_winding_at_any_angle(angle, sense):
    image = spiral(angle, sense, shift=(5.0, -3.0), elongation=1.6)
    reference = winding_sign(spiral(0.0, sense).astype(float))
    aligned = GalaxyAligner(48, stretch="asinh").transform(image[None])[0]
    assert winding_sign(aligned) == reference != 0
    # every map is a rotation: a mirrored input gives the other sense
    mirrored = GalaxyAligner(48, stretch="asinh").transform(image[None, :, ::-1])[0]
    assert winding_sign(mirrored) == -reference


def test_recentre_and_align_put_the_galaxy_at_the_centre_along_the_axis():
    image = spiral(np.deg2rad(50), 1, shift=(9.0, -7.0), elongation=2.0)
    aligned = GalaxyAligner(None, mask_neighbours=False, stretch="linear").transform(image[None])[0]
    grey = np.clip(aligned.mean(axis=2), 0, None)
    cy, cx = ndimage.center_of_mass(grey)
    assert abs(cy - (SIZE - 1) / 2) < 1.0 and abs(cx - (SIZE - 1) / 2) < 1.0
    y, x = np.mgrid[0:SIZE, 0:SIZE] - (SIZE - 1) / 2
    spread_x, spread_y = (grey * x**2).sum(), (grey * y**2).sum()
    assert spread_x > 1.5 * spread_y  # major axis horizontal


def test_neighbours_are_masked_and_flux_is_normalised():
    image = spiral(0.3, 1).astype(float)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    star = 200 * np.exp(-((x - 85) ** 2 + (y - 10) ** 2) / 4.0)
    with_star = np.clip(image + star[..., None], 0, 255).astype(np.uint8)
    masked = GalaxyAligner(None, recentre=False, align=False, stretch="linear")
    out = masked.transform(with_star[None])[0]
    kept = GalaxyAligner(None, recentre=False, align=False, mask_neighbours=False,
                         stretch="linear").transform(with_star[None])[0]  # fmt: skip
    peak = kept[10, 85].mean()
    assert peak > 5 * np.percentile(np.abs(kept), 90)  # the star stands out unmasked
    assert np.abs(out[7:14, 82:89]).max() < 0.02 * peak  # and is sky when masked
    # a galaxy twice as bright gives the same normalised image
    faint = spiral(0.3, 1).astype(float) / 255 * 0.5
    bright = faint * 2
    aligner = GalaxyAligner(32, flux="total", stretch="log")
    np.testing.assert_allclose(
        aligner.transform(faint[None]), aligner.transform(bright[None]), atol=1e-4
    )


def test_the_study_preprocessing_is_pixels_over_255():
    images = np.stack([spiral(a) for a in (0.1, 1.0)])
    aligner = make_aligner(None)
    assert aligner.identity
    np.testing.assert_array_equal(flatten(aligner.transform(images)), pixels(images))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="stretch"):
        GalaxyAligner(stretch="sqrt").transform(spiral()[None])
    with pytest.raises(ValueError, match="flux"):
        GalaxyAligner(flux="median").fit()
    with pytest.raises(ValueError, match="square RGB"):
        GalaxyAligner().transform(np.zeros((2, 10, 12, 3)))


def test_descriptors_are_rotation_invariant_and_mirror_parity_holds():
    aligner = GalaxyAligner(48, stretch="log")
    reference = MorphologyDescriptors().transform(aligner.transform(spiral(0.0, 1)[None]))[0]
    assert reference.shape == (len(FEATURE_NAMES),)
    spread = np.abs(reference) + 0.05
    for angle in (0.4, 1.3, 2.9):
        turned = describe(aligner.transform(spiral(angle, 1)[None])[0])
        assert np.all(np.abs(turned - reference) < 0.25 * spread), angle
    mirrored = describe(aligner.transform(spiral(0.0, 1)[None, :, ::-1])[0])
    winding = FEATURE_NAMES.index("winding")
    assert np.sign(mirrored[winding]) == -np.sign(reference[winding]) != 0
    assert MIRROR_PARITY[winding] == -1 and (MIRROR_PARITY == 1).sum() == len(FEATURE_NAMES) - 1


def test_a_rotated_galaxy_lands_near_itself_far_nearer_than_in_raw_pixel_pca():
    """Distance between a galaxy and its rotated copy, relative to the typical distance
    between different galaxies, in the descriptors versus the study's raw-pixel PCA."""
    rng = np.random.default_rng(3)
    galaxies = [
        spiral(rng.uniform(0, np.pi), sense, elongation=e, seed=i)
        for i, (sense, e) in enumerate([(s, e) for s in (1, -1) for e in rng.uniform(1.0, 2.5, 12)])
    ]
    rotated = [np.rot90(g, 1) if i % 2 else ndimage.rotate(g, 37, reshape=False, order=1)
               for i, g in enumerate(galaxies)]  # fmt: skip
    images = np.stack(galaxies + rotated)
    n = len(galaxies)

    def relative_shift(features):
        features = (features - features.mean(0)) / (features.std(0) + 1e-9)
        pairs = np.linalg.norm(features[:n] - features[n:], axis=1)
        others = np.linalg.norm(features[:n, None] - features[None, :n], axis=2)
        return np.median(pairs) / np.median(others[np.triu_indices(n, 1)])

    raw = flatten(make_aligner(None).transform(images))
    pca = FastIncrementalPCA(10).fit(raw)
    pixel_shift = relative_shift(pca.transform(raw))
    aligner = GalaxyAligner(48, stretch="log")
    descriptor_shift = relative_shift(MorphologyDescriptors().transform(aligner.transform(images)))
    assert descriptor_shift < 0.35 * pixel_shift, (descriptor_shift, pixel_shift)
