"""Encoders (x -> mean, log-variance of a diagonal Gaussian) and decoders (z -> output map).

MLP versions work on any image shape (they flatten); conv versions downsample with strided
``Conv`` (kernel 4, stride 2) and upsample with ``ConvTranspose`` (kernel 4, stride 2), so an
image side must be divisible by ``2 ** len(channels)``: 8x8 and 32x32 with two or three stages,
28x28 with two (28 -> 14 -> 7). The ``pool`` pair downsamples with 2x2 max pooling and
upsamples with max-unpooling, putting each value back where the encoder's maximum was (its
switches) — for deterministic autoencoders, whose reconstructions may use the switches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from genjax.nn.layers import MLP, Dropout, activation, split_key


class MLPEncoder(nnx.Module):
    """Flatten ``[B, H, W, C]`` -> MLP -> (mean ``[B, K]``, log_var ``[B, K]``)."""

    def __init__(self, in_shape, hidden: Sequence[int], latent_dim: int, act="relu", dropout=0.0, *, rngs):
        self.mlp = MLP([math.prod(in_shape), *hidden, 2 * latent_dim], act, dropout, rngs=rngs)

    def __call__(self, x, key=None):
        h = self.mlp(x.reshape(x.shape[0], -1), key)
        mean, log_var = jnp.split(h, 2, axis=-1)
        return mean, log_var


class MLPDecoder(nnx.Module):
    """z ``[B, K]`` -> MLP -> ``[B, *out_shape]`` (logits or means)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], out_shape, act="relu", dropout=0.0, *, rngs):
        self.out_shape = tuple(out_shape)
        self.mlp = MLP([latent_dim, *hidden, math.prod(out_shape)], act, dropout, rngs=rngs)

    def __call__(self, z, key=None):
        return self.mlp(z, key).reshape(z.shape[0], *self.out_shape)


def _check_divisible(shape, n_stages: int, where: str):
    h, w = shape[0], shape[1]
    f = 2**n_stages
    if h % f or w % f:
        raise ValueError(
            f"{where}: image size {h}x{w} is not divisible by 2**len(model.channels) = {f}; "
            f"use fewer conv stages or an MLP."
        )


