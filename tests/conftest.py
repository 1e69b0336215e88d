import pytest

from genjax.config import base_config


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
    """One folder of domain classifiers per test worker, so each is trained once."""
    return tmp_path_factory.mktemp("classifiers")
