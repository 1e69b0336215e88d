"""Variational objectives: the ELBO, beta-VAE, KL annealing and the IWAE bound.

All functions return per-example terms with a leading batch axis ``[B]``; the caller reduces.

References:
    Kingma & Welling (2014), Auto-Encoding Variational Bayes.
    Higgins et al. (2017), beta-VAE.
    Bowman et al. (2016), Generating Sentences from a Continuous Space (KL warm-up).
    Fu et al. (2019), Cyclical Annealing Schedule.
    Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from genjax.objectives.likelihood import gaussian_log_prob, standard_normal_log_prob


def reparameterize(key: jax.Array, mean: ArrayLike, log_var: ArrayLike, n: int | None = None):
    """z = mean + exp(log_var / 2) * eps, eps ~ N(0, I) (the reparameterization trick).

    Args:
        key: PRNG key.
        mean, log_var: ``[..., K]`` parameters of the diagonal Gaussian q(z|x).
        n: if given, draw ``n`` samples stacked on a new leading axis: ``[n, ..., K]``.
    """
    mean, log_var = jnp.asarray(mean), jnp.asarray(log_var)
    shape = mean.shape if n is None else (n, *mean.shape)
    eps = jax.random.normal(key, shape).astype(mean.dtype)  # float32 draw: the same noise under bf16
    return mean + jnp.exp(0.5 * log_var) * eps


def gaussian_kl(mean: ArrayLike, log_var: ArrayLike) -> jax.Array:
    """KL(N(mean, diag(exp(log_var))) || N(0, I)), analytic, per example.

    KL = 1/2 sum_k [exp(log_var_k) + mean_k^2 - 1 - log_var_k]   (Kingma & Welling 2014, App. B).

    Args:
        mean, log_var: ``[B, K]``.

    Returns:
        ``[B]``.
    """
    mean, log_var = jnp.asarray(mean), jnp.asarray(log_var)
    return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, axis=-1)


def elbo(log_px_z: ArrayLike, kl: ArrayLike, beta: ArrayLike = 1.0) -> jax.Array:
    """ELBO_beta(x) = E_q[log p(x|z)] - beta * KL(q(z|x) || p(z)), per example.

    beta = 1 is the evidence lower bound, log p(x) >= ELBO; beta != 1 is the beta-VAE objective
    (Higgins et al. 2017), no longer a bound on log p(x) when beta < 1.
    """
    return jnp.asarray(log_px_z) - beta * jnp.asarray(kl)


def iwae_bound(log_px_z: ArrayLike, log_pz: ArrayLike, log_qz_x: ArrayLike) -> jax.Array:
    """The importance-weighted bound L_k from k samples z_1..k ~ q(z|x) on the leading axis.

    L_k(x) = log (1/k) sum_i p(x, z_i) / q(z_i | x)
           = logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k
    (Burda et al. 2016). L_1 is the ELBO; L_k <= L_{k+1} <= log p(x) in expectation, and L_k
    tends to log p(x) as k grows.

    Args:
        log_px_z, log_pz, log_qz_x: ``[k, B]``.

    Returns:
        ``[B]``.
    """
    log_w = jnp.asarray(log_px_z) + jnp.asarray(log_pz) - jnp.asarray(log_qz_x)
    return jax.nn.logsumexp(log_w, axis=0) - math.log(log_w.shape[0])


def log_weights(z_kxbxk: jax.Array, mean: jax.Array, log_var: jax.Array, log_px_z: jax.Array) -> jax.Array:
    """log w_i = log p(x|z_i) + log N(z_i|0,I) - log q(z_i|x) for samples ``[k, B, K]``."""
    log_pz = standard_normal_log_prob(z_kxbxk)
    log_qz = gaussian_log_prob(z_kxbxk, mean, log_var)
    return log_px_z + log_pz - log_qz


# ---------------------------------------------------------------- KL-weight schedules (beta_t)


def constant_beta(beta: float = 1.0) -> Callable[[ArrayLike], jax.Array]:
    """beta_t = beta."""
    return lambda step: jnp.asarray(beta, jnp.float32)


def linear_warmup(warmup_steps: int, beta: float = 1.0) -> Callable[[ArrayLike], jax.Array]:
    """beta_t = beta * min(1, t / warmup_steps) (KL annealing, Bowman et al. 2016)."""
    if warmup_steps <= 0:
        return constant_beta(beta)
    return lambda step: beta * jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / warmup_steps)


def cyclical(period: int, ratio: float = 0.5, beta: float = 1.0) -> Callable[[ArrayLike], jax.Array]:
    """Cyclical annealing (Fu et al. 2019): within each period of ``period`` steps, beta rises
    linearly from 0 to ``beta`` over the first ``ratio`` of the period, then stays at ``beta``.

    beta_t = beta * min(1, (t mod period) / (ratio * period)).
    """
    if period <= 0 or not 0.0 < ratio <= 1.0:
        raise ValueError(f"cyclical annealing needs period > 0 and 0 < ratio <= 1, got period={period}, ratio={ratio}.")
    ramp = ratio * period

    def schedule(step):
        tau = jnp.mod(jnp.asarray(step, jnp.float32), period)
        return beta * jnp.minimum(1.0, tau / ramp)

    return schedule
