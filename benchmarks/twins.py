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
import functools
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
    if ep == "none":  # the splits hold the training examples already in their scale
        return None
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


def _mlp(params, h, act=jax.nn.relu):
    for i, layer in enumerate(params):
        h = h @ layer["w"] + layer["b"]
        if i < len(params) - 1:
            h = act(h)
    return h


def _twin(name, loss, init_params, cfg, splits, batch=None, n_keys=0):
    """A Twin from a per-batch ``loss(params, x, key) -> scalar`` and its initial params."""
    tx = _adam(cfg.optim)
    b = int(batch or cfg.train.batch_size)
    steps = len(splits.train["x"]) // b

    def step(carry, inp):
        params, opt = carry
        x, k = inp
        val, g = jax.value_and_grad(loss)(params, x, k)
        updates, opt = tx.update(g, opt, params)
        return (optax.apply_updates(params, updates), opt), val

    def init():
        p = init_params()
        return p, tx.init(p), jax.random.key(2), jnp.int32(0)

    data = {"x": jax.device_put(jnp.asarray(splits.train["x"]))}
    epoch = _epoch(step, steps, b, _transform(splits))
    if "y" in splits.train:  # labels ride along with the shuffle
        data["y"] = jax.device_put(jnp.asarray(splits.train["y"]))

        def epoch(carry, data, inner=step):  # noqa: F811 - the labelled variant
            params, opt, key, e = carry
            k = jax.random.fold_in(key, e)
            perm = jax.random.permutation(k, data["x"].shape[0])[: steps * b]
            xb = jnp.take(data["x"], perm, axis=0).reshape(steps, b, *data["x"].shape[1:])
            yb = jnp.take(data["y"], perm, axis=0).reshape(steps, b, *data["y"].shape[1:])
            (params, opt), losses = jax.lax.scan(inner, (params, opt), ((xb, yb), jax.random.split(k, steps)))
            return (params, opt, key, e + 1), losses

    return Twin(name, init, epoch, data)


def predictor(cfg, splits) -> Twin | None:
    """p(y | x): an MLP on flattened inputs, categorical cross-entropy."""
    m = cfg.model.predictor
    if not (cfg.model.family == "predictor" and m.arch == "mlp" and m.likelihood == "categorical" and not m.dropout
            and m.activation == "relu" and "y" in splits.train):  # fmt: skip
        return None
    d, n_cls = math.prod(splits.shape), int(max(splits.train["y"].max(), splits.test["y"].max())) + 1
    sizes = [d, *m.hidden, n_cls]

    def loss(params, xy, k):
        x, y = xy
        logits = _mlp(params, x.reshape(x.shape[0], -1))
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    return _twin(f"MLP classifier {'-'.join(map(str, sizes))}", loss, lambda: _dense_init(jax.random.key(1), sizes),
                 cfg, splits)  # fmt: skip


def _score_mlp(m, d: int):
    """genjax's residual score MLP (``genjax.nn.score.ScoreMLP``): sinusoidal embedding of 1000 t ->
    Linear -> SiLU -> Linear; x -> Linear; blocks h += W_b silu(W_a silu(h) + W_e emb); -> silu ->
    Linear. Returns (init_params, net(p, x, t))."""
    w, n_blocks = int(m.hidden[0]), len(m.hidden)
    half = w // 2
    freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half, dtype=jnp.float32) / half)

    def init_params():
        ks = jax.random.split(jax.random.key(1), 4 + 3 * n_blocks)
        lin = lambda k, a, b: {"w": jax.random.normal(k, (a, b)) / math.sqrt(a), "b": jnp.zeros((b,))}  # noqa: E731
        return {"c1": lin(ks[0], w, w), "c2": lin(ks[1], w, w), "inp": lin(ks[2], d, w), "out": lin(ks[3], w, d),
                "blocks": [[lin(ks[4 + 3 * i + j], w, w) for j in range(3)] for i in range(n_blocks)]}  # fmt: skip

    def net(p, x, t):
        lin = lambda q, h: h @ q["w"] + q["b"]  # noqa: E731
        arg = 1000.0 * t[:, None] * freqs[None]
        emb = lin(p["c2"], jax.nn.silu(lin(p["c1"], jnp.concatenate([jnp.cos(arg), jnp.sin(arg)], -1))))
        h = lin(p["inp"], x)
        for a, e, b_ in p["blocks"]:
            h = h + lin(b_, jax.nn.silu(lin(a, jax.nn.silu(h)) + lin(e, emb)))
        return lin(p["out"], jax.nn.silu(h))

    return init_params, net


