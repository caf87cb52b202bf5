"""PCA against scikit-learn's PCA(svd_solver="full"): fitted attributes (signs
included), transform (C++ GEMM, every ISA level), whitening, inverse, params,
bad input."""
from __future__ import annotations

import numpy as np
import pytest

import keensight
from keensight.search import PCA

sklearn_decomposition = pytest.importorskip("sklearn.decomposition")


def data(rng, n, d):
    """Features with distinct variances (well-separated components) and an offset mean."""
    x = rng.standard_normal((n, d)) * np.linspace(3.0, 0.3, d) + rng.uniform(-5, 5, d)
    return x.astype(np.float32)


def sk_pca(x, **params):
    return sklearn_decomposition.PCA(svd_solver="full", **params).fit(x.astype(np.float64))


# (n, d): n >= 10 d (covariance route), n < d (SVD route), d not a multiple of 8
# or 16, d past one 256-coordinate slice.
SHAPES = [(200, 7), (40, 90), (120, 33), (60, 300), (3, 2)]


@pytest.mark.parametrize("n_components", [None, 1, 2, 0.9])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_fit_matches_sklearn(rng, shape, n_components):
    x = data(rng, *shape)
    ours, ref = PCA(n_components=n_components).fit(x), sk_pca(x, n_components=n_components)
    assert ours.n_components_ == ref.n_components_
    k = ours.n_components_
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-10, atol=1e-10)
    scale = ref.explained_variance_[0]
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-7, atol=1e-9 * scale)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(ours.singular_values_, ref.singular_values_, rtol=1e-7, atol=1e-9 * np.sqrt(scale))
    np.testing.assert_allclose(ours.noise_variance_, ref.noise_variance_, rtol=1e-6, atol=1e-9 * scale)
    # Components, sign included; the last ones of a rank-deficient set are arbitrary.
    rank = min(shape[0] - 1, shape[1], k)
    np.testing.assert_allclose(ours.components_[:rank], ref.components_[:rank], atol=1e-6)
    assert ours.components_.shape == (k, shape[1]) and ours.n_features_in_ == shape[1]


@pytest.mark.parametrize("whiten", [False, True])
@pytest.mark.parametrize("shape", SHAPES[:4], ids=lambda s: f"{s[0]}x{s[1]}")
def test_transform_matches_sklearn(isa, rng, shape, whiten):
    x = data(rng, *shape)
    k = min(5, min(shape) - 1)
    ours, ref = PCA(n_components=k, whiten=whiten).fit(x), sk_pca(x, n_components=k, whiten=whiten)
    new = data(rng, 37, shape[1])
    got, want = ours.transform(new), ref.transform(new.astype(np.float64))
    assert got.dtype == np.float32 and got.shape == (37, k)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    np.testing.assert_allclose(ours.fit_transform(x), ref.transform(x.astype(np.float64)),
                               rtol=1e-4, atol=1e-4 * np.abs(want).max())
    back, ref_back = ours.inverse_transform(got), ref.inverse_transform(want)
    assert back.dtype == np.float32 and back.shape == new.shape
    np.testing.assert_allclose(back, ref_back, rtol=1e-4, atol=1e-4 * np.abs(ref_back).max())


def test_inverse_of_full_transform_is_identity(isa, rng):
    x = data(rng, 80, 20)
    for whiten in (False, True):
        pca = PCA(whiten=whiten).fit(x)
        np.testing.assert_allclose(pca.inverse_transform(pca.transform(x)), x, atol=1e-4)


def test_whitened_projections_have_unit_variance(rng):
    x = data(rng, 500, 12)
    z = PCA(n_components=4, whiten=True).fit_transform(x)
    np.testing.assert_allclose(z.var(axis=0, ddof=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)


def test_transform_threads_and_sizes(rng):
    x = data(rng, 300, 50)
    pca = PCA(n_components=17).fit(x)
    big = data(rng, 1000, 50)
    before = keensight.get_num_threads()
    try:
        keensight.set_num_threads(1)
        one = pca.transform(big)
        keensight.set_num_threads(3)
        three = pca.transform(big)
    finally:
        keensight.set_num_threads(before)
    np.testing.assert_array_equal(one, three)
    assert pca.transform(np.zeros((0, 50))).shape == (0, 17)
    np.testing.assert_array_equal(pca.transform(big[:1]), one[:1])


def test_sklearn_conventions(rng):
    base = pytest.importorskip("sklearn.base")
    pipeline = pytest.importorskip("sklearn.pipeline")
    pca = PCA(n_components=3, whiten=True)
    assert pca.get_params() == {"n_components": 3, "whiten": True}
    assert pca.set_params(n_components=2) is pca and pca.n_components == 2
    clone = base.clone(pca)
    assert clone.get_params() == pca.get_params() and not hasattr(clone, "components_")
    x = data(rng, 50, 6)
    assert pca.fit(x) is pca
    pipe = pipeline.make_pipeline(PCA(n_components=2))
    np.testing.assert_allclose(pipe.fit_transform(x), PCA(n_components=2).fit(x).transform(x))


@pytest.mark.parametrize(
    "params,x,exc,match",
    [
        ({"n_components": 0}, np.ones((5, 3)), ValueError, "n_components"),
        ({"n_components": 4}, np.ones((5, 3)), ValueError, "n_components"),
        ({"n_components": 1.5}, np.ones((5, 3)), ValueError, "n_components"),
        ({"n_components": "mle"}, np.ones((5, 3)), TypeError, "n_components"),
        ({"whiten": "yes"}, np.ones((5, 3)), TypeError, "whiten"),
        ({}, np.ones((1, 3)), ValueError, "2 samples"),
        ({}, np.ones(3), ValueError, "2-D"),
        ({}, [["a", "b"], ["c", "d"]], TypeError, "X"),
        ({}, np.array([[1.0, np.nan], [2.0, 3.0]]), ValueError, "NaN"),
    ],
)
def test_fit_bad_input(params, x, exc, match):
    with pytest.raises(exc, match=match):
        PCA(**params).fit(x)


def test_transform_bad_input(rng):
    exceptions = pytest.importorskip("sklearn.exceptions")
    with pytest.raises(exceptions.NotFittedError):
        PCA().transform(np.ones((2, 3)))
    pca = PCA(n_components=2).fit(data(rng, 20, 4))
    with pytest.raises(ValueError, match="4 features"):
        pca.transform(np.ones((2, 5)))
    with pytest.raises(ValueError, match="NaN"):
        pca.transform(np.full((2, 4), np.inf))
    with pytest.raises(ValueError, match="2 columns"):
        pca.inverse_transform(np.ones((2, 3)))


@pytest.mark.parametrize("offset", [1e4, 1e5])
def test_transform_of_data_far_from_the_origin(isa, offset):
    # x . C - mean . C (scikit-learn's order) cancels in float32 when x ~ 1e5 +- 1:
    # errors of 0.1 on unit-spread coordinates. Centring first keeps the data's own precision.
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((400, 32)) * np.linspace(3, 0.2, 32) + offset).astype(np.float32)
    pca = PCA().fit(X)
    exact = (X.astype(np.float64) - pca.mean_) @ pca.components_.T.astype(np.float64)
    assert np.abs(pca.transform(X) - exact).max() < 0.02 * (offset / 1e5) ** 0.5 + 1e-3
