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
