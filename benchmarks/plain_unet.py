"""A plain-JAX DDPM training step (jnp + lax + optax, no Flax) with exactly the shapes of
genjax's ``UNet`` (``genjax/nn/score.py``): the reference ``diffusion_step.py`` times genjax
against. One level per entry of ``channels``: a residual block (group norm, SiLU, 3x3 convs, time
embedding added), a stride-2 conv down; the middle: residual block, single-head self-attention,
residual block; up: two residual blocks on [h, skip] per level, nearest x2 + 3x3 conv.
Loss: L_simple on the linear VP process (beta 0.1 .. 20) at T = 1000 discrete steps.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def _dense(key, a, b):
    return {"w": jax.random.normal(key, (a, b)) / math.sqrt(a), "b": jnp.zeros(b)}


def _conv(key, cin, cout, k=3):
    return {"w": jax.random.normal(key, (k, k, cin, cout)) / math.sqrt(k * k * cin), "b": jnp.zeros(cout)}


def _gn(c):
    return {"scale": jnp.ones(c), "bias": jnp.zeros(c)}


def _groups(c, g):
    g = min(g, c)
    while c % g:
        g -= 1
    return g


def init(key, shape, channels=(32, 64), groups=8):
    """Parameters as nested dicts; returns (params, static structure)."""
    c_img = shape[-1]
    emb = 4 * channels[0]
    keys = iter(jax.random.split(key, 200))
    res = lambda ci, co: {
        "n1": _gn(ci),
        "c1": _conv(next(keys), ci, co),
        "e": _dense(next(keys), emb, co),
        "n2": _gn(co),
        "c2": _conv(next(keys), co, co),
        **({"skip": _conv(next(keys), ci, co, 1)} if ci != co else {}),
    }
    p = {
        "t1": _dense(next(keys), emb, emb),
        "t2": _dense(next(keys), emb, emb),
        "inp": _conv(next(keys), c_img, channels[0]),
    }
    down, skips, c = [], [channels[0]], channels[0]
    for i, ch in enumerate(channels):
        down.append(("res", res(c, ch)))
        c = ch
        skips.append(c)
        if i < len(channels) - 1:
            down.append(("down", _conv(next(keys), c, c)))
            skips.append(c)
    p["mid1"], p["mid2"] = res(c, c), res(c, c)
    p["attn"] = {"n": _gn(c), "qkv": _dense(next(keys), c, 3 * c), "o": _dense(next(keys), c, c)}
    up = []
    for i, ch in reversed(list(enumerate(channels))):
        for _ in range(2):
            up.append(("res", res(c + skips.pop(), ch)))
            c = ch
        if i > 0:
            up.append(("up", _conv(next(keys), c, c)))
    p["down"], p["up"] = [q for _, q in down], [q for _, q in up]
    p["norm"], p["out"] = _gn(c), _conv(next(keys), c, c_img)
    kinds = (tuple(k for k, _ in down), tuple(k for k, _ in up))
    return p, (kinds, groups, emb)


def _conv_apply(p, x, stride=1):
    y = jax.lax.conv_general_dilated(x, p["w"], (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + p["b"]


def _gn_apply(p, x, groups):
    b, h, w, c = x.shape
    g = _groups(c, groups)
    xg = x.reshape(b, h, w, g, c // g)
    mean = jnp.mean(xg, axis=(1, 2, 4), keepdims=True)
    var = jnp.mean(jnp.square(xg - mean), axis=(1, 2, 4), keepdims=True)
    return ((xg - mean) * jax.lax.rsqrt(var + 1e-6)).reshape(b, h, w, c) * p["scale"] + p["bias"]


def _res_apply(p, x, emb, groups):
    h = _conv_apply(p["c1"], jax.nn.silu(_gn_apply(p["n1"], x, groups)))
    h = h + (jax.nn.silu(emb) @ p["e"]["w"] + p["e"]["b"])[:, None, None, :]
    h = _conv_apply(p["c2"], jax.nn.silu(_gn_apply(p["n2"], h, groups)))
    return h + (_conv_apply(p["skip"], x) if "skip" in p else x)


def apply(p, static, x, t):
    (down_kinds, up_kinds), groups, emb_dim = static
    half = emb_dim // 2
    freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half) / half)
    arg = 1000.0 * t[:, None] * freqs[None]
    e = jnp.concatenate([jnp.cos(arg), jnp.sin(arg)], -1)
    e = jax.nn.silu(e @ p["t1"]["w"] + p["t1"]["b"]) @ p["t2"]["w"] + p["t2"]["b"]
    h = _conv_apply(p["inp"], x)
    hs = [h]
    for kind, q in zip(down_kinds, p["down"]):
        h = _res_apply(q, h, e, groups) if kind == "res" else _conv_apply(q, h, 2)
        hs.append(h)
    h = _res_apply(p["mid1"], h, e, groups)
    b, hh, ww, c = h.shape
    a = p["attn"]
    q, k, v = jnp.split(
        (_gn_apply(a["n"], h, groups) @ a["qkv"]["w"] + a["qkv"]["b"]).reshape(b, hh * ww, 3 * c), 3, -1
    )
    att = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", q, k) / math.sqrt(c), -1)
    h = h + (jnp.einsum("bqk,bkc->bqc", att, v) @ a["o"]["w"] + a["o"]["b"]).reshape(b, hh, ww, c)
    h = _res_apply(p["mid2"], h, e, groups)
    for kind, q in zip(up_kinds, p["up"]):
        if kind == "res":
            h = _res_apply(q, jnp.concatenate([h, hs.pop()], -1), e, groups)
        else:
            b, hh, ww, c = h.shape
            h = _conv_apply(q, jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest"))
    return _conv_apply(p["out"], jax.nn.silu(_gn_apply(p["norm"], h, groups)))


def make_train(tx, static, T=1000, unroll=1):
    """``train(params, opt_state, batches [S, B, H, W, C], key)``: S Adam steps of L_simple in one scan
    (``unroll`` steps per loop iteration)."""

    def loss_fn(params, x, key):
        k_t, k_e = jax.random.split(key)
        t = jax.random.randint(k_t, (x.shape[0],), 1, T + 1) / T
        la = -(0.1 * t + 0.5 * 19.9 * t**2)
        a, s = jnp.exp(0.5 * la)[:, None, None, None], jnp.sqrt(-jnp.expm1(la))[:, None, None, None]
        eps = jax.random.normal(k_e, x.shape)
        pred = apply(params, static, a * x + s * eps, t)
        return jnp.mean(jnp.sum(jnp.square(pred - eps), axis=(1, 2, 3)))

    def train(params, opt_state, batches, key):
        def step(carry, inp):
            params, opt_state = carry
            x, k = inp
            loss, g = jax.value_and_grad(loss_fn)(params, x, k)
            updates, opt_state = tx.update(g, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        keys = jax.random.split(key, batches.shape[0])
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (batches, keys), unroll=unroll)
        return params, opt_state, losses

    return train
