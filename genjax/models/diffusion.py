"""Score-based and diffusion models: one noise network eps_theta(x_t, t, y), one Gaussian noise
process, three training losses, five samplers, a variational bound and the probability-flow
likelihood (``genjax.objectives.score`` and ``genjax.objectives.samplers`` state the math).

All fields live in the config block ``model.diffusion`` (``default_config``):

* ``process``: ``vp`` (DDPM / the VP SDE; ``schedule`` linear | cosine, ``beta_min``,
  ``beta_max``) or ``ve`` (NCSN / the VE SDE: ``sigma_min`` .. ``sigma_max``, geometric).
* ``timesteps`` T > 0: discrete time, t ~ U{1/T, ..., 1} (DDPM with T = 1000; an NCSN ladder of T
  levels); 0: continuous time, t ~ U(t_eps, 1) (score_sde).
* ``loss``: ``eps`` — Ho et al.'s L_simple ||eps - eps_theta||^2; ``dsm`` — denoising score
  matching with lambda(sigma) = sigma^2 (NCSN's ladder objective in discrete time; half of
  L_simple, same minimizer); ``ssm`` — sliced score matching (variance-reduced,
  ``ssm_projections`` ``ssm_dist`` projections) on the perturbed data, weighted by sigma^2.
* ``prediction`` (loss ``eps``): the network predicts the noise, or ``v`` = a eps - s x0 (Salimans
  & Ho 2022; eps and x0 follow exactly, ``score.from_v``); ``weighting`` ``min_snr``: each
  example's regression weighted by Min-SNR-gamma (Hang et al. 2023, ``snr_gamma``).
* ``arch``: ``mlp`` (``ScoreMLP``, vectors) or ``unet`` (images); ``auto`` picks by the data.
* ``conditional``: class-conditional network trained with ``label_dropout`` (the label replaced
  by 'no label' at that rate), sampled with classifier-free guidance weight ``guidance`` w:
  eps = (1 + w) eps(x, t, y) - w eps(x, t, none) (Ho & Salimans 2022). Densities and bounds use
  the unconditional ('no label') network.
* ``ema`` > 0: the weights' moving average (``genjax.models.ema``) samples and is evaluated.
* ``sampler`` (``sample``): ``ancestral`` | ``ddim`` (``ddim_eta``) | ``langevin``
  (``langevin_steps`` per level, ``langevin_lr``) | ``pc`` (``snr``, ``corrector_steps``) |
  ``ode`` | ``heun`` (the probability flow by Heun's method on the sampling grid, 2 evaluations
  a step) | ``dpmpp2m`` (DPM-Solver++(2M), Lu et al. 2022: steps even in log-SNR in continuous
  time, the last one to the data); ``auto`` = ancestral. ``sample_steps`` (0: T, or 1000 in
  continuous time) time steps or levels, snapped to the training ladder in discrete time. Every
  other sampler is in ``samplers``.

Likelihood: ``log_prob`` is the probability-flow ODE likelihood (RK4 with ``ode_steps`` steps
from min(1/T, t_eps) to 1 — never from a coarse ladder's 1/T, where the data are visibly noised —
; the divergence exact for data of at
most 4 dimensions or by Hutchinson's estimator, ``trace``). For images with ``levels`` discrete
values (not dequantized by the data pipeline), x is dequantized inside with u ~ U(-1/2, 1/2)^D
bins of width Delta: log P(x) >= log p(x + u Delta) + D log Delta, so the figure is a discrete
log-likelihood bound, in the same units as ``bound``. ``bound`` is the DDPM variational bound
(every one of the ``bound_steps`` terms: 0 = T, or 1000 in continuous time) with a Gaussian decoder
discretized to the data's levels; ``val_log_prob`` its one-term unbiased estimate (per epoch).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from genjax.fields import Bool, Choice, Float, Int, Ints, changeable, defaults
from genjax.models.base import Curves, DataInfo, Family, Player
from genjax.models.ema import ema_init, ema_update
from genjax.nn.layers import ACTIVATIONS
from genjax.nn.score import ScoreMLP, UNet
from genjax.objectives import samplers as smp
from genjax.objectives import score as sc

SAMPLERS = ("ancestral", "ddim", "langevin", "pc", "ode", "heun", "dpmpp2m")
LOSSES = ("eps", "dsm", "ssm")


FIELDS = {
    "arch": Choice("auto", "the noise network: auto (U-Net for images, residual MLP otherwise) | mlp | unet",
                   ("auto", "mlp", "unet")),
    "hidden": Ints((128, 128, 128), "residual MLP widths (equal)", ge=1),
    "activation": Choice("silu", "network activation", ACTIVATIONS),
    "channels": Ints((32, 64), "U-Net channels per resolution", ge=1),
    "groups": Int(8, "U-Net group-norm groups", ge=1),
    "attention": Bool(True, "self-attention at the lowest U-Net resolution"),
    "process": Choice("vp", "the noising SDE: variance preserving (DDPM) or variance exploding (NCSN)", ("vp", "ve")),
    "schedule": Choice("linear", "vp: the beta schedule", ("linear", "cosine")),
    "beta_min": Float(0.1, "vp linear: beta(0) in continuous time (T beta_1 in discrete time)", gt=0.0),
    "beta_max": Float(20.0, "vp linear: beta(1) in continuous time (T beta_T in discrete time)", gt=0.0),
    "sigma_min": Float(0.01, "ve: the smallest noise level", gt=0.0),
    "sigma_max": Float(10.0, "ve: the largest noise level (should exceed the data's diameter)", gt=0.0),
    "timesteps": Int(1000, "T, the discrete-time ladder (0 = continuous time)", ge=0),
    "t_eps": Float(1e-3, "continuous time: the smallest t trained and sampled to; the likelihood ODE starts at "
                   "min(t_eps, 1/T)", gt=0.0, lt=0.1),
    "loss": Choice("eps", "eps (DDPM noise prediction) | dsm (denoising score matching) | ssm (sliced score "
                   "matching)", LOSSES),
    "prediction": Choice("eps", "loss eps: what the network predicts and regresses on: eps (the noise) | "
                         "v = a eps - s x0 (Salimans & Ho 2022)", ("eps", "v")),
    "weighting": Choice("none", "loss eps: per-example weights: none | min_snr (Min-SNR-gamma, Hang et al. 2023)",
                        ("none", "min_snr")),
    "snr_gamma": Float(5.0, "min_snr: gamma, the SNR at which the x0-loss weight saturates", gt=0.0),
    "ssm_projections": Int(1, "ssm: random projections per example", ge=1),
    "ssm_dist": Choice("gaussian", "ssm: the projections' distribution", ("gaussian", "rademacher")),
    "conditional": Bool(False, "class-conditional network (classifier-free guidance)"),
    "label_dropout": Float(0.1, "conditional: P(label -> 'no label') in training", ge=0.0, lt=1.0),
    "guidance": Float(0.0, "classifier-free guidance weight w when sampling", ge=0.0),
    "ema": Float(0.999, "decay of the weight average used for sampling and evaluation (0 = off)", ge=0.0, lt=1.0),
    "sampler": Choice("auto", "auto (= ancestral) | ancestral | ddim | langevin | pc | ode | heun (the probability "
                      "flow with Heun's method) | dpmpp2m (DPM-Solver++(2M))", ("auto",) + SAMPLERS),
    "sample_steps": Int(0, "sampler steps (0 = T; 1000 in continuous time)", ge=0),
    "ddim_eta": Float(0.0, "ddim: 0 deterministic, 1 the ancestral variance", ge=0.0),
    "langevin_steps": Int(5, "langevin: steps per noise level", ge=1),
    "langevin_lr": Float(2e-5, "langevin: NCSN's step size epsilon", gt=0.0),
    "snr": Float(0.16, "pc: the corrector's signal-to-noise ratio", gt=0.0),
    "corrector_steps": Int(1, "pc: corrector steps per predictor step", ge=1),
    "ode_steps": Int(100, "RK4 steps of the probability-flow ODE (likelihood, ode sampler)", ge=1),
    "trace": Choice("auto", "the ODE likelihood's divergence: auto (exact for D <= 4) | exact | hutchinson",
                    ("auto", "exact", "hutchinson")),
    "probe": Choice("rademacher", "hutchinson probes", ("rademacher", "gaussian")),
    "bound_steps": Int(0, "DDPM bound terms (0 = T; 1000 in continuous time)", ge=0),
    "clip": Bool(True, "images: clip the predicted x0 to the data range while sampling"),
}


def default_config() -> ml_collections.ConfigDict:
    """``model.diffusion``: the noise network, the process, the loss and the samplers (``FIELDS``)."""
    return defaults(FIELDS)


FIELDS = changeable("sample", FIELDS, "guidance", "sampler", "sample_steps", "ddim_eta", "langevin_steps",
                    "langevin_lr", "snr", "corrector_steps", "ode_steps", "clip")  # fmt: skip
FIELDS = changeable("eval", FIELDS, "trace", "probe")  # bound_steps: the validation estimate reads it
LEGACY: dict = {}  # the block is newer than the flat configs


def _check(mcfg, data: DataInfo):
    """The cross-field and data rules (each field's own range: ``FIELDS``, ``genjax.config.validate``)."""

    def bad(field, why):
        raise ValueError(f"model.diffusion.{field} {why}, got {mcfg[field]!r}.")

    if int(mcfg.timesteps) and int(mcfg.sample_steps) > int(mcfg.timesteps):
        bad(
            "sample_steps",
            f"cannot exceed the {mcfg.timesteps} steps of the discrete ladder (model.diffusion.timesteps)",
        )
    if not float(mcfg.sigma_min) < float(mcfg.sigma_max):
        bad("sigma_min", f"must lie in (0, sigma_max={mcfg.sigma_max})")
    if not float(mcfg.beta_min) < float(mcfg.beta_max):
        bad("beta_min", f"must lie in (0, beta_max={mcfg.beta_max})")
    if mcfg.loss != "eps" and (mcfg.prediction != "eps" or mcfg.weighting != "none"):
        field = "prediction" if mcfg.prediction != "eps" else "weighting"
        bad(field, f"applies to the regression loss 'eps' only (model.diffusion.loss is {mcfg.loss!r})")
    if mcfg.arch == "unet" and not data.image:
        raise ValueError(f"model.diffusion.arch='unet' needs image data (H, W, C), got shape {data.shape}.")
    if mcfg.conditional and not data.n_classes:
        raise ValueError("model.diffusion.conditional=True needs class labels, and this dataset has none.")
    r = float(data.max_norm) or (math.sqrt(data.num_dims) if data.image else 0.0)  # images: every pixel at 1
    kl = prior_gap(process_of(mcfg), r, data.num_dims)
    if kl > 1.0:
        field = "beta_max" if mcfg.process == "vp" else "sigma_max"
        raise ValueError(
            f"model.diffusion.{field}={mcfg[field]!r}: the noise at t = 1 does not reach the prior: for the training "
            f"example farthest from 0 (norm {r:.3g}) the bound's prior term KL(q(x_1 | x_0) || p(x_1)) is {kl:.3g} "
            f"nats (the limit is 1), so sampling starts from the wrong distribution and the likelihoods are off by "
            f"about that much; raise model.diffusion.{field}."
        )


def prior_gap(process: sc.Process, r: float, dims: int) -> float:
    """KL(q(x_1 | x_0) || p(x_1)) in nats for an example x_0 of norm ``r`` in ``dims`` dimensions:
    the DDPM bound's prior term, 0.5 (a^2 r^2 / v + D (s^2 / v - 1 - log(s^2 / v))) with (a, s)
    the process at t = 1 and v the prior's variance."""
    a, s = (float(u) for u in process.marginal(1.0))
    v = process.prior_std**2
    return 0.5 * (a * a * r * r / v + dims * (s * s / v - 1.0 - math.log(s * s / v)))


def process_of(mcfg) -> sc.Process:
    """The noise process a ``model.diffusion`` block describes."""
    return sc.Process(mcfg.process, mcfg.schedule, float(mcfg.beta_min), float(mcfg.beta_max),
                      float(mcfg.sigma_min), float(mcfg.sigma_max))  # fmt: skip


def network_parts(mcfg, data: DataInfo):
    """(new(rngs) -> module, network(state) -> eps(x, t, y=None), graphdef() -> the module's
    graphdef) for the block and the data. The graphdef is built at its first use (an abstract
    construction: ~0.9 s for the digits U-Net), so a process whose programs are all read from the
    kept programs (``genjax.train.programs``) never builds it; the config is checked here."""
    shape = tuple(int(s) for s in data.shape)
    dim = math.prod(shape)
    arch = ("unet" if data.image else "mlp") if mcfg.arch == "auto" else mcfg.arch
    n_classes = int(data.n_classes) if mcfg.get("conditional", False) else 0

    def new(rngs):
        if arch == "unet":
            return UNet(shape, tuple(mcfg.channels), int(mcfg.groups), bool(mcfg.attention), n_classes, rngs=rngs)
        return ScoreMLP(dim, tuple(mcfg.hidden), mcfg.activation, n_classes, rngs=rngs)

    if arch == "unet":
        UNet.check(shape, tuple(mcfg.channels))
    else:
        ScoreMLP.check(tuple(mcfg.hidden))

    @functools.cache
    def graphdef():
        return nnx.split(nnx.eval_shape(lambda: new(nnx.Rngs(0))))[0]

    def network(state):
        """The network's own output net(x, t [B], y) (the noise, a velocity or v)."""
        net = nnx.merge(graphdef(), state)
        if arch == "unet":
            return net
        return lambda x, t, y=None: net(x.reshape(x.shape[0], dim), t, y).reshape(x.shape)

    return new, network, graphdef


class Setup(NamedTuple):
    """What every family on ``nn/score.py``'s networks derives from its block and the data."""

    shape: tuple
    dim: int
    lo: float  # the data range (images: clip samples to it)
    hi: float
    levels: int  # images on this many discrete levels are dequantized inside the likelihood (0: none)
    clip: bool
    ema: float
    which: str  # the params entry that samples and is evaluated ("model_ema" with an average)
    trace: str  # the ODE likelihood's divergence: exact | hutchinson
    network: Callable  # state -> net(x, t [B], y)
    graphdef: Callable  # () -> the network's graphdef (built at its first use)
    init: Callable  # (key, example=None) -> params (with the average's copy)


def setup(mcfg, data: DataInfo) -> Setup:
    """The shared set-up of the flow-matching, EDM and consistency families (``Setup``)."""
    shape = tuple(int(s) for s in data.shape)
    dim = math.prod(shape)
    ema = float(mcfg.ema)
    trace = mcfg.get("trace", "auto")
    new, network, graphdef = network_parts(mcfg, data)

    def init(key, example=None):
        params = {"model": nnx.split(new(nnx.Rngs(key)))[1]}
        return ema_init(params, "model", "model_ema") if ema > 0 else params

    lo, hi = (-1.0, 1.0) if data.scale == "-11" else (0.0, 1.0)
    levels = int(data.levels or 0) if data.image else 0
    trace = ("exact" if dim <= 4 else "hutchinson") if trace == "auto" else trace
    clip = data.image and bool(mcfg.get("clip", True))
    return Setup(shape, dim, lo, hi, levels, clip, ema, "model_ema" if ema > 0 else "model", trace, network, graphdef,
                 init)  # fmt: skip


def eps_network(mcfg, network):
    """network(state) -> eps_hat(x, t [B], y): the output itself, or eps from a v-prediction
    (``score.from_v`` with the process's (a, s) at t)."""
    if mcfg.get("prediction", "eps") != "v":
        return network
    process = process_of(mcfg)

    def eps_net(state):
        net = network(state)

        def f(x, t, y=None):
            a, s = process.coeffs(t)
            return sc.from_v(x, net(x, t, y), a, s)[1]

        return f

    return eps_net


def guided(net, n_classes: int, y=None, guidance: float = 0.0):
    """f(x, t [B]) of a network ``net(x, t, y)``: unconditional (``n_classes = 0``), the 'no label'
    output (``y`` None), or classifier-free guided: (1 + w) net(x, t, y) - w net(x, t, none)."""
    if not n_classes:
        return lambda x, t: net(x, t)

    def f(x, t):
        none = jnp.full(x.shape[:1], n_classes, jnp.int32)
        if y is None:
            return net(x, t, none)
        e = net(x, t, jnp.broadcast_to(y, x.shape[:1]))
        return e if guidance == 0 else (1 + guidance) * e - guidance * net(x, t, none)

    return f


def dropped_labels(key, batch, n_classes: int, rate: float, block: str):
    """The labels a classifier-free-guidance network trains with: ``batch["y"]`` with each replaced
    by the 'no label' token ``n_classes`` at ``rate``; None for an unconditional network."""
    if not n_classes:
        return None
    if "y" not in batch:
        raise ValueError(f"model.{block}.conditional=True needs class labels, and this dataset has none.")
    drop = jax.random.bernoulli(key, rate, batch["y"].shape[:1])
    return jnp.where(drop, n_classes, batch["y"]).astype(jnp.int32)


def noise_predictor(mcfg, data: DataInfo, params):
    """eps_hat(x, t [B]) of trained ``params`` (their moving average where ``ema`` > 0; the
    unconditional network of a conditional model), for studies of the score itself."""
    _check(mcfg, data)
    net = eps_network(mcfg, network_parts(mcfg, data)[1])(params["model_ema" if float(mcfg.ema) > 0 else "model"])
    if mcfg.conditional:
        return lambda x, t: net(x, t, jnp.full(x.shape[:1], int(data.n_classes), jnp.int32))
    return lambda x, t: net(x, t)


def evaluations(mcfg, sampler: str, steps: int) -> int:
    """Network evaluations of one draw by ``sampler`` with ``steps`` steps (the NFE; classifier-free
    guidance doubles each)."""
    n = int(steps)
    per = {"ancestral": n, "ddim": n, "dpmpp2m": n, "heun": 2 * n + 1, "ode": 4 * int(mcfg.ode_steps) + 1,
           "pc": n * (1 + int(mcfg.corrector_steps)) + 1, "langevin": n * int(mcfg.langevin_steps) + 1}[sampler]
    return per * (2 if mcfg.conditional and float(mcfg.guidance) else 1)


def make_diffusion(mcfg, data: DataInfo) -> Family:
    """The diffusion family for data described by ``data`` (module docstring)."""
    _check(mcfg, data)
    shape = tuple(int(s) for s in data.shape)
    dim = math.prod(shape)
    n_classes = int(data.n_classes) if mcfg.conditional else 0
    process = process_of(mcfg)
    T = int(mcfg.timesteps)
    t_lo = 1.0 / T if T else float(mcfg.t_eps)
    # the likelihood ODE starts where the data are barely noised, whatever the ladder: from 1/T it
    # would score x under p_{1/T}, the data smoothed by noise of std s(1/T) (at T = 1 the prior
    # itself, whatever the network); below 1/T a discrete-time network is evaluated between its
    # training times, and the density is still exactly normalized (a CNF)
    t_like = min(t_lo, float(mcfg.t_eps))
    bound_T = int(mcfg.bound_steps) or T or 1000
    lo, hi = (-1.0, 1.0) if data.scale == "-11" else (0.0, 1.0)
    levels = int(data.levels or 0) if data.image else 0
    decoder = sc.Decoder(levels, lo, hi)
    clip = (lo, hi) if data.image and mcfg.clip else None
    ema = float(mcfg.ema)
    which = "model_ema" if ema > 0 else "model"
    trace = ("exact" if dim <= 4 else "hutchinson") if mcfg.trace == "auto" else mcfg.trace

    new, network, graphdef = network_parts(mcfg, data)
    eps_net = eps_network(mcfg, network)

    def init(key, example=None):
        params = {"model": nnx.split(new(nnx.Rngs(key)))[1]}
        return ema_init(params, "model", "model_ema") if ema > 0 else params

    def eps_fn(state, y=None, guidance=0.0):
        """eps_hat(x, t [B]) with labels ``y`` (conditional: None = 'no label'), guided by w."""
        return guided(eps_net(state), n_classes, y, guidance)

    def loss(params, batch, key, ctx):
        x = batch["x"]
        b = x.shape[0]
        k_t, k_n, k_y = jax.random.split(key, 3)
        y = dropped_labels(k_y, batch, n_classes, float(mcfg.label_dropout), "diffusion")
        net = network(params["model"])
        if T and mcfg.loss == "dsm":  # NCSN's ladder: the level drawn inside the objective
            a_l, s_l = process.ladder(T)
            score = lambda xt, i: -net(xt, (i + 1) / T, y) / sc._bcast(s_l[1:][i], xt)
            terms = sc.dsm_ladder(score, x, k_n, s_l[1:], a_l[1:])
            return jnp.mean(terms), {"dsm": jnp.mean(terms)}
        t = jax.random.randint(k_t, (b,), 1, T + 1) / T if T else jax.random.uniform(k_t, (b,), minval=t_lo, maxval=1.0)
        a, s = process.coeffs(t)
        if mcfg.loss == "eps":
            xt, eps = sc.perturb(x, k_n, a, s)
            want = sc.v_target(x, eps, a, s) if mcfg.prediction == "v" else eps
            terms = sc._sum_event((net(xt, t, y) - want) ** 2)
            if mcfg.weighting == "min_snr":
                terms = sc.min_snr_weight(a, s, float(mcfg.snr_gamma), mcfg.prediction) * terms
        elif mcfg.loss == "dsm":
            terms = sc.dsm_weighted(lambda xt: -net(xt, t, y) / sc._bcast(s, xt), x, k_n, a, s)
        else:
            k_p, k_v = jax.random.split(k_n)
            xt, _ = sc.perturb(x, k_p, a, s)
            ssm = sc.sliced_score_matching(lambda u: -net(u, t, y) / sc._bcast(s, u), xt, k_v,
                                           int(mcfg.ssm_projections), mcfg.ssm_dist)  # fmt: skip
            terms = s**2 * ssm
        return jnp.mean(terms), {mcfg.loss: jnp.mean(terms)}

    def log_prob(params, x, key):
        """The probability-flow ODE log-likelihood ``[B]`` (module docstring)."""
        k_u, k_p = jax.random.split(key)
        xd, log_vol = sc.dequantize_levels(x, k_u, levels, lo, hi) if levels else (x, 0.0)
        lp = smp.ode_log_prob(eps_fn(params[which]), process, xd, k_p, int(mcfg.ode_steps), t_like, trace, mcfg.probe)
        return lp + log_vol

    def bound(params, x, key):
        """The DDPM variational bound on log p(x), all ``bound_steps`` terms ``[B]``."""
        return sc.vlb(eps_fn(params[which]), x, key, process, bound_T, decoder)

    def val_log_prob(params, x, key):
        """A one-term unbiased estimate of ``bound`` ``[B]``."""
        return sc.vlb_estimate(eps_fn(params[which]), x, key, process, bound_T, decoder)

    def sampler(kind, steps=None, eta=None):
        ladder = T if T else 0
        n = int(steps or mcfg.sample_steps or T or 1000)
        if T and n > T:  # a sub-grid of the ladder repeats no step
            raise ValueError(f"{kind} sampling: {n} steps exceed the {T} steps of the discrete ladder.")

        def sample(params, key, n_samples, cond=None):
            k_y, k = jax.random.split(key)
            y = None
            if n_classes:
                y = jax.random.randint(k_y, (n_samples,), 0, n_classes) if cond is None else jnp.asarray(cond)
            f = eps_fn(params[which], y, float(mcfg.guidance))
            out_shape = (n_samples,) + shape
            if kind == "ancestral":
                return smp.ancestral(f, process, k, out_shape, smp.grid(n, 0.0, ladder), clip)
            if kind == "ddim":
                e = float(mcfg.ddim_eta) if eta is None else eta
                return smp.ddim(f, process, k, out_shape, smp.grid(n, 0.0, ladder), e, clip)
            if kind == "langevin":
                levels_t = smp.grid(n - 1, t_lo, ladder) if n > 1 else jnp.ones(1)
                return smp.annealed_langevin(f, process, k, out_shape, levels_t, int(mcfg.langevin_steps),
                                             float(mcfg.langevin_lr))  # fmt: skip
            if kind == "pc":
                return smp.predictor_corrector(f, process, k, out_shape, smp.grid(n, t_lo, ladder), float(mcfg.snr),
                                               int(mcfg.corrector_steps))  # fmt: skip
            if kind == "heun":
                return smp.probability_flow_solve(f, process, k, out_shape, smp.grid(n, t_lo, ladder), "heun")
            if kind == "dpmpp2m":  # n - 1 steps to t_lo (even in log-SNR in continuous time), one to the data
                body = smp.logsnr_grid(process, n - 1, t_lo) if not T and n > 1 else smp.grid(n - 1, t_lo, ladder)
                times = jnp.concatenate([body if n > 1 else jnp.ones(1), jnp.zeros(1)])
                return smp.dpm_solver_pp(f, process, k, out_shape, times, clip)
            return smp.probability_flow(f, process, k, out_shape, int(mcfg.ode_steps), t_lo)

        return sample

    default = "ancestral" if mcfg.sampler == "auto" else mcfg.sampler
    n_default = int(mcfg.sample_steps or T or 1000)
    return Family(
        name="diffusion",
        convolutional=(mcfg.arch == "unet" or (mcfg.arch == "auto" and data.image)),
        init=init,
        players=(Player("model", loss, post_update=ema_update("model", "model_ema", ema) if ema > 0 else None),),
        sample=sampler(default),
        log_prob=log_prob,
        log_prob_kind="probability-flow ODE" + (" (Hutchinson estimate)" if trace == "hutchinson" else ""),
        estimator=(f"probability-flow ODE likelihood (RK4, {int(mcfg.ode_steps)} steps from t = {t_like:g}; "
                   + ("exact divergence" if trace == "exact" else f"Hutchinson divergence, one {mcfg.probe} probe")
                   + (f"; dequantized inside over the {levels} levels: a bound on their NLL" if levels else "")
                   + ")"),
        val_estimator="one-term unbiased estimate of the DDPM bound (a bound, not the ODE likelihood)",
        val_log_prob=val_log_prob,
        bound=bound,
        bound_name="ddpm_bound",
        modules=lambda params: nnx.merge(graphdef(), params["model"]),
        progress=("loss",),
        curves=Curves(mcfg.loss, 1.0, {"eps": "L_simple", "dsm": "DSM", "ssm": "sliced SM"}[mcfg.loss]),
        samplers={k: sampler(k) for k in SAMPLERS if k != default},
        info={
            "process": mcfg.process,
            "timesteps": T,
            "sampler": default,
            "nfe": evaluations(mcfg, default, n_default),
            "bound_steps": bound_T,
            "ode_steps": int(mcfg.ode_steps),
            "trace": trace,
        },  # fmt: skip
        classes=n_classes,
    )
