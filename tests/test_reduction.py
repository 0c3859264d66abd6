"""The fast incremental PCA against scikit-learn's, and the streaming reduction."""

import pickle

import numpy as np
import pytest
from shardfiles import CLASS_NAMES, blob_images, write_shard
from sklearn.decomposition import IncrementalPCA

from galmorph.errors import InputDataError
from galmorph.reduction.pca import FastIncrementalPCA, subspace_agreement
from galmorph.reduction.pipeline import fit_reduction, pixels, reduce_split


def smooth_data(n=150, n_features=400, rank=12, seed=0):
    """Low-rank signal with decaying variance plus a little noise (like images)."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, n_features))
    scores = rng.normal(size=(n, rank)) * (2.0 ** -np.arange(rank) * 5)
    return (scores @ basis + 0.01 * rng.normal(size=(n, n_features)) + 3).astype(np.float32)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two train shards (35 + 25 images) and one test shard, 32x32 images."""
    folder = tmp_path_factory.mktemp("shards")
    images = blob_images(80, 32, seed=1)
    classes = np.arange(80) % 3
    train = [
        write_shard(folder / "train_0000.h5", images[:35], 100, classes[:35]),
        write_shard(folder / "train_0001.h5", images[35:60], 135, classes[35:60]),
    ]
    test = [write_shard(folder / "test_0000.h5", images[60:], 160, classes[60:])]
    return {"images": images, "classes": classes, "train": train, "test": test}


def central(images, crop):
    start = (images.shape[1] - crop) // 2
    return images[:, start : start + crop, start : start + crop]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_model_as_sklearn(dtype):
    X = smooth_data()
    ours = FastIncrementalPCA(8, batch_size=40, dtype=dtype).fit(X)
    theirs = IncrementalPCA(8, batch_size=40).fit(X)
    assert subspace_agreement(ours.components_, theirs.components_) > 0.999
    np.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_, rtol=1e-3)
    np.testing.assert_allclose(
        ours.explained_variance_ratio_, theirs.explained_variance_ratio_, rtol=1e-3
    )
    np.testing.assert_allclose(ours.singular_values_, theirs.singular_values_, rtol=1e-3)
    np.testing.assert_allclose(ours.mean_, theirs.mean_, rtol=1e-5)
    np.testing.assert_allclose(ours.var_, theirs.var_, rtol=1e-3)
    assert ours.noise_variance_ == pytest.approx(theirs.noise_variance_, rel=1e-2)
    assert ours.n_samples_seen_ == theirs.n_samples_seen_ == len(X)
    # same signs as sklearn's svd_flip: each component matches, not only the subspace
    np.testing.assert_allclose(
        np.sum(ours.components_ * theirs.components_, axis=1), 1.0, atol=1e-3
    )


def test_transform_and_inverse_transform_match_sklearn():
    X = smooth_data(seed=2)
    ours = FastIncrementalPCA(10, batch_size=50).fit(X)
    theirs = IncrementalPCA(10, batch_size=50).fit(X)
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), atol=2e-3 * X.std())
    back = ours.inverse_transform(ours.transform(X))
    np.testing.assert_allclose(back, theirs.inverse_transform(theirs.transform(X)), atol=2e-3)
    # 10 components of rank-12 data: the reconstruction is close, not exact
    assert np.abs(back - X).mean() < 0.05 * np.abs(X - X.mean(0)).mean()


def test_all_components_reconstruct_exactly():
    X = smooth_data(n=60, n_features=20, rank=20, seed=3)
    model = FastIncrementalPCA(20, batch_size=30, dtype=np.float64).fit(X)
    np.testing.assert_allclose(model.inverse_transform(model.transform(X)), X, atol=1e-4)
    assert model.explained_variance_ratio_.sum() == pytest.approx(1.0, abs=1e-6)


def test_partial_fit_with_uneven_batches_equals_fit():
    X = smooth_data(seed=4)
    whole = FastIncrementalPCA(6, batch_size=50).fit(X)
    parts = FastIncrementalPCA(6)
    for start, stop in ((0, 50), (50, 100), (100, 150)):
        parts.partial_fit(X[start:stop])
    np.testing.assert_allclose(parts.components_, whole.components_, atol=1e-5)
    # a short last batch (as a stream ends) still agrees with sklearn
    odd = FastIncrementalPCA(6)
    sk = IncrementalPCA(6)
    for start, stop in ((0, 70), (70, 143), (143, 150)):
        odd.partial_fit(X[start:stop])
        sk.partial_fit(X[start:stop])
    assert subspace_agreement(odd.components_, sk.components_) > 0.999


def test_to_sklearn_is_a_genuine_sklearn_model(tmp_path):
    X = smooth_data(seed=5)
    ours = FastIncrementalPCA(5, batch_size=50).fit(X)
    path = tmp_path / "reducer.pkl"
    path.write_bytes(pickle.dumps(ours.to_sklearn()))
    loaded = pickle.loads(path.read_bytes())
    assert type(loaded) is IncrementalPCA
    np.testing.assert_allclose(loaded.transform(X), ours.transform(X), atol=1e-4)
    np.testing.assert_allclose(
        loaded.inverse_transform(loaded.transform(X)),
        ours.inverse_transform(ours.transform(X)),
        atol=1e-4,
    )
    # sklearn can even keep fitting it
    loaded.partial_fit(X[:20])
    assert loaded.n_samples_seen_ == len(X) + 20


