"""Adversarial objectives as pure per-example terms. ``real`` and ``fake`` are discriminator
logits (or critic values) on data and on generator samples; every function returns ``[B]``
terms that the caller averages (each player minimizes its own mean).

    minimax (Goodfellow et al. 2014):  L_D = -log D(x) - log(1 - D(G(z)))
                                       L_G =  log(1 - D(G(z)))                 (saturating)
    non-saturating:                    L_G = -log D(G(z))
    Wasserstein (Arjovsky et al. 2017): L_D = f(G(z)) - f(x),  L_G = -f(G(z))
    hinge (Lim & Ye 2017; Miyato et al. 2018): L_D = relu(1 - f(x)) + relu(1 + f(G(z))),
                                       L_G = -f(G(z))
    gradient penalty (Gulrajani et al. 2017): (||grad f(x_hat)|| - 1)^2 on
                                       x_hat = e x + (1 - e) G(z), e ~ U[0, 1]
    R1 (Mescheder et al. 2018):        ||grad f(x)||^2 on real data (weighted by gamma / 2)

With D = sigmoid(logit), log D = -softplus(-logit) and log(1 - D) = -softplus(logit). At the
optimal discriminator D* = p_data / (p_data + p_g) the minimax value is 2 JS(p_data, p_g) - log 4.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def d_minimax(real: jax.Array, fake: jax.Array) -> jax.Array:
    """-log D(x) - log(1 - D(G(z))), per example."""
    return jax.nn.softplus(-real) + jax.nn.softplus(fake)


def g_saturating(fake: jax.Array) -> jax.Array:
    """log(1 - D(G(z))): the generator's side of the minimax game (saturates early in training)."""
    return -jax.nn.softplus(fake)


def g_nonsaturating(fake: jax.Array) -> jax.Array:
    """-log D(G(z))."""
    return jax.nn.softplus(-fake)


def d_wasserstein(real: jax.Array, fake: jax.Array) -> jax.Array:
    """f(G(z)) - f(x): the critic maximizes E f(x) - E f(G(z))."""
    return fake - real


def g_wasserstein(fake: jax.Array) -> jax.Array:
    """-f(G(z))."""
    return -fake


def d_hinge(real: jax.Array, fake: jax.Array) -> jax.Array:
    """relu(1 - f(x)) + relu(1 + f(G(z)))."""
    return jax.nn.relu(1.0 - real) + jax.nn.relu(1.0 + fake)


g_hinge = g_wasserstein


def _input_grads(critic: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """d critic(x_b) / d x_b for each example of a batch ``[B, ...]`` (``critic`` is batched
    and its outputs ``[B]`` depend on their own example only)."""
    return jax.grad(lambda v: jnp.sum(critic(v)))(x)


def gradient_penalty(
    critic: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array, key: jax.Array
) -> jax.Array:
    """(||grad_x critic(x_hat)||_2 - 1)^2 per example, x_hat on random interpolates."""
    e = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1))
    x_hat = e * real + (1.0 - e) * fake
    g = _input_grads(critic, x_hat).reshape(real.shape[0], -1)
    return (jnp.sqrt(jnp.sum(g**2, -1) + 1e-12) - 1.0) ** 2


def r1_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array) -> jax.Array:
    """||grad_x critic(x)||^2 per real example."""
    g = _input_grads(critic, real).reshape(real.shape[0], -1)
    return jnp.sum(g**2, -1)
