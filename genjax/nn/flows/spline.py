"""Monotone rational-quadratic splines with identity tails (Durkan et al. 2019, "Neural Spline
Flows", Sec. 3.1; the algebra follows Gregory & Delbourgo 1982).

On [-B, B] the map is a K-bin rational-quadratic spline whose knots are set by unnormalized bin
widths, heights and interior derivatives; outside it is the identity (derivative 1 at both
boundary knots, so the map is C^1 there). Element-wise: an input of any shape ``[...]`` with
its parameters ``[..., K]``, ``[..., K]``, ``[..., K - 1]`` (a scalar with ``[K]``, ... as well).
Written batched rather than as a scalar function vmapped twice (over dimensions and examples):
the same arithmetic, traced faster (the 2-D spline flow's epoch: 1.35 s instead of 1.55). The bin's knots
are read with a vmapped index (``_gather``): ``take_along_axis`` made that epoch 15% slower on CPU.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

MIN_BIN = 1e-3
MIN_DERIV = 1e-3
_D0 = math.log(math.expm1(1.0 - MIN_DERIV))  # interior derivative 1 (the identity) at d = 0


def _edges(u, bound):
    """Knot positions [..., K + 1] from unnormalized bin sizes ``u [..., K]``: softmax sizes
    floored at MIN_BIN, cumulated onto [-bound, bound] (both ends set exactly)."""
    k = u.shape[-1]
    sizes = MIN_BIN + (1 - MIN_BIN * k) * jax.nn.softmax(u, axis=-1)
    zero = jnp.zeros((*u.shape[:-1], 1), u.dtype)
    c = jnp.concatenate([zero, jnp.cumsum(sizes, axis=-1)], -1) * 2 * bound - bound
    return c.at[..., 0].set(-bound).at[..., -1].set(bound)


def _knots(w, h, d, bound):
    one = jnp.ones((*d.shape[:-1], 1), d.dtype)
    deriv = jnp.concatenate([one, MIN_DERIV + jax.nn.softplus(d + _D0), one], -1)
    return _edges(w, bound), _edges(h, bound), deriv


def _bin(knots, v):
    """The bin of ``v`` in (-bound, bound): how many interior knots are <= v (searchsorted, right)."""
    return jnp.sum(knots[..., 1:-1] <= v[..., None], -1)


def _gather(cw, ch, deriv, i):
    at = jnp.vectorize(lambda a, j: a[j], signature="(n),()->()")
    x0, y0, x1, y1 = at(cw, i), at(ch, i), at(cw, i + 1), at(ch, i + 1)
    bw, bh = x1 - x0, y1 - y0
    return x0, y0, bw, bh, bh / bw, at(deriv, i), at(deriv, i + 1)


def rqs_forward(x, w, h, d, bound: float):
    """(y, log|dy/dx|), element-wise in ``x``."""
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
    """(x, log|dx/dy|), element-wise in ``y``: the root of the quadratic in the bin's local coordinate."""
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
