"""The demo: an MLP VAE on scikit-learn's 8x8 digits, dynamically binarized.

genjax train --config experiments/vae_digits/config.py          # the full demo (~20 s on CPU)
genjax train --config experiments/vae_digits/config.py:smoke    # seconds, for tests
genjax cv experiments/vae_digits/config.py:sweep                # 5 folds x a small grid
"""

import ml_collections

from genjax.config import base_config

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = ("", "smoke", "sweep")

def get_config(arg: str | None = None):
    c = base_config()
    c.name = "vae_digits"
    c.data.name = "digits"
    c.data.binarize = "dynamic"  # fresh Bernoulli draw per epoch; fixed draw for val/test
    c.model.vae.arch = "mlp"
    c.model.vae.hidden = (256, 128)
    c.model.vae.latent_dim = 8
    c.model.vae.activation = "relu"
    c.model.vae.objective = "elbo"
    c.model.vae.kl_schedule = "linear"
    c.model.vae.warmup_steps = 1000
    c.optim.name = "adam"
    c.optim.lr = 1e-3
    c.train.epochs = 400
    c.train.batch_size = 64
    c.train.patience = 50
    c.train.min_delta = 0.01
    c.train.checkpoint_every = 50
    if arg == "smoke":
        c.name = "vae_digits_smoke"
        c.model.vae.hidden = (32,)
        c.train.epochs = 3
        c.train.checkpoint_every = 1
        c.model.vae.nll_samples = 20
        c.model.vae.nll_chunk = 10
        c.eval.n_samples = 16
        c.eval.sample_metrics = False  # no domain classifier to train in quick runs
    elif arg == "sweep":
        # widths are looped (shapes change); learning rate and beta are vmapped with the 5 folds
        c.name = "vae_digits_sweep"
        c.train.epochs = 150
        c.train.patience = 20
        c.model.vae.nll_samples = 200
        c.cv.sweep = ml_collections.ConfigDict(
            {"model": {"vae": {"hidden": [(64,), (256, 128)], "beta": [0.5, 1.0]}}, "optim": {"lr": [1e-3, 3e-3]}}
        )
    elif arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'smoke', 'sweep' or nothing.")
    return c
