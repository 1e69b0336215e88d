"""EDM's preconditioning, steps, Heun sampler and likelihood, and the consistency
parametrization and curriculum, against the papers' formulas and Gaussian closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from genjax.objectives import edm, ode

MU, VAR = 0.7, 0.3  # data N(MU, VAR) per dimension


def exact_denoiser(x, sigma):
    """E[y | y + sigma n = x] for y ~ N(MU, VAR): MU + VAR / (VAR + sigma^2) (x - MU)."""
    s2 = sigma.reshape((-1,) + (1,) * (x.ndim - 1)) ** 2
    return MU + VAR / (VAR + s2) * (x - MU)


def test_preconditioning_is_the_papers_table_1():
    sd = 0.5
    for sigma in (0.002, 0.5, 3.0, 80.0):
        c_skip, c_out, c_in, c_noise = (float(c) for c in edm.precond(jnp.float32(sigma), sd))
        assert c_skip == pytest.approx(sd**2 / (sigma**2 + sd**2), rel=1e-6)
        assert c_out == pytest.approx(sigma * sd / math.sqrt(sigma**2 + sd**2), rel=1e-6)
        assert c_in == pytest.approx(1 / math.sqrt(sigma**2 + sd**2), rel=1e-6)
        assert c_noise == pytest.approx(0.25 * math.log(sigma), rel=1e-6)
        # the weight makes the network's own target unit-weighted: lambda c_out^2 = 1
        assert float(edm.loss_weight(jnp.float32(sigma), sd)) * c_out**2 == pytest.approx(1.0, rel=1e-5)
    c = edm.precond(jnp.float32(0.5), 0.5)  # hand values at sigma = sigma_d = 0.5
    np.testing.assert_allclose([float(u) for u in c], [0.5, 0.25 / math.sqrt(0.5), math.sqrt(2), math.log(0.5) / 4],
                               rtol=1e-6)  # fmt: skip


def test_sigma_steps_are_even_in_sigma_to_the_one_over_rho():
    s = np.asarray(edm.sigma_steps(18, 0.002, 80.0, 7.0), np.float64)
    assert s.shape == (19,) and s[-1] == 0.0
    assert s[0] == pytest.approx(80.0, rel=1e-6) and s[17] == pytest.approx(0.002, rel=1e-5)
    r = s[:-1] ** (1 / 7)
    np.testing.assert_allclose(np.diff(r), np.full(17, (0.002 ** (1 / 7) - 80 ** (1 / 7)) / 17), rtol=1e-4)


def test_the_denoising_loss_is_lambda_times_the_squared_error():
    y = jnp.array([[1.0, -1.0], [0.5, 2.0]])
    noise = jnp.array([[0.3, 0.1], [-1.0, 0.2]])
    sigma = jnp.array([0.5, 2.0])
    d = lambda x, s: 0.9 * x  # any denoiser
    x = y + sigma[:, None] * noise
    want = (sigma**2 + 0.25) / (sigma * 0.5) ** 2 * jnp.sum((0.9 * x - y) ** 2, 1)
    np.testing.assert_allclose(edm.denoising_loss(d, y, noise, sigma, 0.5), want, rtol=1e-6)


@pytest.mark.parametrize("method,order", [("heun", 2), ("euler", 1)])
def test_the_exact_denoiser_carries_the_noised_marginal_onto_the_data(method, order):
    """Without churn the sampler is the probability flow: from N(MU, VAR + sigma_max^2) it lands
    on N(MU, VAR + sigma_min^2); the flow of an affine field is affine (read off two points). The
    error falls by 2^order when the steps double."""
    s_min, s_max = 0.002, 80.0
    z = MU + math.sqrt(VAR + s_max**2) * jnp.array([[0.0], [1.0]])
    errs = []
    for steps in (32, 64, 128):
        sig = edm.sigma_steps(steps, s_min, s_max, 7.0)
        out = np.asarray(edm.sample(exact_denoiser, jax.random.key(0), z.shape, sig, method, x_init=z), np.float64)
        assert out[0, 0] == pytest.approx(MU, abs=1e-4)
        errs.append(abs(out[1, 0] - out[0, 0] - math.sqrt(VAR + s_min**2)))
    for a, b in zip(errs, errs[1:]):
        assert 2**order * 0.8 < a / b < 2**order * 1.25, errs
    assert errs[-1] < (1e-3 if method == "heun" else 2e-2)


def test_heun_with_churn_still_draws_the_data_distribution():
    sig = edm.sigma_steps(160, 0.002, 80.0, 7.0)  # at 40 steps the variance is 7% high: discretization
    x = edm.sample(exact_denoiser, jax.random.key(1), (40000, 1), sig, "heun", s_churn=120.0, s_tmin=0.01,
                   s_tmax=50.0, s_noise=1.0)  # fmt: skip
    assert float(jnp.mean(x)) == pytest.approx(MU, abs=0.012)  # 4.5 standard errors
    assert float(jnp.var(x)) == pytest.approx(VAR, rel=0.03)
    # the churn changes the path: another draw than the deterministic flow from the same key
    det = edm.sample(exact_denoiser, jax.random.key(1), (40000, 1), sig, "heun")
    assert not np.allclose(np.asarray(x[:10]), np.asarray(det[:10]))


def test_edm_ode_likelihood_equals_the_gaussian_closed_form():
    s_min, s_max = 0.002, 80.0
    grid = edm.sigma_steps(101, s_min, s_max, 7.0)[:-1][::-1]
    x = jnp.array([[MU, MU - 0.5], [MU + 1.0, MU + 0.2]])
    prior = lambda z: jnp.sum(jax.scipy.stats.norm.logpdf(z, MU, math.sqrt(VAR + s_max**2)), 1)
    lp = ode.log_prob(edm.velocity(exact_denoiser), x, jax.random.key(0), grid, prior, "exact")
    want = np.sum(jax.scipy.stats.norm.logpdf(np.asarray(x, np.float64), MU, math.sqrt(VAR + s_min**2)), 1)
    np.testing.assert_allclose(lp, want, atol=2e-3)


def test_consistency_parametrization_is_the_identity_at_sigma_min():
    c_skip, c_out = edm.consistency_coeffs(jnp.float32(0.002), 0.5, 0.002)
    assert float(c_skip) == 1.0 and float(c_out) == 0.0
    c_skip, c_out = edm.consistency_coeffs(jnp.float32(1.0), 0.5, 0.002)
    assert float(c_skip) == pytest.approx(0.25 / (0.998**2 + 0.25), rel=1e-6)
    assert float(c_out) == pytest.approx(0.5 * 0.998 / math.sqrt(1.25), rel=1e-6)


def test_ict_curriculum_doubles_the_levels_at_the_papers_stages():
    """K = 1000, s0 = 10, s1 = 1280: K' = floor(1000 / 8) = 125, N = min(10 2^(k // 125), 1280) + 1."""
    steps = jnp.array([0, 124, 125, 250, 874, 875, 999, 5000])
    np.testing.assert_array_equal(edm.ict_levels(steps, 1000), [11, 11, 21, 41, 641, 1281, 1281, 1281])


def test_ict_levels_and_their_probabilities():
    n = jnp.int32(11)
    s = edm.ict_sigmas(n, 0.002, 80.0, 7.0, 16)
    np.testing.assert_allclose(s[:11], edm.sigma_steps(11, 0.002, 80.0, 7.0)[:-1][::-1], rtol=1e-5)
    np.testing.assert_allclose(s[11:], 80.0, rtol=1e-6)  # padding repeats sigma_max
    p = np.asarray(edm.ict_level_probs(s, n, -1.1, 2.0), np.float64)
    z = (np.log(np.asarray(s[:11], np.float64)) + 1.1) / (math.sqrt(2) * 2.0)
    want = erf(z[1:]) - erf(z[:-1])
    np.testing.assert_allclose(p[:10], want / want.sum(), rtol=1e-4)
    assert np.all(p[10:] == 0.0) and p.sum() == pytest.approx(1.0)


def test_pseudo_huber_against_hand_values():
    a = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    b = jnp.zeros((2, 2))
    np.testing.assert_allclose(edm.pseudo_huber(a, b, 0.5), [math.sqrt(25.25) - 0.5, 0.0], rtol=1e-6)
