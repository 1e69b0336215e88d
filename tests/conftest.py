import pytest

from genjax.config import base_config

# the persistent compilation cache (genjax turns it on at import, GENJAX_CACHE_DIR) keeps every
# program however quick its compile, as in a user's run: the tests that compile the same program
# (the smoke configs, the eager ops of one shape, in both workers and in the crash tests'
# subprocesses) compile it once per run. Measured (test_vae, test_fit, test_diffusion, test_gan;
# two workers, alternating): keeping only programs over 0.2 s, as the suite once did, took 79 / 81 s
# warm and 208 / 201 s cold against 68 / 68 s and 202 / 196 s keeping all.


@pytest.fixture
def smoke_cfg():
    """A tiny VAE on digits: trains an epoch in milliseconds."""
    c = base_config()
    c.name = "smoke"
    c.data.binarize = "dynamic"
    c.model.vae.hidden = (32,)
    c.model.vae.latent_dim = 4
    c.train.epochs = 3
    c.train.batch_size = 64
    c.model.vae.val_samples = 2
    c.train.checkpoint_every = 1
    c.model.vae.nll_samples = 20
    c.model.vae.nll_chunk = 10
    c.eval.n_samples = 16
    return c


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory):
    """One folder of domain classifiers shared by the session's test workers (the parent of each
    worker's temporary folder), so each classifier is trained once per run: a classifier folder
    appears by an atomic rename, and a worker that loses the race uses the winner's."""
    root = tmp_path_factory.getbasetemp()
    shared = (root.parent if root.name.startswith("popen-gw") else root) / "classifiers"
    shared.mkdir(exist_ok=True)
    return shared