def _plain_score_block(cfg, splits, family: str) -> bool:
    m = cfg.model[family]
    return (cfg.model.family == family and m.arch in ("mlp", "auto") and splits.kind == "vector"
            and not m.get("conditional", False) and not float(m.ema) and m.activation == "silu")  # fmt: skip


def ddpm_mlp(cfg, splits) -> Twin | None:
    """DDPM's L_simple (Ho et al. 2020) with genjax's residual MLP on the linear VP process in
    discrete time."""
    m = cfg.model.diffusion
    if not (_plain_score_block(cfg, splits, "diffusion") and m.loss == "eps" and m.prediction == "eps"
            and m.weighting == "none" and m.process == "vp" and m.schedule == "linear"
            and int(m.timesteps) > 0):  # fmt: skip
        return None
    d, T = math.prod(splits.shape), int(m.timesteps)
    bmin, bmax = float(m.beta_min), float(m.beta_max)
    init_params, net = _score_mlp(m, d)

    def loss(p, x, k):
        k_t, k_n = jax.random.split(k)
        t = jax.random.randint(k_t, (x.shape[0],), 1, T + 1) / T
        abar = jnp.exp(-(bmin * t + 0.5 * (bmax - bmin) * t**2))[:, None]
        eps = jax.random.normal(k_n, x.shape)
        xt = jnp.sqrt(abar) * x + jnp.sqrt(1 - abar) * eps
        return jnp.mean(jnp.sum((net(p, xt, t) - eps) ** 2, -1))

    return _twin(f"DDPM residual MLP {d}-{int(m.hidden[0])}x{len(m.hidden)}", loss, init_params, cfg, splits)


def fm_mlp(cfg, splits) -> Twin | None:
    """Conditional flow matching on the straight path (Lipman et al. 2023 with sigma_min; Liu et al.
    2023 at 0): x_t = (1 - t) x + (s0 + (1 - s0) t) eps, target -x + (1 - s0) eps, t ~ U(0, 1)."""
    m = cfg.model.flow_matching
    if not (_plain_score_block(cfg, splits, "flow_matching") and m.path == "ot" and m.coupling == "independent"
            and m.t_train == "uniform"):  # fmt: skip
        return None
    d, s0 = math.prod(splits.shape), float(m.ot_sigma)
    init_params, net = _score_mlp(m, d)

    def loss(p, x, k):
        k_t, k_n = jax.random.split(k)
        t = jax.random.uniform(k_t, (x.shape[0],))
        eps = jax.random.normal(k_n, x.shape)
        xt = (1 - t)[:, None] * x + (s0 + (1 - s0) * t)[:, None] * eps
        return jnp.mean(jnp.sum((net(p, xt, t) - (-x + (1 - s0) * eps)) ** 2, -1))

    return _twin(f"flow matching residual MLP {d}-{int(m.hidden[0])}x{len(m.hidden)}", loss, init_params, cfg, splits)


def edm_mlp(cfg, splits) -> Twin | None:
    """EDM's preconditioned denoiser (Karras et al. 2022): ln sigma ~ N(P_mean, P_std^2),
    lambda(sigma) ||c_skip x + c_out F(c_in x, t(sigma)) - y||^2."""
    m = cfg.model.edm
    if not _plain_score_block(cfg, splits, "edm"):
        return None
    d, sd = math.prod(splits.shape), float(m.sigma_data)
    lo, hi = math.log(float(m.sigma_min)), math.log(float(m.sigma_max))
    init_params, net = _score_mlp(m, d)

    def loss(p, y, k):
        k_s, k_n = jax.random.split(k)
        sigma = jnp.exp(float(m.p_mean) + float(m.p_std) * jax.random.normal(k_s, (y.shape[0],)))[:, None]
        x = y + sigma * jax.random.normal(k_n, y.shape)
        v = sigma**2 + sd**2
        c_skip, c_out, c_in = sd**2 / v, sigma * sd / jnp.sqrt(v), 1 / jnp.sqrt(v)
        den = c_skip * x + c_out * net(p, c_in * x, (jnp.log(sigma[:, 0]) - lo) / (hi - lo))
        return jnp.mean(v[:, 0] / (sigma[:, 0] * sd) ** 2 * jnp.sum((den - y) ** 2, -1))

    return _twin(f"EDM residual MLP {d}-{int(m.hidden[0])}x{len(m.hidden)}", loss, init_params, cfg, splits)


