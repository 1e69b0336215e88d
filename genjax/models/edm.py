"""EDM (Karras et al. 2022): a preconditioned denoiser D(x; sigma) trained on log-normal noise
levels, sampled by Heun's method with churn on the rho-spaced sigma steps, with the probability
flow's exact likelihood (``genjax.objectives.edm`` states the math).

All fields live in ``model.edm`` (``default_config``):

* ``sigma_data`` (the data's std; 0.5 for images in [-1, 1]), ``p_mean``, ``p_std`` (the training
  log-normal), ``sigma_min``, ``sigma_max``, ``rho`` (the sampling steps and the likelihood's ODE).
* ``arch`` and the network fields as in ``model.diffusion``. The network F sees c_in x and, as its
  time input, t = (ln sigma - ln sigma_min) / (ln sigma_max - ln sigma_min): EDM's c_noise = 1/4
  ln sigma up to an affine map onto the [0, 1] the sinusoidal embedding is made for.
* ``conditional``: class-conditional with ``label_dropout``, sampled with classifier-free guidance
  D = (1 + w) D(x; sigma, y) - w D(x; sigma, none); likelihoods use the unconditional denoiser.
* ``sampler`` ``heun`` (Algorithm 2: 2 N - 1 evaluations) or ``euler`` (N), with N =
  ``sample_steps`` and the churn ``s_churn``, ``s_tmin``, ``s_tmax``, ``s_noise`` (0 churn: the
  deterministic probability flow).

Likelihood: ``log_prob`` integrates (x, int div v) of dx/dsigma = (x - D) / sigma from sigma_min to
sigma_max (RK4 over ``ode_steps`` rho-spaced steps) and scores the end under N(0, sigma_max^2 I);
the divergence exact for at most 4 dimensions, else Hutchinson's; images on discrete levels are
dequantized inside (a bound on their discrete NLL). ``val_log_prob``: ``val_ode_steps`` steps.
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
from genjax.objectives import edm, ode
from genjax.objectives import score as sc

_NET = ("arch", "hidden", "activation", "channels", "groups", "attention")
_COND = ("conditional", "label_dropout", "guidance", "ema")

FIELDS = {
    **{k: DIFFUSION_FIELDS[k] for k in _NET},
    "sigma_data": Float(0.5, "the data's standard deviation (0.5 for images in [-1, 1])", gt=0.0),
    "p_mean": Float(-1.2, "training: the mean of ln sigma", ge=-10.0, le=10.0),
    "p_std": Float(1.2, "training: the std of ln sigma", gt=0.0),
    "sigma_min": Float(0.002, "the smallest noise level sampled to and the likelihood's start", gt=0.0),
    "sigma_max": Float(80.0, "the largest noise level: sampling starts from N(0, sigma_max^2 I)", gt=0.0),
    "rho": Float(7.0, "the steps' spacing: even in sigma^(1/rho)", gt=0.0),
    **{k: DIFFUSION_FIELDS[k] for k in _COND},
    "sampler": Choice("heun", "heun (EDM's Algorithm 2) | euler", ("heun", "euler")),
    "sample_steps": Int(18, "N, the sampling steps (Heun: 2 N - 1 network evaluations)", ge=1),
    "s_churn": Float(0.0, "stochastic churn (0 = the deterministic ODE)", ge=0.0),
    "s_tmin": Float(0.05, "churn only for sigma >= s_tmin", ge=0.0),
    "s_tmax": Float(50.0, "churn only for sigma <= s_tmax", ge=0.0),
    "s_noise": Float(1.003, "churn noise inflation", gt=0.0),
    "ode_steps": Int(100, "RK4 steps of the likelihood ODE", ge=1),
    "val_ode_steps": Int(20, "RK4 steps of the per-epoch validation likelihood", ge=1),
    "trace": DIFFUSION_FIELDS["trace"],
    "probe": DIFFUSION_FIELDS["probe"],
    "clip": Bool(True, "images: clip samples to the data range"),
}
FIELDS = changeable("sample", FIELDS, "guidance", "sampler", "sample_steps", "s_churn", "s_tmin", "s_tmax", "s_noise",
                    "clip")  # fmt: skip
FIELDS = changeable("eval", FIELDS, "trace", "probe", "ode_steps")
LEGACY: dict = {}  # the block is newer than the flat configs


def default_config() -> ml_collections.ConfigDict:
    """``model.edm``: the denoiser, its noise distribution, Heun's sampler (``FIELDS``)."""
    return defaults(FIELDS)


def check(mcfg, data: DataInfo, block: str = "edm"):
    """The rules EDM and consistency blocks share: sigma_min < sigma_max reaching the prior, the
    network fits the data, labels for a conditional model."""
    if not float(mcfg.sigma_min) < float(mcfg.sigma_max):
        raise ValueError(f"model.{block}.sigma_min must lie in (0, sigma_max={mcfg.sigma_max}), got "
                         f"{mcfg.sigma_min!r}.")  # fmt: skip
    if mcfg.arch == "unet" and not data.image:
        raise ValueError(f"model.{block}.arch='unet' needs image data (H, W, C), got shape {data.shape}.")
    if mcfg.get("conditional", False) and not data.n_classes:
        raise ValueError(f"model.{block}.conditional=True needs class labels, and this dataset has none.")
    r = float(data.max_norm) or (math.sqrt(data.num_dims) if data.image else 0.0)
    kl = prior_gap(sc.Process("ve", sigma_min=float(mcfg.sigma_min), sigma_max=float(mcfg.sigma_max)), r,
                   data.num_dims)  # fmt: skip
    if kl > 1.0:
        raise ValueError(
            f"model.{block}.sigma_max={mcfg.sigma_max!r}: N(0, sigma_max^2 I) is not the noised data: for the "
            f"training example farthest from 0 (norm {r:.3g}) their KL is {kl:.3g} nats (the limit is 1); raise "
            f"model.{block}.sigma_max."
        )


