"""Discrete bottlenecks: vector quantization (VQ-VAE) and finite scalar quantization (FSQ).

**Vector quantization** (van den Oord et al. 2017). An encoder output z_e in R^D is replaced by
its nearest codebook vector, z_q = e_k with k = argmin_j ||z_e - e_j||^2. The decoder sees
z_e + sg(z_q - z_e): z_q forward, the identity backward (the straight-through estimator), so the
reconstruction gradient reaches the encoder. Per code position the losses are

    codebook   ||sg(z_e) - e_k||^2      (moves the code; only when the codebook learns by gradient)
    commitment beta ||z_e - sg(e_k)||^2  (keeps the encoder near its code)

summed over the positions of an example (genjax's losses are per example, like the NLL).

**EMA codebook** (the VQ-VAE paper's appendix; the VQ-VAE-2 code): no codebook loss; with
n_k the batch's assignments to code k and s_k the sum of the z_e assigned to it,

    N_k <- gamma N_k + (1 - gamma) n_k,   m_k <- gamma m_k + (1 - gamma) s_k,
    e_k = m_k / N~_k,   N~_k = (N_k + eps) / (n + K eps) n,   n = sum_k N_k   (Laplace smoothing).

**Dead-code restarts** (Dhariwal et al. 2020, Jukebox): a code whose EMA count N_k falls below a
threshold is moved onto a random encoder output of the batch (m_k = that z_e, N_k = 1).

**Finite scalar quantization** (Mentzer et al. 2024): each of d dimensions is bounded to L_i
levels and rounded, z^_i = round(f(z_i)) / floor(L_i / 2) with
f(z) = tanh(z + tan(o / h)) h - o, h = (L - 1)(1 - 1e-3) / 2, o = 1/2 for even L (0 for odd);
rounding passes the gradient straight through. The codebook is implicit: prod_i L_i codes, the
index of a code sum_i (z^_i floor(L_i/2) + floor(L_i/2)) prod_{j<i} L_j. No auxiliary losses.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def nearest(z_e, codebook):
    """Index of the nearest code ``[...]`` for encoder outputs ``z_e [..., D]``, ``codebook [K, D]``
    (squared Euclidean distance; ties to the lowest index)."""
    z = z_e.astype(jnp.float32)
    e = codebook.astype(jnp.float32)
    d2 = jnp.sum(z * z, -1, keepdims=True) - 2.0 * z @ e.T + jnp.sum(e * e, -1)
    return jnp.argmin(d2, axis=-1)


def straight_through(z_e, z_q):
    """``z_q`` forward, gradient of the identity in ``z_e`` backward: z_e + sg(z_q - z_e)."""
    return z_e + jax.lax.stop_gradient(z_q - z_e)


def vq_losses(z_e, z_q, event_ndims: int):
    """(codebook ||sg(z_e) - z_q||^2, commitment ||z_e - sg(z_q)||^2), each summed over the last
    ``event_ndims`` axes (an example's positions and code dimensions) -> ``[B]`` each."""
    axes = tuple(range(z_e.ndim - event_ndims, z_e.ndim))
    sg = jax.lax.stop_gradient
    codebook = jnp.sum(jnp.square(sg(z_e) - z_q).astype(jnp.float32), axes)
    commit = jnp.sum(jnp.square(z_e - sg(z_q)).astype(jnp.float32), axes)
    return codebook, commit


def ema_update(counts, sums, z_e, idx, decay, eps: float = 1e-5):
    """One EMA codebook update (module docstring). ``counts [K]`` (N), ``sums [K, D]`` (m),
    ``z_e [..., D]`` and their codes ``idx [...]``. Returns (counts, sums, codebook)."""
    k = counts.shape[0]
    z = z_e.reshape(-1, z_e.shape[-1]).astype(jnp.float32)
    onehot = jax.nn.one_hot(idx.reshape(-1), k, dtype=jnp.float32)
    counts = decay * counts + (1.0 - decay) * jnp.sum(onehot, 0)
    sums = decay * sums + (1.0 - decay) * onehot.T @ z
    n = jnp.sum(counts)
    smoothed = (counts + eps) / (n + k * eps) * n
    return counts, sums, sums / smoothed[:, None]


def restart_dead(key, counts, sums, codebook, z_e, threshold):
    """Codes with ``counts < threshold`` moved onto random rows of ``z_e [..., D]`` (module
    docstring): their sum becomes that row and their count 1. Returns (counts, sums, codebook,
    number restarted)."""
    z = z_e.reshape(-1, z_e.shape[-1]).astype(jnp.float32)
    pick = z[jax.random.randint(key, (counts.shape[0],), 0, z.shape[0])]
    dead = counts < threshold
    counts = jnp.where(dead, 1.0, counts)
    sums = jnp.where(dead[:, None], pick, sums)
    codebook = jnp.where(dead[:, None], pick, codebook)
    return counts, sums, codebook, jnp.sum(dead).astype(jnp.float32)


def usage(idx, k: int):
    """(perplexity exp(H(p)), share of codes used) of the code frequencies p in ``idx``: the
    perplexity is k when every code is used equally often, 1 when one code takes all."""
    p = jnp.mean(jax.nn.one_hot(idx.reshape(-1), k, dtype=jnp.float32), 0)
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    return jnp.exp(entropy), jnp.mean((p > 0).astype(jnp.float32))


# ------------------------------------------------------------------ finite scalar quantization


class FSQ:
    """Finite scalar quantization with ``levels`` L_1..L_d (module docstring)."""

    def __init__(self, levels):
        self.levels = np.asarray(levels, np.int64)
        if self.levels.ndim != 1 or len(self.levels) == 0 or np.any(self.levels < 2):
            raise ValueError(f"FSQ levels must be integers >= 2 per dimension, got {tuple(levels)}.")
        self.half = self.levels // 2
        self.basis = np.concatenate([[1], np.cumprod(self.levels[:-1])]).astype(np.int64)

    @property
    def dim(self) -> int:
        return len(self.levels)

    @property
    def size(self) -> int:
        """Codes in the implicit codebook: prod L_i."""
        return int(math.prod(int(v) for v in self.levels))

    def bound(self, z):
        lv = self.levels.astype(np.float32)
        h = (lv - 1.0) * (1.0 - 1e-3) / 2.0
        o = np.where(self.levels % 2 == 1, 0.0, 0.5).astype(np.float32)
        return jnp.tanh(z + np.tan(o / h)) * h - o

    def quantize(self, z):
        """z^ ``[..., d]``: bounded, rounded (straight-through), divided by floor(L/2)."""
        b = self.bound(z)
        return straight_through(b, jnp.round(b)) / self.half.astype(np.float32)

    def index(self, zhat):
        """Code index ``[...]`` (int32) of quantized ``zhat [..., d]``."""
        digits = jnp.round(zhat * self.half + self.half).astype(jnp.int32)
        return jnp.sum(digits * self.basis.astype(np.int32), -1)

    def code(self, idx):
        """The quantized vector ``[..., d]`` of code index ``idx [...]`` (``index``'s inverse)."""
        digits = (jnp.asarray(idx, jnp.int32)[..., None] // self.basis.astype(np.int32)) % self.levels.astype(np.int32)
        return (digits.astype(jnp.float32) - self.half) / self.half.astype(np.float32)
