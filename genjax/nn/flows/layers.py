"""Invertible layers (bijectors) for normalizing flows, written for ONE example and vmapped by
the caller (the layers built with ``event_ndim``, as the image flows build them, also take a
batch: leading axes are batch axes and the log-det has their shape). Every layer has

    forward(x, ctx=None) -> (z, log|det dz/dx|)      data -> base direction
    inverse(z, ctx=None) -> (x, log|det dx/dz|)      base -> data direction

and ``Flow`` composes them, summing log-determinants (change of variables:
log p(x) = log p_Z(f(x)) + log|det J_f(x)|). ``ctx`` is an optional context vector: every
coupling and autoregressive layer conditions on it when built with ``context_dim > 0``.

References: Dinh et al. 2015 (NICE, additive coupling), Dinh et al. 2017 (RealNVP, affine
coupling, masks), Kingma & Dhariwal 2018 (Glow: ActNorm, invertible 1x1 convolution),
Germain et al. 2015 (MADE), Papamakarios et al. 2017 (MAF), Kingma et al. 2016 (IAF),
Durkan et al. 2019 (neural spline flows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genjax.nn.flows.spline import rqs_forward, rqs_inverse
from genjax.nn.layers import MLP


def _event_size(x, event_ndim: int | None) -> int:
    """Positions per example that share a per-feature parameter: every position but the last axis
    of one example (``event_ndim`` trailing axes; None: all of ``x`` is one example)."""
    return (x.size if event_ndim is None else math.prod(x.shape[x.ndim - event_ndim :])) // x.shape[-1]


def _per_example(x, event_ndim: int | None, value):
    """A log-det ``value`` that every example shares, with the shape of ``x``'s batch axes."""
    return value if event_ndim is None else jnp.broadcast_to(value, x.shape[: x.ndim - event_ndim])


def _with_ctx(x, ctx):
    return x if ctx is None else jnp.concatenate([x, ctx])


def alternating_mask(dim: int, parity: int = 0) -> np.ndarray:
    """1 on every other feature (a checkerboard over a vector): features i with i % 2 == parity."""
    return (np.arange(dim) % 2 == parity).astype(np.float32)


