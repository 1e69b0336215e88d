import numpy as np
import pytest

from genjax.data.toy2d import mixture_modes
from genjax.eval.sample_quality import (
    fid_against_stats,
    fid_from_features,
    frechet_distance,
    inception_score,
    kernel_distance,
    mode_coverage,
)


def test_fid_is_zero_for_a_set_with_itself_and_grows_with_a_mean_shift():
    f = np.random.default_rng(0).normal(size=(2000, 8))
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0] + [0.0] * 6)
    # same covariance, shifted mean: FID = ||shift||^2 exactly
    assert fid_from_features(f, f + shift) == pytest.approx(5.0, rel=1e-6)
    # closed form for two diagonal Gaussians: sum (s1 - s2)^2 on the standard deviations
    c1, c2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    assert frechet_distance(np.zeros(2), c1, np.zeros(2), c2) == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize("n1,n2", [(12, 30), (40, 40), (64, 9)])
def test_fid_with_fewer_examples_than_dimensions_equals_the_d_by_d_formula(n1, n2):
    """The N <= d path (singular values of A1 A2^T, no d x d matrix) against the definition
    with scipy's sqrtm of C1 C2 on the d x d covariances, both in float64; unequal N1, N2 so a
    swapped normalization fails, and a shifted, scaled second set so every term counts."""
    import scipy.linalg

    rng = np.random.default_rng(n1 + n2)
    d = 64
    f1 = rng.normal(size=(n1, d)) @ rng.normal(size=(d, d)) / 8
    f2 = 1.5 * rng.normal(size=(n2, d)) @ rng.normal(size=(d, d)) / 8 + 0.2
    c1, c2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    root = scipy.linalg.sqrtm(c1 @ c2)
    ref = np.sum((f1.mean(0) - f2.mean(0)) ** 2) + np.trace(c1 + c2) - 2 * np.trace(root).real
    # sqrtm and eigh of a rank-deficient product: square roots of ~1e-16 rounding, ~1e-8 relative
    assert fid_from_features(f1, f2) == pytest.approx(ref, rel=1e-7)
    assert fid_from_features(f1, f2) == pytest.approx(frechet_distance(f1.mean(0), c1, f2.mean(0), c2), rel=1e-7)
    # given the first set's statistics (full rank here: n1 = 80 > d) and the second's features
    g = rng.normal(size=(80, d)) @ rng.normal(size=(d, d)) / 8
    cg = np.cov(g, rowvar=False)
    ref = np.sum((g.mean(0) - f2.mean(0)) ** 2) + np.trace(cg + c2) - 2 * np.trace(scipy.linalg.sqrtm(cg @ c2)).real
    assert fid_against_stats(g.mean(0), cg, f2) == pytest.approx(ref, rel=1e-7)


def test_kid_and_inception_score():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
    assert abs(kernel_distance(a, b)) < 0.05
    assert kernel_distance(a, b + 1.0) > 0.5
    assert inception_score(np.full((100, 10), 0.1)) == pytest.approx(1.0)
    assert inception_score(np.eye(10)[np.arange(100) % 10]) == pytest.approx(10.0, rel=1e-6)


def test_mode_coverage_counts_hand_made_samples():
    means, std = mixture_modes("ring")
    rng = np.random.default_rng(0)
    # 5 of 8 modes hit, 100 high-quality samples each, plus 100 far-off samples
    good = np.concatenate([means[k] + std * rng.normal(size=(100, 2)).clip(-2, 2) for k in range(5)])
    far = np.full((100, 2), 5.0)
    m = mode_coverage(np.concatenate([good, far]), means, std)
    assert m["modes"] == 5
    assert m["high_quality"] == pytest.approx(500 / 600)
    assert m["reverse_kl"] == pytest.approx(np.log(8 / 5), rel=1e-6)  # uniform over 5 of 8 modes
    full = mode_coverage(
        np.concatenate([means[k] + 0.5 * std * rng.normal(size=(50, 2)) for k in range(8)]), means, std
    )
    assert full["modes"] == 8 and full["reverse_kl"] == pytest.approx(0.0, abs=1e-9)
    grid_means, grid_std = mixture_modes("grid")
    assert len(grid_means) == 25 and grid_std == 0.05


def test_precision_recall_on_constructed_sets():
    from genjax.eval.sample_quality import precision_recall

    rng = np.random.default_rng(0)
    real = rng.normal(size=(600, 2))
    assert precision_recall(real, real) == {"precision": 1.0, "recall": 1.0, "k": 3}
    far = precision_recall(real, rng.normal(size=(600, 2)) + 50.0)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    # samples from one half of the data: precise, but they cover only about half of it
    half = real[real[:, 0] > 0][:200]
    pr = precision_recall(real, half)
    assert pr["precision"] == 1.0 and 0.3 < pr["recall"] < 0.7


def test_birthday_duplicates_counts_planted_pairs():
    from genjax.eval.sample_quality import birthday_duplicates

    rng = np.random.default_rng(0)
    real = rng.uniform(size=(100, 16))
    fake = rng.uniform(size=(100, 16))
    fake[10], fake[20], fake[30] = fake[1], fake[2] + 1e-6, fake[3]
    out = birthday_duplicates(fake, real, n_pairs=3)
    assert out["duplicates"] >= 3 and out["support_estimate"] == 100**2
    assert sorted(map(tuple, out["pairs"])) == [(1, 10), (2, 20), (3, 30)]
    assert max(out["distances"]) < 1e-5 < out["threshold"]


def test_pca_comparison_spectra():
    from genjax.eval.sample_quality import pca_comparison

    rng = np.random.default_rng(0)
    real = rng.normal(size=(500, 5)) * np.array([5, 3, 1, 0.5, 0.1])
    same = pca_comparison(real, real)
    assert same["spectrum_l1"] == pytest.approx(0.0, abs=1e-9)
    iso = pca_comparison(real, rng.normal(size=(500, 5)))
    assert iso["spectrum_l1"] > 0.5 and iso["fake_2d"].shape == (500, 2)


@pytest.mark.parametrize("shape", [(359, 64), (40, 784), (300, 3)])
def test_pca_comparison_is_scikit_learns_pca(shape):
    """The hand-written PCA equals scikit-learn's exact one (``svd_solver='full'``; its default
    for over 500 features is a randomized, approximate SVD): spectra (shares of the total
    variance), the projections on the real set's first two axes, signs included."""
    from sklearn.decomposition import PCA

    from genjax.eval.sample_quality import pca_comparison

    rng = np.random.default_rng(1)
    real = rng.normal(size=shape) @ rng.normal(size=(shape[1], shape[1])) + rng.normal(size=shape[1])
    fake = rng.normal(size=(shape[0] + 7, shape[1])) * 2.0
    out = pca_comparison(real, fake, n_components=20)
    n = min(20, *shape)
    pr, pf = PCA(n, svd_solver="full").fit(real), PCA(n, svd_solver="full").fit(fake)  # exact, as ours
    np.testing.assert_allclose(out["real_spectrum"], pr.explained_variance_ratio_, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(out["fake_spectrum"], pf.explained_variance_ratio_, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(out["real_2d"], pr.transform(real)[:, :2], rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(out["fake_2d"], pr.transform(fake)[:, :2], rtol=1e-8, atol=1e-9)
    ref_l1 = np.abs(pr.explained_variance_ratio_ - pf.explained_variance_ratio_).sum()
    assert out["spectrum_l1"] == pytest.approx(ref_l1, rel=1e-9)
