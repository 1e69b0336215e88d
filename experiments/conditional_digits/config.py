"""Class-conditional generators on scikit-learn's 8x8 digits: a conditional VAE (the label
one-hot into encoder and decoder, dynamically binarized digits) and a conditional RealNVP
(the label as the context of every coupling, uniformly dequantized digits).

genjax train --config experiments/conditional_digits/config.py           # CVAE
genjax train --config experiments/conditional_digits/config.py:flow      # conditional flow
genjax train --config experiments/conditional_digits/config.py:smoke     # seconds, for tests

``python experiments/conditional_digits/main.py`` trains both and writes the class grids, the
classifier check and pluralistic diversity beside real data (``results/report.md``).
"""

from genjax.config import base_config

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = ("", "flow", "smoke", "flow,smoke")

def get_config(arg: str | None = None):
    c = base_config()
    variant, _, rest = (arg or "cvae").partition(",")
    c.name = f"conditional_digits_{variant}"
    c.data.name = "digits"
    c.optim.lr = 1e-3
    c.train.batch_size = 64
    c.train.patience = 30
    c.train.checkpoint_every = 50
    c.eval.per_class = 30  # the digits test split has ~36 of each class
    if variant in ("cvae", "smoke"):
        c.model.family = "vae"
        c.data.binarize = "dynamic"
        c.model.vae.conditional = True
        c.model.vae.hidden = (256, 128)
        c.model.vae.latent_dim = 8
        c.model.vae.kl_schedule = "linear"
        c.model.vae.warmup_steps = 1000
        c.train.epochs = 300
    elif variant == "flow":
        c.model.family = "flow"
        c.data.dequantize = True
        c.model.flow.kind = "realnvp"
        c.model.flow.conditional = True
        c.model.flow.hidden = (256, 256)
        c.model.flow.n_layers = 8
        c.train.epochs = 300
    else:
        raise ValueError(f"unknown config variant {arg!r}; use cvae, flow or smoke.")
    if "smoke" in (variant, rest):
        c.name += "_smoke"
        if c.model.family == "vae":  # only the active family's block is set (another's would be refused)
            c.model.vae.hidden = (32,)
            c.model.vae.nll_samples = 20
            c.model.vae.nll_chunk = 10
        else:
            c.model.flow.hidden = (32,)
            c.model.flow.n_layers = 2
        c.train.epochs = 3
        c.train.checkpoint_every = 1
        c.eval.per_class = 5
    return c
