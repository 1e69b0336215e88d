"""Flow matching: a velocity network v_theta(x_t, t, y) regressed on the conditional velocity of a
Gaussian probability path, sampled by integrating dx/dt = v_theta from noise (t = 1) to data
(t = 0), with an exact likelihood by the same ODE (``genjax.objectives.flow_matching`` and
``genjax.objectives.ode`` state the math).

All fields live in ``model.flow_matching`` (``default_config``):

* ``path``: ``ot`` — a(t) = 1 - t, s(t) = ``ot_sigma`` + (1 - ``ot_sigma``) t (Lipman et al. 2023;
  ``ot_sigma`` = 0 is rectified flow's straight line, Liu et al. 2023); ``vp`` / ``ve`` — the
  diffusion family's processes (``schedule``, ``beta_min``, ``beta_max``; ``sigma_min``,
  ``sigma_max``), trained for t in (``t_eps``, 1).
* ``coupling``: ``independent`` (noise and data drawn apart: CFM), ``ot`` (each batch's noise
  re-paired with its data by the exact minimum squared-distance assignment: OT-CFM, Tong et al.
  2024) or ``paired`` (the noise is given with each example as its target y: reflow, Liu et al.
  2023, trains on the pairs (z, x = ODE(z)) of the previous model, ``decode_noise``).
* ``t_train`` ``one``: train at t = 1 only, so one Euler step z - v(z, 1) is the whole sampler
  (Liu et al.'s distillation of a paired coupling; such a model has no likelihood).
* ``arch`` and the network fields as in ``model.diffusion`` (the residual MLP or the U-Net of
  ``genjax.nn.score``, here predicting the velocity).
* ``conditional``: class-conditional with ``label_dropout``; sampled with classifier-free guidance
  v = (1 + w) v(x, t, y) - w v(x, t, none). Likelihoods use the unconditional velocity.
* ``sampler`` (``euler`` | ``heun`` | ``rk4``) with ``sample_steps`` steps on a uniform grid
  from 1 to the data end (NFE = steps x 1, 2, 4); every other method is in ``samplers``.

Likelihood: ``log_prob`` integrates (x, int div v) from the data end (t = 0 on the ot path,
``t_eps`` on vp / ve) to t = 1 with ``ode_steps`` RK4 steps and scores the end point under the
prior N(0, s(1)^2 I); the divergence is exact for at most 4 dimensions, else Hutchinson's. Images
on discrete levels are dequantized inside (u ~ U(-1/2, 1/2) bins: a bound on their discrete NLL,
as in the diffusion family). ``val_log_prob``: the same with ``val_ode_steps`` steps per epoch.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from genjax.fields import Bool, Choice, Float, Int, changeable, defaults
from genjax.models.base import Curves, DataInfo, Family, Player
from genjax.models.diffusion import FIELDS as DIFFUSION_FIELDS
from genjax.models.diffusion import dropped_labels, guided, prior_gap, setup
from genjax.models.ema import ema_update
from genjax.objectives import flow_matching as fm
from genjax.objectives import ode
from genjax.objectives import score as sc

_SHARED = ("arch", "hidden", "activation", "channels", "groups", "attention", "schedule", "beta_min", "beta_max",
           "sigma_min", "sigma_max", "t_eps", "conditional", "label_dropout", "guidance", "ema", "trace", "probe",
           "ode_steps", "clip")  # fmt: skip

FIELDS = {
    **{k: DIFFUSION_FIELDS[k] for k in _SHARED[:6]},
    "path": Choice("ot", "the probability path: ot (straight lines; rectified flow at ot_sigma = 0) | vp | ve "
                   "(the diffusion processes)", fm.PATHS),
    "ot_sigma": Float(0.0, "ot path: the noise std left at the data end (Lipman's sigma_min)", ge=0.0, lt=1.0),
    **{k: DIFFUSION_FIELDS[k] for k in _SHARED[6:12]},
    "coupling": Choice("independent", "pairs of noise and data: independent (CFM) | ot (exact minibatch optimal "
                       "transport, OT-CFM) | paired (the noise is each example's target y: reflow on the (z, x) "
                       "pairs a previous model drew)", ("independent", "ot", "paired")),
    "t_train": Choice("uniform", "training times: uniform on the path | one (t = 1 only: a paired coupling "
                      "distilled into one Euler step)", ("uniform", "one")),
    **{k: DIFFUSION_FIELDS[k] for k in _SHARED[12:16]},
    "sampler": Choice("heun", "the ODE solver when sampling: euler | heun | rk4", ode.METHODS),
    "sample_steps": Int(50, "solver steps when sampling (NFE = steps x 1 / 2 / 4)", ge=1),
    **{k: DIFFUSION_FIELDS[k] for k in _SHARED[16:]},
    "val_ode_steps": Int(20, "RK4 steps of the per-epoch validation likelihood", ge=1),
}
FIELDS["ode_steps"] = Int(100, "RK4 steps of the likelihood ODE", ge=1)
FIELDS["clip"] = Bool(True, "images: clip samples to the data range")
FIELDS = changeable("sample", FIELDS, "guidance", "sampler", "sample_steps", "clip")
FIELDS = changeable("eval", FIELDS, "trace", "probe", "ode_steps")
LEGACY: dict = {}  # the block is newer than the flat configs


def default_config() -> ml_collections.ConfigDict:
    """``model.flow_matching``: the velocity network, the path, the coupling, the solvers (``FIELDS``)."""
    return defaults(FIELDS)


def path_of(mcfg) -> fm.Path:
    """The probability path a ``model.flow_matching`` block describes."""
    kind = mcfg.path
    process = sc.Process("ve" if kind == "ve" else "vp", mcfg.schedule, float(mcfg.beta_min), float(mcfg.beta_max),
                         float(mcfg.sigma_min), float(mcfg.sigma_max))  # fmt: skip
    return fm.Path(kind, float(mcfg.ot_sigma), process)


def _check(mcfg, data: DataInfo):
    def bad(field, why):
        raise ValueError(f"model.flow_matching.{field} {why}, got {mcfg[field]!r}.")

    if mcfg.path == "ve" and not float(mcfg.sigma_min) < float(mcfg.sigma_max):
        bad("sigma_min", f"must lie in (0, sigma_max={mcfg.sigma_max})")
    if mcfg.path == "vp" and not float(mcfg.beta_min) < float(mcfg.beta_max):
        bad("beta_min", f"must lie in (0, beta_max={mcfg.beta_max})")
    if mcfg.arch == "unet" and not data.image:
        raise ValueError(f"model.flow_matching.arch='unet' needs image data (H, W, C), got shape {data.shape}.")
    if mcfg.conditional and not data.n_classes:
        raise ValueError("model.flow_matching.conditional=True needs class labels, and this dataset has none.")
    if mcfg.coupling == "paired" and math.prod(data.target_shape or (0,)) != data.num_dims:
        raise ValueError(f"model.flow_matching.coupling='paired' needs each example's noise as a real-valued target y "
                         f"of the data's {data.num_dims} values, got targets of shape {data.target_shape}.")
    if mcfg.coupling == "paired" and mcfg.conditional:
        raise ValueError("model.flow_matching.coupling='paired' takes y as the noise, so it cannot be conditional.")
    if mcfg.t_train == "one" and (mcfg.path != "ot" or float(mcfg.ot_sigma)):
        raise ValueError(f"model.flow_matching.t_train='one' distills onto the straight path (path='ot', "
                         f"ot_sigma=0), got path={mcfg.path!r}, ot_sigma={mcfg.ot_sigma!r}.")
    if mcfg.path in ("vp", "ve"):
        r = float(data.max_norm) or (math.sqrt(data.num_dims) if data.image else 0.0)
        kl = prior_gap(path_of(mcfg).process, r, data.num_dims)
        if kl > 1.0:
            field = "beta_max" if mcfg.path == "vp" else "sigma_max"
            raise ValueError(
                f"model.flow_matching.{field}={mcfg[field]!r}: the {mcfg.path} path at t = 1 does not reach the prior "
                f"N(0, {path_of(mcfg).prior_std:g}^2 I): for the training example farthest from 0 (norm "
                f"{r:.3g}) the KL between them is {kl:.3g} nats (the limit is 1); raise model.flow_matching.{field}."
            )


def make_flow_matching(mcfg, data: DataInfo) -> Family:
    """The flow-matching family for data described by ``data`` (module docstring)."""
    _check(mcfg, data)
    shape, _, lo, hi, levels, clip, ema, which, trace, network, graphdef, init = setup(mcfg, data)
    n_classes = int(data.n_classes) if mcfg.conditional else 0
    path = path_of(mcfg)
    t_lo = 0.0 if mcfg.path == "ot" else float(mcfg.t_eps)  # the data end of training, sampling and likelihoods
    val_steps = int(mcfg.val_ode_steps)  # not tied to ode_steps, which may change after training

    def velocity(state, y=None, guidance=0.0):
        """v(x, t) with t a scalar, as ``genjax.objectives.ode`` calls it."""
        f = guided(network(state), n_classes, y, guidance)
        return lambda x, t: f(x, jnp.full(x.shape[:1], t, jnp.float32))

    def loss(params, batch, key, ctx):
        x = batch["x"]
        b = x.shape[0]
        k_t, k_n, k_y = jax.random.split(key, 3)
        y = dropped_labels(k_y, batch, n_classes, float(mcfg.label_dropout), "flow_matching")
        if mcfg.coupling == "paired":
            eps = batch["y"].reshape(x.shape).astype(x.dtype)  # images: the noise comes flattened
        else:
            eps = jax.random.normal(k_n, x.shape).astype(x.dtype)
        if mcfg.coupling == "ot":
            eps = eps[fm.ot_pairing(x, eps)]
        t = jax.random.uniform(k_t, (b,), minval=t_lo, maxval=1.0) if mcfg.t_train == "uniform" else jnp.ones(b)
        net = network(params["model"])
        terms = fm.cfm_loss(lambda xt: net(xt, t, y), x, eps, t, path)
        return jnp.mean(terms), {"cfm": jnp.mean(terms)}

    def ode_log_prob(steps):
        def log_prob(params, x, key):
            k_u, k_p = jax.random.split(key)
            xd, log_vol = sc.dequantize_levels(x, k_u, levels, lo, hi) if levels else (x, 0.0)
            times = jnp.linspace(t_lo, 1.0, steps + 1)
            lp = ode.log_prob(velocity(params[which]), xd, k_p, times, path.prior_log_prob, trace, mcfg.probe, "rk4")
            return lp + log_vol

        return log_prob

    def decoder(method):
        """decode_noise(params, z, cond=None): the ODE from t = 1 (prior_std z) to the data end."""
        times = jnp.linspace(1.0, t_lo, int(mcfg.sample_steps) + 1)

        def decode_noise(params, z, cond=None):
            if n_classes and cond is None:
                raise ValueError("this flow-matching model is class-conditional: decode_noise needs the classes cond.")
            y = jnp.asarray(cond) if n_classes else None
            x = ode.solve(velocity(params[which], y, float(mcfg.guidance)), path.prior_std * z, times, method)
            return jnp.clip(x, lo, hi) if clip else x

        return decode_noise

    def sampler(method):
        decode_noise = decoder(method)

        def sample(params, key, n_samples, cond=None):
            k_y, k = jax.random.split(key)
            if n_classes and cond is None:
                cond = jax.random.randint(k_y, (n_samples,), 0, n_classes)
            return decode_noise(params, jax.random.normal(k, (n_samples,) + shape), cond)

        return sample

    one = mcfg.t_train == "one"  # a one-step map: no density
    what = {"ot": f"ot path, sigma_min {float(mcfg.ot_sigma):g}", "vp": "vp path", "ve": "ve path"}[mcfg.path]
    divergence = "exact divergence" if trace == "exact" else f"Hutchinson divergence, one {mcfg.probe} probe"
    dequantized = f"; dequantized inside over the {levels} levels: a bound on their NLL" if levels else ""
    estimator = f"flow-matching ODE likelihood ({what}; RK4, {int(mcfg.ode_steps)} steps from t = {t_lo:g}; " \
                f"{divergence}{dequantized})"  # fmt: skip
    if one:
        estimator = "none: trained at t = 1 only, the model is a one-step map, whose samples have no tractable density"
    return Family(
        name="flow_matching",
        convolutional=(mcfg.arch == "unet" or (mcfg.arch == "auto" and data.image)),
        init=init,
        players=(Player("model", loss, post_update=ema_update("model", "model_ema", ema) if ema > 0 else None),),
        sample=sampler(mcfg.sampler),
        log_prob=None if one else ode_log_prob(int(mcfg.ode_steps)),
        log_prob_kind="none" if one else "flow ODE" + (" (Hutchinson estimate)" if trace == "hutchinson" else ""),
        estimator=estimator,
        val_log_prob=None if one else ode_log_prob(val_steps),
        val_estimator="" if one else f"the same ODE likelihood with {val_steps} RK4 steps",
        modules=lambda params: nnx.merge(graphdef(), params["model"]),
        curves=Curves("cfm", 1.0, "conditional flow matching"),
        samplers={m: sampler(m) for m in ode.METHODS if m != mcfg.sampler},
        decode_noise=decoder(mcfg.sampler),
        info={"path": mcfg.path, "coupling": mcfg.coupling, "sampler": mcfg.sampler,
              "sample_steps": int(mcfg.sample_steps), "nfe": ode.evaluations(mcfg.sampler, int(mcfg.sample_steps)),
              "ode_steps": int(mcfg.ode_steps), "trace": trace},  # fmt: skip
        classes=n_classes,
    )
