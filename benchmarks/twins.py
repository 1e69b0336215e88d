"""Plain-JAX twins of genjax's training epochs: the same network shapes, loss, optimizer and data
pipeline (a shuffle, the epoch's data transform, one ``lax.scan`` of steps), written with jnp,
lax and optax only — the floor ``genjax bench`` holds a family's epoch against.

``twin_for(cfg, splits)`` returns a ``Twin`` for the configs it covers, else ``None``:
``epoch(carry, data) -> (carry, losses)`` with the carry donated, ``init()`` a fresh carry,
``data`` the device arrays. Initialization scales differ from genjax's (they do not change the
cost); every matmul, convolution and elementwise term of the training step is there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from benchmarks import plain_vae


@dataclasses.dataclass
class Twin:
    name: str
    init: Callable  # () -> carry
    epoch: Callable  # (carry, data) -> (carry, losses)
    data: dict


def _adam(ocfg):
    return optax.adam(float(ocfg.lr), b1=float(ocfg.b1), b2=float(ocfg.b2), eps=float(ocfg.eps))


def _plain_optimizer(cfg) -> bool:
    """Twins cover the plain optimizer: Adam at a constant rate, no clipping, no penalties."""
    o = cfg.optim
    plain = o.name == "adam" and o.schedule == "constant" and not o.clip_norm and not o.warmup_steps
    return plain and not o.players and not cfg.objective.l1 and not cfg.objective.l2 and cfg.train.dtype == "float32"


def _transform(splits):
    """The epoch's data transform as genjax applies it (dynamic binarization, dequantization)."""
    ep = splits.epoch_transform
    if ep == "none":
        return None if splits.scale == "01" else (lambda k, x: 2 * x - 1)
    if ep == "binarize":
        return lambda k, x: jax.random.bernoulli(k, x).astype(x.dtype)
    if ep == "dequantize":
        lv = splits.levels
        return lambda k, x: (jnp.round(x * (lv - 1)) + jax.random.uniform(k, x.shape)) / lv
    return None


def _epoch(step, steps: int, batch: int, transform):
    """One epoch: shuffle, cut into ``steps`` batches, transform, scan ``step``."""

    def epoch(carry, data):
        params, opt, key, e = carry
        k = jax.random.fold_in(key, e)
        x = data["x"]
        perm = jax.random.permutation(k, x.shape[0])[: steps * batch]
        xb = jnp.take(x, perm, axis=0).reshape(steps, batch, *x.shape[1:])
        if transform is not None:
            xb = transform(jax.random.fold_in(k, 1), xb)
        ks = jax.random.split(jax.random.fold_in(k, 2), steps)
        (params, opt), losses = jax.lax.scan(step, (params, opt), (xb, ks))
        return (params, opt, key, e + 1), losses

    return epoch


def vae_mlp(cfg, splits) -> Twin | None:
    m = cfg.model.vae
    if not (cfg.model.family == "vae" and m.arch == "mlp" and m.objective == "elbo" and m.likelihood == "bernoulli"
            and not m.conditional and not m.latent_dim2 and not m.dropout and m.kl_schedule == "constant"
            and not m.free_bits and m.activation == "relu"):  # fmt: skip
        return None
    tx = _adam(cfg.optim)
    d, hidden, latent, b = math.prod(splits.shape), tuple(m.hidden), int(m.latent_dim), int(cfg.train.batch_size)
    steps = len(splits.train["x"]) // b

    def step(carry, inp):
        params, opt = carry
        x, k = inp
        eps = jax.random.normal(k, (x.shape[0], latent))
        val, g = jax.value_and_grad(plain_vae.loss)(params, x.reshape(x.shape[0], -1), eps)
        updates, opt = tx.update(g, opt, params)
        return (optax.apply_updates(params, updates), opt), val

    def init():
        p = plain_vae.init(jax.random.key(1), d, hidden, latent)
        return p, tx.init(p), jax.random.key(2), jnp.int32(0)

    return Twin(f"MLP VAE {d}-{'-'.join(map(str, hidden))}-{latent}", init, _epoch(step, steps, b, _transform(splits)),
                {"x": jax.device_put(jnp.asarray(splits.train["x"]))})


def _dense_init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"w": jax.random.normal(k, (a, b)) / math.sqrt(a), "b": jnp.zeros((b,))}
            for k, a, b in zip(keys, sizes[:-1], sizes[1:])]  # fmt: skip


def made(cfg, splits) -> Twin | None:
    """MADE (Germain et al. 2015), natural ordering, hidden degrees spread evenly over 1..D-1, on
    binary images: -sum_d log Bernoulli(x_d | sigmoid(l_d)) per image."""
    import numpy as np

    m = cfg.model.autoregressive
    if not (cfg.model.family == "autoregressive" and m.arch == "made" and int(m.n_orders) == 1 and not m.random_order
            and not m.conditional and splits.discrete and splits.kind == "image"):  # fmt: skip
        return None
    d, hidden, b = math.prod(splits.shape), tuple(m.hidden), int(cfg.train.batch_size)
    steps = len(splits.train["x"]) // b
    degs = [np.arange(1, d + 1)] + [np.round(np.linspace(1, max(d - 1, 1), h)).astype(np.int64) for h in hidden]
    masks = [(degs[i + 1][None, :] >= degs[i][:, None]).astype(np.float32) for i in range(len(hidden))]
    masks.append((degs[0][None, :] > degs[-1][:, None]).astype(np.float32))
    masks = [jnp.asarray(mk) for mk in masks]
    tx = _adam(cfg.optim)

    def loss(params, x):
        h = x
        for i, (layer, mk) in enumerate(zip(params, masks)):
            h = h @ (layer["w"] * mk) + layer["b"]
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        return -jnp.mean(jnp.sum(x * h - jax.nn.softplus(h), axis=-1))

    def step(carry, inp):
        params, opt = carry
        x, _ = inp
        val, g = jax.value_and_grad(loss)(params, x.reshape(x.shape[0], -1))
        updates, opt = tx.update(g, opt, params)
        return (optax.apply_updates(params, updates), opt), val

    def init():
        p = _dense_init(jax.random.key(1), [d, *hidden, d])
        return p, tx.init(p), jax.random.key(2), jnp.int32(0)

    return Twin(f"MADE {d}-{'-'.join(map(str, hidden))}-{d}", init, _epoch(step, steps, b, _transform(splits)),
                {"x": jax.device_put(jnp.asarray(splits.train["x"]))})


TWINS = (vae_mlp, made)


def twin_for(cfg, splits) -> Twin | None:
    """The plain-JAX twin of ``cfg``'s training epoch, or ``None`` where none covers it."""
    if not _plain_optimizer(cfg):
        return None
    for make in TWINS:
        tw = make(cfg, splits)
        if tw is not None:
            return tw
    return None
