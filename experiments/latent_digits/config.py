"""Latent (two-stage) models on statically binarized 8x8 digits: a first stage (VQ-VAE, FSQ, VAE)
and a second model trained on its codes (``data.name = 'latents:<first run>'``).

genjax train --config experiments/latent_digits/config.py:vq --workdir=runs/latent_digits/vq
genjax train --config experiments/latent_digits/config.py:transformer --workdir=runs/latent_digits/vq-prior
genjax train --config experiments/latent_digits/config.py:fsq --workdir=runs/latent_digits/fsq
genjax train --config experiments/latent_digits/config.py:pixelcnn --workdir=runs/latent_digits/fsq-prior
genjax train --config experiments/latent_digits/config.py:vae --workdir=runs/latent_digits/vae
genjax train --config experiments/latent_digits/config.py:diffusion --workdir=runs/latent_digits/vae-ldm

A second stage reads the first from the folder its ``data.name`` names (the ``--workdir`` above;
set ``--config.data.name=latents:<folder>`` for another). ``genjax eval`` of a second stage scores
the pair's bound on the digits and its decoded samples; ``genjax sample`` writes decoded images.
``:smoke`` after a variant: two epochs, for tests.
"""

from genjax.config import base_config

EXAMPLES = ("vq", "fsq", "vae", "transformer", "pixelcnn", "diffusion", "vq:smoke", "transformer:smoke")
FIRST = {"transformer": "vq", "pixelcnn": "fsq", "diffusion": "vae"}


def get_config(arg: str | None = None):
    variant, _, extra = (arg or "vq").partition(":")
    c = base_config()
    c.name = f"latent_digits_{variant}"
    c.data.name = "digits"
    c.data.binarize = "static"
    c.train.batch_size, c.train.patience, c.train.checkpoint_every = 64, 20, 50
    c.optim.lr = 1e-3
    c.train.epochs = 300
    if variant in ("vq", "fsq"):
        c.model.family = "vqvae"
        v = c.model.vqvae
        v.arch, v.channels, v.likelihood = "conv", (64,), "bernoulli"  # a 4x4 grid of codes
        if variant == "vq":
            v.codebook_size, v.code_dim = 32, 16
        else:
            v.quantizer, v.fsq_levels = "fsq", (4, 4)
    elif variant == "vae":
        c.model.family = "vae"
        c.model.vae.hidden, c.model.vae.latent_dim = (256, 128), 8
    elif variant in FIRST:
        c.data.name = f"latents:runs/latent_digits/{FIRST[variant]}"
        c.data.binarize = "none"  # the codes are the data
        if variant == "diffusion":
            c.model.family = "diffusion"
            d = c.model.diffusion
            d.arch, d.hidden, d.trace = "mlp", (256, 256, 256), "exact"
            c.data.latents = "sample"
            c.train.epochs, c.train.patience = 400, 0
        else:
            c.model.family = "autoregressive"
            a = c.model.autoregressive
            if variant == "transformer":
                a.arch, a.d_model, a.n_layers, a.n_heads = "transformer", 64, 2, 4
                c.train.epochs = 200
            else:
                a.arch, a.gated, a.channels, a.n_layers = "pixelcnn", True, 32, 4
                c.train.epochs, c.train.unroll = 100, 0
    else:
        raise ValueError(f"unknown config variant {variant!r}; use one of vq, fsq, vae, transformer, pixelcnn, "
                         "diffusion (optionally :smoke).")  # fmt: skip
    if extra == "smoke":
        c.name += "_smoke"
        c.train.epochs, c.train.checkpoint_every = 2, 1
        c.eval.sample_metrics = False
        if variant == "vae":
            c.model.vae.nll_samples, c.model.vae.nll_chunk = 20, 10
    elif extra:
        raise ValueError(f"unknown config suffix {extra!r}; use ':smoke' or nothing.")
    return c