def half_mask(dim: int, first: bool = True) -> np.ndarray:
    """1 on the first (or last) half of the features (a 'channel' mask for vectors)."""
    m = (np.arange(dim) < dim // 2).astype(np.float32)
    return m if first else 1.0 - m


class Coupling(nnx.Module):
    """x_A = x[mask == 1] passes unchanged and conditions the transform of x_B (the rest):

    affine (RealNVP):  z_B = x_B * exp(s(x_A)) + t(x_A),  log det = sum s
    additive (NICE):   z_B = x_B + t(x_A),                log det = 0
    spline (NSF):      z_B = RQS(x_B; theta(x_A)),        log det = sum log RQS'

    ``s`` is soft-clamped as ``scale_clamp * tanh(s / scale_clamp)`` for stability.

    ``constant_mask``: the mask is a static attribute, which XLA sees as a constant and folds into
    the arithmetic, rather than a variable of the state, which the compiled step reads as an
    input. A flow whose repeated layers run as one scan (``Flow(scan=True)``) needs it a variable
    (the couplings of alternating masks share one scanned block); ``build_flow`` makes it constant
    for the others. Measured on the 2-core CPU (``genjax bench``, RealNVP's 8 couplings of 256-256
    on 2-D moons, batch 256): XLA re-derives each coupling's output inside every backward fusion
    that needs it, and with the masks as inputs those fusions cost 20.3 ms an epoch against the
    plain-JAX twin's 11.5 ms (constant: 5.7 ms); the step went from 0.96 of the twin's speed to
    0.99.
    """

    def __init__(
        self,
        mask,
        hidden: Sequence[int],
        kind: str = "affine",
        context_dim: int = 0,
        *,
        bins: int = 8,
        bound: float = 4.0,
        scale_clamp: float = 3.0,
        act: str = "relu",
        constant_mask: bool = False,
        rngs: nnx.Rngs,
    ):
        if kind not in ("affine", "additive", "spline"):
            raise ValueError(f"coupling kind must be affine, additive or spline, got {kind!r}.")
        mask = np.asarray(mask, np.float32)
        self.fixed_mask = tuple(mask.tolist()) if constant_mask else None  # static: in the graph, not the state
        self.mask = None if constant_mask else nnx.Variable(jnp.asarray(mask))
        dim = int(mask.size)
        self.kind, self.bins, self.bound, self.clamp = kind, bins, float(bound), float(scale_clamp)
        per_dim = {"affine": 2, "additive": 1, "spline": 3 * bins - 1}[kind]
        self.net = MLP([dim + context_dim, *hidden, dim * per_dim], act, rngs=rngs)
        last = self.net.layers[-1]  # start at the identity map
        last.kernel[...] = jnp.zeros_like(last.kernel[...])
        self.dim = dim

    def _params(self, x, ctx):
        m = self.mask[...] if self.fixed_mask is None else np.asarray(self.fixed_mask, np.float32)
        return self.net(_with_ctx(x * m, ctx)).reshape(self.dim, -1), m

    def forward(self, x, ctx=None):
        p, m = self._params(x, ctx)
        if self.kind == "spline":
            w, h, d = p[:, : self.bins], p[:, self.bins : 2 * self.bins], p[:, 2 * self.bins :]
            y, ld = rqs_forward(x, w, h, d, self.bound)
        elif self.kind == "additive":
            y, ld = x + p[:, 0], jnp.zeros_like(x)
        else:
            s = self.clamp * jnp.tanh(p[:, 0] / self.clamp)
            y, ld = x * jnp.exp(s) + p[:, 1], s
        return m * x + (1 - m) * y, jnp.sum((1 - m) * ld)

    def inverse(self, z, ctx=None):
        p, m = self._params(z, ctx)  # z_A == x_A
        if self.kind == "spline":
            w, h, d = p[:, : self.bins], p[:, self.bins : 2 * self.bins], p[:, 2 * self.bins :]
            x, ld = rqs_inverse(z, w, h, d, self.bound)
        elif self.kind == "additive":
            x, ld = z - p[:, 0], jnp.zeros_like(z)
        else:
            s = self.clamp * jnp.tanh(p[:, 0] / self.clamp)
            x, ld = (z - p[:, 1]) * jnp.exp(-s), -s
        return m * z + (1 - m) * x, jnp.sum((1 - m) * ld)


class ActNorm(nnx.Module):
    """z = (x + b) * exp(log_s) per feature (per channel for images ``[H, W, C]``);
    log det = (H W) sum log_s. ``initialize(x_batch)`` sets b and log_s from a batch so that the
    output has zero mean and unit variance per feature (data-dependent init, Glow). With
    ``event_ndim`` (3 for images) ``forward`` / ``inverse`` also take a batch ``[..., H, W, C]``;
    without it, their input is one example."""

    def __init__(self, features: int, event_ndim: int | None = None):
        self.bias = nnx.Param(jnp.zeros(features))
        self.log_scale = nnx.Param(jnp.zeros(features))
        self.event_ndim = event_ndim

    def initialize(self, x_batch: jax.Array, eps: float = 1e-6) -> None:
        axes = tuple(range(x_batch.ndim - 1))
        mean, std = jnp.mean(x_batch, axes), jnp.std(x_batch, axes)
        self.bias[...] = -mean
        self.log_scale[...] = -jnp.log(std + eps)

    def forward(self, x, ctx=None):
        n, e = _event_size(x, self.event_ndim), self.event_ndim
        return (x + self.bias[...]) * jnp.exp(self.log_scale[...]), _per_example(x, e, n * jnp.sum(self.log_scale[...]))

    def inverse(self, z, ctx=None):
        n, e = _event_size(z, self.event_ndim), self.event_ndim
        return z * jnp.exp(-self.log_scale[...]) - self.bias[...], _per_example(z, e, -n * jnp.sum(self.log_scale[...]))


class Permute(nnx.Module):
    """A fixed permutation of the last axis (``reverse=True``: reversal); log det = 0."""

    def __init__(self, dim: int, *, seed: int | None = None, reverse: bool = False):
        perm = np.arange(dim)[::-1] if reverse else np.random.default_rng(seed).permutation(dim)
        self.perm = nnx.Variable(jnp.asarray(perm, jnp.int32))
        self.inv = nnx.Variable(jnp.asarray(np.argsort(perm), jnp.int32))

    def forward(self, x, ctx=None):
        return jnp.take(x, self.perm[...], axis=-1), jnp.zeros(())

    def inverse(self, z, ctx=None):
        return jnp.take(z, self.inv[...], axis=-1), jnp.zeros(())


class Invertible1x1Conv(nnx.Module):
    """z = x W over the channel axis, W = P L (U + diag(sign(s) exp(log|s|))) (Glow, LU form):
    log det = (H W) sum log|s|, O(C) instead of O(C^3). ``event_ndim`` as for ``ActNorm``."""

    def __init__(self, channels: int, event_ndim: int | None = None, *, rngs: nnx.Rngs):
        self.event_ndim = event_ndim
        q, _ = jnp.linalg.qr(jax.random.normal(rngs.params(), (channels, channels)))  # a random rotation
        p, lower, upper = jax.scipy.linalg.lu(q)
        s = jnp.diag(upper)
        self.p = nnx.Variable(p)
        self.lower = nnx.Param(lower)
        self.upper = nnx.Param(jnp.triu(upper, 1))
        self.sign = nnx.Variable(jnp.sign(s))
        self.log_s = nnx.Param(jnp.log(jnp.abs(s)))
        self.l_mask = nnx.Variable(jnp.tril(jnp.ones((channels, channels)), -1))

    def _w(self):
        c = self.log_s[...].shape[0]
        low = self.lower[...] * self.l_mask[...] + jnp.eye(c)
        up = self.upper[...] * self.l_mask[...].T + jnp.diag(self.sign[...] * jnp.exp(self.log_s[...]))
        return self.p[...] @ low @ up

    def forward(self, x, ctx=None):
        n = _event_size(x, self.event_ndim)
        return x @ self._w(), _per_example(x, self.event_ndim, n * jnp.sum(self.log_s[...]))

    def inverse(self, z, ctx=None):
        n = _event_size(z, self.event_ndim)
        return z @ jnp.linalg.inv(self._w()), _per_example(z, self.event_ndim, -n * jnp.sum(self.log_s[...]))


class MADE(nnx.Module):
    """Masked autoencoder for distribution estimation (Germain et al. 2015): outputs ``n_out``
    numbers per feature i that depend only on x_<i (in the order 0..D-1), plus the context."""

    def __init__(self, dim: int, hidden: Sequence[int], n_out: int = 2, context_dim: int = 0, *, rngs: nnx.Rngs):
        deg_in = np.arange(1, dim + 1)
        degs = [deg_in]
        for h in hidden:
            degs.append(np.arange(h) % max(dim - 1, 1) + 1)
        deg_out = np.repeat(deg_in, n_out)
        sizes = [dim, *hidden, dim * n_out]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        masks = [(degs[i + 1][None, :] >= degs[i][:, None]) for i in range(len(hidden))]
        masks.append(deg_out[None, :] > degs[-1][:, None])
        self.masks = nnx.List([nnx.Variable(jnp.asarray(m, jnp.float32)) for m in masks])
        self.ctx = nnx.Linear(context_dim, hidden[0], rngs=rngs) if context_dim else None
        last = self.layers[-1]
        last.kernel[...] = jnp.zeros_like(last.kernel[...])
        self.dim, self.n_out = dim, n_out

    def __call__(self, x, ctx=None):
        h = x
        for i, (layer, m) in enumerate(zip(self.layers, self.masks)):
            h = h @ (layer.kernel[...] * m[...]) + layer.bias[...]
            if i == 0 and self.ctx is not None:
                h = h + self.ctx(ctx)
            if i < len(self.layers) - 1:
                h = jax.nn.relu(h)
        return h.reshape(self.dim, self.n_out)


class MAF(nnx.Module):
    """Masked autoregressive flow layer (Papamakarios et al. 2017), density direction:
    z_i = (x_i - mu_i(x_<i)) exp(-alpha_i(x_<i)),  log det = -sum alpha: one pass to evaluate,
    D sequential passes to sample. ``inverse_autoregressive=True`` swaps the directions (IAF,
    Kingma et al. 2016): sampling is one pass, density evaluation D passes."""

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int],
        context_dim: int = 0,
        *,
        inverse_autoregressive=False,
        scale_clamp: float = 3.0,
        rngs: nnx.Rngs,
    ):
        self.made = MADE(dim, hidden, 2, context_dim, rngs=rngs)
        self.iaf, self.clamp, self.dim = bool(inverse_autoregressive), float(scale_clamp), dim

    def _ma(self, v, ctx):
        p = self.made(v, ctx)
        return p[:, 0], self.clamp * jnp.tanh(p[:, 1] / self.clamp)

    def _one_pass(self, x, ctx):  # x -> u = (x - mu(x)) exp(-alpha(x))
        mu, alpha = self._ma(x, ctx)
        return (x - mu) * jnp.exp(-alpha), -jnp.sum(alpha)

    def _sequential(self, u, ctx):  # u -> x with x = u exp(alpha(x)) + mu(x), D passes
        def body(_, x):
            mu, alpha = self._ma(x, ctx)
            return u * jnp.exp(alpha) + mu

        x = jax.lax.fori_loop(0, self.dim, body, jnp.zeros_like(u))
        _, alpha = self._ma(x, ctx)
        return x, jnp.sum(alpha)

    def forward(self, x, ctx=None):
        return self._sequential(x, ctx) if self.iaf else self._one_pass(x, ctx)

    def inverse(self, z, ctx=None):
        return self._one_pass(z, ctx) if self.iaf else self._sequential(z, ctx)


