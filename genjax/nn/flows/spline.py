"""Monotone rational-quadratic splines with identity tails (Durkan et al. 2019, "Neural Spline
Flows", Sec. 3.1; the algebra follows Gregory & Delbourgo 1982).

On [-B, B] the map is a K-bin rational-quadratic spline whose knots are set by unnormalized bin
widths, heights and interior derivatives; outside it is the identity (derivative 1 at both
boundary knots, so the map is C^1 there). Element-wise; all functions take one scalar input and
its ``[K]``, ``[K]``, ``[K - 1]`` parameters and are vmapped by the caller.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

MIN_BIN = 1e-3
MIN_DERIV = 1e-3
_D0 = math.log(math.expm1(1.0 - MIN_DERIV))  # interior derivative 1 (the identity) at d = 0


def _knots(w, h, d, bound):
    k = w.shape[-1]
    widths = MIN_BIN + (1 - MIN_BIN * k) * jax.nn.softmax(w)
    heights = MIN_BIN + (1 - MIN_BIN * k) * jax.nn.softmax(h)
    cw = jnp.concatenate([jnp.zeros(1), jnp.cumsum(widths)]) * 2 * bound - bound
    ch = jnp.concatenate([jnp.zeros(1), jnp.cumsum(heights)]) * 2 * bound - bound
    cw = cw.at[0].set(-bound).at[-1].set(bound)
    ch = ch.at[0].set(-bound).at[-1].set(bound)
    deriv = jnp.concatenate([jnp.ones(1), MIN_DERIV + jax.nn.softplus(d + _D0), jnp.ones(1)])
    return cw, ch, deriv


def _bin(knots, v):
    return jnp.clip(jnp.searchsorted(knots, v, side="right") - 1, 0, knots.shape[0] - 2)


def _gather(cw, ch, deriv, i):
    x0, y0 = cw[i], ch[i]
    bw, bh = cw[i + 1] - x0, ch[i + 1] - y0
    return x0, y0, bw, bh, bh / bw, deriv[i], deriv[i + 1]


def rqs_forward(x, w, h, d, bound: float):
    """(y, log|dy/dx|) for scalar ``x``."""
    inside = jnp.abs(x) < bound
    xs = jnp.clip(x, -bound + 1e-6, bound - 1e-6)
    cw, ch, deriv = _knots(w, h, d, bound)
    x0, y0, bw, bh, s, d0, d1 = _gather(cw, ch, deriv, _bin(cw, xs))
    t = (xs - x0) / bw
    t1 = t * (1 - t)
    denom = s + (d0 + d1 - 2 * s) * t1
    y = y0 + bh * (s * t**2 + d0 * t1) / denom
    dnum = s**2 * (d1 * t**2 + 2 * s * t1 + d0 * (1 - t) ** 2)
    logdet = jnp.log(dnum) - 2 * jnp.log(denom)
    return jnp.where(inside, y, x), jnp.where(inside, logdet, 0.0)


def rqs_inverse(y, w, h, d, bound: float):
    """(x, log|dx/dy|) for scalar ``y``: the root of the quadratic in the bin's local coordinate."""
    inside = jnp.abs(y) < bound
    ys = jnp.clip(y, -bound + 1e-6, bound - 1e-6)
    cw, ch, deriv = _knots(w, h, d, bound)
    x0, y0, bw, bh, s, d0, d1 = _gather(cw, ch, deriv, _bin(ch, ys))
    dy = ys - y0
    a = bh * (s - d0) + dy * (d1 + d0 - 2 * s)
    b = bh * d0 - dy * (d1 + d0 - 2 * s)
    c = -s * dy
    t = (2 * c) / (-b - jnp.sqrt(jnp.maximum(b**2 - 4 * a * c, 0.0)))
    x = x0 + t * bw
    t1 = t * (1 - t)
    denom = s + (d0 + d1 - 2 * s) * t1
    dnum = s**2 * (d1 * t**2 + 2 * s * t1 + d0 * (1 - t) ** 2)
    logdet = -(jnp.log(dnum) - 2 * jnp.log(denom))
    return jnp.where(inside, x, y), jnp.where(inside, logdet, 0.0)
