"""The Python API for notebooks and scripts: the same pieces the CLI composes.

    import genjax
    cfg = genjax.default_config("vae")                  # the base config; change any field
    cfg.model.vae.latent_dim = 8
    data = genjax.load_data(cfg, x=images, y=labels)    # arrays in memory (or cfg.data.name)
    model = genjax.fit(cfg, data)                       # trains; model.family, model.params
    x = model.sample(16)                                # [16, H, W, C]
    genjax.evaluate(model, data)                        # held-out NLL, bits/dim, the bound

``import genjax`` turns on the persistent compilation cache as the CLI does.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import jax


def enable_compilation_cache() -> None:
    """The persistent XLA compilation cache (``GENJAX_CACHE_DIR``, default ``~/.cache/genjax/xla``;
    ``GENJAX_CACHE_DIR=0`` turns it off)."""
    cache = os.environ.get("GENJAX_CACHE_DIR", str(Path.home() / ".cache" / "genjax" / "xla"))
    if cache and cache != "0":
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def default_config(family: str = "vae"):
    """The base config with ``model.family = family``."""
    from genjax.config import base_config

    c = base_config()
    c.model.family = family
    return c


def load_data(cfg, x=None, y=None, test_x=None, test_y=None):
    """Train / validation / test splits from arrays in memory, or from ``cfg.data.name`` when
    ``x`` is None. The splitting and transforms follow ``cfg.data``."""
    from genjax.data import from_arrays, load_splits

    src = None if x is None else from_arrays(x, y, test_x, test_y)
    return load_splits(cfg.data, cfg.train.batch_size, source=src)


@dataclasses.dataclass
class Model:
    """A trained model: its family, parameters and the training result."""

    family: object
    params: object
    result: object
    cfg: object

    def sample(self, n: int, seed: int = 0, cond=None):
        return self.family.sample(self.params, jax.random.key(seed), n, cond)

    def log_prob(self, x, seed: int = 0, y=None):
        """log p(x) per example (a labelled family: log p(x | y), or log p(y | x) for a predictor)."""
        if self.family.log_prob is None:
            raise ValueError(f"the {self.family.name} family has no likelihood.")
        labels = () if y is None else (jax.numpy.asarray(y),)
        if self.family.labelled and not labels:
            raise ValueError(f"the {self.family.name} model scores labelled examples: pass y.")
        return self.family.log_prob(self.params, jax.numpy.asarray(x), jax.random.key(seed), *labels)


def fit(cfg, data, workdir=None, *, progress: bool = True) -> Model:
    """Validate ``cfg``, build its family for ``data`` and train it (``genjax.train.fit``)."""
    from genjax.config import validate
    from genjax.models import DataInfo, build_family
    from genjax.train import fit as _fit

    validate(cfg)
    family = build_family(cfg, DataInfo.of(data))
    if family.labelled:
        data.require_labels(f"the {family.name} model scores labelled examples")
    res = _fit(cfg, family, data, workdir, progress=progress)
    return Model(family, res.params, res, cfg)


def evaluate(model: Model, data, seed: int = 0) -> dict:
    """Held-out test metrics of ``model`` on ``data.test``: NLL, bits/dim and the family's bound
    where it has a likelihood."""
    from genjax import keys
    from genjax.eval import heldout_metrics

    if model.family.log_prob is None:
        raise ValueError(f"the {model.family.name} family has no likelihood; use genjax.eval.suite for samples.")
    return heldout_metrics(
        model.family,
        model.params,
        data.test["x"],
        keys.key(seed, "eval"),
        batch_size=model.cfg.eval.batch_size,
        num_dims=model.family.event_dims or data.num_dims,
        bin_width=data.bin_width,
        y=data.test.get("y"),
        example="target y given its x" if model.family.predictor is not None else data.example,
    )