class LogitTransform(nnx.Module):
    """[0, 1]^D -> R^D: y = logit(a + (1 - 2a) x), log det = sum log((1 - 2a) / (p (1 - p))).
    The sum runs over the trailing ``event_ndim`` axes (None: all of one example)."""

    def __init__(self, alpha: float, event_ndim: int | None = None):
        self.alpha, self.event_ndim = float(alpha), event_ndim

    def _sum(self, v):
        return jnp.sum(v) if self.event_ndim is None else jnp.sum(v, tuple(range(-self.event_ndim, 0)))

    def forward(self, x, ctx=None):
        p = self.alpha + (1 - 2 * self.alpha) * x
        y = jnp.log(p) - jnp.log1p(-p)
        return y, self._sum(math.log(1 - 2 * self.alpha) - jnp.log(p) - jnp.log1p(-p))

    def inverse(self, y, ctx=None):
        p = jax.nn.sigmoid(y)
        x = (p - self.alpha) / (1 - 2 * self.alpha)
        return x, -self._sum(math.log(1 - 2 * self.alpha) - jnp.log(p) - jnp.log1p(-p))


class Reshape(nnx.Module):
    """A volume-preserving change of shape (images to vectors for the vector flows)."""

    def __init__(self, shape_in, shape_out):
        self.shape_in, self.shape_out = tuple(shape_in), tuple(shape_out)

    def forward(self, x, ctx=None):
        return x.reshape(self.shape_out), jnp.zeros(())

    def inverse(self, z, ctx=None):
        return z.reshape(self.shape_in), jnp.zeros(())


