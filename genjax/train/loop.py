"""One run's pieces and the single-model entry point.

``build_program`` turns a config, a family and data splits into the initial state and the pure
epoch (``genjax.train.engine``) on the run's device mesh (``genjax.train.sharding``); ``fit``
trains one model with the one host-side driver (``genjax.train.driver``). Cross-validation,
sweeps and seeds (``genjax.train.cv``) use the same program and driver with many members.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from genjax import keys
from genjax.data.batching import eval_set
from genjax.data.pipeline import DataSplits
from genjax.data.transforms import epoch_transform
from genjax.models.base import Family
from genjax.train import curriculum, programs, sharding
from genjax.train.driver import TrainingError, drive, gc_paused
from genjax.train.engine import TrainState, batched_mean, init_state, make_epoch, make_step
from genjax.train.optim import make_optimizers, plateau_observer
from genjax.train.programs import digest
from genjax.train.sampling import sampler

BASE_SWEEPABLE = ("optim.lr", "optim.weight_decay", "objective.l1", "objective.l2")


@dataclasses.dataclass
class Program:
    """The pieces of one run: the initial state, the pure epoch and the mesh it runs on (its data
    come from ``split_data`` for a single split, or from ``genjax.train.cv`` for folds)."""

    init: Callable[..., TrainState]  # (key=None) -> fresh state
    epoch: Callable  # pure (state, data) -> (state, metrics); the driver jits (and vmaps) it
    plan: sharding.Plan
    steps: int  # training steps per epoch
    per_step: int  # examples drawn per step
    host_loop: bool = False  # train.loop: run the epoch's steps as a host loop over one compiled step
    step: Callable | None = None  # the pure training step (state, batch) -> (state, metrics) the epoch scans
    val_nll: Callable | None = None  # (params, eval batches, key) -> the validation NLL the epoch computes
    shapes: Callable | None = None  # () -> the initial state's shapes and dtypes, as jax.eval_shape(init) gives


def build_program(
    cfg,
    family: Family,
    splits: DataSplits,
    swept: frozenset = frozenset(),
    steps_per_epoch: int | None = None,
    n_members: int | None = None,
    mesh: str | None = None,
) -> Program:
    """Optimizers, state initializer and the epoch for ``family`` on ``splits``.

    ``swept``: config fields a sweep will vary per member (so, e.g., the L1/L2 penalty is built in
    even where its configured strength is 0). ``n_members``: the size of the members axis
    (``None``: one model). ``mesh``: overrides ``train.mesh``."""
    tc = cfg.train
    # steps per epoch: all training examples by default; the smallest fold's under cross-validation
    # (a split-batch critic draws batch_multiple batches per step)
    per_step = tc.batch_size * family.batch_multiple
    steps = len(splits.train["x"]) // per_step if steps_per_epoch is None else steps_per_epoch
    if steps < 1:
        raise ValueError(
            f"train.batch_size={tc.batch_size} x {family.batch_multiple} batches per step exceeds the "
            f"{len(splits.train['x'])} training examples."
        )
    plan = sharding.plan(tc.mesh if mesh is None else mesh, n_members, per_step)
    txs = make_optimizers(cfg.optim, family.players, tc.epochs * steps)
    observe = plateau_observer(cfg.optim, family.players)
    val_lp = family.validation_log_prob
    if val_lp is None:
        if tc.patience > 0:
            raise ValueError(
                f"train.patience={tc.patience} needs a validation likelihood, which the "
                f"{family.name} family has not; set train.patience=0."
            )
        val_nll = None
        if observe is not None:
            raise ValueError(
                f"optim.schedule='plateau' watches the validation NLL, which the {family.name} family has not."
            )
    else:
        val_nll = lambda params, batches, key: -batched_mean(val_lp, params, batches, key)  # noqa: E731
    regularize = cfg.objective.l1 > 0 or cfg.objective.l2 > 0 or bool(swept & {"objective.l1", "objective.l2"})
    hparams = {**family.hparams, "l1": float(cfg.objective.l1), "l2": float(cfg.objective.l2)}
    # the hyperparameters no sweep member changes are compile-time constants of the step
    field = {"l1": "objective.l1", "l2": "objective.l2"}
    fixed = {k: v for k, v in hparams.items() if field.get(k, f"model.{cfg.model.family}.{k}") not in swept}
    steps_with = functools.partial(make_step, family.players, txs, regularize=regularize, order=tc.update_order,
                                   dtype=tc.dtype, fixed=fixed)  # fmt: skip
    step = steps_with(grad_norm=bool(tc.grad_norm))
    guarded = step if tc.grad_norm else steps_with()  # the guarded step judges its gradients by their norm
    epoch = make_epoch(
        guarded,
        val_nll,
        batch_size=per_step,
        steps=steps,
        patience=tc.patience,
        min_delta=tc.min_delta,
        stop_rule=tc.stop_rule,
        transform=epoch_transform(splits.epoch_transform, splits.levels, cfg.data.scale),
        constrain=plan.constrain_batches,
        unroll=steps if int(tc.unroll) == 0 else min(int(tc.unroll), steps),
        on_nonfinite=tc.on_nonfinite,
        observe=observe,
        curriculum=curriculum.resolution_curriculum(
            tuple(tc.curriculum), splits.shape, int(tc.curriculum_epochs), int(tc.curriculum_fade)
        ),
        easy=curriculum.easy_first(float(tc.easy_start), int(tc.easy_epochs)) if tc.easy_first else None,
        fast_step=step,
        log_grad_norm=bool(tc.grad_norm),
        freeze=n_members is not None,  # the driver never runs one model that has stopped
    )

    # an example batch in evaluation form, for data-dependent initialization (ActNorm)
    example = jax.numpy.asarray(splits.eval_view(splits.train["x"][: tc.batch_size]))
    epoch.program_key = program_key(cfg, family, splits, swept, steps_per_epoch, n_members, mesh)

    def make_fresh(root, example):
        params = family.init(keys.stream(root, "init"), example)
        return init_state(params, txs, keys.stream(root, "train"), hparams, window=max(int(tc.patience), 1),
                          players=family.players)  # fmt: skip

    init_key = None if epoch.program_key is None else digest(epoch.program_key, "init")
    fresh = programs.jit(make_fresh, key=init_key)  # its traced program kept on disk

    def init(key=None):
        """A fresh state from the root ``key`` (default ``jax.random.key(cfg.seed)``), made by one
        compiled program (``fresh``: its trace and its compile kept on disk). Run op by op, as it was, each
        small op was compiled and dispatched on its own. A new process's first init (2-core CPU,
        idle; warm cache / empty cache): Glow 1.7-2.0 -> 1.2 s / 7.5 -> 4.2 s, the DDPM U-Net
        1.4-1.6 -> 1.1-1.2 s / 5.6 -> 4.6 s, the MLP VAE 0.49 -> 0.28 s / 1.8 -> 1.0 s; a second
        init of Glow or the U-Net (cross-validation's folds) 0.17-0.20 s -> 0.01 s. The values are
        the op-by-op ones up to float32 rounding where XLA fuses the arithmetic: bit for bit for
        most families, ActNorm's data init and the GPT's scaled projections differ by an ulp or two."""
        root = keys.root(cfg.seed) if key is None else key
        with gc_paused():
            return fresh(root, example)

    def shapes():
        """``jax.eval_shape(init)``, from the kept program when there is one (no tracing)."""
        with gc_paused():
            return programs.shapes(make_fresh, keys.root(cfg.seed), example, key=init_key)

    loop = str(tc.get("loop", "auto"))
    host = loop == "host" or (loop == "auto" and family.convolutional and int(tc.unroll) == 1
                              and jax.default_backend() == "cpu")  # fmt: skip
    return Program(init=init, epoch=epoch, plan=plan, steps=steps, per_step=per_step, host_loop=host, step=step,
                   val_nll=val_nll, shapes=shapes)  # fmt: skip


def program_key(cfg, family: Family, splits: DataSplits, *args) -> str | None:
    """The key under which the run's traced programs are kept (``genjax.train.programs``): the
    config (all of it but the run's ``name`` and the ``eval`` section, which no training program
    reads), the family's origin (None, so nothing is kept, for a family ``build_family`` did
    not make from this config's block and these data), what the programs take from the splits,
    and ``build_program``'s other arguments ``args``."""
    from genjax.models import DataInfo, family_config, origin_of

    origin = getattr(family, "origin", None)
    if origin is None or origin != origin_of(cfg.model.family, family_config(cfg), DataInfo.of(splits)):
        return None
    data = {f: repr(getattr(splits, f)) for f in ("name", "shape", "epoch_transform", "levels", "discrete", "bin_width",
                                                   "scale", "seed", "vocab", "tokens")}  # fmt: skip
    data["arrays"] = {part: {k: (np.shape(v), str(np.asarray(v).dtype)) for k, v in getattr(splits, part).items()}
                      for part in ("train", "val", "test")}  # fmt: skip
    recipe = {k: v for k, v in json.loads(cfg.to_json_best_effort(sort_keys=True)).items() if k not in ("name", "eval")}
    return digest(recipe, origin, repr(data), repr(args))


def split_data(cfg, splits: DataSplits, scores=None, labels: bool = False) -> dict:
    """The epoch's data for one train/validation split (host arrays; the driver places them):
    ``{"train": {"x": [N, ...]}, "val": {"x": [nb, B, ...], "mask": [nb, B]}}`` (+ ``train_eval``).
    ``scores [N]`` (an easy-first curriculum, ``train.easy_first``): ``idx`` ranks the training
    examples by score, lowest (easiest) first, and ``n = N``. ``labels`` (a labelled family,
    ``Family.labelled``): the evaluation batches carry the split's labels ``"y"``."""
    tc = cfg.train
    val_y = splits.val.get("y") if labels else None
    data = {"train": splits.train, "val": eval_set(splits.val["x"], tc.val_batch_size, val_y)}
    if bool(tc.easy_first) != (scores is not None):
        raise ValueError(f"train.easy_first={tc.easy_first!r} needs per-example scores, and scores go with it.")
    if scores is not None:
        scores = np.asarray(scores, np.float64)
        n = len(splits.train["x"])
        if scores.shape != (n,) or not np.all(np.isfinite(scores)):
            raise ValueError(
                f"train.easy_first: the scores must be {n} finite numbers (one per training example), got "
                f"shape {scores.shape}" + ("" if scores.shape != (n,) else " with non-finite values") + "."
            )
        data |= {"idx": np.argsort(scores, kind="stable").astype(np.int32), "n": np.int32(n)}
    if tc.train_eval:  # a fixed training subset as large as the validation set, scored alike
        m = len(splits.val["x"])
        train_y = splits.train.get("y")[:m] if labels else None
        data["train_eval"] = eval_set(splits.eval_view(splits.train["x"][:m]), tc.val_batch_size, train_y)
    return data


@dataclasses.dataclass
class FitResult:
    state: TrainState
    history: list[dict]
    compile_seconds: float
    train_seconds: float
    keep_best: bool = True

    @property
    def params(self):
        """The parameters to evaluate (see ``select_params``)."""
        return select_params(self.state, self.keep_best)


def select_params(state: TrainState, keep_best: bool = True):
    """The best-validation parameters if ``keep_best`` (``train.keep_best``), else the last."""
    return state.es.best_params if keep_best else state.params


def fit(
    cfg,
    family: Family,
    splits: DataSplits,
    workdir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    scores=None,
    callback: Callable | None = None,
) -> FitResult:
    """Train ``family`` on ``splits`` for ``cfg.train.epochs`` epochs (or until early stopping):
    a run of one member, on the mesh of ``train.mesh`` (data-parallel over every device by
    default).

    With ``workdir``: appends ``metrics.jsonl``, writes TensorBoard events to ``workdir/tb`` and
    checkpoints to ``workdir/checkpoints`` after epoch 1, then every ``train.checkpoint_every``
    epochs or ``train.checkpoint_minutes`` minutes, and at the end. ``resume=True`` restores the
    newest checkpoint there that restores cleanly and continues; the result equals an
    uninterrupted run's. SIGINT/SIGTERM end the call after the epoch under way, checkpointed
    (``genjax.train.driver.Interrupted``). ``stop_after=e``
    ends this call after epoch ``e`` (with a checkpoint), as a preempted job would. ``scores``:
    one per training example for an easy-first curriculum (``train.easy_first``, ``split_data``).
    ``callback(epoch, state, metrics)`` runs after every epoch (``genjax.train.driver.drive``).
    """
    prog = build_program(cfg, family, splits)
    images = None
    if len(splits.shape) == 3 and int(cfg.train.tb_images_every) > 0 and family.predictor is None:
        sample, tb_key = sampler(family, 16), keys.key(cfg.seed, "tb_samples")
        images = (int(cfg.train.tb_images_every), lambda st: splits.to_unit(sample(select_params(st, False), tb_key)))
    res = drive(
        prog.epoch,
        prog.init(),
        split_data(cfg, splits, scores, labels=family.labelled),
        prog.plan,
        epochs=int(cfg.train.epochs),
        workdir=workdir,
        checkpoint_every=int(cfg.train.checkpoint_every),
        checkpoint_minutes=float(cfg.train.checkpoint_minutes),
        loss_rise=float(cfg.train.loss_rise),
        resume=resume,
        stop_after=stop_after,
        progress=progress,
        desc=cfg.name,
        shown=family.progress,
        images=images,
        host_loop=prog.host_loop,
        callback=callback,
    )
    return FitResult(res.state, res.rows, res.compile_seconds, res.train_seconds, bool(cfg.train.keep_best))


__all__ = [
    "BASE_SWEEPABLE",
    "FitResult",
    "Program",
    "TrainingError",
    "build_program",
    "fit",
    "select_params",
    "split_data",
]
