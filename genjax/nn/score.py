"""Noise / score networks eps_theta(x_t, t, y) for score-based and diffusion models.

* ``ScoreMLP`` — vectors: sinusoidal time embedding, residual MLP blocks that add a projection
  of the embedding to every hidden layer.
* ``UNet`` — images (8x8, 28x28, 32x32, ...): DDPM's U-Net in small (Ho et al. 2020; Ronneberger
  et al. 2015): residual conv blocks with group norm and SiLU taking the time embedding,
  a stride-2 convolution down and nearest-neighbour upsampling + convolution up per level,
  skip connections, and single-head self-attention at the lowest resolution.

Both take an optional class label ``y [B]`` (``n_classes > 0``): its embedding is added to the
time embedding. Index ``n_classes`` is the 'no label' token classifier-free guidance trains with
(label dropout) and samples against (Ho & Salimans 2022).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from genjax.nn.layers import activation


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """Transformer-style sinusoids of 1000 t (t in [0, 1]): [cos(1000 t w_k), sin(1000 t w_k)],
    w_k = max_period^(-k / (dim / 2)). ``[B] -> [B, dim]``."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    arg = 1000.0 * t.astype(jnp.float32)[:, None] * freqs[None]
    return jnp.concatenate([jnp.cos(arg), jnp.sin(arg)], axis=-1)


class Conditioning(nnx.Module):
    """t (and y) -> an embedding ``[B, width]``: sinusoids -> Linear -> act -> Linear, plus a
    learned label embedding (``n_classes + 1`` rows, the last one 'no label')."""

    def __init__(self, width: int, n_classes: int = 0, act: str = "silu", *, rngs: nnx.Rngs):
        self.width = width
        self.l1 = nnx.Linear(width, width, rngs=rngs)
        self.l2 = nnx.Linear(width, width, rngs=rngs)
        self.act = activation(act)
        self.label = nnx.Embed(n_classes + 1, width, rngs=rngs) if n_classes else None

    def __call__(self, t, y=None):
        e = self.l2(self.act(self.l1(timestep_embedding(t, self.width))))
        if self.label is not None:
            if y is None:
                raise ValueError("this network is class-conditional: it needs labels y.")
            e = e + self.label(y)
        return e


class ScoreMLP(nnx.Module):
    """eps_theta(x, t, y) for vectors ``[B, D]``: x -> Linear -> [block] * L -> Linear, each block
    h <- h + Linear(act(Linear(act(h)) + Linear(emb)))."""

    def __init__(self, dim: int, hidden: Sequence[int] = (128, 128, 128), act: str = "silu", n_classes: int = 0,
                 *, rngs: nnx.Rngs):  # fmt: skip
        self.check(hidden)
        width = int(hidden[0])
        self.cond = Conditioning(width, n_classes, act, rngs=rngs)
        self.inp = nnx.Linear(dim, width, rngs=rngs)
        self.blocks = nnx.List(
            [
                nnx.List(
                    [
                        nnx.Linear(width, width, rngs=rngs),
                        nnx.Linear(width, width, rngs=rngs),
                        nnx.Linear(width, width, rngs=rngs),
                    ]
                )  # fmt: skip
                for _ in hidden
            ]
        )
        self.out = nnx.Linear(width, dim, rngs=rngs)
        self.act = activation(act)

    @staticmethod
    def check(hidden: Sequence[int]) -> None:
        """Raise on widths the constructor cannot build (without building anything)."""
        if any(int(h) != int(hidden[0]) for h in hidden):
            raise ValueError(f"model.diffusion.hidden: the residual MLP needs equal widths, got {list(hidden)}.")

    def __call__(self, x, t, y=None):
        emb = self.cond(t, y)
        h = self.inp(x)
        for a, e, b in self.blocks:
            h = h + b(self.act(a(self.act(h)) + e(emb)))
        return self.out(self.act(h))


def _groups(channels: int, groups: int) -> int:
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


class ResBlock(nnx.Module):
    """GN -> SiLU -> conv3x3 -> (+ Linear(emb)) -> GN -> SiLU -> conv3x3, plus a 1x1 skip where
    the channel count changes."""

    def __init__(self, c_in: int, c_out: int, emb: int, groups: int, *, rngs: nnx.Rngs):
        self.n1 = nnx.GroupNorm(c_in, _groups(c_in, groups), rngs=rngs)
        self.c1 = nnx.Conv(c_in, c_out, (3, 3), rngs=rngs)
        self.e = nnx.Linear(emb, c_out, rngs=rngs)
        self.n2 = nnx.GroupNorm(c_out, _groups(c_out, groups), rngs=rngs)
        self.c2 = nnx.Conv(c_out, c_out, (3, 3), rngs=rngs, kernel_init=nnx.initializers.zeros_init())
        self.skip = nnx.Conv(c_in, c_out, (1, 1), rngs=rngs) if c_in != c_out else None

    def __call__(self, x, emb):
        h = self.c1(jax.nn.silu(self.n1(x)))
        h = h + self.e(jax.nn.silu(emb))[:, None, None, :]
        h = self.c2(jax.nn.silu(self.n2(h)))
        return h + (x if self.skip is None else self.skip(x))


