import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.objectives import adversarial as A


def test_minimax_value_at_the_optimal_discriminator_is_2js_minus_log4():
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = rng.dirichlet(np.ones(6))
        q = rng.dirichlet(np.ones(6))
        logit = np.log(p) - np.log(q)  # D* = p / (p + q)
        # V(D*, G) = E_p log D* + E_q log(1 - D*) = -(E_p, E_q of the discriminator's loss terms)
        value = -(np.sum(p * np.asarray(jax.nn.softplus(-logit))) + np.sum(q * np.asarray(jax.nn.softplus(logit))))
        m = (p + q) / 2
        js = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
        assert value == pytest.approx(2 * js - math.log(4), abs=1e-5)
        # and d_minimax's per-example terms are those two pieces
        np.testing.assert_allclose(A.d_minimax(logit, logit), jax.nn.softplus(-logit) + jax.nn.softplus(logit))


def test_discriminator_losses_take_real_then_fake():
    """Each discriminator loss on distinct real and fake logits, against its formula: swapping
    the arguments changes every value here."""
    real, fake = jnp.array([2.0, -1.0, 0.5]), jnp.array([-3.0, 1.5, 0.0])
    r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    # minimax: -log D(x) - log(1 - D(G(z)))
    np.testing.assert_allclose(A.d_minimax(real, fake), -np.log(sig(r)) - np.log(1 - sig(f)), rtol=1e-5)
    np.testing.assert_allclose(A.d_hinge(real, fake), np.maximum(0, 1 - r) + np.maximum(0, 1 + f), rtol=1e-6)
    np.testing.assert_allclose(A.d_wasserstein(real, fake), f - r, rtol=1e-6)
    for loss in (A.d_minimax, A.d_hinge, A.d_wasserstein):
        assert not np.allclose(loss(real, fake), loss(fake, real))


def test_generator_losses_and_hinge():
    f = jnp.array([-3.0, 0.0, 2.0])
    np.testing.assert_allclose(A.g_saturating(f), np.log(1 - 1 / (1 + np.exp(-np.asarray(f)))), rtol=1e-5)
    np.testing.assert_allclose(A.g_nonsaturating(f), -np.log(1 / (1 + np.exp(-np.asarray(f)))), rtol=1e-5)
    np.testing.assert_allclose(A.d_hinge(jnp.array([2.0, 0.5]), jnp.array([-2.0, 0.5])), [0.0, 2.0])
    np.testing.assert_allclose(A.d_wasserstein(jnp.array([1.0]), jnp.array([3.0])), [2.0])


def test_gradient_penalty_zero_for_unit_gradient_critic_and_positive_otherwise():
    x = jax.random.normal(jax.random.key(0), (16, 4, 4, 1))
    y = jax.random.normal(jax.random.key(1), (16, 4, 4, 1))
    w = jax.random.normal(jax.random.key(2), (16,))
    w = w / jnp.linalg.norm(w)
    unit = lambda v: v.reshape(v.shape[0], -1) @ w  # noqa: E731
    gp = jax.jit(lambda k: A.gradient_penalty(unit, x, y, k))(jax.random.key(3))
    np.testing.assert_allclose(gp, 0.0, atol=1e-6)
    double = lambda v: 2.0 * unit(v)  # noqa: E731
    np.testing.assert_allclose(A.gradient_penalty(double, x, y, jax.random.key(3)), 1.0, rtol=1e-5)
    quad = lambda v: jnp.sum(v.reshape(v.shape[0], -1) ** 2, -1)  # noqa: E731
    assert np.all(np.asarray(A.gradient_penalty(quad, x, y, jax.random.key(3))) > 0)
    np.testing.assert_allclose(A.r1_penalty(double, x), 4.0, rtol=1e-5)
