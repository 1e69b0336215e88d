"""DDPM (Ho et al. 2020) on scikit-learn's 8x8 digits, and a 28x28 variant.

    genjax train --config experiments/ddpm_digits/config.py            # digits, 8x8
    genjax train --config experiments/ddpm_digits/config.py:mnist \\
        --config.data.name=npz:/path/mnist.npz                         # or tfds:mnist (prepared data_dir)
    genjax train --config experiments/ddpm_digits/config.py:discrete   # the 17 levels, undequantized
    genjax train --config experiments/ddpm_digits/config.py:smoke      # seconds, for tests
    python experiments/ddpm_digits/main.py                             # + DDIM at 10 / 50 / all steps

U-Net eps_theta with channels (32, 64) (8x8 -> 4x4, self-attention at 4x4; 28x28: (32, 64, 64),
28 -> 14 -> 7), VP process with the linear schedule (the continuous VP SDE with beta 0.1..20 on a
grid of T = 250 steps: a CPU budget for the bound and the samplers; T = 1000 is Ho et al.'s), L_simple, EMA 0.999 of the
weights, images scaled to [-1, 1] and uniformly dequantized (``data.dequantize``: the model
learns a continuous density whose ODE likelihood and bound, with the dequantization counted, are
bounds on the discrete NLL in bits/dim). ``:discrete`` trains on the 17 grey levels themselves
(the bound's decoder discretized to them, the ODE likelihood dequantized inside): 1.97 / 2.47
bits/dim and FID 7.75 after 3,600 steps, as good as dequantized (README, "Score-based and
diffusion models"; its earlier failure was a data bug, fixed 2026-12-02). ``genjax train`` ends with
the eval suite: ODE NLL, the bound, FID / KID / IS with the digits domain classifier,
precision / recall, duplicates and PCA, from ancestral samples.
"""

from genjax.config import base_config

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = ("", "mnist", "discrete", "smoke")

def get_config(arg: str | None = None):
    c = base_config()
    c.name = "ddpm_digits"
    c.data.name = "digits"
    c.data.scale = "-11"
    c.data.dequantize = True
    c.model.family = "diffusion"
    d = c.model.diffusion
    d.arch, d.channels, d.groups, d.attention = "unet", (32, 64), 8, True
    d.process, d.schedule, d.timesteps, d.loss = "vp", "linear", 250, "eps"
    d.ema = 0.999
    d.sampler = "ancestral"
    d.ode_steps = 50
    c.optim.lr = 1e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 100
    c.optim.clip_norm = 1.0
    c.train.batch_size = 128
    c.train.epochs = 200  # 10 steps per epoch: 2,000 steps, ~21 min on 2 CPU cores (raise it on an accelerator)
    # L_simple is not the bound: while it trains, the bound's small-t terms first grow (the
    # per-epoch estimate rose 247 -> 655 nats over epochs 6-27 on digits), so the best-validation
    # weights would be the untrained ones; keep the last
    c.train.keep_best = False
    c.train.checkpoint_every = 40
    # train.loop='auto': on a CPU the U-Net's steps run as a host loop over one compiled step (an
    # XLA loop around conv gradients is ~20x slower, full unrolling compiles for minutes)
    c.eval.batch_size = 120
    c.eval.n_samples = 100
    if arg == "mnist":
        c.name = "ddpm_mnist"
        c.data.name = "tfds:mnist"
        d.channels = (32, 64, 64)
        c.train.epochs = 20
    elif arg == "discrete":
        # on the 17 discrete levels themselves (the bound's decoder discretized, the ODE likelihood
        # dequantized inside): as good as dequantized training once the data-scale bug was fixed
        c.name = "ddpm_digits_discrete"
        c.data.dequantize = False
    elif arg == "smoke":
        d.channels, d.groups = (8, 16), 4
        d.timesteps, d.ode_steps, d.sample_steps = 20, 4, 10
        c.train.epochs, c.train.batch_size = 1, 64
        c.optim.warmup_steps = 2
        c.eval.max_samples = 200
    elif arg:
        raise ValueError(f"experiments/ddpm_digits: the variant must be mnist, discrete or smoke, got {arg!r}.")
    return c
