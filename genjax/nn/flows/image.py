"""Image flow layers, on one example ``[H, W, C]`` or a batch ``[..., H, W, C]`` (leading axes are
batch axes; log-dets have their shape): squeeze, convolutional couplings with checkerboard and
channel masks, and the multi-scale architecture of RealNVP / Glow (Dinh et al.
2017, Sec. 3.6; Kingma & Dhariwal 2018), which factors out half of the channels after each scale
and sends them straight to the base distribution.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genjax.nn.flows.layers import ActNorm, Invertible1x1Conv


def _swap_23(n: int):
    """The permutation that swaps axes n + 1 and n + 2 after ``n`` leading axes."""
    return (*range(n), n, n + 2, n + 1, n + 3, n + 4)


def squeeze(x):
    """[..., H, W, C] -> [..., H/2, W/2, 4C] (space to depth); volume preserving."""
    *lead, h, w, c = x.shape
    y = x.reshape(*lead, h // 2, 2, w // 2, 2, c).transpose(_swap_23(len(lead)))
    return y.reshape(*lead, h // 2, w // 2, 4 * c)


def unsqueeze(x):
    """The inverse of ``squeeze``."""
    *lead, h, w, c = x.shape
    y = x.reshape(*lead, h, w, 2, 2, c // 4).transpose(_swap_23(len(lead)))
    return y.reshape(*lead, 2 * h, 2 * w, c // 4)


def checkerboard(h: int, w: int, parity: int) -> np.ndarray:
    return (((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2) == parity).astype(np.float32)[..., None]


class ConvCoupling(nnx.Module):
    """Affine (or additive) coupling on an image with a checkerboard mask over (H, W) or a channel
    mask over C; the conditioner is a 3-layer conv net (3x3, 1x1, 3x3), its last layer zero so the
    layer starts as the identity. An optional context vector ``[..., C']`` is broadcast over the
    image."""

    def __init__(
        self,
        shape,
        mask: str,
        parity: int,
        hidden: int,
        *,
        additive=False,
        context_dim=0,
        scale_clamp: float = 3.0,
        rngs: nnx.Rngs,
    ):
        h, w, c = shape
        if mask == "checkerboard":
            m = np.broadcast_to(checkerboard(h, w, parity), shape)
        elif mask == "channel":
            m = np.broadcast_to((np.arange(c) < c // 2) == (parity == 0), shape).astype(np.float32)
        else:
            raise ValueError(f"coupling mask must be 'checkerboard' or 'channel', got {mask!r}.")
        self.mask = nnx.Variable(jnp.asarray(m, jnp.float32))
        self.c1 = nnx.Conv(c + context_dim, hidden, (3, 3), rngs=rngs)
        self.c2 = nnx.Conv(hidden, hidden, (1, 1), rngs=rngs)
        self.c3 = nnx.Conv(hidden, c * (1 if additive else 2), (3, 3), rngs=rngs)
        self.c3.kernel[...] = jnp.zeros_like(self.c3.kernel[...])
        self.additive, self.clamp = additive, float(scale_clamp)

    def _st(self, x, ctx):
        m = self.mask[...]
        h = x * m
        if ctx is not None:
            h = jnp.concatenate([h, jnp.broadcast_to(ctx[..., None, None, :], (*h.shape[:-1], ctx.shape[-1]))], -1)
        lead = x.shape[:-3]
        h = jax.nn.relu(self.c1(h.reshape(-1, *h.shape[-3:])))  # the convolutions see one batch axis
        h = jax.nn.relu(self.c2(h))
        out = self.c3(h)
        out = out.reshape(*lead, *out.shape[1:])
        if self.additive:
            return jnp.zeros_like(x), out, m
        s, t = jnp.split(out, 2, -1)
        return self.clamp * jnp.tanh(s / self.clamp), t, m

    def forward(self, x, ctx=None):
        s, t, m = self._st(x, ctx)
        y = x * jnp.exp(s) + t
        return m * x + (1 - m) * y, jnp.sum((1 - m) * s, (-3, -2, -1))

    def inverse(self, z, ctx=None):
        s, t, m = self._st(z, ctx)
        x = (z - t) * jnp.exp(-s)
        return m * z + (1 - m) * x, -jnp.sum((1 - m) * s, (-3, -2, -1))


class MultiScale(nnx.Module):
    """``levels`` scales; each squeezes, applies ``steps`` flow steps and (except the last)
    factors out half of the channels. A step is ``glow`` (ActNorm, invertible 1x1 conv, affine
    channel coupling) or ``realnvp`` (ActNorm, coupling; alternating checkerboard masks, then
    channel masks). ``forward`` returns the flattened concatenation of all factored-out parts
    (``[..., H W C]`` for ``[..., H, W, C]``)."""

    def __init__(self, shape, levels: int, steps: int, hidden: int, *, style="glow", context_dim=0, rngs: nnx.Rngs):
        h, w, c = shape
        if h % 2**levels or w % 2**levels:
            raise ValueError(f"model.levels={levels}: image {h}x{w} is not divisible by 2**levels.")
        shapes, levels_ = [], []
        for lev in range(levels):
            h, w, c = h // 2, w // 2, c * 4
            layers = []
            for k in range(steps):
                layers.append(ActNorm(c, event_ndim=3))
                if style == "glow":
                    layers += [
                        Invertible1x1Conv(c, event_ndim=3, rngs=rngs),
                        ConvCoupling((h, w, c), "channel", k % 2, hidden, context_dim=context_dim, rngs=rngs),
                    ]
                else:
                    mask = "checkerboard" if k < steps // 2 or lev == levels - 1 else "channel"
                    layers.append(ConvCoupling((h, w, c), mask, k % 2, hidden, context_dim=context_dim, rngs=rngs))
            levels_.append(nnx.List(layers))
            shapes.append((h, w, c))
            if lev < levels - 1:
                c //= 2
        self.levels = nnx.List(levels_)
        self.shapes = tuple(shapes)

    def _walk(self, x, ctx, init: bool):
        zs, total = [], jnp.zeros(())
        for lev, layers in enumerate(self.levels):
            x = squeeze(x)
            for layer in layers:
                if init and isinstance(layer, ActNorm):
                    layer.initialize(x)
                x, ld = layer.forward(x, ctx)
                total = total + ld
            if lev < len(self.levels) - 1:
                c = x.shape[-1] // 2
                zs.append(x[..., c:].reshape(*x.shape[:-3], -1))
                x = x[..., :c]
        zs.append(x.reshape(*x.shape[:-3], -1))
        return jnp.concatenate(zs, -1), total

    def initialize(self, x_batch, ctx_batch=None):
        """Data-dependent ActNorm initialization from a batch ``[B, H, W, C]`` (and its contexts)."""
        self._walk(x_batch, ctx_batch, True)

    def forward(self, x, ctx=None):
        return self._walk(x, ctx, False)

    def inverse(self, z, ctx=None):
        sizes = [math.prod(s) // 2 for s in self.shapes[:-1]] + [math.prod(self.shapes[-1])]
        pieces = jnp.split(z, np.cumsum(sizes)[:-1], axis=-1)
        lead, total = z.shape[:-1], jnp.zeros(())
        x = pieces[-1].reshape(*lead, *self.shapes[-1])
        for lev in reversed(range(len(self.levels))):
            if lev < len(self.levels) - 1:
                h, w, c = self.shapes[lev]
                x = jnp.concatenate([x, pieces[lev].reshape(*lead, h, w, c // 2)], -1)
            for layer in reversed(self.levels[lev]):
                x, ld = layer.inverse(x, ctx)
                total = total + ld
            x = unsqueeze(x)
        return x, total
