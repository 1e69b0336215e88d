"""The Python API for notebooks and scripts: the same prepared run the CLI composes
(``genjax.run``), so a run made here is a run folder ``genjax eval`` / ``sample`` / ``--resume``
open, and a CLI run loads here.

    import genjax
    cfg = genjax.default_config("vae")                  # the base config; change any field
    cfg.model.vae.latent_dim = 8                        # (a field that does not exist is an error)
    data = genjax.load_data(cfg, x=images, y=labels)    # arrays in memory, text=..., or cfg.data.name
    model = genjax.fit(cfg, data, workdir="runs/mine")  # trains; a run folder like genjax train's
    model.sample(16)                                    # [16, H, W, C]
    genjax.evaluate(model, data)                        # what genjax eval writes, for every family
    model = genjax.load("runs/mine")                    # or any genjax train run folder
    genjax.cross_validate(cfg, data, folds=5, sweep={"optim": {"lr": [1e-3, 3e-3]}})

``import genjax`` turns on the persistent compilation cache as the CLI does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import jax


def enable_compilation_cache() -> None:
    """The persistent XLA compilation cache (``GENJAX_CACHE_DIR``, default ``~/.cache/genjax/xla``;
    ``GENJAX_CACHE_DIR=0`` turns it off). Every compiled program is stored, however quick its
    compile (JAX's default keeps only those over 1 s, so a run's validation, sampler and
    host-loop pieces were compiled afresh each time, ~0.3 s apiece). The folder is not pruned
    (JAX's size limit needs the ``filelock`` package); delete it to reclaim the space."""
    cache = os.environ.get("GENJAX_CACHE_DIR", str(Path.home() / ".cache" / "genjax" / "xla"))
    if cache and cache != "0":
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def default_config(family: str = "vae"):
    """The base config with ``model.family = family``, locked: setting a field that does not exist
    is an error that suggests the nearest one (``cfg.train.epoch`` -> ``epochs``)."""
    from genjax.config import base_config
    from genjax.fields import did_you_mean
    from genjax.models import FAMILIES

    if family not in FAMILIES:
        near = did_you_mean(family, FAMILIES)
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}{near}.")
    c = base_config()
    c.model.family = family
    return c


def load_data(cfg, x=None, y=None, test_x=None, test_y=None, *, text: str | None = None):
    """Train / validation / test splits: from arrays in memory (``x``: images ``(N, H, W[, C])``,
    uint8 or floats in [0, 1], or vectors ``(N, D)``; optional labels ``y`` and a test split),
    from a Python string ``text`` (tokenized as ``data.tokens`` says), or from ``cfg.data.name``.
    The splitting and transforms follow ``cfg.data``."""
    from genjax.data import from_arrays, load_splits

    if text is not None and x is not None:
        raise ValueError("load_data takes arrays (x, ...) or text, not both.")
    src = None if x is None else from_arrays(x, y, test_x, test_y)
    return load_splits(cfg.data, cfg.train.batch_size, source=src, text=text)


