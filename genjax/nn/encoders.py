"""Encoders (x -> mean, log-variance of a diagonal Gaussian) and decoders (z -> output map).

MLP versions work on any image shape (they flatten); conv versions downsample with strided
``Conv`` (kernel 4, stride 2) and upsample with ``ConvTranspose`` (kernel 4, stride 2), so an
image side must be divisible by ``2 ** len(channels)``: 8x8 and 32x32 with two or three stages,
28x28 with two (28 -> 14 -> 7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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


def build_encoder(kind: str, in_shape, latent_dim: int, *, hidden, channels, act, dropout, rngs) -> nnx.Module:
    """``kind`` is ``"mlp"`` or ``"conv"``."""
    if kind == "mlp":
        return MLPEncoder(in_shape, hidden, latent_dim, act, dropout, rngs=rngs)
    if kind == "conv":
        return ConvEncoder(in_shape, channels, latent_dim, act, dropout, rngs=rngs)
    raise ValueError(f"model.arch must be 'mlp' or 'conv', got {kind!r}.")


def build_decoder(kind: str, latent_dim: int, out_shape, *, hidden, channels, act, dropout, rngs) -> nnx.Module:
    """``kind`` is ``"mlp"`` or ``"conv"``; ``hidden``/``channels`` are given encoder-side and
    mirrored here."""
    if kind == "mlp":
        return MLPDecoder(latent_dim, tuple(reversed(hidden)), out_shape, act, dropout, rngs=rngs)
    if kind == "conv":
        return ConvDecoder(latent_dim, tuple(reversed(channels)), out_shape, act, dropout, rngs=rngs)
    raise ValueError(f"model.arch must be 'mlp' or 'conv', got {kind!r}.")


__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "build_encoder", "build_decoder"]
