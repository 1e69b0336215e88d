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


def gaussian_kl_per_dim(mean: ArrayLike, log_var: ArrayLike) -> jax.Array:
    """KL(N(mean_k, exp(log_var_k)) || N(0, 1)) for each latent dimension: ``[B, K]``.

    KL_k = 1/2 [exp(log_var_k) + mean_k^2 - 1 - log_var_k]   (Kingma & Welling 2014, App. B).
    """
    mean, log_var = jnp.asarray(mean), jnp.asarray(log_var)
    return 0.5 * (jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var)


def gaussian_kl(mean: ArrayLike, log_var: ArrayLike) -> jax.Array:
    """KL(N(mean, diag(exp(log_var))) || N(0, I)), analytic, per example: the sum over
    dimensions of ``gaussian_kl_per_dim``.

    Args:
        mean, log_var: ``[B, K]``.

    Returns:
        ``[B]``.
    """
    return jnp.sum(gaussian_kl_per_dim(mean, log_var), axis=-1)


def gaussian_kl_between(mean_q, log_var_q, mean_p, log_var_p) -> jax.Array:
    """KL(N(mean_q, diag var_q) || N(mean_p, diag var_p)) per example ``[B]``:
    1/2 sum [log var_p - log var_q + (var_q + (mean_q - mean_p)^2) / var_p - 1]."""
    return 0.5 * jnp.sum(
        log_var_p - log_var_q + (jnp.exp(log_var_q) + jnp.square(mean_q - mean_p)) * jnp.exp(-log_var_p) - 1.0,
        axis=-1,
    )


def free_bits_kl(kl_per_dim: ArrayLike, free_bits: ArrayLike) -> jax.Array:
    """The free-bits KL (Kingma et al. 2016, Improved Variational Inference with Inverse
    Autoregressive Flow, Sec. 3.7 / App. C.8), per example ``[B]`` from ``[B, K]`` terms:

        KL_lambda = sum_k max(lambda, E_batch[KL_k])

    Each latent dimension whose minibatch-mean KL is below ``lambda`` nats costs the constant
    lambda, so its KL gets no gradient (the encoder may use those nats for free); above lambda it
    is the plain KL. The per-example terms returned average over the batch to KL_lambda exactly:
    example b contributes KL_bk on the dimensions above the threshold and lambda on the others.
    ``lambda = 0`` gives the plain KL.
    """
    kl = jnp.asarray(kl_per_dim)
    above = jax.lax.stop_gradient(jnp.mean(kl, axis=0) > free_bits)  # [K]
    return jnp.sum(jnp.where(above, kl, jnp.asarray(free_bits, kl.dtype)), axis=-1)


def active_units(means: ArrayLike, threshold: float = 0.01) -> tuple[int, jax.Array]:
    """Active latent units (Burda et al. 2016, Sec. 5.2): dimension k is active when

        A_k = Cov_x(E_{q(z|x)}[z_k]) > threshold   (0.01 in the paper),

    the variance over data points of the posterior mean. A collapsed unit's posterior mean does
    not depend on x. Args: ``means [N, K]`` posterior means over a data set. Returns the count and
    ``A [K]``."""
    a = jnp.var(jnp.asarray(means, jnp.float32), axis=0)
    return int(jnp.sum(a > threshold)), a


def rbf_kernel(a: ArrayLike, b: ArrayLike, bandwidth: float | None = None) -> jax.Array:
    """k(a, b) = exp(-||a - b||^2 / (2 s^2)) for all pairs: ``[N, K] x [M, K] -> [N, M]``;
    ``s^2 = K`` by default (the scale of N(0, I) distances in K dimensions)."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    s2 = float(a.shape[-1]) if bandwidth is None else bandwidth**2
    d2 = jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)
    return jnp.exp(-d2 / (2.0 * s2))


def imq_kernel(a: ArrayLike, b: ArrayLike, bandwidth: float | None = None) -> jax.Array:
    """Inverse multiquadratic k(a, b) = C / (C + ||a - b||^2), C = 2 K s^2 with s = 1 by default
    (heavier tails than the RBF; Tolstikhin et al. 2018, WAE)."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    c = 2.0 * a.shape[-1] * (1.0 if bandwidth is None else bandwidth**2)
    d2 = jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)
    return c / (c + d2)


KERNELS = {"rbf": rbf_kernel, "imq": imq_kernel}


def mmd(x: ArrayLike, y: ArrayLike, kernel: str = "rbf", bandwidth: float | None = None) -> jax.Array:
    """Squared maximum mean discrepancy between samples ``x [N, K]`` and ``y [M, K]``
    (Gretton et al. 2012), the biased (V-statistic) estimate InfoVAE uses:

        MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y)

    It is >= 0, exactly 0 for identical samples, and -> 0 as both grow from the same
    distribution. A scalar (a statistic of two sets, not per example)."""
    k = KERNELS[kernel]
    return jnp.mean(k(x, x, bandwidth)) + jnp.mean(k(y, y, bandwidth)) - 2.0 * jnp.mean(k(x, y, bandwidth))


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


def iwae_from_log_weights(log_w: ArrayLike) -> jax.Array:
    """L_k = logsumexp_i log w_i - log k from log weights ``[k, B]`` -> ``[B]`` (``iwae_bound``
    with the weights already formed, e.g. by a two-layer model)."""
    log_w = jnp.asarray(log_w)
    return jax.nn.logsumexp(log_w, axis=0) - math.log(log_w.shape[0])


def infovae_objective(log_px_z: ArrayLike, kl: ArrayLike, mmd_qp: ArrayLike, alpha: ArrayLike,
                      lam: ArrayLike) -> jax.Array:  # fmt: skip
    """The InfoVAE loss to minimize (Zhao et al. 2019, eq. 6 with the MMD divergence):

        -E_x E_q[log p(x|z)] + (1 - alpha) E_x KL(q(z|x) || p(z)) + (alpha + lambda - 1) MMD(q(z), p(z))

    from per-example ``log_px_z`` and ``kl`` ``[B]`` and the batch's ``mmd_qp`` (scalar).
    alpha = 1 drops the KL (the MMD-VAE); alpha = 0, lambda = 1 is the ELBO."""
    return -jnp.mean(jnp.asarray(log_px_z)) + (1.0 - alpha) * jnp.mean(jnp.asarray(kl)) + (alpha + lam - 1.0) * mmd_qp


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