@dataclasses.dataclass
class Model:
    """A trained model: its family, parameters, config and data, the training result (``None``
    for a loaded model) and the whole training state (to save and resume from)."""

    family: object
    params: object
    result: object
    cfg: object
    data: object = None
    state: object = None
    run_dir: Path | None = None

    def sample(self, n: int, seed: int = 0, cond=None, *, temperature=None, top_k=None, prompt=None,
               codes: bool = False):  # fmt: skip
        """``n`` samples (``cond``: classes, or inputs x for a model of y given x). A token model
        takes its sampling settings here (``temperature``, ``top_k``) and a ``prompt`` (text,
        or token ids) its samples start with. A model of a first stage's codes (``data.name =
        'latents:<run>'``) returns them decoded to that stage's data, x ~ p(x | c) (``codes=True``:
        the codes c, as the model's data space has them)."""
        from genjax import keys

        key = keys.root(seed)
        stage = getattr(self.data, "stage", None)
        if stage is not None and not codes:
            if temperature is not None or top_k is not None or prompt is not None:
                raise ValueError("temperature, top_k and prompt apply to the codes: sample with codes=True.")
            return stage.decoded(self.family, self.data.scale).sample(self.params, key, n, cond)
        if temperature is None and top_k is None and prompt is None:
            return self.family.sample(self.params, key, n, cond)
        if self.family.generate is None:
            raise ValueError(f"the {self.family.name} family takes no temperature, top_k or prompt when sampling.")
        if isinstance(prompt, str):
            prompt = self.encode(prompt)
        return self.family.generate(self.params, key, n, cond, temperature=temperature, top_k=top_k, prompt=prompt)

    def encode(self, text: str):
        """Text -> token ids in this model's vocabulary (a character it never saw is an error)."""
        from genjax.data.text import encode

        if self.data is None or getattr(self.data, "vocab", None) is None:
            raise ValueError("this model was not trained on text; it has no vocabulary.")
        return encode(text, self.data.vocab if self.data.tokens == "char" else None)

    def sample_text(self, n: int, seed: int = 0, **kw) -> list[str]:
        """``sample`` decoded to text, one string per sample (``prompt`` included)."""
        if self.data is None or getattr(self.data, "vocab", None) is None:
            raise ValueError("this model was not trained on text; it has no vocabulary to decode with.")
        import numpy as np

        return [self.data.decode(row) for row in np.asarray(self.sample(n, seed, **kw))]

    def log_prob(self, x, seed: int = 0, y=None):
        """log p(x) per example (a labelled family: log p(x | y), or log p(y | x) for a predictor)."""
        if self.family.log_prob is None:
            raise ValueError(f"the {self.family.name} family has no likelihood.")
        labels = () if y is None else (jax.numpy.asarray(y),)
        if self.family.labelled and not labels:
            raise ValueError(f"the {self.family.name} model scores labelled examples: pass y.")
        from genjax import keys

        return self.family.log_prob(self.params, jax.numpy.asarray(x), keys.root(seed), *labels)

    def decode_noise(self, z, cond=None):
        """The model's deterministic sampler applied to standard-normal draws ``z`` (shaped like
        the data, one row per sample): the (z, x) pairs a reflow trains on."""
        if self.family.decode_noise is None:
            raise ValueError(f"the {self.family.name} family has no deterministic map from noise to samples.")
        return self.family.decode_noise(self.params, jax.numpy.asarray(z), cond)

    def save(self, run_dir, overwrite: bool = False) -> Path:
        """A run folder at ``run_dir`` (config.json, run.json, a checkpoint of the whole training
        state) that ``genjax.load``, ``genjax eval`` and ``genjax sample`` open."""
        from genjax.run import folder
        from genjax.train import Checkpointer

        if self.state is None:
            raise ValueError("this model holds no training state to save.")
        run_dir = folder.new_run_dir(self.cfg, run_dir, overwrite, hint="pass overwrite=True to replace it",
                                     field="run_dir")
        with contextlib.ExitStack() as locks:
            folder.open_run_dir(run_dir, self.cfg, locks, overwrite, self.data, "pass overwrite=True to replace it")
            ckpt = Checkpointer(run_dir / "checkpoints")
            try:
                ckpt.save(int(jax.device_get(self.state.epoch)), self.state)
            finally:
                ckpt.close()
        self.run_dir = run_dir
        return run_dir


def fit(cfg, data=None, workdir=None, *, overwrite: bool = False, progress: bool = True,
        on_epoch: Callable | None = None) -> Model:  # fmt: skip
    """Train ``cfg`` on ``data`` (``load_data``'s splits; ``None``: ``cfg.data.name``), checked as
    ``genjax train`` checks it before anything is written. With ``workdir``: a run folder like
    ``genjax train``'s (locked while training, created atomically with config.json and run.json,
    metrics.jsonl, TensorBoard, checkpoints), which must be new or empty unless ``overwrite``.
    ``on_epoch(epoch, metrics)`` runs after every epoch (``metrics``: that epoch's means, as in
    metrics.jsonl) — live plots, custom logging."""
    from genjax.run import folder
    from genjax.run.prepare import check_mesh, prepare
    from genjax.train import fit as _fit

    splits, family = prepare(cfg, splits=data)
    callback = None
    if on_epoch is not None:
        def callback(epoch, state, m):  # one model: plain numbers, as metrics.jsonl has them
            on_epoch(int(epoch), {k: v.item() if v.size == 1 else v.tolist() for k, v in m.items()})
    with contextlib.ExitStack() as locks:
        run_dir = None
        if workdir is not None:
            hint = "pass overwrite=True to replace it"
            run_dir = folder.new_run_dir(cfg, workdir, overwrite, hint=hint, field="workdir")
            check_mesh(cfg, family)
            folder.open_run_dir(run_dir, cfg, locks, overwrite, splits, hint)  # run.json names data in memory
        res = _fit(cfg, family, splits, run_dir, progress=progress, callback=callback)
    return Model(family, res.params, res, cfg, splits, res.state, run_dir)


