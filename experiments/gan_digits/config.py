"""A DCGAN-style GAN on scikit-learn's 8x8 digits (and an MNIST variant).

    genjax train --config experiments/gan_digits/config.py            # digits, WGAN-GP + EMA
    genjax train --config experiments/gan_digits/config.py:sngan      # hinge loss, SN critic
    genjax train --config experiments/gan_digits/config.py:nsgan      # the DCGAN recipe (collapses here)
    genjax train --config experiments/gan_digits/config.py:mnist      # data.name=npz:... or tfds:mnist
    genjax train --config experiments/gan_digits/config.py:smoke      # seconds, for tests

Generator: z (32) -> Dense -> 2x2x64 -> ConvTranspose(4, 2) 32 -> ConvTranspose(4, 2) 32 ->
Conv3x3 1, tanh (images scaled to [-1, 1]); critic: Conv(4, 2) 32 -> Conv(4, 2) 64 -> Dense,
leaky ReLU. WGAN-GP (5 critic steps, penalty 10, Adam(1e-4, 0.5, 0.9)), EMA 0.999 of the generator
for sampling: FID 7.2 against a real-versus-real 5.6 (results/, re-run 2026-12-02 after the
double-scaling data fix; the figures measured before it — FID 178 here, 312 with (64, 128)
channels, the :nsgan collapse in results_nsgan/ — were of digits in [-3, 1] and are not re-run).
``genjax train`` ends with ``genjax eval``'s sample metrics: FID / KID / IS with the digits
domain classifier next to real-versus-real values, precision/recall,
the duplicate test with its montage, and the PCA comparison.
"""

from genjax.config import base_config

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = ("", "nsgan", "sngan", "mnist", "smoke")

def get_config(arg: str | None = None):
    c = base_config()
    c.name = "gan_digits"
    c.data.name = "digits"
    c.data.scale = "-11"
    c.model.family = "gan"
    c.model.gan.arch = "conv"
    c.model.gan.channels = (32, 64)  # critic, from the image down; the generator mirrors it
    c.model.gan.latent_dim = 32
    c.model.gan.activation = "relu"
    c.model.gan.disc_activation = "leaky_relu"
    c.model.gan.ema = 0.999
    c.model.gan.objective = "wgan"
    c.model.gan.n_critic = 5
    c.model.gan.gp = 10.0
    c.optim.lr = 1e-4
    c.optim.b1, c.optim.b2 = 0.5, 0.9
    c.train.batch_size = 64
    c.train.epochs = 2500  # 4 steps (of 5 x 64 images) per epoch: 10,000 generator steps
    c.train.checkpoint_every = 500
    c.eval.n_samples = 100
    if arg == "nsgan":
        c.name = "gan_digits_nsgan"
        c.model.gan.objective, c.model.gan.n_critic, c.model.gan.gp = "nsgan", 1, 0.0
        c.optim.lr, c.optim.b1, c.optim.b2 = 2e-4, 0.5, 0.999
        c.train.epochs, c.train.checkpoint_every = 500, 100  # 20 steps per epoch
    elif arg == "sngan":
        c.name = "gan_digits_sngan"
        c.model.gan.spectral_norm = True
        c.model.gan.objective, c.model.gan.gp = "hinge", 0.0
        c.optim.lr = 2e-4
    elif arg == "mnist":
        c.name = "gan_mnist"
        c.data.name = "tfds:mnist"  # or npz:/path/to/mnist.npz (x_train, y_train, x_test, y_test)
        c.model.gan.channels = (64, 128)  # 28 -> 14 -> 7
        c.model.gan.latent_dim = 64
        c.train.epochs = 60  # 168 steps (of 5 x 64 images) per epoch with 54,000 training images
        c.train.checkpoint_every = 10
    elif arg == "smoke":
        c.name = "gan_digits_smoke"
        c.model.gan.channels = (8, 16)
        c.model.gan.latent_dim = 8
        c.train.epochs = 2
        c.train.checkpoint_every = 1
        c.eval.n_samples = 16
    elif arg is not None:
        raise ValueError(f"config argument must be nsgan, sngan, mnist or smoke, got {arg!r}.")
    return c
