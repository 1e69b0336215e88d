import os

# four host devices, so the sharded cross-validation strategy is tested on a real mesh
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import pytest  # noqa: E402

from genjax.config import base_config  # noqa: E402


@pytest.fixture
def smoke_cfg():
    """A tiny VAE on digits: trains an epoch in milliseconds."""
    c = base_config()
    c.name = "smoke"
    c.data.binarize = "dynamic"
    c.model.hidden = (32,)
    c.model.latent_dim = 4
    c.train.epochs = 3
    c.train.batch_size = 64
    c.train.val_samples = 2
    c.train.checkpoint_every = 1
    c.eval.nll_samples = 20
    c.eval.nll_chunk = 10
    c.eval.n_samples = 16
    return c


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory):
    """One folder of domain classifiers per test worker, so each is trained once."""
    return tmp_path_factory.mktemp("classifiers")