def test_pickle_leaves_the_work_buffer_out():
    model = FastIncrementalPCA(5).partial_fit(smooth_data(n=50, seed=6))
    assert model._buffer.nbytes > 0
    assert "_buffer" not in pickle.loads(pickle.dumps(model)).__dict__


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="n_components"):
        FastIncrementalPCA(30).partial_fit(smooth_data(n=20))
    bad = smooth_data(n=20)
    bad[3, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FastIncrementalPCA(4).partial_fit(bad)
    model = FastIncrementalPCA(4).partial_fit(smooth_data(n=20))
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(smooth_data(n=20, n_features=30))


def test_streaming_equals_in_memory(shards):
    crop = 24
    pipeline, scaler = fit_reduction(shards["train"], crop, n_components=7, batch_size=20)
    assert pipeline.named_steps["align"].identity  # no preprocess given: the study's chain
    reducer = pipeline.named_steps["pca"]
    assert type(reducer) is IncrementalPCA  # saved as plain scikit-learn
    in_memory = pixels(central(shards["images"][:60], crop))
    # batches of 20 across the shard boundary at 35: the stream reads 20, 20, 20
    expected = FastIncrementalPCA(7, batch_size=20).fit(in_memory)
    np.testing.assert_allclose(reducer.components_, expected.components_, atol=1e-5)
    np.testing.assert_allclose(reducer.mean_, expected.mean_, atol=1e-6)
    sklearn_model = IncrementalPCA(7, batch_size=20).fit(in_memory)
    assert subspace_agreement(reducer.components_, sklearn_model.components_) > 0.999
    # the scaler standardises the reduced training set
    features = scaler.transform(reducer.transform(in_memory).astype(np.float64))
    np.testing.assert_allclose(features.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(features.std(0), 1, atol=1e-6)


def test_short_tail_batch_joins_the_previous_one(shards):
    # 60 images in batches of 25: the last 10 (< 12 components) join the second batch
    pipeline, _ = fit_reduction(shards["train"], None, n_components=12, batch_size=25)
    reducer = pipeline.named_steps["pca"]
    expected = FastIncrementalPCA(12)
    flat = pixels(shards["images"][:60])
    expected.partial_fit(flat[:25])
    expected.partial_fit(flat[25:])
    np.testing.assert_allclose(reducer.components_, expected.components_, atol=1e-5)
    assert reducer.n_samples_seen_ == 60
    same_as_fit = FastIncrementalPCA(12, batch_size=25).fit(flat)
    np.testing.assert_allclose(reducer.components_, same_as_fit.components_, atol=1e-5)


def test_reduce_split_keeps_ids_labels_and_order(shards):
    pipeline, scaler = fit_reduction(shards["train"], 24, n_components=5, batch_size=20)
    reducer = pipeline.named_steps["pca"]
    test = reduce_split(shards["test"], 24, pipeline, scaler, batch_size=8)
    assert test["asset_id"].tolist() == list(range(160, 180))
    assert test["class"].tolist() == shards["classes"][60:].tolist()
    assert test["class_names"] == CLASS_NAMES
    assert test["features"].shape == (20, 5)
    expected = scaler.transform(reducer.transform(pixels(central(shards["images"][60:], 24))))
    np.testing.assert_allclose(test["features"], expected, atol=1e-4)
    assert test["representation"] == "pca"
    # back to pixels: close to the originals (5 components of smooth blobs)
    rebuilt = reducer.inverse_transform(scaler.inverse_transform(test["features"]))
    originals = pixels(central(shards["images"][60:], 24))
    assert rebuilt.shape == originals.shape
    assert np.abs(rebuilt - originals).mean() < 0.05


def test_too_few_training_images_is_a_clear_error(shards):
    with pytest.raises(InputDataError, match="n_components"):
        fit_reduction(shards["test"], 24, n_components=30, batch_size=40)


@pytest.mark.parametrize("representation", ["pca", "descriptors"])
def test_preprocessing_is_the_same_in_fit_transform_and_for_new_images(shards, representation):
    """The fitted pipeline carries the aligner: the scaler was fitted on exactly what
    reduce_split and a new image get."""
    preprocess = {"size": 16, "recentre": True, "align": True, "mask_neighbours": True,
                  "flux": "total", "stretch": "log"}  # fmt: skip
    pipeline, scaler = fit_reduction(
        shards["train"], 24, 5, 20, preprocess=preprocess, representation=representation
    )
    aligner = pipeline.named_steps["align"]
    assert (aligner.size, aligner.stretch, aligner.align) == (16, "log", True)
    train = reduce_split(shards["train"], 24, pipeline, scaler, batch_size=7)
    # standardised on the training split: the fit saw what reduce_split computes
    np.testing.assert_allclose(train["features"].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(train["features"].std(0), 1, atol=1e-4)
    # a new image (the pickled model, one image at a time) gets the same features
    loaded = pickle.loads(pickle.dumps(pipeline))
    new = central(shards["images"][60:63], 24)
    one_by_one = np.concatenate([loaded.transform(image[None]) for image in new])
    test = reduce_split(shards["test"], 24, pipeline, scaler, batch_size=8)
    np.testing.assert_allclose(scaler.transform(one_by_one), test["features"][:3], atol=1e-6)
    assert test["representation"] == representation


def test_unknown_representation_or_preprocess_key_is_refused(shards):
    with pytest.raises(ValueError, match="representation"):
        fit_reduction(shards["train"], 24, 5, 20, representation="autoencoder")
    with pytest.raises(ValueError, match="unknown keys"):
        fit_reduction(shards["train"], 24, 5, 20, preprocess={"mirror": True})
