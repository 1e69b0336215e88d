"""Generators and discriminators for the GAN family.

* ``MLPGenerator`` / ``MLPDiscriminator``: for 2-D data (and small images, flattened).
* ``ConvGenerator`` / ``ConvDiscriminator`` (DCGAN-style, Radford et al. 2016): the generator maps
  z through a dense layer to a ``[H/2^n, W/2^n, c_0]`` map, ``ConvTranspose`` (kernel 4,
  stride 2) stages up to the image size and a 3x3 conv to its channels; the discriminator goes
  down with strided ``Conv`` (kernel 4, stride 2, leaky ReLU 0.2). No batch normalization: the
  discriminator must stay a per-example function for the gradient penalty, and the generator
  starts He-initialized instead.

Conditioning on a class ``y`` (``n_classes > 0``): the generator reads ``[z, onehot(y)]``; the
discriminator is a projection discriminator (Miyato & Koyama 2018):
``D(x, y) = w . h(x) + b + embed(y) . h(x)``, with ``h`` its last hidden features.

``spectral_norm=True`` builds every discriminator layer spectrally normalized
(``genjax.nn.spectral``); a call with ``update=True`` (training) advances the power iteration.
Dropout in the discriminator takes a key (``None`` = evaluation), as elsewhere in ``genjax.nn``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from genjax.nn.encoders import _check_divisible
from genjax.nn.layers import Dropout, activation, split_key
from genjax.nn.spectral import SNConv, SNLinear

_OUTPUTS = {"tanh": jax.nn.tanh, "sigmoid": jax.nn.sigmoid}


def output_activation(name: str):
    """The generator's output squashing: tanh onto (-1, 1) or sigmoid onto (0, 1)."""
    try:
        return _OUTPUTS[name]
    except KeyError:
        raise ValueError(f"the generator output must be one of {sorted(_OUTPUTS)}, got {name!r}.") from None


def _with_class(z, y, n_classes: int):
    return z if n_classes == 0 else jnp.concatenate([z, jax.nn.one_hot(y, n_classes, dtype=z.dtype)], -1)


def _dense(a: int, b: int, sn: bool, rngs):
    return SNLinear(a, b, rngs=rngs) if sn else nnx.Linear(a, b, rngs=rngs)


def _call(layer, x, update: bool):
    return layer(x, update) if isinstance(layer, SNLinear | SNConv) else layer(x)


class _Head(nnx.Module):
    """Features ``h [B, F]`` -> logit ``[B]``, with the class projection when conditional."""

    def __init__(self, features: int, n_classes: int, sn: bool, *, rngs):
        self.out = _dense(features, 1, sn, rngs)
        self.n_classes = n_classes
        if n_classes:
            self.embed = nnx.Embed(n_classes, features, rngs=rngs)

    def __call__(self, h, y, update):
        logit = _call(self.out, h, update)[:, 0]
        if self.n_classes:
            logit = logit + jnp.sum(self.embed(y) * h, -1)
        return logit


class MLPGenerator(nnx.Module):
    """[z, onehot(y)] -> MLP(hidden, act) -> ``[B, *out_shape]`` through ``out_act``."""

    def __init__(self, latent_dim, hidden: Sequence[int], out_shape, act="relu", out_act=None, n_classes=0, *, rngs):
        sizes = [latent_dim + n_classes, *hidden, math.prod(out_shape)]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.act, self.out_act = activation(act), (output_activation(out_act) if out_act else None)
        self.out_shape, self.n_classes = tuple(out_shape), n_classes

    def __call__(self, z, y=None):
        h = _with_class(z, y, self.n_classes)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self.act(h)
        h = h if self.out_act is None else self.out_act(h)
        return h.reshape(z.shape[0], *self.out_shape)


