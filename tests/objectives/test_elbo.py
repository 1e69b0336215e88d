"""Objectives against closed forms: analytic KL vs Monte Carlo; ELBO and IWAE vs the exact
log p(x) of a linear-Gaussian model."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genjax.objectives import elbo as E
from genjax.objectives.likelihood import bernoulli_log_prob, bits_per_dim, gaussian_log_prob, standard_normal_log_prob


def test_gaussian_kl_matches_monte_carlo():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    mean = jax.random.normal(k1, (4, 3))
    log_var = 0.5 * jax.random.normal(k2, (4, 3))

    @jax.jit
    def mc(key):
        z = E.reparameterize(key, mean, log_var, n=200_000)  # [n, 4, 3]
        return jnp.mean(gaussian_log_prob(z, mean, log_var) - standard_normal_log_prob(z), axis=0)

    analytic = E.gaussian_kl(mean, log_var)
    assert analytic.shape == (4,)
    np.testing.assert_allclose(mc(k3), analytic, rtol=0.02, atol=0.01)
    assert jnp.all(analytic > 0)
    np.testing.assert_allclose(E.gaussian_kl(jnp.zeros((2, 5)), jnp.zeros((2, 5))), 0.0, atol=1e-7)


def test_likelihoods_match_scipy():
    x = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    logits = np.array([[0.3, -2.0, 5.0], [-4.0, 4.0, 0.0]])
    p = 1 / (1 + np.exp(-logits))
    want = np.sum(stats.bernoulli.logpmf(x, p), axis=-1)
    np.testing.assert_allclose(bernoulli_log_prob(logits, x, event_ndims=1), want, rtol=1e-5)
    # stable where a naive log(sigmoid) underflows: log sigmoid(-40) = -40 - log(1 + e^-40)
    assert float(bernoulli_log_prob(np.array([-40.0]), np.array([1.0]), event_ndims=1)) == pytest.approx(-40.0)
    m, lv = np.array([0.5, -1.0]), np.array([0.2, -0.7])
    y = np.array([[0.1, 0.4]])
    want = np.sum(stats.norm.logpdf(y, m, np.exp(0.5 * lv)), axis=-1)
    np.testing.assert_allclose(gaussian_log_prob(y, m, lv), want, rtol=1e-6)


def test_bits_per_dim_by_hand():
    # Uniform density on [0, 1]^D of dequantized 8-bit data: log p = 0, so the discrete
    # model puts 1/256 on every pixel value: exactly 8 bits per dimension.
    assert float(bits_per_dim(0.0, 784, bin_width=1 / 256)) == pytest.approx(8.0)
    # A fair coin per binary pixel: D ln 2 nats = 1 bit per dimension.
    assert float(bits_per_dim(64 * math.log(2), 64)) == pytest.approx(1.0)


# ------------------------------------------------- linear-Gaussian model with exact log p(x)
# p(z) = N(0, I_K), p(x|z) = N(W z + b, s^2 I_D)  =>  p(x) = N(b, W W^T + s^2 I),
# p(z|x) = N(S W^T (x - b) / s^2, S) with S = (I + W^T W / s^2)^-1.
D, K, S2 = 5, 2, 0.3
_rng = np.random.default_rng(0)
W = _rng.normal(size=(D, K))
B = _rng.normal(size=D)


def _log_px(x):
    return stats.multivariate_normal(B, W @ W.T + S2 * np.eye(D)).logpdf(x)


def _posterior(x):
    cov = np.linalg.inv(np.eye(K) + W.T @ W / S2)
    return (x - B) @ W @ cov.T / S2, cov


def _log_w(key, x, q_mean, q_log_var, k):
    z = E.reparameterize(key, q_mean, q_log_var, n=k)  # [k, N, K]
    log_px_z = gaussian_log_prob(x, z @ W.T + B, jnp.log(S2) * jnp.ones(D))
    return E.log_weights(z, q_mean, q_log_var, log_px_z)


def test_elbo_is_exact_with_the_true_posterior():
    x = _rng.normal(size=(6, D))
    mean, cov = _posterior(x)
    # the true posterior has a full covariance; with W of orthogonal columns it is diagonal
    q, _ = np.linalg.qr(W)
    global_w = W
    try:
        globals()["W"] = q * np.array([1.5, 0.7])
        mean, cov = _posterior(x)
        assert np.allclose(cov, np.diag(np.diag(cov)))
        lw = _log_w(jax.random.key(1), x, mean, np.log(np.diag(cov)) * np.ones_like(mean), 3)
        np.testing.assert_allclose(lw, np.broadcast_to(_log_px(x), lw.shape), rtol=1e-4, atol=1e-4)
    finally:
        globals()["W"] = global_w


def test_elbo_below_log_px_and_iwae_rises_with_k():
    x = _rng.normal(size=(8, D))
    mean, cov = _posterior(x)
    sd = np.sqrt(np.diag(cov))
    q_mean = mean + 0.7 * sd  # a deliberately imperfect diagonal q: shifted, too wide
    q_log_var = np.log(2.0 * sd**2) * np.ones_like(mean)
    exact = _log_px(x)

    ks = [1, 5, 50, 500]
    bounds = []
    for i, k in enumerate(ks):
        draws = max(40, 20_000 // k)  # independent estimates of L_k averaged per example
        f = jax.jit(
            lambda key, k=k, draws=draws: jnp.mean(
                jax.vmap(lambda kk: jax.nn.logsumexp(_log_w(kk, x, q_mean, q_log_var, k), 0) - math.log(k))(
                    jax.random.split(key, draws)
                ),
                0,
            )
        )
        bounds.append(np.asarray(f(jax.random.key(i))))
    lw = np.asarray(_log_w(jax.random.key(9), x, q_mean, q_log_var, 20_000))
    elbo_mc, se = lw.mean(0), lw.std(0) / math.sqrt(20_000)
    assert np.all(elbo_mc + 5 * se < exact)  # ELBO <= log p(x), strictly for this q
    np.testing.assert_allclose(bounds[0], elbo_mc, atol=float(5 * se.max() * math.sqrt(2)))
    gaps = [exact - b for b in bounds]
    for a, b in zip(gaps[:-1], gaps[1:]):
        assert np.all(b < a + 1e-3), (a, b)  # L_k rises with k ...
    assert np.all(gaps[-1] >= -0.05)  # ... stays below log p(x) (up to MC and float32 error) ...
    assert np.mean(gaps[-1]) < 0.1 * np.mean(gaps[0])  # ... and closes most of the gap


def test_iwae_bound_with_one_sample_is_the_elbo():
    lp = jnp.array([[-3.0, -1.0]])
    assert jnp.allclose(E.iwae_bound(lp, jnp.zeros_like(lp), jnp.zeros_like(lp)), lp[0])
    # and log-mean-exp for k > 1
    lw = jnp.array([[0.0], [jnp.log(3.0)]])
    assert jnp.allclose(E.iwae_bound(lw, 0 * lw, 0 * lw), jnp.log(2.0))


def test_beta_and_kl_schedules():
    assert float(E.elbo(-10.0, 2.0, beta=4.0)) == -18.0
    lin = E.linear_warmup(100, beta=2.0)
    assert [float(lin(t)) for t in (0, 50, 100, 1000)] == [0.0, 1.0, 2.0, 2.0]
    cyc = E.cyclical(period=10, ratio=0.5)
    assert [float(cyc(t)) for t in (0, 1, 5, 9, 10, 12)] == pytest.approx([0.0, 0.2, 1.0, 1.0, 0.0, 0.4])
    with pytest.raises(ValueError, match="period"):
        E.cyclical(0)


def test_kl_per_dim_sums_to_kl_and_matches_between():
    k1, k2 = jax.random.split(jax.random.key(3))
    mean, log_var = jax.random.normal(k1, (5, 4)), 0.3 * jax.random.normal(k2, (5, 4))
    per = E.gaussian_kl_per_dim(mean, log_var)
    assert per.shape == (5, 4)
    np.testing.assert_allclose(per.sum(-1), E.gaussian_kl(mean, log_var), rtol=1e-6)
    np.testing.assert_allclose(
        E.gaussian_kl_between(mean, log_var, jnp.zeros_like(mean), jnp.zeros_like(mean)),
        E.gaussian_kl(mean, log_var), rtol=1e-6,
    )  # fmt: skip
    # KL between two 1-D Gaussians, closed form with scipy's entropies as a cross-check
    m1, v1, m2, v2 = 0.3, 0.5, -1.0, 2.0
    want = 0.5 * (math.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)
    a = lambda v: jnp.array([[v]])  # noqa: E731
    got = E.gaussian_kl_between(a(m1), jnp.log(a(v1)), a(m2), jnp.log(a(v2)))
    np.testing.assert_allclose(got, [want], rtol=1e-5)


def test_free_bits_zero_gradient_below_threshold():
    # dimension 0 carries ~2 nats, dimension 1 ~0.005 nats
    mean = jnp.array([[2.0, 0.1], [-2.0, 0.0], [1.8, -0.1]])
    log_var = jnp.zeros((3, 2))
    per = E.gaussian_kl_per_dim(mean, log_var)
    lam = 0.5

    def loss(m):
        return jnp.mean(E.free_bits_kl(E.gaussian_kl_per_dim(m, log_var), lam))

    want = float(jnp.sum(jnp.maximum(lam, per.mean(0))))
    np.testing.assert_allclose(float(loss(mean)), want, rtol=1e-6)
    g = jax.grad(loss)(mean)
    np.testing.assert_allclose(g[:, 1], 0.0, atol=0)  # below lambda: no gradient at all
    np.testing.assert_allclose(g[:, 0], mean[:, 0] / 3, rtol=1e-6)  # above: the plain KL's, d/dm (m^2/2)/B
    # lambda = 0 is the plain KL
    np.testing.assert_allclose(E.free_bits_kl(per, 0.0), E.gaussian_kl(mean, log_var), rtol=1e-6)


def test_active_units_on_a_constructed_posterior():
    rng = np.random.default_rng(0)
    n = 2000
    means = np.zeros((n, 6))
    means[:, 0] = rng.normal(size=n)  # var 1: active
    means[:, 2] = 0.2 * rng.normal(size=n)  # var 0.04: active
    means[:, 3] = 0.05 * rng.normal(size=n)  # var 0.0025: inactive
    means[:, 5] = 3.0  # constant: collapsed
    count, a = E.active_units(means)
    assert count == 2
    np.testing.assert_allclose(a, means.var(0), rtol=1e-4, atol=1e-9)
    assert E.active_units(means, threshold=0.001)[0] == 3


def test_mmd_zero_for_same_sample_grows_with_shift():
    x = jax.random.normal(jax.random.key(0), (300, 3))
    for kernel in ("rbf", "imq"):
        assert abs(float(E.mmd(x, x, kernel))) < 1e-6
        vals = [float(E.mmd(x, x + jnp.array([s, 0.0, 0.0]), kernel)) for s in (0.25, 0.5, 1.0, 2.0)]
        assert all(a < b for a, b in zip(vals, vals[1:])) and vals[0] > 1e-3
    # against a brute-force double loop on a small sample
    a, b = np.asarray(x[:5]), np.asarray(x[5:9] + 1.0)
    k = lambda u, v: math.exp(-np.sum((u - v) ** 2) / (2 * 3))  # noqa: E731
    brute = (np.mean([k(u, v) for u in a for v in a]) + np.mean([k(u, v) for u in b for v in b])
             - 2 * np.mean([k(u, v) for u in a for v in b]))  # fmt: skip
    np.testing.assert_allclose(float(E.mmd(a, b)), brute, rtol=1e-5)
    # two samples of N(0, I) agree far better than N(0, I) and a shifted copy
    y = jax.random.normal(jax.random.key(1), (300, 3))
    assert float(E.mmd(x, y)) < 0.2 * float(E.mmd(x, y + 0.5))
