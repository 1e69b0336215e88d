"""Per-example log-likelihoods of common observation models, and unit conversions.

Every function keeps the leading batch axes and sums over the trailing ``event_ndims`` axes, so
``[B, H, W, C]`` data gives ``[B]`` terms.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

LOG_2PI = math.log(2.0 * math.pi)


def _sum_event(x: jax.Array, event_ndims: int) -> jax.Array:
    # flatten the event axes and sum over one contiguous axis
    if not event_ndims:
        return x
    return jnp.sum(x.reshape(*x.shape[: x.ndim - event_ndims], -1), axis=-1)


def bernoulli_log_prob(logits: ArrayLike, x: ArrayLike, event_ndims: int = 3) -> jax.Array:
    """log Bern(x | sigmoid(logits)) = x * logits - softplus(logits), summed over the event.

    Numerically stable for any logits; ``x`` may be fractional (then it is the cross-entropy,
    which is a likelihood only for binary ``x``).
    """
    logits = jnp.asarray(logits)
    return _sum_event(x * logits - jax.nn.softplus(logits), event_ndims)


def gaussian_log_prob(x: ArrayLike, mean: ArrayLike, log_var: ArrayLike, event_ndims: int = 1) -> jax.Array:
    """log N(x | mean, diag(exp(log_var))) = -1/2 sum[log 2pi + log_var + (x - mean)^2 / var]."""
    x, mean, log_var = jnp.asarray(x), jnp.asarray(mean), jnp.asarray(log_var)
    terms = -0.5 * (LOG_2PI + log_var + (x - mean) ** 2 * jnp.exp(-log_var))
    return _sum_event(terms, event_ndims)


def decoder_draw(key, out: jax.Array, likelihood: str, std: ArrayLike = 1.0) -> jax.Array:
    """x ~ p(x | z) from a decoder's output ``out``: Bernoulli(sigmoid(out)) draws as floats, or
    out + std * N(0, I) for ``likelihood = "gaussian"``."""
    if likelihood == "bernoulli":
        return jax.random.bernoulli(key, jax.nn.sigmoid(out)).astype(jnp.float32)
    return out + std * jax.random.normal(key, out.shape)


def standard_normal_log_prob(z: ArrayLike, event_ndims: int = 1) -> jax.Array:
    """log N(z | 0, I) = -1/2 sum[log 2pi + z^2]."""
    return _sum_event(-0.5 * (LOG_2PI + jnp.square(z)), event_ndims)


def bits_per_dim(nll_nats: ArrayLike, num_dims: int, bin_width: float | None = None) -> jax.Array:
    """Convert a negative log-likelihood in nats per example to bits per dimension.

    For discrete data (``bin_width=None``) this is ``nll / (D ln 2)``. For a density over data
    scaled so that one discrete level spans ``bin_width`` (1/256 for 8-bit images scaled to
    [0, 1]) and uniformly dequantized, the discrete NLL is bounded by
    ``nll - D ln(bin_width)`` (Theis et al. 2016), so bits/dim is
    ``(nll - D ln bin_width) / (D ln 2)``, comparable with published 256-level figures.
    """
    nll = jnp.asarray(nll_nats)
    if bin_width is not None:
        nll = nll - num_dims * math.log(bin_width)
    return nll / (num_dims * math.log(2.0))


# ------------------------------------------------------- conditional likelihoods p(y | x), per example


def heteroscedastic_gaussian_nll(
    y: ArrayLike, mean: ArrayLike, log_var: ArrayLike, min_var: float = 0.0, event_ndims: int = 1
) -> jax.Array:
    """-log N(y | mean(x), var(x)) with a predicted variance per input and per dimension:

        NLL = 1/2 sum_d [log 2pi + log var_d + (y_d - mean_d)^2 / var_d],   var = exp(log_var) + min_var

    (Nix & Weigend 1994; Lakshminarayanan et al. 2017). ``min_var`` > 0 floors the variance,
    smoothly, so a network cannot drive it to 0 on a few points and the NLL to -inf. For a
    fixed residual r the NLL is minimized over the variance at var = r^2 (when r^2 >= min_var).

    Args:
        y, mean, log_var: ``[B, *event]`` (``event_ndims`` trailing axes are summed).

    Returns:
        ``[B]`` in nats.
    """
    y, mean, log_var = jnp.asarray(y), jnp.asarray(mean), jnp.asarray(log_var)
    var = jnp.exp(log_var) + min_var
    return _sum_event(0.5 * (LOG_2PI + jnp.log(var) + jnp.square(y - mean) / var), event_ndims)


def student_t_nll(
    y: ArrayLike, loc: ArrayLike, log_scale: ArrayLike, df: ArrayLike, min_scale: float = 0.0, event_ndims: int = 1
) -> jax.Array:
    """-log t_nu(y | loc, scale), the heavy-tailed alternative to the Gaussian NLL:

        log t = lgamma((nu + 1)/2) - lgamma(nu/2) - 1/2 log(nu pi) - log s - (nu + 1)/2 log(1 + u^2 / nu),
        u = (y - loc) / s,   s = exp(log_scale) + min_scale.

    Tends to the Gaussian NLL with variance s^2 as nu -> inf.

    Returns:
        ``[B]`` in nats.
    """
    y, loc = jnp.asarray(y), jnp.asarray(loc)
    scale = jnp.exp(jnp.asarray(log_scale)) + min_scale
    df = jnp.asarray(df, y.dtype)
    u = (y - loc) / scale
    # lgamma((nu+1)/2) - lgamma(nu/2) - 1/2 log(nu pi) = -log B(1/2, nu/2) - 1/2 log nu, the beta
    # function form staying exact in float32 for large nu
    log_t = (
        -jax.scipy.special.betaln(0.5, df / 2)
        - 0.5 * jnp.log(df)
        - jnp.log(scale)
        - (df + 1) / 2 * jnp.log1p(jnp.square(u) / df)
    )
    return _sum_event(-log_t, event_ndims)


def categorical_nll(logits: ArrayLike, y: ArrayLike) -> jax.Array:
    """-log softmax(logits)[y], the cross-entropy with integer targets.

    Args:
        logits: ``[B, C]``; y: ``[B]`` integer classes.

    Returns:
        ``[B]`` in nats.
    """
    logp = jax.nn.log_softmax(jnp.asarray(logits), axis=-1)
    return -jnp.take_along_axis(logp, jnp.asarray(y, jnp.int32)[..., None], axis=-1)[..., 0]


def focal_loss(logits: ArrayLike, y: ArrayLike, gamma: float = 2.0, alpha: ArrayLike | None = None) -> jax.Array:
    """The focal loss (Lin et al. 2017, Focal Loss for Dense Object Detection), multi-class:

        FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t,     p_t = softmax(logits)[y]

    gamma = 0 (and no alpha) is the cross-entropy; gamma > 0 multiplies each example's
    cross-entropy by (1 - p_t)^gamma, so well-classified (easy) examples, p_t near 1, count
    less. ``alpha``: ``None`` (1), a scalar, or per-class weights ``[C]`` (alpha_t = alpha[y]),
    e.g. inverse class frequencies for imbalanced data.

    Returns:
        ``[B]``.
    """
    logp = jax.nn.log_softmax(jnp.asarray(logits), axis=-1)
    logp_t = jnp.take_along_axis(logp, jnp.asarray(y, jnp.int32)[..., None], axis=-1)[..., 0]
    # 1 - p_t as -expm1(log p_t) (exact near p_t = 1), floored so gamma may be a traced 0
    weight = jnp.power(jnp.maximum(-jnp.expm1(logp_t), 1e-30), jnp.asarray(gamma, logp_t.dtype))
    loss = -weight * logp_t
    if alpha is not None:
        alpha = jnp.asarray(alpha, loss.dtype)
        loss = loss * (alpha[jnp.asarray(y, jnp.int32)] if alpha.ndim else alpha)
    return loss
