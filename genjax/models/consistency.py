"""Consistency models by improved consistency training (Song et al. 2023; Song & Dhariwal 2024):
a network f(x, sigma) that maps every point of a probability-flow trajectory of the VE process
x = y + sigma n to the trajectory's start, trained without a teacher and sampled in one or a few
network evaluations (``genjax.objectives.edm`` states the parametrization and the schedule).

All fields live in ``model.consistency`` (``default_config``):

* f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, t(sigma)) with c_skip, c_out of
  ``edm.consistency_coeffs`` (f(x, sigma_min) = x exactly), c_in = 1 / sqrt(sigma^2 +
  sigma_d^2) and t the normalized ln sigma as in ``model.edm``; the network fields as in
  ``model.diffusion``.
* Training (iCT): at step k, N(k) = min(s0 2^floor(k / K'), s1) + 1 Karras levels (rho-spaced from
  sigma_min to sigma_max) with K' = floor(K / (log2(s1 / s0) + 1)) and K = ``curriculum_steps``
  (set it to the run's number of steps); a level pair (sigma_i, sigma_(i+1)) drawn from the
  discretized log-normal (``p_mean``, ``p_std``); the loss
  1 / (sigma_(i+1) - sigma_i) d(f(y + sigma_(i+1) n, sigma_(i+1)), sg f(y + sigma_i n, sigma_i))
  with the same n, d the pseudo-Huber distance sqrt(||a - b||^2 + c^2) - c (c = ``huber_c``, 0:
  0.00054 sqrt(D)) and sg the stop-gradient of the same weights (no EMA teacher).
* Sampling: x = f(sigma_max z, sigma_max), then for each sigma in ``mid_sigmas``:
  x <- f(x + sqrt(sigma^2 - sigma_min^2) z', sigma); NFE = 1 + len(mid_sigmas).

A consistency model defines no density (``log_prob`` is None): it is evaluated by its samples.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from genjax.fields import Bool, Float, Floats, Int, changeable, defaults
from genjax.models.base import Curves, DataInfo, Family, Player
from genjax.models.diffusion import FIELDS as DIFFUSION_FIELDS
from genjax.models.diffusion import setup
from genjax.models.edm import check, time_input
from genjax.models.ema import ema_update
from genjax.objectives import edm
from genjax.objectives import score as sc

FIELDS = {
    **{k: DIFFUSION_FIELDS[k] for k in ("arch", "hidden", "activation", "channels", "groups", "attention")},
    "sigma_data": Float(0.5, "the data's standard deviation (0.5 for images in [-1, 1])", gt=0.0),
    "sigma_min": Float(0.002, "the trajectories' start: f(x, sigma_min) = x", gt=0.0),
    "sigma_max": Float(80.0, "the largest noise level: sampling starts from N(0, sigma_max^2 I)", gt=0.0),
    "rho": Float(7.0, "the levels' spacing: even in sigma^(1/rho)", gt=0.0),
    "p_mean": Float(-1.1, "the level pair's log-normal: mean of ln sigma", ge=-10.0, le=10.0),
    "p_std": Float(2.0, "the level pair's log-normal: std of ln sigma", gt=0.0),
    "s0": Int(10, "the curriculum's first number of level intervals", ge=1),
    "s1": Int(1280, "the curriculum's last number of level intervals", ge=1),
    "curriculum_steps": Int(10000, "K: the training steps over which the levels double from s0 to s1", ge=1),
    "huber_c": Float(0.0, "the pseudo-Huber constant c (0: 0.00054 sqrt(D))", ge=0.0),
    "ema": Float(0.0, "decay of the weight average used for sampling (0 = off; never the training target)",
                 ge=0.0, lt=1.0),
    "mid_sigmas": Floats((), "noise levels of the steps after the first (empty: one-step sampling)", gt=0.0),
    "clip": Bool(True, "images: clip samples to the data range"),
}
FIELDS = changeable("sample", FIELDS, "mid_sigmas", "clip")
LEGACY: dict = {}  # the block is newer than the flat configs


def default_config() -> ml_collections.ConfigDict:
    """``model.consistency``: the consistency function, the iCT curriculum, the sampler (``FIELDS``)."""
    return defaults(FIELDS)


def make_consistency(mcfg, data: DataInfo) -> Family:
    """The consistency family for data described by ``data`` (module docstring)."""
    check(mcfg, data, "consistency")
    s0, s1 = int(mcfg.s0), int(mcfg.s1)
    if s1 < s0 or (s1 // s0) & (s1 // s0 - 1) or s1 % s0:
        raise ValueError(f"model.consistency.s1 must be s0 = {s0} times a power of 2, got {s1!r}.")
    mids = tuple(float(s) for s in mcfg.mid_sigmas)
    s_min, s_max, rho, sd = float(mcfg.sigma_min), float(mcfg.sigma_max), float(mcfg.rho), float(mcfg.sigma_data)
    if any(not s_min < s < s_max for s in mids) or list(mids) != sorted(mids, reverse=True):
        raise ValueError(f"model.consistency.mid_sigmas must descend inside (sigma_min, sigma_max) = ({s_min:g}, "
                         f"{s_max:g}), got {list(mids)!r}.")  # fmt: skip
    # unconditional (the block has no labels) and no likelihood: levels and trace go unused
    shape, dim, lo, hi, _, clip, ema, which, _, network, graphdef, init = setup(mcfg, data)
    c = float(mcfg.huber_c) or 0.00054 * math.sqrt(dim)

    def consistency_fn(state):
        net = network(state)

        def f(x, sigma):
            c_skip, c_out = edm.consistency_coeffs(sigma, sd, s_min)
            c_in = 1.0 / jnp.sqrt(sigma**2 + sd**2)
            b = lambda u: sc._bcast(u, x)
            return b(c_skip) * x + b(c_out) * net(b(c_in) * x, time_input(sigma, mcfg))

        return f

    def loss(params, batch, key, ctx):
        y = batch["x"]
        b = y.shape[0]
        k_i, k_n = jax.random.split(key)
        n_levels = edm.ict_levels(ctx.step, int(mcfg.curriculum_steps), s0, s1)
        sigmas = edm.ict_sigmas(n_levels, s_min, s_max, rho, s1 + 1)
        probs = edm.ict_level_probs(sigmas, n_levels, float(mcfg.p_mean), float(mcfg.p_std))
        # the level by inverse CDF: Gumbel-max over s1 levels drew 256 x 1,280 variates a step
        # (the step ran 2.2x slower than its plain-JAX twin on CPU)
        i = jnp.minimum(jnp.searchsorted(jnp.cumsum(probs), jax.random.uniform(k_i, (b,)), side="right"),
                        n_levels - 2)  # fmt: skip
        s_lo, s_hi = sigmas[i], sigmas[i + 1]
        z = jax.random.normal(k_n, y.shape).astype(y.dtype)
        f = consistency_fn(params["model"])
        f_hi = f(y + sc._bcast(s_hi, y) * z, s_hi)
        f_lo = jax.lax.stop_gradient(f(y + sc._bcast(s_lo, y) * z, s_lo))
        terms = edm.pseudo_huber(f_hi, f_lo, c) / (s_hi - s_lo)
        return jnp.mean(terms), {"ct": jnp.mean(terms), "levels": n_levels.astype(jnp.float32)}

    def sample(params, key, n_samples, cond=None):
        f = consistency_fn(params[which])
        keys = jax.random.split(key, 1 + len(mids))
        x = f(s_max * jax.random.normal(keys[0], (n_samples,) + shape), jnp.full((n_samples,), s_max))
        for s, k in zip(mids, keys[1:]):
            x = x + math.sqrt(s * s - s_min * s_min) * jax.random.normal(k, x.shape)
            x = f(x, jnp.full((n_samples,), s))
        return jnp.clip(x, lo, hi) if clip else x

    return Family(
        name="consistency",
        convolutional=(mcfg.arch == "unet" or (mcfg.arch == "auto" and data.image)),
        init=init,
        players=(Player("model", loss, post_update=ema_update("model", "model_ema", ema) if ema > 0 else None),),
        sample=sample,
        log_prob=None,
        log_prob_kind="none",
        estimator="none: a consistency model defines no density; it is scored by its samples",
        modules=lambda params: nnx.merge(graphdef(), params["model"]),
        curves=Curves("ct", 1.0, "consistency training loss (pseudo-Huber / level gap)"),
        info={"nfe": 1 + len(mids), "mid_sigmas": list(mids), "curriculum_steps": int(mcfg.curriculum_steps)},
    )