class Attention(nnx.Module):
    """Single-head self-attention over the H x W positions, residual: x + W_o softmax(q k^T /
    sqrt(C)) v, with q, k, v = 1x1 projections of GN(x)."""

    def __init__(self, c: int, groups: int, *, rngs: nnx.Rngs):
        self.norm = nnx.GroupNorm(c, _groups(c, groups), rngs=rngs)
        self.qkv = nnx.Linear(c, 3 * c, rngs=rngs)
        self.o = nnx.Linear(c, c, rngs=rngs, kernel_init=nnx.initializers.zeros_init())

    def __call__(self, x):
        b, h, w, c = x.shape
        q, k, v = jnp.split(self.qkv(self.norm(x)).reshape(b, h * w, 3 * c), 3, axis=-1)
        att = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", q, k) / math.sqrt(c), axis=-1)
        return x + self.o(jnp.einsum("bqk,bkc->bqc", att, v)).reshape(b, h, w, c)


class UNet(nnx.Module):
    """eps_theta(x, t, y) for images ``[B, H, W, C]``; ``channels[i]`` at resolution H / 2^i.
    Each level halves the resolution (its sides must stay even until the last level)."""

    def __init__(self, shape: Sequence[int], channels: Sequence[int] = (32, 64), groups: int = 8,
                 attention: bool = True, n_classes: int = 0, *, rngs: nnx.Rngs):  # fmt: skip
        self.check(shape, channels)
        c_img = int(shape[2])
        channels = tuple(int(c) for c in channels)
        emb = 4 * channels[0]
        self.cond = Conditioning(emb, n_classes, "silu", rngs=rngs)
        self.inp = nnx.Conv(c_img, channels[0], (3, 3), rngs=rngs)
        down, skips, c = [], [channels[0]], channels[0]
        for i, ch in enumerate(channels):
            down.append(ResBlock(c, ch, emb, groups, rngs=rngs))
            c = ch
            skips.append(c)
            if i < len(channels) - 1:
                down.append(nnx.Conv(c, c, (3, 3), strides=(2, 2), rngs=rngs))
                skips.append(c)
        self.down = nnx.List(down)
        self.mid1 = ResBlock(c, c, emb, groups, rngs=rngs)
        self.attn = Attention(c, groups, rngs=rngs) if attention else None
        self.mid2 = ResBlock(c, c, emb, groups, rngs=rngs)
        up = []
        for i, ch in reversed(list(enumerate(channels))):
            for _ in range(2):
                up.append(ResBlock(c + skips.pop(), ch, emb, groups, rngs=rngs))
                c = ch
            if i > 0:
                up.append(nnx.Conv(c, c, (3, 3), rngs=rngs))  # after a nearest-neighbour x2
        self.up = nnx.List(up)
        self.norm = nnx.GroupNorm(c, _groups(c, groups), rngs=rngs)
        self.out = nnx.Conv(c, c_img, (3, 3), rngs=rngs, kernel_init=nnx.initializers.zeros_init())

    @staticmethod
    def check(shape: Sequence[int], channels: Sequence[int]) -> None:
        """Raise on a shape the levels cannot halve (without building anything)."""
        h, w = int(shape[0]), int(shape[1])
        for i in range(len(channels) - 1):
            if (h >> i) % 2 or (w >> i) % 2:
                raise ValueError(
                    f"model.diffusion.channels={[int(c) for c in channels]}: {len(channels)} levels halve {h}x{w} "
                    f"{len(channels) - 1} times, and {h >> i}x{w >> i} is odd; use fewer levels."
                )

    def __call__(self, x, t, y=None):
        emb = self.cond(t, y)
        h = self.inp(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        h = self.mid2(self.attn(self.mid1(h, emb)) if self.attn is not None else self.mid1(h, emb), emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(jnp.concatenate([h, hs.pop()], axis=-1), emb)
            else:
                b, hh, ww, c = h.shape
                h = layer(jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest"))
        return self.out(jax.nn.silu(self.norm(h)))
