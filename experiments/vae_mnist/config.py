"""VAE on MNIST in the setting of Burda et al. (2016): dynamically binarized MNIST, two
deterministic layers of 200 tanh units (encoder and decoder), 50 latents, Bernoulli decoder,
Adam 1e-3, batch 100; held-out NLL by importance sampling with k = 5000 in the paper
(1000 here by default: ``--config.model.vae.nll_samples=5000`` for theirs).

Bring the data; nothing is downloaded:

    genjax train --config experiments/vae_mnist/config.py:npz --config.data.name=npz:/path/mnist.npz
        (image (N, 28, 28) uint8, optional label, test_image/test_label for the official test split)
    genjax train --config experiments/vae_mnist/config.py:tfds --config.data.data_dir=/path/to/tfds
        (mnist prepared beforehand: `tfds build mnist --file_format=array_record`)

Variants: ``npz`` (default) | ``tfds`` | ``iwae`` (the IWAE objective with k = 50, on tfds) |
``smoke`` (a shape check).
"""

from genjax.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.name = "vae_mnist"
    variant = arg or "npz"
    c.data.name = "npz:mnist.npz"
    if variant in ("tfds", "iwae"):
        c.data.name = "tfds:mnist"
    c.data.binarize = "dynamic"
    c.data.val_fraction = 1 / 6  # 10k of the 60k training images
    c.model.vae.arch = "mlp"
    c.model.vae.hidden = (200, 200)
    c.model.vae.activation = "tanh"
    c.model.vae.latent_dim = 50
    c.model.vae.likelihood = "bernoulli"
    c.model.vae.objective = "elbo"
    if variant == "iwae":
        c.name = "iwae_mnist"
        c.model.vae.objective = "iwae"
        c.model.vae.k = 50
    c.optim.name = "adam"
    c.optim.lr = 1e-3
    c.optim.eps = 1e-4  # Burda et al. use epsilon = 1e-4
    c.train.batch_size = 100
    c.train.epochs = 1000
    c.train.patience = 50
    c.train.checkpoint_every = 10
    c.model.vae.val_samples = 10
    c.model.vae.nll_samples = 1000
    if variant == "smoke":
        c.name = "vae_mnist_smoke"
        c.train.epochs = 1
        c.model.vae.nll_samples = 10
        c.model.vae.nll_chunk = 10
    elif variant not in ("npz", "tfds", "iwae"):
        raise ValueError(f"unknown config variant {variant!r}; use npz, tfds, iwae or smoke.")
    return c
