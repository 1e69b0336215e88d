"""Overfitting study on a small digits subset (see main.py). The base setting: an MLP VAE that
is large for 300 training images, statically binarized (one fixed draw, so it can memorize)."""

from genjax.config import base_config

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = ("", "smoke")

def get_config(arg: str | None = None):
    c = base_config()
    c.name = "overfitting"
    c.data.name = "digits"
    c.data.binarize = "static"
    c.data.val_fraction = 0.1  # 144 validation images
    c.data.train_size = 300  # a few hundred training images
    c.model.vae.hidden = (512, 256)
    c.model.vae.latent_dim = 16
    c.model.vae.objective = "elbo"
    c.optim.lr = 1e-3
    c.train.epochs = 300
    c.train.batch_size = 32
    c.model.vae.val_samples = 10
    c.train.train_eval = True  # score a fixed training subset each epoch: train vs held-out curves
    c.train.patience = 0
    c.cv.folds = 3
    c.model.vae.nll_samples = 200
    c.model.vae.nll_chunk = 100
    if arg == "smoke":
        c.train.epochs = 4
        c.model.vae.hidden = (32,)
        c.model.vae.nll_samples = 10
        c.model.vae.nll_chunk = 10
    elif arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'smoke' or nothing.")
    return c
