"""GANs on the PacGAN 2-D mixtures (Lin et al. 2018, Sec. 5; after VEEGAN).

``ring``: 8 Gaussians on the unit circle, std 0.01; ``grid``: 25 Gaussians on a 5x5 grid with
spacing 2, std 0.05. Networks follow the PacGAN setup in size (generator 4 x 400 ReLU,
discriminator 3 x 200, both without PacGAN's batch norm and maxout; z has 2 dims), Adam with
(b1, b2) = (0.5, 0.9), batch 100, 90,000 training points. Variants (``VARIANTS``): the minimax
GAN (saturating generator loss), NS-GAN, WGAN-GP (5 critic steps, gradient-penalty weight 0.1 as
in Gulrajani et al.'s toy experiments: 10 trains far slower here) and SN-GAN (spectrally
normalized discriminator; non-saturating loss with 1 step, or hinge with 5), NS-GAN with the gradient
penalty (``nsgan_gp``), and PacGAN2/3/4 (``pacgan<m>``: the minimax GAN with ``model.gan.pack = m``;
a packed discriminator draws m batches per step, so an epoch has 1/m of the steps).

    genjax train --config experiments/gan_mixtures/config.py:wgan_gp,ring
    python experiments/gan_mixtures/main.py        # all variants x both datasets x 10 seeds
"""

from genjax.config import base_config

VARIANTS = {
    # name: (objective.name, n_critic, gp, spectral_norm, lr, disc_lr, pack)
    "gan": ("gan", 1, 0.0, False, 1e-4, 0.0, 1),
    "nsgan": ("nsgan", 1, 0.0, False, 1e-4, 0.0, 1),
    "wgan_gp": ("wgan", 5, 0.1, False, 1e-4, 0.0, 1),
    "nsgan_gp": ("nsgan", 1, 0.1, False, 1e-4, 0.0, 1),  # NS-GAN + gradient penalty (one D step)
    "sngan": ("nsgan", 1, 0.0, True, 2e-4, 0.0, 1),
    "sngan_hinge": ("hinge", 5, 0.0, True, 2e-4, 0.0, 1),
    # PacGAN (Lin et al. 2018): the minimax GAN whose discriminator judges m samples packed
    "pacgan2": ("gan", 1, 0.0, False, 1e-4, 0.0, 2),
    "pacgan3": ("gan", 1, 0.0, False, 1e-4, 0.0, 3),
    "pacgan4": ("gan", 1, 0.0, False, 1e-4, 0.0, 4),
}


# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = tuple(f"{v},{d}" for v in VARIANTS for d in ("ring", "grid"))

def get_config(arg: str | None = None):
    variant, data = ((arg or "wgan_gp,ring").split(",") + ["ring"])[:2]
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}.")
    if data not in ("ring", "grid"):
        raise ValueError(f"data must be ring or grid, got {data!r}.")
    obj, n_critic, gp, sn, lr, disc_lr, pack = VARIANTS[variant]
    c = base_config()
    c.name = f"gan_mixtures_{variant}_{data}"
    c.data.name = f"toy2d:{data}"
    c.data.toy_n = 100_000
    c.model.family = "gan"
    c.model.gan.arch = "mlp"
    c.model.gan.hidden = (400, 400, 400, 400)
    c.model.gan.disc_hidden = (200, 200, 200)
    c.model.gan.latent_dim = 2
    c.model.gan.spectral_norm = sn
    c.model.gan.ema = 0.999
    c.model.gan.objective = obj
    c.model.gan.n_critic = n_critic
    c.model.gan.gp = gp
    c.model.gan.pack = pack
    c.optim.lr = lr
    c.model.gan.disc_lr = disc_lr
    c.optim.b1, c.optim.b2 = 0.5, 0.9
    c.train.batch_size = 100
    c.train.epochs = 100
    c.train.checkpoint_every = 10
    c.eval.n_samples = 2500
    return c
