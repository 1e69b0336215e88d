"""A run prepared once, for the CLI and the Python API alike: a saved run's config, the checks
and builds that must pass before anything is written (config, data, family, program, mesh), the
restore of a run folder's newest good checkpoint, and the scores of an easy-first curriculum.

Every refusal is a ``UsageError`` (a ``ValueError``): one sentence naming the field or file and
its value; the CLI prints it and exits 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict


class UsageError(ValueError):
    """Bad input from the command line or the API: one sentence, exit status 2 on the CLI."""


def load_config(run_dir: Path) -> ConfigDict:
    path = run_dir / "config.json"
    if not path.is_file():
        raise UsageError(f"run folder {str(run_dir)!r} has no config.json; is it a genjax run folder?")
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is not valid JSON ({e}).") from None
    from genjax.config import base_config
    from genjax.models import upgrade_legacy

    saved = upgrade_legacy(saved)

    def fill(into: dict, defaults: dict) -> dict:
        """Fields added to genjax after the run was saved take their defaults."""
        for k, v in defaults.items():
            if k not in into:
                into[k] = v
            elif isinstance(v, dict) and isinstance(into[k], dict):
                fill(into[k], v)
        return into

    def prune(into: dict, defaults: dict) -> dict:
        """Fields genjax no longer has (moved into a family block by ``upgrade_legacy``) go."""
        for k in [k for k in into if k not in defaults]:
            del into[k]
        for k, v in defaults.items():
            if isinstance(v, dict) and v and isinstance(into[k], dict):
                prune(into[k], v)
        return into

    base = base_config().to_dict()
    return ConfigDict(prune(fill(saved, base), base))


def prepare(cfg, saved: Path | None = None, ignore_inactive: bool = False, splits=None):
    """Validate the config, load the data (or take ``splits``), build the family and the whole
    program, initialized abstractly with ``jax.eval_shape``: what can fail on bad input fails
    here, before anything is written (``check_mesh`` checks the mesh). ``saved``: the run folder
    whose config this is (its inactive family blocks are not checked: they were when the run was
    made; text data must still have the vocabulary the run was trained with); ``ignore_inactive``:
    the family was switched on the command line (the config file's own block is not refused).
    Returns (splits, family)."""
    from genjax.config import validate
    from genjax.data import load_splits

    validate(cfg, ignore_inactive=saved is not None or ignore_inactive)
    if str(cfg.data.latents) != "mean" and not str(cfg.data.name).startswith("latents:"):
        raise UsageError(f"data.latents={cfg.data.latents!r} applies to data.name='latents:<run>', not "
                         f"{cfg.data.name!r}.")  # fmt: skip
    if splits is None and str(cfg.data.name).startswith("pairs:"):
        splits = load_splits(cfg.data, cfg.train.batch_size, source=pairs_source(cfg))
    elif splits is None and str(cfg.data.name).startswith("latents:"):
        source, stage = latents_source(cfg)
        splits = load_splits(cfg.data, cfg.train.batch_size, source=source)
        splits.stage = stage
    elif splits is None:
        splits = load_splits(cfg.data, cfg.train.batch_size)
    if saved is not None:
        check_vocab(saved, splits)
    return splits, build(cfg, splits)


def source_run(cfg):
    """The run folder a source made of another run names (``data.name = '<kind>:<run folder>'``):
    (folder, its config, its splits, its family), checked as ``genjax eval`` checks a run."""
    name = str(cfg.data.name)
    run = Path(name.partition(":")[2])
    if not run.is_dir():
        raise UsageError(f"data.name={name!r}: {str(run)!r} is not a run folder.")
    rcfg = load_config(run)
    rsplits, rfam = prepare(rcfg, saved=run)
    return run, rcfg, rsplits, rfam


def refuse_image_transforms(cfg, what: str) -> None:
    """Examples another run made (``what`` they are) take no dequantization or binarization."""
    for field, off in (("dequantize", False), ("binarize", "none")):
        if cfg.data[field] not in (off, False):
            raise UsageError(f"data.{field}={cfg.data[field]!r}: the examples of data.name={str(cfg.data.name)!r} are "
                             f"{what}; set data.{field}={off!r}.")  # fmt: skip


def pairs_source(cfg):
    """``data.name = 'pairs:<run folder>'``: the pairs (z, x = decode_noise(z)) of a finished run
    whose family has a deterministic sampler (``Family.decode_noise``: a flow-matching model's
    ODE), as examples x with their noise z as the real-valued targets y — what rectified flow's
    reflow and its one-step distillation train on (``model.flow_matching.coupling = 'paired'``).
    ``data.toy_n`` pairs for the training pool and a fifth as many for the test split (a reflow
    memorizes a small set: 1,300 pairs of 8x8 digits gave a student that matched its pairs and
    nothing else), z drawn from the stream ``pairs`` of ``data.seed``, so a run reloads the same
    pairs. Images are handed over in
    [0, 1] (``data.scale`` maps them back) with z flattened per example; they are the teacher's
    continuous samples, so ``data.dequantize`` and ``data.binarize`` must be off."""
    import jax
    import numpy as np

    from genjax import keys
    from genjax.data.sources import from_arrays
    from genjax.train import select_params

    name = str(cfg.data.name)
    teacher, tcfg, tsplits, tfam = source_run(cfg)  # a teacher trained on pairs itself: a chain of reflows
    if tfam.decode_noise is None:
        raise UsageError(f"data.name={name!r}: the {tfam.name} run has no deterministic map from noise to samples "
                         "(Family.decode_noise), so it draws no pairs.")  # fmt: skip
    refuse_image_transforms(cfg, "the teacher's continuous samples")
    params = select_params(restore(tcfg, teacher, tsplits, tfam), tcfg.train.keep_best)
    n = int(cfg.data.toy_n)
    z = np.asarray(jax.random.normal(keys.key(cfg.data.seed, "pairs"), (n + max(n // 5, 1), *tsplits.shape)))
    decode = jax.jit(tfam.decode_noise)
    x = np.concatenate([np.asarray(decode(params, z[i : i + 2000])) for i in range(0, len(z), 2000)])
    if len(tsplits.shape) == 3:  # images: in [0, 1] as sources give them, the noise one row per example
        x, z = np.clip(tsplits.to_unit(x), 0.0, 1.0), z.reshape(len(z), -1)
    return from_arrays(x[:n], z[:n], x[n:], z[n:], name=name)


@dataclasses.dataclass
class FirstStage:
    """The first stage of a two-stage model (``data.name = 'latents:<run>'``): its run, config,
    family, parameters and data splits (what decoded samples are compared with), and the map
    between its codes and the second model's data: discrete codes are images of ``vocab`` levels
    (an index c as c / (vocab - 1) in [0, 1], the grid as (h, w, 1)); continuous codes are divided
    by ``scale``, the standard deviation of the training codes (Rombach et al. 2022's one scalar)."""

    run: Path
    cfg: Any
    family: Any
    params: Any
    splits: Any
    scale: float = 1.0

    @property
    def codes(self):
        return self.family.codes

    def as_data(self, codes, scale: str = "01"):
        """First-stage codes ``[B, *codes.shape]`` -> the second model's examples in ``data.scale``:
        a discrete grid as an image ``[B, h, w, 1]`` of index / (vocab - 1), continuous codes / s."""
        import jax.numpy as jnp

        c = self.codes
        if c.kind != "discrete":
            return jnp.asarray(codes, jnp.float32) / self.scale
        grid = c.shape if len(c.shape) == 2 else (1, *c.shape)
        u = (jnp.asarray(codes, jnp.float32) / (c.vocab - 1)).reshape(-1, *grid, 1)
        return 2.0 * u - 1.0 if scale == "-11" else u

    def to_data(self, codes):
        """``as_data`` in [0, 1] as numpy, as a source hands examples over (``data.scale`` maps
        them on)."""
        import numpy as np

        return np.asarray(self.as_data(codes, "01"))

    def to_codes(self, x, scale: str = "01"):
        """The second model's examples (in ``data.scale``) -> first-stage codes."""
        import jax.numpy as jnp

        c = self.codes
        if c.kind == "discrete":
            u = (x + 1.0) / 2.0 if scale == "-11" else x
            idx = jnp.clip(jnp.round(jnp.asarray(u) * (c.vocab - 1)), 0, c.vocab - 1).astype(jnp.int32)
            return idx.reshape(idx.shape[0], *c.shape)
        return jnp.asarray(x) * self.scale

    def decode(self, x, scale: str = "01"):
        """The second model's examples decoded to first-stage data (its decoder mean)."""
        return self.codes.decode(self.params, self.to_codes(x, scale))

    @property
    def example(self) -> str:
        c = self.codes
        if c.kind == "discrete":
            return f"code grid ({'x'.join(str(s) for s in c.shape)} positions of {c.vocab} codes)"
        return f"{c.shape[0]}-d latent code (divided by {self.scale:.4g})"

    def sample(self, family, params, key, n: int, cond=None, scale: str = "01"):
        """(codes, x): ``n`` codes from the second model ``family`` and their first-stage data
        x ~ p(x | c) (the first stage's draw; its decoder mean where it has none)."""
        import jax

        k_c, k_x = jax.random.split(key)
        codes = family.sample(params, k_c, n, cond)
        c = self.to_codes(codes, scale)
        x = self.codes.decode(self.params, c) if self.codes.draw is None else self.codes.draw(self.params, c, k_x)
        return codes, x

    def decoded(self, family, scale: str = "01"):
        """``family`` (the second model) with its samples decoded to first-stage data (``sample``)."""
        import dataclasses as dc

        def sample(params, key, n, cond=None):
            return self.sample(family, params, key, n, cond, scale)[1]

        return dc.replace(family, sample=sample, latent=None, codes=None, decode_noise=None, generate=None)

    def bound(self, family, scale: str = "01"):
        """The second model as a prior: (a family-shaped scorer whose ``log_prob((params2,
        params1), x, key)`` is the two-stage bound on log p(x) of first-stage data x, or None, why).

        Discrete codes (a point-mass encoder): log p(x | c(x)) + log p2(c(x)). Continuous codes
        drawn z ~ q(z | x): log p(x | z) + log p2(z / s) - d log s - log q(z | x) (one draw; the
        ELBO with the second model as the prior)."""
        import dataclasses as dc
        import math

        import jax

        c = self.codes
        if family.log_prob is None:
            return None, f"the second model ({family.name}) has no likelihood of the codes"
        if c.log_px is None:
            return None, f"the first stage ({self.family.name}) has no decoder likelihood p(x | code)"
        if c.kind == "continuous" and c.log_q is None:
            return None, (f"the first stage ({self.family.name}) encodes each x to one point of a continuous code "
                          "space: no posterior density, so no ELBO bounds log p(x)")  # fmt: skip
        d = math.prod(c.shape)

        def log_prob(params, x, key):
            p2, p1 = params
            k_q, k_p = jax.random.split(key)
            if c.kind == "discrete":
                idx = c.encode(p1, x)
                return c.log_px(p1, x, idx) + family.log_prob(p2, self.as_data(idx, scale), k_p)
            z = c.encode(p1, x, k_q)
            prior = family.log_prob(p2, self.as_data(z), k_p) - d * math.log(self.scale)
            return c.log_px(p1, x, z) + prior - c.log_q(p1, x, z)

        kind = f"{family.estimator or family.log_prob_kind} of the codes"
        what = ("log p(x | c(x)) + log p2(c(x)), the encoder a point mass on its code grid c(x)" if c.kind == "discrete"
                else "log p(x | z) + log p2(z) - log q(z | x), z ~ q(z | x), one draw (the ELBO with the second "
                     "model as prior)")  # fmt: skip
        est = f"two-stage bound {what}; p2: the second model's {kind}"
        scorer = dc.replace(family, log_prob=log_prob, log_prob_kind="bound", estimator=est, labelled=False, bound=None,
                            val_estimator="", info={})
        return scorer, None


def latents_source(cfg):
    """``data.name = 'latents:<run folder>'``: the codes of a finished first-stage run (a family
    with ``Family.codes``: the VQ-VAE / FSQ's code grids, a VAE's posterior means) for every
    example of its training and validation splits (the pool) and of its test split (the test
    split here), with the examples' labels. Returns (source, ``FirstStage``). Discrete codes come
    as images of ``vocab`` levels (``FirstStage.to_data``), so the autoregressive family models
    them as it models grey levels; continuous ones as vectors divided by their standard deviation."""
    import jax
    import numpy as np

    from genjax import keys
    from genjax.data.sources import Source, from_arrays
    from genjax.train import select_params

    name = str(cfg.data.name)
    first, fcfg, fsplits, ffam = source_run(cfg)
    if ffam.codes is None:
        raise UsageError(f"data.name={name!r}: the {ffam.name} run has no codes to train a second model on (a VQ-VAE "
                         "/ FSQ run, or a one-layer unconditional VAE / autoencoder, has them).")  # fmt: skip
    refuse_image_transforms(cfg, "codes, not images")
    draw = str(cfg.data.latents) == "sample"
    if draw and ffam.codes.kind == "discrete":
        raise UsageError(f"data.latents='sample': the {ffam.name} run's encoder is a point mass on its code grid; "
                         "there is nothing to draw (set data.latents='mean').")  # fmt: skip
    params = select_params(restore(fcfg, first, fsplits, ffam), fcfg.train.keep_best)
    encode = jax.jit(lambda x, k: ffam.codes.encode(params, x, k if draw else None))
    k_all = keys.key(cfg.data.seed, "latents")

    def codes_of(x, part):
        k = jax.random.fold_in(k_all, part)
        return np.concatenate([np.asarray(encode(x[i : i + 1000], jax.random.fold_in(k, i)))
                               for i in range(0, len(x), 1000)])  # fmt: skip

    val_x = fsplits.val["x"]
    pool_x = np.concatenate([fsplits.eval_view(fsplits.train["x"]), val_x])
    pool, test = codes_of(pool_x, 0), codes_of(fsplits.test["x"], 1)
    ys = [d.get("y") for d in (fsplits.train, fsplits.val, fsplits.test)]
    y = np.concatenate(ys[:2]) if ys[0] is not None and ys[1] is not None else None
    ty = ys[2] if y is not None else None
    stage = FirstStage(first, fcfg, ffam, params, fsplits)
    if ffam.codes.kind == "continuous":
        stage.scale = float(np.std(pool.astype(np.float64)))
        if not np.isfinite(stage.scale) or stage.scale <= 0:
            raise UsageError(f"data.name={name!r}: the first stage's codes have standard deviation {stage.scale}; "
                             "there is nothing to model.")  # fmt: skip
        return from_arrays(stage.to_data(pool), y, stage.to_data(test), ty, name=name), stage
    levels = int(ffam.codes.vocab)
    return Source(name, stage.to_data(pool), y, stage.to_data(test), ty, levels=levels, binary=False), stage


def build(cfg, splits):
    """The family of ``cfg`` for ``splits``, its labels checked and its whole program built
    abstractly (``jax.eval_shape`` of the initial state): every config value the model cannot
    take fails here in one sentence."""

    from genjax.models import DataInfo, build_family
    from genjax.train import build_program

    try:
        family = build_family(cfg, DataInfo.of(splits))
        if family.labelled:
            splits.require_labels(f"the {family.name} model scores labelled examples")
        build_program(cfg, family, splits).shapes()  # jax.eval_shape of the initial state (or its kept program)
    except (TypeError, KeyError, IndexError, ZeroDivisionError) as e:  # a config value the model cannot take
        raise UsageError(f"the config does not build a {cfg.model.family} model ({type(e).__name__}: {e}).") from None
    return family


def check_vocab(run_dir: Path, splits) -> None:
    """Text: the tokens the run was trained with (``vocab.json``) must be the ones the data give
    now; a changed text file would silently map the model's token ids to other characters."""
    path = run_dir / "vocab.json"
    if splits.vocab is None:
        return
    if not path.is_file():
        raise UsageError(f"{str(run_dir)!r} holds a text run but no vocab.json; its token ids cannot be checked.")
    try:
        saved = json.loads(path.read_text())
        tokens, vocab = saved["tokens"], tuple(saved["vocab"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UsageError(f"{path} is not a genjax vocabulary ({type(e).__name__}: {e}).") from None
    if tokens != splits.tokens or vocab != tuple(splits.vocab):
        new = "".join(sorted(set(splits.vocab) - set(vocab)))[:20]
        diff = f"data.tokens {tokens!r} then, {splits.tokens!r} now"
        if tokens == splits.tokens:
            diff = f"{len(vocab)} tokens then, {len(splits.vocab)} now" + (f", new: {new!r}" if new else "")
        raise UsageError(
            f"data.name {splits.name!r} no longer gives the vocabulary run {str(run_dir)!r} was trained with "
            f"({diff}); the text changed since training. Restore it, or train a new run."
        )


def easy_scores(cfg, splits):
    """Per-training-example scores for ``train.easy_first`` (``None`` without it), checked."""
    spec = str(cfg.train.easy_first)
    if not spec:
        return None
    import numpy as np

    from genjax.train import split_data

    kind, _, path = spec.partition(":")
    if kind == "npy":
        if not Path(path).is_file():
            raise UsageError(f"train.easy_first: no such file {path!r}.")
        try:
            scores = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise UsageError(f"train.easy_first: {path!r} is not a .npy array ({e}).") from None
    elif kind == "run":
        scores = scores_from_run(cfg, Path(path), splits)
    else:
        raise UsageError(f"train.easy_first must be npy:<path> or run:<run folder>, got {spec!r}.")
    split_data(cfg, splits, scores)  # one score per training example, all finite
    return scores


def scores_from_run(cfg, prev: Path, splits):
    """The NLL of the model trained in run folder ``prev`` on this run's training examples."""
    from genjax import keys
    from genjax.models import DataInfo, build_family
    from genjax.train import select_params
    from genjax.train.curriculum import nll_scores

    if not prev.is_dir():
        raise UsageError(f"train.easy_first: no run folder {str(prev)!r}.")
    pcfg = load_config(prev)
    for f in ("name", "scale", "binarize", "dequantize"):
        if pcfg.data[f] != cfg.data[f]:
            raise UsageError(
                f"train.easy_first: {str(prev)!r} was trained with data.{f}={pcfg.data[f]!r}, this run has "
                f"{cfg.data[f]!r}; its likelihoods would not rank these examples."
            )
    family = build_family(pcfg, DataInfo.of(splits))
    if family.log_prob is None:
        raise UsageError(f"train.easy_first: the {family.name} model in {str(prev)!r} has no likelihood to rank by.")
    params = select_params(restore(pcfg, prev, splits, family), pcfg.train.keep_best)
    x = splits.eval_view(splits.train["x"])
    y = splits.train.get("y") if family.labelled else None
    return nll_scores(family.log_prob, params, x, keys.key(cfg.seed, "easy_first"), int(cfg.eval.batch_size), y)


def restore(cfg, run_dir: Path, splits, family):
    from genjax.train import Checkpointer, build_program
    from genjax.train.checkpoint import why_skipped

    if not (run_dir / "checkpoints").is_dir():
        raise UsageError(f"{str(run_dir)!r} has no checkpoints/ folder; was the run trained?")
    ckpt = Checkpointer(run_dir / "checkpoints")
    program = build_program(cfg, family, splits)
    try:  # onto the run's mesh, as training left it: evaluation then reads the programs training kept
        state, epoch, skipped = ckpt.restore_newest(program.plan.put_state(program.init()))
    finally:
        ckpt.close()
    if epoch is None:
        raise UsageError(
            f"{str(run_dir)!r} has no checkpoint that restores ({why_skipped(skipped) or 'there is none'})."
        )
    for ep, why in skipped:
        print(f"genjax: skipped checkpoint of epoch {ep}: it does not restore ({why}).", file=sys.stderr)
    return state


def check_mesh(cfg, family) -> str:
    """A mesh that cannot hold the run fails here, before the run folder is written; returns its
    description."""
    from genjax.train.sharding import describe, plan

    return describe(plan(cfg.train.mesh, None, int(cfg.train.batch_size) * family.batch_multiple))


def check_extension(run_dir: Path, cfg, changes: dict) -> None:
    """``--resume RUN --config.train.epochs=N``: N covers the epochs already trained, the run did
    not stop early, and no learning-rate schedule is laid over the old length."""
    from genjax.train.driver import read_history

    rows = read_history(run_dir / "metrics.jsonl", 1 << 62)
    done = max((int(r["epoch"]) for r in rows), default=0)
    if "train.epochs" not in changes:
        return
    n = int(cfg.train.epochs)
    if n < done:
        raise UsageError(f"--config.train.epochs={n}: the run has already trained {done} epochs.")
    if rows and rows[-1].get("stopped") is True and n > done:
        raise UsageError(f"--config.train.epochs={n}: the run stopped early at epoch {done} (train.patience); "
                         "its early-stopping state ends any extension at once.")  # fmt: skip
    if cfg.optim.schedule not in ("constant", "plateau") and n != changes["train.epochs"][0]:
        raise UsageError(f"--config.train.epochs={n}: optim.schedule={cfg.optim.schedule!r} is laid over the "
                         f"run's {changes['train.epochs'][0]} epochs; a longer run would change the learning rate "
                         "of the steps to come (train a new run with the length you want).")  # fmt: skip