def ct_mlp(cfg, splits) -> Twin | None:
    """Improved consistency training (Song & Dhariwal 2024) at the curriculum's level count of the
    first stage: two evaluations of f = c_skip x + c_out F(c_in x, t(sigma)) per example (one
    differentiated), pseudo-Huber over the level gap."""
    m = cfg.model.consistency
    if not _plain_score_block(cfg, splits, "consistency"):
        return None
    d, sd, s_min, s_max, rho = (math.prod(splits.shape), float(m.sigma_data), float(m.sigma_min),
                                float(m.sigma_max), float(m.rho))  # fmt: skip
    lo, hi = math.log(s_min), math.log(s_max)
    n = int(m.s0) + 1
    i = jnp.arange(n, dtype=jnp.float32)
    sig = (s_min ** (1 / rho) + i / (n - 1) * (s_max ** (1 / rho) - s_min ** (1 / rho))) ** rho
    z = (jnp.log(sig) - float(m.p_mean)) / (math.sqrt(2) * float(m.p_std))
    logits = jnp.log(jax.scipy.special.erf(z[1:]) - jax.scipy.special.erf(z[:-1]))
    c = float(m.huber_c) or 0.00054 * math.sqrt(d)
    init_params, net = _score_mlp(m, d)

    def f(p, x, s):
        c_skip = sd**2 / ((s - s_min) ** 2 + sd**2)
        c_out = sd * (s - s_min) / jnp.sqrt(sd**2 + s**2)
        t = (jnp.log(s) - lo) / (hi - lo)
        return c_skip[:, None] * x + c_out[:, None] * net(p, x / jnp.sqrt(s**2 + sd**2)[:, None], t)

    def loss(p, y, k):
        k_i, k_n = jax.random.split(k)
        idx = jax.random.categorical(k_i, logits, shape=(y.shape[0],))
        a, b = sig[idx + 1], sig[idx]
        noise = jax.random.normal(k_n, y.shape)
        gap = f(p, y + a[:, None] * noise, a) - jax.lax.stop_gradient(f(p, y + b[:, None] * noise, b))
        return jnp.mean((jnp.sqrt(jnp.sum(gap**2, -1) + c * c) - c) / (a - b))

    return _twin(f"consistency residual MLP {d}-{int(m.hidden[0])}x{len(m.hidden)}", loss, init_params, cfg, splits)


def realnvp(cfg, splits) -> Twin | None:
    """RealNVP on vectors: per layer ActNorm then an affine coupling with an alternating mask,
    s soft-clamped 3 tanh(s / 3); exact NLL under N(0, I)."""
    m = cfg.model.flow
    if not (cfg.model.family == "flow" and m.kind == "realnvp" and splits.kind == "vector" and m.actnorm
            and not m.conditional and m.activation == "relu"):  # fmt: skip
        return None
    d, n, hidden = math.prod(splits.shape), int(m.n_layers), tuple(m.hidden)
    masks = [jnp.asarray([(j % 2 == i % 2) for j in range(d)], jnp.float32) for i in range(n)]

    def init_params():
        ks = jax.random.split(jax.random.key(1), n)
        return [{"bias": jnp.zeros(d), "log_scale": jnp.zeros(d), "net": _dense_init(ks[i], [d, *hidden, 2 * d])}
                for i in range(n)]  # fmt: skip

    def loss(p, x, k):
        ld = jnp.zeros(x.shape[0])
        for layer, mk in zip(p, masks):
            x = (x + layer["bias"]) * jnp.exp(layer["log_scale"])
            ld = ld + jnp.sum(layer["log_scale"])
            out = _mlp(layer["net"], x * mk).reshape(x.shape[0], d, 2)
            s = 3.0 * jnp.tanh(out[..., 0] / 3.0)
            x = mk * x + (1 - mk) * (x * jnp.exp(s) + out[..., 1])
            ld = ld + jnp.sum((1 - mk) * s, -1)
        lp = jnp.sum(-0.5 * (math.log(2 * math.pi) + x**2), -1) + ld
        return -jnp.mean(lp)

    return _twin(f"RealNVP {d}-d, {n} couplings of {'-'.join(map(str, hidden))}", loss, init_params, cfg, splits)