def _signature(graphdef, state):
    """What must match for two layers to share one traced body: the graph (type, static
    attributes) and every variable's shape and dtype."""
    return graphdef, jax.tree.map(lambda a: (jnp.shape(a), jnp.result_type(a)), state)


def _repeats(sigs: list, i: int, longest: int = 3) -> tuple[int, int]:
    """``(period, count)``: the layers from ``i`` on are ``count`` repeats of a block of
    ``period`` layers (the count largest over periods up to ``longest``; (1, 1): no repeat)."""
    best = (1, 1)
    for p in range(1, longest + 1):
        n = 1
        while i + (n + 1) * p <= len(sigs) and all(sigs[i + n * p + j] == sigs[i + j] for j in range(p)):
            n += 1
        if n > 1 and n * p > best[0] * best[1]:
            best = (p, n)
    return best


class Flow(nnx.Module):
    """A composition f = f_L o ... o f_1; log|det J_f| = sum_l log|det J_{f_l}|. ``batched``: every
    layer takes a batch (leading axes) itself, so callers need not vmap it (the image flows: a
    vmapped convolution of one example costs XLA layout copies a batch convolution does not).

    ``scan``: repeated layers (a block of up to three layers, e.g. ActNorm then a coupling,
    repeated with the same structure and shapes; their masks and weights differ) run as one
    ``lax.scan`` over their stacked variables, so XLA compiles one block instead of every layer;
    the same arithmetic in the same order as the layers one after another. It pays where a layer
    is many small kernels and little arithmetic, and costs where large weights are stacked at
    every call (measured on the 2-core CPU, ``genjax bench``: the 2-D spline flow's 8 couplings of
    64-64, epoch kernels 1,319 -> 717, compile 10.5 -> 8.3 s cold and 1.6 -> 0.8 s from the
    caches, 5.96 -> 5.31 ms a step; RealNVP's 8 couplings of 256-256 went from 0.94-1.02 of its
    plain-JAX twin's speed to 0.74-0.77), so ``build_flow`` scans the spline flows only. Not for
    convolutions on CPU (a convolution inside a loop is pathological there)."""

    def __init__(self, layers: Sequence[nnx.Module], *, batched: bool = False, scan: bool = False):
        self.layers = nnx.List(list(layers))
        self.batched, self.scan = bool(batched), bool(scan)

    def over_batch(self, method: str, x, ctx=None):
        """``forward`` or ``inverse`` of a batch ``x [B, ...]`` (contexts ``ctx [B, C]`` or None):
        called once on the batch when the flow is ``batched``, vmapped over examples otherwise."""
        fn = getattr(self, method)
        return fn(x, ctx) if self.batched else jax.vmap(fn)(x, ctx)

    def forward(self, x, ctx=None):
        return _compose(list(self.layers), "forward", x, ctx, self.scan)

    def inverse(self, z, ctx=None):
        return _compose(list(reversed(self.layers)), "inverse", z, ctx, self.scan)


def _compose(layers: list, method: str, x, ctx, scan: bool):
    """Apply ``layers`` in order (``method`` of each), summing their log-dets; with ``scan``,
    repeated blocks (``_repeats``) as one ``lax.scan``."""
    parts = [nnx.split(layer) for layer in layers] if scan else None  # (graphdef, state) of each
    sigs = [_signature(*part) for part in parts] if scan else None
    total = jnp.zeros(())
    i = 0
    while i < len(layers):
        period, count = _repeats(sigs, i) if scan else (1, 1)
        if count == 1:
            x, ld = getattr(layers[i], method)(x, ctx)
            total, i = total + ld, i + 1
            continue
        graphdefs = [parts[i + j][0] for j in range(period)]
        states = [[parts[i + n * period + j][1] for j in range(period)] for n in range(count)]
        stacked = jax.tree.map(lambda *a: jnp.stack(a), *states)

        def block(carry, state, graphdefs=graphdefs):
            x, total = carry
            for graphdef, st in zip(graphdefs, state, strict=True):
                x, ld = getattr(nnx.merge(graphdef, st), method)(x, ctx)
                total = total + ld
            return (x, total), None

        (x, total), _ = jax.lax.scan(block, (x, total), stacked)
        i += period * count
    return x, total