def load(run_dir, data=None) -> Model:
    """The model of a run folder (``genjax train``'s, ``genjax.fit``'s with a workdir, or
    ``Model.save``'s), restored from its newest good checkpoint with its saved config. ``data``:
    the splits, for a run trained on arrays or text in memory (its config cannot reload them)."""
    from genjax.run.folder import is_cv_folder
    from genjax.run.prepare import UsageError, load_config, prepare, restore
    from genjax.train import select_params

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"load: {str(run_dir)!r} is not a folder.")
    if is_cv_folder(run_dir):
        raise UsageError(f"load: {str(run_dir)!r} is a cross-validation folder: it keeps results (cv.json), no "
                         "model; train the setting you chose with genjax.fit.")  # fmt: skip
    cfg = load_config(run_dir)
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    if data is None and "data" in info:
        raise UsageError(f"{str(run_dir)!r} was trained on data in memory ({info['data']}); pass them as data=.")
    splits, family = prepare(cfg, saved=run_dir, splits=data)
    state = restore(cfg, run_dir, splits, family)
    return Model(family, select_params(state, cfg.train.keep_best), None, cfg, splits, state, run_dir)


def evaluate(model: Model, data=None, seed: int = 0, *, sample_metrics: bool | None = None) -> dict:
    """What ``genjax eval`` computes, for any family: the held-out NLL, bits/dim (per token and
    perplexity for text) and the bound where it has a likelihood, latent diagnostics, predictive
    metrics for a model of y given x, and the sample metrics (FID / KID / IS, precision / recall,
    divergences, mode coverage) where they fit the data (``sample_metrics``: default the
    config's ``eval.sample_metrics``). ``genjax.eval.report.summary`` prints it."""
    from genjax.run.report import evaluate as _evaluate

    splits = data if data is not None else model.data
    if splits is None:
        raise ValueError("evaluate needs the data: pass them (genjax.load_data).")
    cfg = model.cfg
    if sample_metrics is not None and bool(sample_metrics) != bool(cfg.eval.sample_metrics):
        cfg = cfg.copy_and_resolve_references()
        cfg.eval.sample_metrics = bool(sample_metrics)
    return _evaluate(cfg, splits, model.family, model.params, None, seed, log=lambda *a, **k: None)


def cross_validate(cfg, data=None, *, folds: int | None = None, sweep: dict | None = None, workdir=None,
                   overwrite: bool = False, progress: bool = True) -> dict:  # fmt: skip
    """k-fold cross-validation of ``cfg`` on ``data`` (``None``: ``cfg.data.name``), every fold
    (and every vmapped setting of ``sweep``, e.g. ``{"optim": {"lr": [1e-3, 3e-3]}}``) trained at
    once, as ``genjax cv`` does. Returns the report: ``rows`` (one per setting: mean and std of the
    held-out NLL over the folds, ``per_fold``), ``best`` (with its lead over the runner-up),
    ``runs``. With ``workdir``: a run folder with cv.json, the curves and, for a sweep, sweep.md
    and sweep.png."""
    import ml_collections

    from genjax.run import folder
    from genjax.run.prepare import prepare
    from genjax.sweep import run_cv, sweep_grid
    from genjax.train.cv import check_cv

    cfg = cfg.copy_and_resolve_references()
    with cfg.unlocked():
        if folds is not None:
            cfg.cv.folds = int(folds)
        if sweep is not None:
            cfg.cv.sweep = ml_collections.ConfigDict(sweep)
    splits, family = prepare(cfg, splits=data)
    from genjax.models import DataInfo

    sweep_grid(cfg, DataInfo.of(splits))
    check_cv(cfg, family, splits)
    with contextlib.ExitStack() as locks:
        run_dir = None
        if workdir is not None:
            run_dir = folder.new_run_dir(cfg, workdir, overwrite, "cv", "pass overwrite=True to replace it", "workdir")
            folder.open_run_dir(run_dir, cfg, locks, overwrite, None, "pass overwrite=True to replace it", "cv")
        return run_cv(cfg, run_dir, splits=splits, progress=progress)
