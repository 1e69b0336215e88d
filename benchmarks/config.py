"""The per-family benchmark configs (``genjax bench benchmarks/config.py:<family>``): one model of
each family on data every machine has, shaped as the issue's comparison runs them, each with a
plain-JAX twin in ``benchmarks/twins.py``.

    genjax bench benchmarks/config.py:vae_mlp [--whole] [--json benchmarks/results]
"""

from genjax.config import base_config

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = ("vae_mlp", "vae_conv", "wgan_gp", "realnvp", "glow", "ddpm_mlp", "ddpm_unet", "fm_mlp", "edm_mlp", "ct_mlp",
            "made", "pixelcnn", "gpt", "predictor")  # fmt: skip


def get_config(arg: str | None = None):
    name = arg or "vae_mlp"
    if name not in EXAMPLES:
        raise ValueError(f"unknown benchmark {name!r}; use one of {', '.join(EXAMPLES)}.")
    c = base_config()
    c.name = f"bench_{name}"
    c.train.epochs = 100
    c.train.batch_size = 100
    c.train.checkpoint_every = 10
    c.data.name = "mnist5k"
    c.eval.sample_metrics = False
    if name == "vae_mlp":  # Burda et al.'s 784-200-200-50 (ReLU), dynamically binarized
        c.data.binarize = "dynamic"
        c.model.vae.update(arch="mlp", hidden=(200, 200), latent_dim=50)
    elif name == "vae_conv":
        c.data.binarize = "dynamic"
        c.model.vae.update(arch="conv", channels=(32, 64), latent_dim=16)
    elif name == "wgan_gp":
        c.data.name, c.data.toy_n = "toy2d:ring", 20000
        c.model.family = "gan"
        c.model.gan.update(arch="mlp", hidden=(256, 256), disc_hidden=(256, 256), latent_dim=2, objective="wgan",
                           n_critic=5, gp=0.1)  # fmt: skip
        c.optim.update(b1=0.5, b2=0.9, lr=1e-4)
    elif name == "realnvp":
        c.data.name, c.data.toy_n = "toy2d:moons", 20000
        c.model.family = "flow"
        c.model.flow.update(kind="realnvp", hidden=(256, 256), n_layers=8)
        c.train.batch_size = 256
    elif name == "glow":
        c.data.name, c.data.dequantize = "digits", True
        c.model.family = "flow"
        c.model.flow.update(kind="glow", levels=2, steps=4, channels=64)
        c.train.batch_size = 64
    elif name == "ddpm_mlp":
        c.data.name, c.data.toy_n = "toy2d:8gaussians", 20000
        c.model.family = "diffusion"
        c.model.diffusion.update(arch="mlp", hidden=(128, 128, 128), timesteps=1000, ema=0.0)
        c.train.batch_size = 256
    elif name in ("fm_mlp", "edm_mlp", "ct_mlp"):  # the few_step study's toy models, without the weight average
        c.data.name, c.data.toy_n = "toy2d:8gaussians", 20000
        c.model.family = {"fm_mlp": "flow_matching", "edm_mlp": "edm", "ct_mlp": "consistency"}[name]
        c.model[c.model.family].update(arch="mlp", hidden=(128, 128, 128), ema=0.0)
        if name != "fm_mlp":
            c.model[c.model.family].sigma_data = 2.0
        if name != "ct_mlp":  # a one-step validation ODE, so the epoch is the training the twin is held to
            c.model[c.model.family].val_ode_steps = 1
        c.train.batch_size = 256
    elif name == "ddpm_unet":
        c.data.name, c.data.scale, c.data.dequantize = "digits", "-11", True
        c.model.family = "diffusion"
        c.model.diffusion.update(arch="unet", channels=(32, 64), timesteps=1000, ema=0.0)
        c.train.batch_size = 64
    elif name == "made":  # the MADE 784-500-500 on binarized digits
        c.data.binarize = "dynamic"
        c.model.family = "autoregressive"
        c.model.autoregressive.update(arch="made", hidden=(500, 500))
    elif name == "pixelcnn":
        c.data.name, c.data.binarize = "digits", "dynamic"
        c.model.family = "autoregressive"
        c.model.autoregressive.update(arch="pixelcnn", channels=64, n_layers=4)
        c.train.batch_size = 64
    elif name == "gpt":
        c.data.name, c.data.block_size, c.data.text_chars = "text:", 128, 100_000
        c.model.family = "autoregressive"
        c.model.autoregressive.update(arch="transformer", d_model=128, n_layers=4, n_heads=4)
        c.train.batch_size = 32
    else:  # predictor: p(y | x) on the digits' classes
        c.model.family = "predictor"
        c.model.predictor.update(arch="mlp", hidden=(512, 512), likelihood="categorical")
    return c
