"""Score-based models on FFJORD's 2-D toys. ``arg`` = "<method>,<data>[:smoke]":

* ``ddpm`` — VP process, linear schedule, T = 1000, L_simple (Ho et al. 2020); ancestral sampling.
* ``dsm`` — VE process, an NCSN ladder of T = 100 levels from 0.01 to 10, denoising score
  matching with lambda = sigma^2 (Song & Ermon 2019); annealed Langevin sampling.
* ``ssm`` — VE process in continuous time, sliced score matching (variance-reduced, one
  Rademacher projection) on the perturbed data, weighted by sigma^2; predictor-corrector sampling.

    genjax train --config experiments/score_toy2d/config.py:ddpm,8gaussians
    python experiments/score_toy2d/main.py     # all of ddpm|dsm|ssm x 8gaussians|checkerboard|moons

The network is the residual score MLP (3 blocks of 128, SiLU, sinusoidal time embedding),
with an EMA (0.999) of its weights for sampling and evaluation. ``genjax eval`` reports the
probability-flow ODE NLL (exact trace in 2-D) beside the DDPM bound, and the 2-D sample metrics.
"""

from genjax.config import base_config

METHODS = ("ddpm", "dsm", "ssm")


# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = tuple(f"{m},{d}" for m in METHODS for d in ("8gaussians", "ring", "8gaussians:smoke"))

def get_config(arg: str | None = None):
    method, _, data = (arg or "ddpm,8gaussians").partition(",")
    smoke = data.endswith(":smoke") or method == "smoke"
    if method == "smoke":
        method, data = "ddpm", "8gaussians"
    data = data.removesuffix(":smoke") or "8gaussians"
    if method not in METHODS:
        raise ValueError(f"experiments/score_toy2d: the method must be one of {', '.join(METHODS)}, got {method!r}.")
    c = base_config()
    c.name = f"score_{method}_{data}"
    c.data.name = f"toy2d:{data}"
    c.data.toy_n = 20000  # 14,400 train, 1,600 validation; 4,000 test from another seed
    c.model.family = "diffusion"
    d = c.model.diffusion
    d.arch, d.hidden, d.activation = "mlp", (128, 128, 128), "silu"
    d.ema = 0.999
    d.ode_steps = 100
    if method == "ddpm":
        d.process, d.schedule, d.timesteps, d.loss, d.sampler = "vp", "linear", 1000, "eps", "ancestral"
    elif method == "dsm":
        d.process, d.sigma_min, d.sigma_max, d.timesteps, d.loss = "ve", 0.01, 10.0, 100, "dsm"
        d.sampler, d.langevin_steps, d.langevin_lr = "langevin", 5, 1e-4
        d.bound_steps = 100
    else:
        d.process, d.sigma_min, d.sigma_max, d.timesteps, d.loss = "ve", 0.01, 10.0, 0, "ssm"
        d.ssm_dist, d.sampler, d.sample_steps, d.snr = "rademacher", "pc", 500, 0.1
    c.optim.lr = 1e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 200
    c.optim.clip_norm = 1.0
    c.train.epochs = 100  # 56 steps per epoch: 5,600 steps
    c.train.batch_size = 256
    c.train.checkpoint_every = 50
    c.eval.batch_size = 1000
    c.eval.max_samples = 2000
    if smoke:
        c.data.toy_n = 2000
        d.hidden = (32, 32)
        d.timesteps = min(d.timesteps, 50) if d.timesteps else 0
        d.bound_steps, d.sample_steps, d.ode_steps, d.langevin_steps = 0, 20, 10, 2
        c.train.epochs = 2
        c.optim.warmup_steps = 2
        c.eval.max_samples = 500
    return c