def _fresh(params):
    """New arrays holding ``params``: each ``init()`` gives a state of its own, as a script's
    initialization does (an epoch donates its state, which deletes the arrays it was given)."""
    return jax.tree.map(jnp.copy, params)


def _host_twin(name, loss, init_params, cfg, splits):
    """A Twin for convolution networks on a CPU: what a plain-JAX script does there, a Python loop
    over one jitted (donated) step, after one jitted shuffle-and-transform per epoch."""
    tx = _adam(cfg.optim)
    b = int(cfg.train.batch_size)
    steps = len(splits.train["x"]) // b
    transform = _transform(splits)

    @jax.jit
    def prep(key, e, x):
        k = jax.random.fold_in(key, e)
        perm = jax.random.permutation(k, x.shape[0])[: steps * b]
        xb = jnp.take(x, perm, axis=0).reshape(steps, b, *x.shape[1:])
        return xb if transform is None else transform(jax.random.fold_in(k, 1), xb)

    @functools.partial(jax.jit, donate_argnums=0)
    def step(carry, xb, i, key):
        params, opt = carry
        val, g = jax.value_and_grad(loss)(params, xb[i], jax.random.fold_in(key, i))
        updates, opt = tx.update(g, opt, params)
        return (optax.apply_updates(params, updates), opt), val

    class Epoch:
        def lower(self, carry, data):
            return self

        def compile(self):
            return self

        def __call__(self, carry, data):
            params, opt, key, e = carry
            xb = prep(key, e, data["x"])
            c = (params, opt)
            for i in range(steps):
                c, val = step(c, xb, jnp.int32(i), key)
            return (*c, key, e + 1), val

    def init():
        p = init_params()
        return p, tx.init(p), jax.random.key(2), jnp.int32(0)

    return Twin(name, init, Epoch(), {"x": jax.device_put(jnp.asarray(splits.train["x"]))})


def _conv(x, w, b, stride=1):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b


