"""Few-step generation: every diffusion, flow-matching and consistency method on one axis of network
evaluations. ``arg`` = "<method>,<data>[:smoke]", data a 2-D toy (``8gaussians``, ``ring``,
``checkerboard``, ``moons``, ...), ``digits`` (the embedded 8x8 digits, dequantized, in [-1, 1]) or
``mnist`` (28x28: ``tfds:mnist`` from a prepared data_dir, or ``--config.data.name=npz:PATH``):

* ``ddpm`` — the VP process (linear schedule, continuous time), L_simple (Ho et al. 2020).
* ``fm`` — flow matching on the straight (ot, sigma_min = 0) path: rectified flow's 1-rectified
  model (Lipman et al. 2023; Liu et al. 2023).
* ``otcfm`` — the same with the exact minibatch OT coupling (Tong et al. 2024).
* ``fm_vp`` — flow matching on the VP path of ``ddpm``: the same ODE, learned as a velocity.
* ``vpred`` — ``ddpm`` with v-prediction and Min-SNR-5 weighting (Salimans & Ho 2022; Hang et al. 2023).
* ``edm`` — EDM's preconditioned denoiser, log-normal training noise, Heun (Karras et al. 2022).
* ``ct`` — a consistency model by improved consistency training, sampled in 1 or 2 steps
  (Song & Dhariwal 2024).

    genjax train --config experiments/few_step/config.py:fm,8gaussians
    python experiments/few_step/main.py     # every method, quality against network evaluations

Toys: the residual MLP (3 blocks of 128, SiLU), 20,000 points; digits: the U-Net (32, 64) with
attention at 4x4. Every model but the consistency model (iCT uses none) keeps an EMA (0.999) of its
weights for sampling and evaluation.
"""

import math

from genjax.config import base_config

METHODS = ("ddpm", "vpred", "edm", "fm", "otcfm", "fm_vp", "ct")
SIGMA_DATA = {"8gaussians": 2.0, "checkerboard": 2.3, "ring": 0.7, "moons": 1.0, "digits": 0.5,
              "mnist": 0.5}  # the data's std

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = tuple(f"{m},{d}" for m in METHODS
                 for d in ("8gaussians", "digits", "mnist", "8gaussians:smoke", "digits:smoke"))  # fmt: skip


def get_config(arg: str | None = None):
    method, _, data = (arg or "fm,8gaussians").partition(",")
    smoke = data.endswith(":smoke")
    data = data.removesuffix(":smoke") or "8gaussians"
    if method not in METHODS:
        raise ValueError(f"experiments/few_step: the method must be one of {', '.join(METHODS)}, got {method!r}.")
    c = base_config()
    c.name = f"few_step_{method}_{data}"
    digits = data in ("digits", "mnist")
    if digits:  # mnist: 28x28 from a prepared TFDS data_dir (or --config.data.name=npz:/path/mnist.npz)
        c.data.name, c.data.scale, c.data.dequantize = "digits" if data == "digits" else "tfds:mnist", "-11", True
    else:
        c.data.name, c.data.toy_n = f"toy2d:{data}", 20000
    # toys: 70 steps per epoch (4,200 steps); digits: 10 (2,000); mnist: 421 (8,420)
    epochs, per_epoch = {"digits": (200, 10), "mnist": (20, 421)}.get(data, (60, 70))
    steps = per_epoch * epochs  # the consistency curriculum spans the whole run
    if method in ("ddpm", "vpred"):
        c.model.family = "diffusion"
        d = c.model.diffusion
        d.process, d.schedule, d.timesteps, d.loss, d.sampler = "vp", "linear", 0, "eps", "dpmpp2m"
        d.sample_steps, d.ode_steps = 25, 100
        if method == "vpred":
            d.prediction, d.weighting, d.snr_gamma = "v", "min_snr", 5.0
    elif method == "edm":
        c.model.family = "edm"
        d = c.model.edm
        d.sigma_data, d.sample_steps, d.ode_steps = SIGMA_DATA.get(data, 1.0), 18, 100
        d.p_mean = -1.2 + math.log(d.sigma_data / 0.5)  # EDM's noise law, scaled with the data (tuned at 0.5)
    elif method == "ct":
        c.model.family = "consistency"
        d = c.model.consistency
        d.sigma_data, d.curriculum_steps, d.mid_sigmas = SIGMA_DATA.get(data, 1.0), steps, ()
        d.p_mean = -1.1 + math.log(d.sigma_data / 0.5)  # iCT's level law, scaled with the data (tuned at 0.5)
    else:
        c.model.family = "flow_matching"
        d = c.model.flow_matching
        d.path = "vp" if method == "fm_vp" else "ot"
        d.coupling = "ot" if method == "otcfm" else "independent"
        d.sampler, d.sample_steps, d.ode_steps = "heun", 25, 100
    d.arch = "unet" if digits else "mlp"
    d.hidden, d.channels, d.groups, d.attention = (128, 128, 128), (32, 64), 8, True
    if data == "mnist":
        d.channels = (32, 64, 64)  # 28 -> 14 -> 7, attention at 7x7
    d.ema = 0.999 if method != "ct" else 0.0  # iCT: no average (Song & Dhariwal 2024)
    c.optim.lr = 1e-3 if not digits else 2e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 200 if not digits else 100
    c.optim.clip_norm = 1.0
    c.train.batch_size = 256 if not digits else 128
    c.train.epochs = epochs
    c.train.keep_best = False  # the regression losses are not the likelihood the validation scores
    c.train.checkpoint_every = 50
    c.eval.batch_size = 1000 if not digits else 120
    c.eval.max_samples = 2000
    if "val_ode_steps" in d:  # the per-epoch validation ODE: a coarse curve (keep_best is off)
        d.val_ode_steps = 5
    if smoke:
        c.data.toy_n = 2000
        d.hidden, d.channels, d.groups = (32, 32), (8, 16), 4
        if "sample_steps" in d:
            d.sample_steps = 5
        if "ode_steps" in d:
            d.ode_steps = 8
        if "val_ode_steps" in d:
            d.val_ode_steps = 4
        if "curriculum_steps" in d:
            d.curriculum_steps = 20
        c.train.epochs, c.optim.warmup_steps = 2, 2
        c.eval.max_samples = 300
    return c
