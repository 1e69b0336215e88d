"""Autoregressive networks: each maps a sequence (or image) of tokens to next-token logits, with
output d depending only on the tokens before d in the model's ordering.

* ``MADE`` (Germain et al. 2015): a masked MLP; natural or random orderings, several orderings
  in one network (connectivity-agnostic training: each mask set is an ordering with its own
  random hidden degrees).
* ``PixelCNN`` (van den Oord et al. 2016, "Pixel Recurrent Neural Networks"): a masked 7x7
  convolution of type A (the centre pixel hidden) then residual blocks of type-B masked 3x3
  convolutions; ``gated=True``: the gated blocks of van den Oord et al. 2016b ("Conditional Image
  Generation with PixelCNN Decoders") with a vertical and a horizontal stack, which removes the
  plain network's blind spot.
* ``Bigram``: a table of next-token logits indexed by the previous token.
* ``Transformer``: GPT-style (Radford et al. 2018): token and learned position embeddings, pre-norm
  blocks of multi-head causal self-attention (``jax.nn.dot_product_attention``) and an MLP,
  residuals, dropout, optional tied input/output embeddings, and a key-value cache for sampling
  one token at a time.

Every network here works on a batch; dropout takes an explicit key (``None``: evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genjax.nn.layers import Dropout, split_key


def made_masks(dim: int, hidden: Sequence[int], order: np.ndarray, rng: np.random.Generator | None, n_out: int):
    """The masks of a MADE for the ordering ``order`` (``order[d]``: the position of input d in
    the ordering, 0..D-1): hidden unit degrees m(k) in 1..D-1 (evenly spread, or drawn with
    ``rng`` from Germain et al.'s U{min of the layer below, .., D-1});
    a hidden unit of degree m sees inputs of degree <= m; output d (``n_out`` numbers each) sees
    hidden units of degree < its own degree ``order[d] + 1``. Returns ``[in, out]`` 0/1 arrays."""
    deg_in = order + 1
    degs = [deg_in]
    for h in hidden:
        lo = int(np.min(degs[-1])) if len(degs) > 1 else 1
        if rng is None:  # evenly spread over 1..D-1 (cycling them would leave inputs unused when h < D - 1)
            degs.append(np.round(np.linspace(1, max(dim - 1, 1), h)).astype(np.int64))
        else:
            degs.append(rng.integers(min(lo, max(dim - 1, 1)), max(dim - 1, 1) + 1, size=h))
    masks = [(degs[i + 1][None, :] >= degs[i][:, None]) for i in range(len(hidden))]
    masks.append(np.repeat(deg_in, n_out)[None, :] > degs[-1][:, None])
    return [m.astype(np.float32) for m in masks]


class MADE(nnx.Module):
    """Masked MLP ``x [B, D] -> [B, D, n_out]``: output d depends only on the inputs before d in
    the ordering in use (``which``, one of ``n_orders``), and on the context ``ctx [B, C]``."""

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int],
        n_out: int,
        *,
        n_orders: int = 1,
        random_order: bool = False,
        context_dim: int = 0,
        seed: int = 0,
        rngs: nnx.Rngs,
    ):
        hidden = tuple(int(h) for h in hidden)
        if not hidden:
            raise ValueError("model.autoregressive.hidden must name at least one hidden layer for MADE.")
        rng = np.random.default_rng(seed)
        orders, sets = [], []
        for k in range(n_orders):
            order = rng.permutation(dim) if (random_order or k > 0) else np.arange(dim)
            orders.append(order)
            sets.append(made_masks(dim, hidden, order, rng if (random_order or k > 0) else None, n_out))
        sizes = [dim, *hidden, dim * n_out]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        # per layer: the mask sets of every ordering stacked [n_orders, in, out]
        self.masks = nnx.List([nnx.Variable(jnp.asarray(np.stack(ms))) for ms in zip(*sets)])
        self.orders = nnx.Variable(jnp.asarray(np.stack(orders), jnp.int32))  # [n_orders, D]: position of input d
        self.ctx = nnx.Linear(context_dim, hidden[0], rngs=rngs) if context_dim else None
        self.dim, self.n_out, self.n_orders = dim, n_out, n_orders

    def __call__(self, x, ctx=None, which=0):
        h = x
        for i, (layer, m) in enumerate(zip(self.layers, self.masks)):
            h = h @ (layer.kernel[...] * m[...][which]) + layer.bias[...]
            if i == 0 and self.ctx is not None:
                h = h + self.ctx(ctx)
            if i < len(self.layers) - 1:
                h = jax.nn.relu(h)
        return h.reshape(*x.shape[:-1], self.dim, self.n_out)

    def sampler(self, n: int, ctx=None, which=0):
        """The pieces of sampling one position at a time with the first layer kept up to date
        instead of recomputed: ``(a, add, out)`` — ``a [n, H1]`` the first layer's pre-activation
        for all-zero inputs, ``add(a, p, v)`` that pre-activation once input ``p`` takes the values
        ``v [n]`` (a rank-one update, ``a + v W1[p]``: the masked first layer is linear in the
        inputs), ``out(a, p)`` the outputs of position ``p`` ``[n, n_out]`` (the hidden layers,
        then only position p's columns of the last). Per position that is H1 + the middle layers
        + H_last * n_out multiply-adds instead of the whole network's D * H1 + ... + H_last * D *
        n_out: the same function, rounded differently (``__call__`` sums the inputs in one matmul)."""
        first, *rest = [layer.kernel[...] * m[...][which] for layer, m in zip(self.layers, self.masks)]
        a = jnp.broadcast_to(self.layers[0].bias[...], (n, first.shape[1]))
        if self.ctx is not None:
            a = a + self.ctx(ctx)
        last = rest[-1].reshape(rest[-1].shape[0], self.dim, self.n_out)
        last_b = self.layers[-1].bias[...].reshape(self.dim, self.n_out)

        def add(a, p, v):
            return a + v[:, None] * first[p]

        def out(a, p):
            h = jax.nn.relu(a)
            for w, layer in zip(rest[:-1], self.layers[1:-1]):
                h = jax.nn.relu(h @ w + layer.bias[...])
            return h @ last[:, p] + last_b[p]

        return a, add, out


def conv_mask(k: int, kind: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A spatial mask ``[kh, kw]`` for a raster-order masked convolution: ``A`` — the rows above
    the centre and the pixels left of it; ``B`` — also the centre; ``V`` (the gated vertical
    stack) — the rows up to and including the centre row, every column."""
    kh, kw = shape or (k, k)
    m = np.zeros((kh, kw), np.float32)
    ci, cj = kh // 2, kw // 2
    m[:ci] = 1.0
    if kind == "V":
        m[ci] = 1.0
    else:
        m[ci, :cj] = 1.0
        if kind == "B":
            m[ci, cj] = 1.0
    return m


class MaskedConv(nnx.Module):
    """A 'SAME' convolution whose kernel is multiplied by a fixed spatial mask."""

    def __init__(self, c_in: int, c_out: int, k: int, kind: str, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(c_in, c_out, (k, k), padding="SAME", rngs=rngs)
        self.mask = nnx.Variable(jnp.asarray(conv_mask(k, kind))[:, :, None, None])

    def __call__(self, x):
        w = self.conv.kernel[...] * self.mask[...]
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + self.conv.bias[...]


class GatedBlock(nnx.Module):
    """One gated PixelCNN layer: vertical stack v (rows <= i), horizontal stack h (row i, columns
    <= j; < j in the first layer), h fed by v shifted down one row; y = tanh(a) * sigmoid(b);
    a class embedding adds to both gates."""

    def __init__(self, c: int, k: int, first: bool, n_classes: int, *, rngs: nnx.Rngs):
        self.v = MaskedConv(c, 2 * c, k, "V", rngs=rngs)
        self.h = MaskedConv(c, 2 * c, k, "A" if first else "B", rngs=rngs)
        self.v2h = nnx.Conv(2 * c, 2 * c, (1, 1), rngs=rngs)
        self.h_out = nnx.Conv(c, c, (1, 1), rngs=rngs)
        self.cls = nnx.Embed(n_classes, 4 * c, rngs=rngs) if n_classes else None
        self.first = first

    def __call__(self, v, h, y=None):
        gv, gh = self.v(v), self.h(h)
        gh = gh + self.v2h(jnp.pad(gv, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1])  # v from the row above
        if self.cls is not None:
            cv, ch = jnp.split(self.cls(y)[:, None, None, :], 2, axis=-1)
            gv, gh = gv + cv, gh + ch
        gate = lambda g: jnp.tanh(g[..., : g.shape[-1] // 2]) * jax.nn.sigmoid(g[..., g.shape[-1] // 2 :])  # noqa: E731
        out = self.h_out(gate(gh))
        return gate(gv), out if self.first else h + out


class PixelCNN(nnx.Module):
    """``x [B, H, W, 1] -> logits [B, H, W, 1, n_out]``: the output at pixel (i, j) sees only the
    pixels before (i, j) in raster order (and the class ``y [B]`` when ``n_classes > 0``)."""

    def __init__(
        self,
        n_out: int,
        channels: int = 64,
        n_layers: int = 5,
        *,
        gated: bool = False,
        first_kernel: int = 7,
        kernel: int = 3,
        n_classes: int = 0,
        rngs: nnx.Rngs,
    ):
        c = channels
        self.gated = gated
        if gated:
            self.inp = nnx.Conv(1, c, (1, 1), rngs=rngs)
            self.blocks = nnx.List(
                [GatedBlock(c, kernel if i else first_kernel, i == 0, n_classes, rngs=rngs) for i in range(n_layers)]
            )
        else:
            self.first = MaskedConv(1, 2 * c, first_kernel, "A", rngs=rngs)
            self.blocks = nnx.List(
                [
                    nnx.List(
                        [
                            nnx.Conv(2 * c, c, (1, 1), rngs=rngs),
                            MaskedConv(c, c, kernel, "B", rngs=rngs),
                            nnx.Conv(c, 2 * c, (1, 1), rngs=rngs),
                        ]
                    )
                    for _ in range(n_layers)
                ]
            )
            self.cls = nnx.Embed(n_classes, 2 * c, rngs=rngs) if n_classes else None
        width = c if gated else 2 * c
        self.head1 = nnx.Conv(width, width, (1, 1), rngs=rngs)
        self.head2 = nnx.Conv(width, n_out, (1, 1), rngs=rngs)
        self.n_out = n_out

    def __call__(self, x, y=None):
        if self.gated:
            v = h = self.inp(x)
            for blk in self.blocks:
                v, h = blk(v, h, y)
        else:
            h = self.first(x)
            if self.cls is not None:
                h = h + self.cls(y)[:, None, None, :]
            for a, b, c in self.blocks:
                h = h + c(jax.nn.relu(b(jax.nn.relu(a(jax.nn.relu(h))))))
        out = self.head2(jax.nn.relu(self.head1(jax.nn.relu(h))))
        return out[..., None, :]


class Bigram(nnx.Module):
    """Next-token logits from the previous token alone: ``table[prev]``. Start tokens (one per
    class, or one) index the rows after the vocabulary."""

    def __init__(self, vocab: int, n_start: int, *, rngs: nnx.Rngs):
        self.table = nnx.Param(jnp.zeros((vocab + n_start, vocab)))

    def __call__(self, prev):
        return self.table[...][prev]


class Block(nnx.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, d: int, heads: int, mlp_ratio: int, dropout: float, *, rngs: nnx.Rngs):
        if d % heads:
            raise ValueError(f"model.autoregressive.d_model={d} must be a multiple of n_heads={heads}.")
        self.ln1, self.ln2 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)
        self.qkv = nnx.Linear(d, 3 * d, rngs=rngs)
        self.proj = nnx.Linear(d, d, rngs=rngs)
        self.fc1, self.fc2 = nnx.Linear(d, mlp_ratio * d, rngs=rngs), nnx.Linear(mlp_ratio * d, d, rngs=rngs)
        self.drop = Dropout(dropout, fixed=True)  # not a sweep setting
        self.heads = heads

    def _qkv(self, x):
        b, t, d = x.shape
        q, k, v = jnp.split(self.qkv(self.ln1(x)), 3, axis=-1)
        return [a.reshape(b, t, self.heads, d // self.heads) for a in (q, k, v)]

    def _rest(self, x, att, keys):
        k1, k2 = keys
        x = x + self.drop(self.proj(att.reshape(x.shape)), k1)
        return x + self.drop(self.fc2(jax.nn.gelu(self.fc1(self.ln2(x)))), k2)

    def __call__(self, x, key=None):
        q, k, v = self._qkv(x)
        att = jax.nn.dot_product_attention(q, k, v, is_causal=True)
        return self._rest(x, att, split_key(key, 2))

    def step(self, x, cache, t):
        """One position ``x [B, 1, d]`` at index ``t``, attending to the cached keys and values
        ``cache = (K, V) [B, T, heads, dh]`` of positions < t; returns (out, updated cache)."""
        q, k, v = self._qkv(x)
        ck = jax.lax.dynamic_update_slice_in_dim(cache[0], k.astype(cache[0].dtype), t, axis=1)
        cv = jax.lax.dynamic_update_slice_in_dim(cache[1], v.astype(cache[1].dtype), t, axis=1)
        mask = (jnp.arange(ck.shape[1]) <= t)[None, None, None, :]
        att = jax.nn.dot_product_attention(q, ck, cv, mask=mask)
        return self._rest(x, att, (None, None)), (ck, cv)


class Transformer(nnx.Module):
    """GPT-style causal transformer over token ids ``[B, T] -> logits [B, T, vocab]``. The input
    at position t is the token t - 1 (a start token at t = 0), so logits[t] predict token t."""

    def __init__(
        self,
        vocab: int,
        n_start: int,
        max_len: int,
        d_model: int = 128,
        n_layers: int = 4,
        n_heads: int = 4,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        tie: bool = True,
        *,
        rngs: nnx.Rngs,
    ):
        self.tok = nnx.Embed(vocab + n_start, d_model, embedding_init=nnx.initializers.normal(0.02), rngs=rngs)
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (max_len, d_model)))
        self.blocks = nnx.List([Block(d_model, n_heads, mlp_ratio, dropout, rngs=rngs) for _ in range(n_layers)])
        self.ln = nnx.LayerNorm(d_model, rngs=rngs)
        self.head = None if tie else nnx.Linear(d_model, vocab, use_bias=False, rngs=rngs)
        self.drop = Dropout(dropout, fixed=True)  # not a sweep setting
        self.vocab, self.d_model, self.n_heads, self.max_len = vocab, d_model, n_heads, max_len

    def _logits(self, h):
        h = self.ln(h)
        if self.head is None:  # tied: the token embeddings of the vocabulary (not the start tokens)
            return h @ self.tok.embedding[...][: self.vocab].T.astype(h.dtype)
        return self.head(h)

    def __call__(self, inp, key=None):
        """``inp [B, T]`` (start token, then tokens 0..T-2) -> logits ``[B, T, vocab]``."""
        t = inp.shape[1]
        ks = split_key(key, len(self.blocks) + 1)
        h = self.drop(self.tok(inp) + self.pos[...][:t].astype(self.tok.embedding[...].dtype), ks[0])
        for blk, k in zip(self.blocks, ks[1:]):
            h = blk(h, k)
        return self._logits(h)

    def init_cache(self, batch: int, dtype=jnp.float32):
        dh = self.d_model // self.n_heads
        z = jnp.zeros((batch, self.max_len, self.n_heads, dh), dtype)
        return [(z, z) for _ in self.blocks]

    def step(self, tok, cache, t):
        """The logits ``[B, vocab]`` after input token ``tok [B]`` at position ``t``, and the
        cache with position t's keys and values added."""
        h = self.tok(tok[:, None]) + self.pos[...][t][None, None].astype(self.tok.embedding[...].dtype)
        new = []
        for blk, c in zip(self.blocks, cache):
            h, c = blk.step(h, c, t)
            new.append(c)
        return self._logits(h)[:, 0], new
