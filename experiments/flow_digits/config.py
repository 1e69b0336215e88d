"""Multi-scale flows on dequantized images, reported in bits per dimension.

    genjax train --config experiments/flow_digits/config.py            # Glow-style, digits (17 grey levels)
    genjax train --config experiments/flow_digits/config.py:realnvp    # RealNVP multi-scale, digits
    genjax train --config experiments/flow_digits/config.py:mnist --config.data.name=npz:/path/mnist.npz
        (or tfds:mnist with --config.data.data_dir): RealNVP/Glow-style on MNIST, 256 levels,
        comparable with the published ~1.05 bits/dim (Dinh et al. 2017; Kingma & Dhariwal 2018).

Digits have 17 grey levels, so their bits/dim is in that 17-level space (at most log2 17 = 4.09 for
a uniform model), not comparable with 256-level figures.
"""

from genjax.config import base_config

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = ("", "realnvp", "mnist", "smoke")

def get_config(arg: str | None = None):
    c = base_config()
    c.name = "flow_digits"
    c.data.name = "digits"
    c.data.dequantize = True  # uniform dequantization, fresh each epoch; bits/dim counts it
    c.model.family = "flow"
    c.model.flow.kind = "glow"
    c.model.flow.levels = 2  # 8x8x1 -> 4x4x4 -> (factor out half) -> 2x2x8
    c.model.flow.steps = 4
    c.model.flow.channels = 64
    c.model.flow.logit_alpha = 0.05
    c.optim.lr = 1e-3
    c.optim.clip_norm = 50.0
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 200
    c.train.epochs = 150
    c.train.batch_size = 64
    c.train.patience = 20
    c.train.checkpoint_every = 25
    variant = arg or "glow"
    if variant == "realnvp":
        c.name = "flow_digits_realnvp"
        c.model.flow.kind = "realnvp_ms"
    elif variant == "mnist":
        c.name = "flow_mnist"
        c.data.name = "tfds:mnist"
        c.model.flow.levels = 2  # 28x28 -> 14x14x4 -> 7x7x8
        c.model.flow.steps = 8
        c.model.flow.channels = 128
        c.train.batch_size = 64
        c.train.epochs = 100
    elif variant == "smoke":
        c.name = "flow_digits_smoke"
        c.model.flow.steps = 1
        c.model.flow.channels = 8
        c.train.epochs = 2
        c.optim.warmup_steps = 2
        c.eval.n_samples = 16
    elif variant != "glow":
        raise ValueError(f"unknown config variant {variant!r}; use glow, realnvp, mnist or smoke.")
    return c