class MLPDiscriminator(nnx.Module):
    """flatten x -> [Linear -> act -> Dropout] * len(hidden) -> head -> logit ``[B]``."""

    def __init__(self, in_shape, hidden: Sequence[int], act="leaky_relu", dropout=0.0, n_classes=0, sn=False, *, rngs):
        sizes = [math.prod(in_shape), *hidden]
        self.layers = nnx.List([_dense(a, b, sn, rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.head = _Head(sizes[-1], n_classes, sn, rngs=rngs)
        self.act = activation(act)
        self.dropout = Dropout(dropout) if dropout > 0 else None

    def __call__(self, x, y=None, key=None, update: bool = False):
        h = x.reshape(x.shape[0], -1)
        for layer, k in zip(self.layers, split_key(key, len(self.layers))):
            h = self.act(_call(layer, h, update))
            if self.dropout is not None:
                h = self.dropout(h, k)
        return self.head(h, y, update)


class ConvGenerator(nnx.Module):
    """[z, onehot(y)] -> Dense -> ``[H/2^n, W/2^n, c_0]`` -> [ConvTranspose(4, 2) -> act] per
    stage -> Conv(3x3, stride 1) to the image channels -> ``out_act``. ``channels`` run from the
    smallest map up (e.g. (128, 64) for 8x8 or 28x28, (256, 128, 64) for 32x32); every stage
    keeps an activation and the last 3x3 conv mixes neighbouring pixels, so the output has no
    stride-2 parity pattern (a ConvTranspose straight to the image gives each pixel parity its
    own kernel taps, and a critic learns to spot them). Kernels start He-scaled for stride 2:
    with the default (LeCun) initialization the output varied with z by about 4% of the data's
    spread, and the critic won before the generator learned to use z."""

    def __init__(self, latent_dim, channels: Sequence[int], out_shape, act="relu", out_act=None, n_classes=0, *, rngs):
        _check_divisible(out_shape, len(channels), "ConvGenerator")
        f = 2 ** len(channels)
        self.base = (out_shape[0] // f, out_shape[1] // f, channels[0])
        he = nnx.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
        # a stride-2 transposed conv reaches each output pixel with a quarter of its kernel taps:
        # 4x the He variance keeps activations (and the spread over z) from shrinking per stage
        he_up = nnx.initializers.variance_scaling(8.0, "fan_in", "truncated_normal")
        self.fc = nnx.Linear(latent_dim + n_classes, math.prod(self.base), kernel_init=he, rngs=rngs)
        chans = [*channels, channels[-1]]
        self.deconvs = nnx.List(
            [
                nnx.ConvTranspose(a, b, (4, 4), strides=2, padding="SAME", kernel_init=he_up, rngs=rngs)
                for a, b in zip(chans[:-1], chans[1:])
            ]
        )
        for i, d in enumerate(self.deconvs):  # feature-map sizes, for the parameter table
            d.in_map = (self.base[0] * 2**i, self.base[1] * 2**i, chans[i])
            d.out_map = (self.base[0] * 2 ** (i + 1), self.base[1] * 2 ** (i + 1), chans[i + 1])
        self.out = nnx.Conv(chans[-1], out_shape[-1], (3, 3), padding="SAME", rngs=rngs)
        self.out.in_map = (*out_shape[:2], chans[-1])
        self.out.out_map = tuple(out_shape)
        self.act, self.out_act = activation(act), (output_activation(out_act) if out_act else None)
        self.n_classes = n_classes

    def __call__(self, z, y=None):
        h = self.act(self.fc(_with_class(z, y, self.n_classes))).reshape(z.shape[0], *self.base)
        for d in self.deconvs:
            h = self.act(d(h))
        h = self.out(h)
        return h if self.out_act is None else self.out_act(h)


class ConvDiscriminator(nnx.Module):
    """[Conv(4, stride 2) -> act -> Dropout] per stage -> flatten -> head -> logit ``[B]``."""

    def __init__(
        self, in_shape, channels: Sequence[int], act="leaky_relu", dropout=0.0, n_classes=0, sn=False, *, rngs
    ):
        _check_divisible(in_shape, len(channels), "ConvDiscriminator")
        chans = [in_shape[-1], *channels]
        conv = (
            (lambda a, b: SNConv(a, b, rngs=rngs))
            if sn
            else (lambda a, b: nnx.Conv(a, b, (4, 4), strides=2, padding="SAME", rngs=rngs))
        )
        self.convs = nnx.List([conv(a, b) for a, b in zip(chans[:-1], chans[1:])])
        for i, c in enumerate(self.convs):
            c.in_map = (in_shape[0] // 2**i, in_shape[1] // 2**i, chans[i])
            c.out_map = (in_shape[0] // 2 ** (i + 1), in_shape[1] // 2 ** (i + 1), chans[i + 1])
        f = 2 ** len(channels)
        self.head = _Head((in_shape[0] // f) * (in_shape[1] // f) * chans[-1], n_classes, sn, rngs=rngs)
        self.act = activation(act)
        self.dropout = Dropout(dropout) if dropout > 0 else None

    def __call__(self, x, y=None, key=None, update: bool = False):
        h = x
        for c, k in zip(self.convs, split_key(key, len(self.convs))):
            h = self.act(_call(c, h, update))
            if self.dropout is not None:
                h = self.dropout(h, k)
        return self.head(h.reshape(h.shape[0], -1), y, update)


def build_generator(arch, latent_dim, out_shape, *, hidden, channels, act, out_act, n_classes, rngs):
    if arch == "mlp":
        return MLPGenerator(latent_dim, hidden, out_shape, act, out_act, n_classes, rngs=rngs)
    if arch == "conv":
        return ConvGenerator(latent_dim, channels, out_shape, act, out_act, n_classes, rngs=rngs)
    raise ValueError(f"model.arch must be 'mlp' or 'conv', got {arch!r}.")


def build_discriminator(arch, in_shape, *, hidden, channels, act, dropout, n_classes, sn, rngs):
    if arch == "mlp":
        return MLPDiscriminator(in_shape, hidden, act, dropout, n_classes, sn, rngs=rngs)
    if arch == "conv":
        return ConvDiscriminator(in_shape, channels, act, dropout, n_classes, sn, rngs=rngs)
    raise ValueError(f"model.arch must be 'mlp' or 'conv', got {arch!r}.")