def time_input(sigma, mcfg):
    """The network's time input: ln sigma mapped affinely so sigma_min -> 0 and sigma_max -> 1."""
    lo, hi = math.log(float(mcfg.sigma_min)), math.log(float(mcfg.sigma_max))
    return (jnp.log(sigma) - lo) / (hi - lo)


def make_edm(mcfg, data: DataInfo) -> Family:
    """The EDM family for data described by ``data`` (module docstring)."""
    check(mcfg, data)
    shape, _, lo, hi, levels, clip, ema, which, trace, network, graphdef, init = setup(mcfg, data)
    n_classes = int(data.n_classes) if mcfg.conditional else 0
    sd = float(mcfg.sigma_data)
    s_min, s_max, rho = float(mcfg.sigma_min), float(mcfg.sigma_max), float(mcfg.rho)
    val_steps = int(mcfg.val_ode_steps)  # not tied to ode_steps, which may change after training

    def denoiser(state):
        """D(x, sigma [B], y) = c_skip x + c_out F(c_in x, t(sigma), y)."""
        net = network(state)

        def d(x, sigma, y=None):
            c_skip, c_out, c_in, _ = edm.precond(sigma, sd)
            b = lambda c: sc._bcast(c, x)
            return b(c_skip) * x + b(c_out) * net(b(c_in) * x, time_input(sigma, mcfg), y)

        return d

    def loss(params, batch, key, ctx):
        y0 = batch["x"]
        b = y0.shape[0]
        k_s, k_n, k_y = jax.random.split(key, 3)
        y = dropped_labels(k_y, batch, n_classes, float(mcfg.label_dropout), "edm")
        sigma = edm.sample_sigma(k_s, b, float(mcfg.p_mean), float(mcfg.p_std))
        noise = jax.random.normal(k_n, y0.shape).astype(y0.dtype)
        d = denoiser(params["model"])
        terms = edm.denoising_loss(lambda x, s: d(x, s, y), y0, noise, sigma, sd)
        return jnp.mean(terms), {"edm": jnp.mean(terms)}

    def ode_log_prob(steps):
        grid = edm.sigma_steps(steps + 1, s_min, s_max, rho)[:-1][::-1]  # sigma_min .. sigma_max

        def log_prob(params, x, key):
            k_u, k_p = jax.random.split(key)
            xd, log_vol = sc.dequantize_levels(x, k_u, levels, lo, hi) if levels else (x, 0.0)
            v = edm.velocity(guided(denoiser(params[which]), n_classes))
            prior = lambda z: sc.Process("ve", sigma_min=s_min, sigma_max=s_max).prior_log_prob(z)
            return ode.log_prob(v, xd, k_p, grid, prior, trace, mcfg.probe, "rk4") + log_vol

        return log_prob

    def sampler(method):
        sigmas = edm.sigma_steps(int(mcfg.sample_steps), s_min, s_max, rho)

        def sample(params, key, n_samples, cond=None):
            k_y, k = jax.random.split(key)
            y = None
            if n_classes:
                y = jax.random.randint(k_y, (n_samples,), 0, n_classes) if cond is None else jnp.asarray(cond)
            d = guided(denoiser(params[which]), n_classes, y, float(mcfg.guidance))
            x = edm.sample(d, k, (n_samples,) + shape, sigmas, method, float(mcfg.s_churn), float(mcfg.s_tmin),
                           float(mcfg.s_tmax), float(mcfg.s_noise))  # fmt: skip
            return jnp.clip(x, lo, hi) if clip else x

        return sample

    n = int(mcfg.sample_steps)
    nfe = (2 * n - 1 if mcfg.sampler == "heun" else n) * (2 if n_classes and float(mcfg.guidance) else 1)
    other = "euler" if mcfg.sampler == "heun" else "heun"
    return Family(
        name="edm",
        convolutional=(mcfg.arch == "unet" or (mcfg.arch == "auto" and data.image)),
        init=init,
        players=(Player("model", loss, post_update=ema_update("model", "model_ema", ema) if ema > 0 else None),),
        sample=sampler(mcfg.sampler),
        log_prob=ode_log_prob(int(mcfg.ode_steps)),
        log_prob_kind="probability-flow ODE" + (" (Hutchinson estimate)" if trace == "hutchinson" else ""),
        estimator=(f"EDM probability-flow ODE likelihood (RK4, {int(mcfg.ode_steps)} rho-spaced steps from sigma = "
                   f"{s_min:g} to {s_max:g}; "
                   + ("exact divergence" if trace == "exact" else f"Hutchinson divergence, one {mcfg.probe} probe")
                   + (f"; dequantized inside over the {levels} levels: a bound on their NLL" if levels else "")
                   + ")"),  # fmt: skip
        val_log_prob=ode_log_prob(val_steps),
        val_estimator=f"the same ODE likelihood with {val_steps} RK4 steps",
        modules=lambda params: nnx.merge(graphdef(), params["model"]),
        curves=Curves("edm", 1.0, "EDM weighted denoising loss"),
        samplers={other: sampler(other)},
        info={"sampler": mcfg.sampler, "sample_steps": n, "nfe": nfe, "s_churn": float(mcfg.s_churn),
              "ode_steps": int(mcfg.ode_steps), "trace": trace},  # fmt: skip
        classes=n_classes,
    )
