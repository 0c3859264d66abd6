"""FastIncrementalPCA against scikit-learn's IncrementalPCA on the cases scikit-learn's own
tests check: the same model wherever scikit-learn defines it (components up to sign,
explained variance and ratio, singular values, mean, variance, noise variance, samples
seen, partial_fit equal to fit, covariance and precision), rank-deficient, tiny, tall and
constant batches, and a clear refusal of what it does not do."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import load_iris
from sklearn.decomposition import IncrementalPCA

from galmorph.reduction.pca import FastIncrementalPCA

FLOAT64 = dict(rtol=1e-9, atol=1e-12)
# float32 arithmetic on the wide matrices: unit-norm components of 300 entries carry
# ~eps32 * sqrt(300) = 2e-6 of rounding, more where two variances are close (random
# data); the BLAS kernels a CPU picks move the last bits (1.3e-6 seen on AVX-512).
FLOAT32 = dict(rtol=2e-4, atol=4e-6)

FITTED = ("explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_",
          "var_")  # fmt: skip


def assert_same_model(ours, theirs, tolerance):
    np.testing.assert_allclose(np.abs(ours.components_), np.abs(theirs.components_),
                               **tolerance)  # fmt: skip
    # scikit-learn fixes signs with svd_flip (largest entry of each row positive): so do we
    np.testing.assert_allclose(ours.components_, theirs.components_, **tolerance)
    for name in FITTED:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), **tolerance,
                                   err_msg=name)  # fmt: skip
    assert ours.noise_variance_ == pytest.approx(theirs.noise_variance_, rel=1e-6, abs=1e-12)
    assert ours.n_samples_seen_ == theirs.n_samples_seen_


def test_iris_one_component_noise_variance():
    X = load_iris().data
    for batch_size in (None, 10, 150):  # the default (5 x features), several, one batch
        ours = FastIncrementalPCA(1, batch_size=batch_size, dtype=np.float64).fit(X)
        theirs = IncrementalPCA(1, batch_size=batch_size).fit(X)
        assert_same_model(ours, theirs, FLOAT64)


def test_one_batch_taller_than_wide_averages_only_the_real_singular_values():
    X = np.random.default_rng(0).normal(size=(80, 30)) * np.linspace(1, 3, 30)
    ours = FastIncrementalPCA(5, batch_size=80, dtype=np.float64).fit(X)
    theirs = IncrementalPCA(5, batch_size=80).fit(X)
    assert_same_model(ours, theirs, FLOAT64)


@pytest.mark.parametrize("shape, k, batch", [((200, 50), 10, 40), ((300, 8), 3, 20),
                                             ((60, 400), 12, 25), ((1000, 3), 2, 100)])  # fmt: skip
def test_same_model_in_float64(shape, k, batch):
    rng = np.random.default_rng(1)
    X = rng.normal(size=shape) @ np.diag(np.linspace(0.5, 4, shape[1])) + rng.normal(size=shape[1])
    assert_same_model(FastIncrementalPCA(k, batch_size=batch, dtype=np.float64).fit(X),
                      IncrementalPCA(k, batch_size=batch).fit(X), FLOAT64)  # fmt: skip


def test_same_model_in_float32_within_the_documented_tolerance():
    X = np.random.default_rng(2).integers(0, 256, (240, 300)).astype(np.float32) / 255
    theirs = IncrementalPCA(10, batch_size=60).fit(X.astype(np.float64))
    assert_same_model(FastIncrementalPCA(10, batch_size=60).fit(X), theirs, FLOAT32)


def test_partial_fit_equals_fit_and_covariance_matches():
    X = np.random.default_rng(3).normal(size=(150, 20)) * np.linspace(1, 2, 20)
    whole = FastIncrementalPCA(6, batch_size=30, dtype=np.float64).fit(X)
    parts = FastIncrementalPCA(6, dtype=np.float64)
    for start in range(0, 150, 30):
        parts.partial_fit(X[start : start + 30])
    assert_same_model(parts, whole, FLOAT64)
    theirs = IncrementalPCA(6, batch_size=30).fit(X)
    converted = whole.to_sklearn()
    np.testing.assert_allclose(converted.get_covariance(), theirs.get_covariance(), **FLOAT64)
    np.testing.assert_allclose(converted.get_precision(), theirs.get_precision(), rtol=1e-7)


def test_a_first_batch_of_exactly_n_components_rows_fits_as_in_sklearn():
    """The config allows reduction.batch_size == n_components: the first batch is then
    rank-deficient once centred (k rows span k - 1 directions)."""
    X = np.random.default_rng(4).normal(size=(40, 12))
    ours = FastIncrementalPCA(4, batch_size=4, dtype=np.float64).fit(X)
    theirs = IncrementalPCA(4, batch_size=4).fit(X)
    np.testing.assert_allclose(np.linalg.norm(ours.components_, axis=1), 1.0, rtol=1e-10)
    for name in ("explained_variance_", "singular_values_", "mean_", "var_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-8,
                                   atol=1e-10, err_msg=name)  # fmt: skip
    assert ours.noise_variance_ == pytest.approx(theirs.noise_variance_, rel=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exactly_low_rank_data_gives_orthonormal_components(dtype):
    rng = np.random.default_rng(5)
    X = (rng.normal(size=(60, 3)) @ rng.normal(size=(3, 40))).astype(dtype)
    ours = FastIncrementalPCA(5, batch_size=20, dtype=dtype).fit(X)
    gram = ours.components_ @ ours.components_.T
    np.testing.assert_allclose(gram, np.eye(5), atol=1e-4 if dtype == np.float32 else 1e-10)
    theirs = IncrementalPCA(5, batch_size=20).fit(X.astype(np.float64))
    np.testing.assert_allclose(ours.explained_variance_[:3], theirs.explained_variance_[:3],
                               rtol=1e-4)  # fmt: skip
    assert ours.explained_variance_[3:].max() < 1e-6 * ours.explained_variance_[0]


def test_constant_and_tiny_batches():
    constant = np.full((10, 6), 3.0)
    model = FastIncrementalPCA(2, dtype=np.float64).fit(constant)
    np.testing.assert_allclose(model.explained_variance_, 0.0, atol=1e-12)
    np.testing.assert_allclose(model.mean_, 3.0)
    np.testing.assert_allclose(np.linalg.norm(model.components_, axis=1), 1.0)
    tiny = np.random.default_rng(6).normal(size=(2, 5))
    ours = FastIncrementalPCA(2, dtype=np.float64).fit(tiny)
    theirs = IncrementalPCA(2).fit(tiny)
    np.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_, rtol=1e-8,
                               atol=1e-12)  # fmt: skip
    assert ours.noise_variance_ == theirs.noise_variance_ == 0.0


def test_tall_batches_use_the_feature_side():
    """500,000 x 2 in batches of 10,000 would need a 10,000-square Gram matrix per batch;
    the feature side is 2 x 2. Same model as scikit-learn."""
    X = np.random.default_rng(7).normal(size=(50_000, 2)) @ np.array([[2.0, 0.5], [0.0, 1.0]])
    ours = FastIncrementalPCA(1, batch_size=10_000, dtype=np.float64).fit(X)
    theirs = IncrementalPCA(1, batch_size=10_000).fit(X)
    assert_same_model(ours, theirs, FLOAT64)


def test_whitening_and_sparse_input_are_refused_with_a_message():
    with pytest.raises(ValueError, match="does not whiten"):
        FastIncrementalPCA(2, whiten=True).fit(np.ones((10, 4)))
    with pytest.raises(TypeError, match="dense arrays"):
        FastIncrementalPCA(2).partial_fit(sparse.random(10, 4, density=0.5, format="csr"))