def _deconv(x, w, b, stride=2):
    return jax.lax.conv_transpose(x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b


def vae_conv(cfg, splits) -> Twin | None:
    """genjax's conv VAE: per stage Conv(4x4, stride 2) + ReLU, a Dense to (mean, log-variance);
    the decoder a Dense to the base map, ConvTranspose(4x4, stride 2) + ReLU stages, Bernoulli
    logits; the ELBO with one sample."""
    m = cfg.model.vae
    if not (cfg.model.family == "vae" and m.arch == "conv" and m.objective == "elbo" and m.likelihood == "bernoulli"
            and not m.conditional and not m.latent_dim2 and not m.dropout and m.kl_schedule == "constant"
            and not m.free_bits and m.activation == "relu" and splits.kind == "image"):  # fmt: skip
        return None
    h, w_, c0 = splits.shape
    chans, latent = [c0, *m.channels], int(m.latent_dim)
    f = 2 ** len(m.channels)
    base = (h // f, w_ // f, chans[-1])
    dec_chans = [*m.channels, c0]

    def init_params():
        ks = iter(jax.random.split(jax.random.key(1), 4 + 2 * len(chans)))
        conv = lambda a, b_: {"w": jax.random.normal(next(ks), (4, 4, a, b_)) / math.sqrt(16 * a), "b": jnp.zeros(b_)}  # noqa: E731
        return {"enc": [conv(a, b_) for a, b_ in zip(chans[:-1], chans[1:])],
                "head": _dense_init(next(ks), [math.prod(base), 2 * latent])[0],
                "fc": _dense_init(next(ks), [latent, math.prod((base[0], base[1], dec_chans[0]))])[0],
                "dec": [conv(a, b_) for a, b_ in zip(dec_chans[:-1], dec_chans[1:])]}  # fmt: skip

    def loss(p, x, k):
        hh = x
        for layer in p["enc"]:
            hh = jax.nn.relu(_conv(hh, layer["w"], layer["b"], 2))
        mean, log_var = jnp.split(hh.reshape(x.shape[0], -1) @ p["head"]["w"] + p["head"]["b"], 2, -1)
        z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(k, mean.shape)
        hh = jax.nn.relu(z @ p["fc"]["w"] + p["fc"]["b"]).reshape(x.shape[0], base[0], base[1], dec_chans[0])
        for i, layer in enumerate(p["dec"]):
            hh = _deconv(hh, layer["w"], layer["b"])
            if i < len(p["dec"]) - 1:
                hh = jax.nn.relu(hh)
        logits, xf = hh.reshape(x.shape[0], -1), x.reshape(x.shape[0], -1)
        rec = jnp.sum(xf * logits - jax.nn.softplus(logits), -1)
        kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, -1)
        return -jnp.mean(rec - kl)

    return _host_twin(f"conv VAE {h}x{w_} {'-'.join(map(str, m.channels))}, z {latent}", loss, init_params, cfg, splits)


def pixelcnn(cfg, splits) -> Twin | None:
    """PixelCNN (van den Oord et al. 2016) as genjax builds it, not gated, on binary images: a
    masked 7x7 'A' convolution to 2c maps, per block ReLU -> 1x1 to c -> ReLU -> masked 3x3 'B'
    -> ReLU -> 1x1 to 2c, added to the block's input; two ReLU 1x1 heads to one Bernoulli logit
    per pixel."""
    import numpy as np

    from genjax.nn.autoregressive import conv_mask

    m = cfg.model.autoregressive
    if not (cfg.model.family == "autoregressive" and m.arch == "pixelcnn" and not m.gated and not m.conditional
            and splits.discrete and splits.kind == "image" and splits.shape[-1] == 1):  # fmt: skip
        return None
    c, n = int(m.channels), int(m.n_layers)
    mask_a = jnp.asarray(conv_mask(7, "A"))[:, :, None, None]
    mask_b = jnp.asarray(conv_mask(3, "B"))[:, :, None, None]

    def init_params():
        ks = iter(jax.random.split(jax.random.key(1), 4 + 3 * n))
        conv = lambda k, a, b_: {"w": jax.random.normal(next(ks), (k, k, a, b_)) / np.sqrt(k * k * a),  # noqa: E731
                                 "b": jnp.zeros(b_)}  # fmt: skip
        return {"first": conv(7, 1, 2 * c), "blocks": [[conv(1, 2 * c, c), conv(3, c, c), conv(1, c, 2 * c)]
                                                       for _ in range(n)],
                "head1": conv(1, 2 * c, 2 * c), "head2": conv(1, 2 * c, 1)}  # fmt: skip

    def loss(p, x, k):
        h = _conv(x, p["first"]["w"] * mask_a, p["first"]["b"])
        for a, b_, cc in p["blocks"]:
            u = _conv(jax.nn.relu(h), a["w"], a["b"])
            u = _conv(jax.nn.relu(u), b_["w"] * mask_b, b_["b"])
            h = h + _conv(jax.nn.relu(u), cc["w"], cc["b"])
        logits = _conv(jax.nn.relu(_conv(jax.nn.relu(h), p["head1"]["w"], p["head1"]["b"])), p["head2"]["w"],
                       p["head2"]["b"]).reshape(x.shape[0], -1)  # fmt: skip
        xf = x.reshape(x.shape[0], -1)
        return -jnp.mean(jnp.sum(xf * logits - jax.nn.softplus(logits), -1))

    h_, w_ = splits.shape[:2]
    return _host_twin(f"PixelCNN {h_}x{w_}, {n} blocks of {c}", loss, init_params, cfg, splits)


def glow(cfg, splits) -> Twin | None:
    """Glow (Kingma & Dhariwal 2018) as genjax builds it, on a whole batch at once: logit(a + (1 -
    2a) x), then per scale a squeeze and ``steps`` of ActNorm, an invertible 1x1 convolution in LU
    form and an affine coupling over half of the channels (conditioner conv 3x3 -> ReLU -> 1x1 ->
    ReLU -> 3x3, s soft-clamped 3 tanh(s / 3)); half of the channels factored out after every scale
    but the last; exact NLL under N(0, I)."""
    m = cfg.model.flow
    if not (cfg.model.family == "flow" and m.kind == "glow" and not m.conditional and splits.kind == "image"):
        return None
    h0, w0, c0 = splits.shape
    levels, steps, hid, alpha = int(m.levels), int(m.steps), int(m.channels), float(m.logit_alpha)
    shapes, c = [], c0
    for lev in range(levels):
        c *= 4
        shapes.append(c)
        if lev < levels - 1:
            c //= 2

    def init_params():
        ks = iter(jax.random.split(jax.random.key(1), 4 * levels * steps))
        out = []
        for c_ in shapes:
            lvl = []
            for _ in range(steps):
                half = c_ // 2
                lvl.append({"bias": jnp.zeros(c_), "log_scale": jnp.zeros(c_),
                            "lower": 0.1 * jax.random.normal(next(ks), (c_, c_)), "upper": 0.1 * jax.random.normal(
                                next(ks), (c_, c_)), "log_s": jnp.zeros(c_),
                            "c1": {"w": jax.random.normal(next(ks), (3, 3, c_, hid)) / math.sqrt(9 * c_),
                                   "b": jnp.zeros(hid)},
                            "c2": {"w": jax.random.normal(next(ks), (1, 1, hid, hid)) / math.sqrt(hid),
                                   "b": jnp.zeros(hid)},
                            "c3": {"w": jnp.zeros((3, 3, hid, 2 * c_)), "b": jnp.zeros(2 * c_)},
                            "half": half})  # fmt: skip
            out.append(lvl)
        return out

    def squeeze(x):
        b, h, w, c_ = x.shape
        return x.reshape(b, h // 2, 2, w // 2, 2, c_).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4 * c_)

    def loss(p, x, k):
        b = x.shape[0]
        q = alpha + (1 - 2 * alpha) * x
        y = jnp.log(q) - jnp.log1p(-q)
        ld = jnp.sum(math.log(1 - 2 * alpha) - jnp.log(q) - jnp.log1p(-q), axis=(1, 2, 3))
        zs = []
        for lev, lvl in enumerate(p):
            y = squeeze(y)
            c_ = y.shape[-1]
            npix = y.shape[1] * y.shape[2]
            mask = (jnp.arange(c_) < c_ // 2).astype(y.dtype)
            lmask = jnp.tril(jnp.ones((c_, c_)), -1)
            for k_, st in enumerate(lvl):
                y = (y + st["bias"]) * jnp.exp(st["log_scale"])
                ld = ld + npix * jnp.sum(st["log_scale"])
                low = st["lower"] * lmask + jnp.eye(c_)
                up = st["upper"] * lmask.T + jnp.diag(jnp.exp(st["log_s"]))
                y = y @ (low @ up)
                ld = ld + npix * jnp.sum(st["log_s"])
                mk = mask if k_ % 2 == 0 else 1.0 - mask
                hh = jax.nn.relu(_conv(y * mk, st["c1"]["w"], st["c1"]["b"]))
                hh = jax.nn.relu(_conv(hh, st["c2"]["w"], st["c2"]["b"]))
                sv, t = jnp.split(_conv(hh, st["c3"]["w"], st["c3"]["b"]), 2, -1)
                sv = 3.0 * jnp.tanh(sv / 3.0)
                y = mk * y + (1 - mk) * (y * jnp.exp(sv) + t)
                ld = ld + jnp.sum((1 - mk) * sv, axis=(1, 2, 3))
            if lev < len(p) - 1:
                zs.append(y[..., c_ // 2 :].reshape(b, -1))
                y = y[..., : c_ // 2]
        z = jnp.concatenate([*zs, y.reshape(b, -1)], -1)
        return -jnp.mean(jnp.sum(-0.5 * (math.log(2 * math.pi) + z**2), -1) + ld)

    def init_no_static():
        return [[{k_: v for k_, v in st.items() if k_ != "half"} for st in lvl] for lvl in init_params()]

    return _host_twin(f"Glow {h0}x{w0}, {levels} scales x {steps} steps, {hid} channels", loss, init_no_static, cfg,
                      splits)  # fmt: skip


def ddpm_unet(cfg, splits) -> Twin | None:
    """DDPM's L_simple with genjax's U-Net (``benchmarks/plain_unet.py``: the same shapes) on the
    linear VP process, T discrete steps; a host loop of a jitted step, as on a CPU."""
    from benchmarks import plain_unet

    m = cfg.model.diffusion
    if not (cfg.model.family == "diffusion" and m.arch in ("unet", "auto") and splits.kind == "image"
            and m.loss == "eps" and m.process == "vp" and m.schedule == "linear" and int(m.timesteps) > 0
            and float(m.beta_min) == 0.1 and float(m.beta_max) == 20.0 and not m.conditional and not float(m.ema)
            and m.attention and m.activation == "silu"):  # fmt: skip
        return None
    T = int(m.timesteps)
    params, static = plain_unet.init(jax.random.key(1), splits.shape, tuple(m.channels), int(m.groups))

    def loss(p, x, k):
        k_t, k_e = jax.random.split(k)
        t = jax.random.randint(k_t, (x.shape[0],), 1, T + 1) / T
        la = -(0.1 * t + 0.5 * 19.9 * t**2)
        a, s = jnp.exp(0.5 * la)[:, None, None, None], jnp.sqrt(-jnp.expm1(la))[:, None, None, None]
        eps = jax.random.normal(k_e, x.shape)
        return jnp.mean(jnp.sum(jnp.square(plain_unet.apply(p, static, a * x + s * eps, t) - eps), axis=(1, 2, 3)))

    return _host_twin(f"DDPM U-Net {'x'.join(map(str, splits.shape))} {'-'.join(map(str, m.channels))}", loss,
                      lambda: _fresh(params), cfg, splits)  # fmt: skip


def gpt(cfg, splits) -> Twin | None:
    """The GPT (``benchmarks/plain_gpt.py``: tied embeddings, pre-norm blocks, causal attention) on
    random windows of the text stream, as genjax cuts them each epoch."""
    from benchmarks import plain_gpt

    m = cfg.model.autoregressive
    if not (cfg.model.family == "autoregressive" and m.arch == "transformer" and splits.kind == "tokens"
            and m.tie and not m.dropout and not m.conditional):  # fmt: skip
        return None
    vocab, t = len(splits.vocab), splits.shape[-1]
    params = plain_gpt.init(jax.random.key(1), vocab, 1, t, int(m.d_model), int(m.n_layers), int(m.mlp_ratio))

    def window(k, rows):  # genjax's epoch transform 'window': x[s : s + T], s ~ U{0..T-1} per row
        start = jax.random.randint(k, rows.shape[:-1], 0, t)
        return jnp.take_along_axis(rows, start[..., None] + jnp.arange(t), axis=-1)

    tw = _twin(f"GPT d {m.d_model}, {m.n_layers} blocks, context {t}",
               lambda p, x, k: plain_gpt.loss(p, x, vocab, int(m.n_heads)), lambda: _fresh(params),
               cfg, splits)  # fmt: skip
    steps, b = len(splits.train["x"]) // int(cfg.train.batch_size), int(cfg.train.batch_size)
    tx = _adam(cfg.optim)

    def step(carry, inp):
        p, opt = carry
        x, _ = inp
        val, g = jax.value_and_grad(lambda q: plain_gpt.loss(q, x, vocab, int(m.n_heads)))(p)
        updates, opt = tx.update(g, opt, p)
        return (optax.apply_updates(p, updates), opt), val

    return dataclasses.replace(tw, epoch=_epoch(step, steps, b, window))


def wgan_gp(cfg, splits) -> Twin | None:
    """WGAN-GP (Gulrajani et al. 2017) with MLPs: n_critic critic updates per step, each on its own
    slice of the step's batch with fresh fakes (critic loss mean D(fake) - mean D(real) + gp x
    (||grad D(x_hat)|| - 1)^2 at uniform interpolates), then one generator update on the first
    slice (-mean D(G(z))); Adam for both."""
    m = cfg.model.gan
    if not (cfg.model.family == "gan" and m.arch == "mlp" and m.objective == "wgan" and float(m.gp) > 0
            and not float(m.r1) and not m.conditional and not m.spectral_norm and not float(m.ema) and int(m.pack) == 1
            and not float(m.dropout) and splits.kind == "vector" and m.activation == "relu"
            and m.disc_activation == "leaky_relu" and not float(m.disc_lr)
            and cfg.train.update_order == "alternating"):  # fmt: skip
        return None
    d, latent, n_c, gp_w = math.prod(splits.shape), int(m.latent_dim), int(m.n_critic), float(m.gp)
    b = int(cfg.train.batch_size)
    steps = len(splits.train["x"]) // (b * n_c)
    tx = _adam(cfg.optim)
    leaky = lambda v: jax.nn.leaky_relu(v, 0.2)  # noqa: E731

    def init_params():
        kg, kd = jax.random.split(jax.random.key(1))
        return {"gen": _dense_init(kg, [latent, *m.hidden, d]), "disc": _dense_init(kd, [d, *m.disc_hidden, 1])}

    def critic(p, x):
        return _mlp(p, x, leaky)[:, 0]

    def d_loss(dp, gp_params, x, k):
        k_z, k_e = jax.random.split(k)
        fake = jax.lax.stop_gradient(_mlp(gp_params, jax.random.normal(k_z, (x.shape[0], latent))))
        e = jax.random.uniform(k_e, (x.shape[0], 1))
        x_hat = e * x + (1 - e) * fake
        g = jax.grad(lambda v: jnp.sum(critic(dp, v)))(x_hat)
        gp = jnp.mean((jnp.sqrt(jnp.sum(g**2, -1) + 1e-12) - 1.0) ** 2)
        return jnp.mean(critic(dp, fake)) - jnp.mean(critic(dp, x)) + gp_w * gp

    def g_loss(gp_params, dp, n, k):
        return -jnp.mean(critic(dp, _mlp(gp_params, jax.random.normal(k, (n, latent)))))

    def step(carry, inp):
        (p, (od, og)) = carry
        x, k = inp  # x: [n_critic, b, d]
        for j in range(n_c):
            g = jax.grad(d_loss)(p["disc"], p["gen"], x[j], jax.random.fold_in(k, j))
            u, od = tx.update(g, od, p["disc"])
            p = {**p, "disc": optax.apply_updates(p["disc"], u)}
        val, g = jax.value_and_grad(g_loss)(p["gen"], p["disc"], b, jax.random.fold_in(k, n_c))
        u, og = tx.update(g, og, p["gen"])
        return ({**p, "gen": optax.apply_updates(p["gen"], u)}, (od, og)), val

    def epoch(carry, data):
        p, opt, key, e = carry
        k = jax.random.fold_in(key, e)
        perm = jax.random.permutation(k, data["x"].shape[0])[: steps * b * n_c]
        xb = jnp.take(data["x"], perm, axis=0).reshape(steps, n_c, b, d)
        (p, opt), losses = jax.lax.scan(step, (p, opt), (xb, jax.random.split(k, steps)))
        return (p, opt, key, e + 1), losses

    def init():
        p = init_params()
        return p, (tx.init(p["disc"]), tx.init(p["gen"])), jax.random.key(2), jnp.int32(0)

    name = f"WGAN-GP MLPs G {latent}-{'-'.join(map(str, m.hidden))}-{d}, D {d}-{'-'.join(map(str, m.disc_hidden))}-1"
    return Twin(f"{name}, {n_c} critic steps", init, epoch, {"x": jax.device_put(jnp.asarray(splits.train["x"]))})


TWINS = (fm_mlp, edm_mlp, ct_mlp, vae_mlp, made, predictor, ddpm_mlp, realnvp, vae_conv, pixelcnn, glow, ddpm_unet,
         gpt, wgan_gp)


def twin_for(cfg, splits) -> Twin | None:
    """The plain-JAX twin of ``cfg``'s training epoch, or ``None`` where none covers it."""
    if not _plain_optimizer(cfg):
        return None
    for make in TWINS:
        tw = make(cfg, splits)
        if tw is not None:
            return tw
    return None