class ConvEncoder(nnx.Module):
    """[Conv(4, stride 2) -> act -> Dropout] per stage -> flatten -> Dense -> (mean, log_var)."""

    def __init__(self, in_shape, channels: Sequence[int], latent_dim: int, act="relu", dropout=0.0, *, rngs):
        _check_divisible(in_shape, len(channels), "ConvEncoder")
        chans = [in_shape[-1], *channels]
        self.convs = nnx.List(
            [nnx.Conv(a, b, (4, 4), strides=2, padding="SAME", rngs=rngs) for a, b in zip(chans[:-1], chans[1:])]
        )
        for i, conv in enumerate(self.convs):  # feature-map sizes, for the parameter table
            conv.in_map = (in_shape[0] // 2**i, in_shape[1] // 2**i, chans[i])
            conv.out_map = (in_shape[0] // 2 ** (i + 1), in_shape[1] // 2 ** (i + 1), chans[i + 1])
        f = 2 ** len(channels)
        flat = (in_shape[0] // f) * (in_shape[1] // f) * chans[-1]
        self.head = nnx.Linear(flat, 2 * latent_dim, rngs=rngs)
        self.act = activation(act)
        self.dropout = Dropout(dropout) if dropout > 0 else None

    def __call__(self, x, key=None):
        keys = split_key(key, len(self.convs))
        h = x
        for conv, k in zip(self.convs, keys):
            h = self.act(conv(h))
            if self.dropout is not None:
                h = self.dropout(h, k)
        mean, log_var = jnp.split(self.head(h.reshape(h.shape[0], -1)), 2, axis=-1)
        return mean, log_var


class ConvDecoder(nnx.Module):
    """Dense -> reshape to ``[H/2^n, W/2^n, c_0]`` -> [ConvTranspose(4, stride 2) -> act] ... ->
    ConvTranspose to ``out_channels``; output ``[B, H, W, out_channels]``."""

    def __init__(self, latent_dim: int, channels: Sequence[int], out_shape, act="relu", dropout=0.0, *, rngs):
        _check_divisible(out_shape, len(channels), "ConvDecoder")
        f = 2 ** len(channels)
        self.base = (out_shape[0] // f, out_shape[1] // f, channels[0])
        self.fc = nnx.Linear(latent_dim, math.prod(self.base), rngs=rngs)
        chans = [*channels, out_shape[-1]]
        self.deconvs = nnx.List(
            [
                nnx.ConvTranspose(a, b, (4, 4), strides=2, padding="SAME", rngs=rngs)
                for a, b in zip(chans[:-1], chans[1:])
            ]
        )
        for i, deconv in enumerate(self.deconvs):
            deconv.in_map = (self.base[0] * 2**i, self.base[1] * 2**i, chans[i])
            deconv.out_map = (self.base[0] * 2 ** (i + 1), self.base[1] * 2 ** (i + 1), chans[i + 1])
        self.act = activation(act)
        self.dropout = Dropout(dropout) if dropout > 0 else None

    def __call__(self, z, key=None):
        keys = split_key(key, len(self.deconvs))
        h = self.act(self.fc(z)).reshape(z.shape[0], *self.base)
        for i, (deconv, k) in enumerate(zip(self.deconvs, keys)):
            h = deconv(h)
            if i < len(self.deconvs) - 1:
                h = self.act(h)
                if self.dropout is not None:
                    h = self.dropout(h, k)
        return h


# ------------------------------------------------ max-pooling encoder / max-unpooling decoder


def max_pool_switches(h):
    """2x2 max pooling that also returns its switches (Zeiler & Fergus 2014): ``[B, H, W, C] ->
    (pooled [B, H/2, W/2, C], switches [B, H/2, W/2, C, 4])``, the switches a one-hot of the
    argmax's position in each 2x2 window (row-major)."""
    b, hh, ww, c = h.shape
    win = h.reshape(b, hh // 2, 2, ww // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(b, hh // 2, ww // 2, c, 4)
    return win.max(-1), jax.nn.one_hot(jnp.argmax(win, -1), 4, dtype=h.dtype)


def max_unpool(h, switches=None):
    """The inverse of ``max_pool_switches``: each value goes back to its window's argmax position,
    zeros elsewhere. Without switches (decoding a z that no encoder saw) every value goes to the
    top-left corner of its 2x2 block (Dosovitskiy & Brox 2016's unpooling)."""
    b, hh, ww, c = h.shape
    if switches is None:
        switches = jnp.zeros((b, hh, ww, c, 4), h.dtype).at[..., 0].set(1.0)
    up = (h[..., None] * switches).reshape(b, hh, ww, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    return up.reshape(b, 2 * hh, 2 * ww, c)


class PoolEncoder(nnx.Module):
    """[Conv(3, stride 1) -> act -> MaxPool(2)] per stage -> flatten -> Dense -> (mean, log_var);
    ``return_switches`` also gives each stage's pooling switches for ``UnpoolDecoder``."""

    def __init__(self, in_shape, channels: Sequence[int], latent_dim: int, act="relu", dropout=0.0, *, rngs):
        _check_divisible(in_shape, len(channels), "PoolEncoder")
        chans = [in_shape[-1], *channels]
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), rngs=rngs) for a, b in zip(chans[:-1], chans[1:])])
        f = 2 ** len(channels)
        self.head = nnx.Linear((in_shape[0] // f) * (in_shape[1] // f) * chans[-1], 2 * latent_dim, rngs=rngs)
        self.act = activation(act)
        self.dropout = Dropout(dropout) if dropout > 0 else None

    def __call__(self, x, key=None, return_switches: bool = False):
        h, switches = x, []
        for conv, k in zip(self.convs, split_key(key, len(self.convs))):
            h, s = max_pool_switches(self.act(conv(h)))
            switches.append(s)
            if self.dropout is not None:
                h = self.dropout(h, k)
        mean, log_var = jnp.split(self.head(h.reshape(h.shape[0], -1)), 2, axis=-1)
        return (mean, log_var, switches[::-1]) if return_switches else (mean, log_var)


class UnpoolDecoder(nnx.Module):
    """Dense -> reshape to ``[H/2^n, W/2^n, c_0]`` -> [MaxUnpool -> Conv(3) -> act] per stage, the
    last conv to ``out_channels`` without activation. ``switches`` (the encoder's, deepest first)
    put each value back where the encoder's max was; without them, at each block's top-left."""

    def __init__(self, latent_dim: int, channels: Sequence[int], out_shape, act="relu", dropout=0.0, *, rngs):
        _check_divisible(out_shape, len(channels), "UnpoolDecoder")
        f = 2 ** len(channels)
        self.base = (out_shape[0] // f, out_shape[1] // f, channels[0])
        self.fc = nnx.Linear(latent_dim, math.prod(self.base), rngs=rngs)
        chans = [*channels, out_shape[-1]]
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), rngs=rngs) for a, b in zip(chans[:-1], chans[1:])])
        self.act = activation(act)
        self.dropout = Dropout(dropout) if dropout > 0 else None

    def __call__(self, z, key=None, switches=None):
        keys = split_key(key, len(self.convs))
        h = self.act(self.fc(z)).reshape(z.shape[0], *self.base)
        for i, (conv, k) in enumerate(zip(self.convs, keys)):
            h = conv(max_unpool(h, None if switches is None else switches[i]))
            if i < len(self.convs) - 1:
                h = self.act(h)
                if self.dropout is not None:
                    h = self.dropout(h, k)
        return h


# ------------------------------------------------ grid encoder / decoder (a code per position)


class GridEncoder(nnx.Module):
    """A code vector per position: [Conv(4, stride 2) -> act] per stage, then a 1x1 conv to
    ``code_dim`` -> ``[B, H/2^n, W/2^n, code_dim]`` (``channels`` empty: no downsampling); or,
    for ``kind = "mlp"``, an MLP to ``positions x code_dim`` -> ``[B, positions, code_dim]``."""

    def __init__(self, kind: str, in_shape, code_dim: int, *, channels, hidden, positions: int, act="relu", rngs):
        self.kind = kind
        self.act = activation(act)
        if kind == "mlp":
            self.grid = (positions,)
            self.mlp = MLP([math.prod(in_shape), *hidden, positions * code_dim], act, rngs=rngs)
            return
        _check_divisible(in_shape, len(channels), "GridEncoder")
        chans = [in_shape[-1], *channels]
        self.convs = nnx.List(
            [nnx.Conv(a, b, (4, 4), strides=2, padding="SAME", rngs=rngs) for a, b in zip(chans[:-1], chans[1:])]
        )
        self.proj = nnx.Conv(chans[-1], code_dim, (1, 1), rngs=rngs)
        f = 2 ** len(channels)
        self.grid = (in_shape[0] // f, in_shape[1] // f)

    def __call__(self, x):
        if self.kind == "mlp":
            return self.mlp(x.reshape(x.shape[0], -1)).reshape(x.shape[0], *self.grid, -1)
        h = x
        for conv in self.convs:
            h = self.act(conv(h))
        return self.proj(h)


class GridDecoder(nnx.Module):
    """``GridEncoder``'s mirror: a 1x1 conv from ``code_dim`` -> act -> [ConvTranspose(4,
    stride 2) -> act] per stage, the last to the data's channels without activation; or an MLP."""

    def __init__(self, kind: str, code_dim: int, out_shape, *, channels, hidden, positions: int, act="relu", rngs):
        self.kind = kind
        self.act = activation(act)
        self.out_shape = tuple(out_shape)
        if kind == "mlp":
            self.mlp = MLP([positions * code_dim, *reversed(hidden), math.prod(out_shape)], act, rngs=rngs)
            return
        chans = [*reversed(channels), out_shape[-1]]
        self.proj = nnx.Conv(code_dim, chans[0], (1, 1), rngs=rngs)
        self.deconvs = nnx.List(
            [
                nnx.ConvTranspose(a, b, (4, 4), strides=2, padding="SAME", rngs=rngs)
                for a, b in zip(chans[:-1], chans[1:])
            ]
        )
        if not self.deconvs:  # no downsampling: a last 1x1 conv to the data's channels
            self.deconvs = nnx.List([nnx.Conv(chans[0], out_shape[-1], (1, 1), rngs=rngs)])

    def __call__(self, z):
        if self.kind == "mlp":
            return self.mlp(z.reshape(z.shape[0], -1)).reshape(z.shape[0], *self.out_shape)
        h = self.act(self.proj(z))
        for i, deconv in enumerate(self.deconvs):
            h = deconv(h)
            if i < len(self.deconvs) - 1:
                h = self.act(h)
        return h


def build_encoder(kind: str, in_shape, latent_dim: int, *, hidden, channels, act, dropout, rngs) -> nnx.Module:
    """``kind`` is ``"mlp"``, ``"conv"`` (strided convolutions) or ``"pool"`` (max pooling)."""
    if kind == "mlp":
        return MLPEncoder(in_shape, hidden, latent_dim, act, dropout, rngs=rngs)
    if kind == "conv":
        return ConvEncoder(in_shape, channels, latent_dim, act, dropout, rngs=rngs)
    if kind == "pool":
        return PoolEncoder(in_shape, channels, latent_dim, act, dropout, rngs=rngs)
    raise ValueError(f"model.arch must be 'mlp' or 'conv', got {kind!r}.")


def build_decoder(kind: str, latent_dim: int, out_shape, *, hidden, channels, act, dropout, rngs) -> nnx.Module:
    """``kind`` is ``"mlp"``, ``"conv"`` (ConvTranspose) or ``"pool"`` (max-unpooling);
    ``hidden``/``channels`` are given encoder-side and mirrored here."""
    if kind == "mlp":
        return MLPDecoder(latent_dim, tuple(reversed(hidden)), out_shape, act, dropout, rngs=rngs)
    if kind == "conv":
        return ConvDecoder(latent_dim, tuple(reversed(channels)), out_shape, act, dropout, rngs=rngs)
    if kind == "pool":
        return UnpoolDecoder(latent_dim, tuple(reversed(channels)), out_shape, act, dropout, rngs=rngs)
    raise ValueError(f"model.arch must be 'mlp' or 'conv', got {kind!r}.")


__all__ = [
    "MLPEncoder",
    "MLPDecoder",
    "ConvEncoder",
    "ConvDecoder",
    "PoolEncoder",
    "UnpoolDecoder",
    "build_encoder",
    "build_decoder",
    "max_pool_switches",
    "max_unpool",
]
