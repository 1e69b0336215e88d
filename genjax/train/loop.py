"""The Python side of training: build the compiled epoch, loop over epochs, log, checkpoint.

Everything numeric happens inside one jitted, buffer-donating ``epoch`` function; this loop only
moves metrics to the host between epochs, updates the progress bar, appends ``metrics.jsonl``
and writes orbax checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from genjax.data.batching import eval_batches
from genjax.data.pipeline import DataSplits
from genjax.data.transforms import epoch_transform
from genjax.models.base import Family
from genjax.train.checkpoint import Checkpointer
from genjax.train.engine import TrainState, batched_mean, init_state, make_epoch, make_step
from genjax.train.optim import make_optimizer


class TrainingError(RuntimeError):
    pass


@dataclasses.dataclass
class Program:
    """The pieces of one run: the initial state and the epoch function (its data come from
    ``split_data`` for a single split, or from ``genjax.train.cv`` for folds)."""

    init: Callable[..., TrainState]  # (key=None) -> fresh state
    epoch: Callable  # jitted (state, data) -> (state, metrics), donates state
    pure_epoch: Callable  # the same, not jitted: for jax.vmap over models (folds, seeds, settings)


def build_program(
    cfg, family: Family, splits: DataSplits, swept: frozenset = frozenset(), steps_per_epoch: int | None = None
) -> Program:
    """Optimizers, state initializer and the jitted epoch for ``family`` on ``splits``.

    ``swept``: config fields a sweep will vary per model (so, e.g., the L1/L2 penalty is built in
    even where its configured strength is 0)."""
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
    lrs = family.extras.get("player_lr", lambda name: None)
    txs = {p.name: make_optimizer(cfg.optim, tc.epochs * steps, lr=lrs(p.name)) for p in family.players}
    val_lp = family.extras.get("val_log_prob", family.log_prob)
    if val_lp is None:
        if tc.patience > 0:
            raise ValueError(
                f"train.patience={tc.patience} needs a validation likelihood, which the "
                f"{family.name} family has not; set train.patience=0."
            )
        val_nll = None
    else:
        val_nll = lambda params, batches, key: -batched_mean(val_lp, params, batches, key)  # noqa: E731
    regularize = cfg.objective.l1 > 0 or cfg.objective.l2 > 0 or bool(swept & {"objective.l1", "objective.l2"})
    hparams = {**family.hparams, "l1": float(cfg.objective.l1), "l2": float(cfg.objective.l2)}
    epoch = make_epoch(
        make_step(family.players, txs, regularize=regularize),
        val_nll,
        batch_size=per_step,
        steps=steps,
        patience=tc.patience,
        min_delta=tc.min_delta,
        transform=epoch_transform(splits.epoch_transform, splits.levels, cfg.data.scale),
    )

    # an example batch in evaluation form, for data-dependent initialization (ActNorm)
    example = jax.numpy.asarray(splits.eval_view(splits.train["x"][: tc.batch_size]))

    def init(key=None):
        """A fresh state from ``key`` (default ``jax.random.key(cfg.seed)``)."""
        k_init, k_train = jax.random.split(jax.random.key(cfg.seed) if key is None else key)
        return init_state(family.init(k_init, example), txs, k_train, hparams)

    return Program(init=init, epoch=jax.jit(epoch, donate_argnums=0), pure_epoch=epoch)


def split_data(cfg, splits: DataSplits) -> dict:
    """The epoch's device-resident data for one train/validation split:
    ``{"train": {"x": [N, ...]}, "val": {"x": [nb, B, ...], "mask": [nb, B]}}`` (+ ``train_eval``)."""
    tc = cfg.train
    xb, mask = eval_batches(splits.val["x"], tc.val_batch_size)
    data = {"train": splits.train, "val": {"x": xb, "mask": mask}}
    if tc.train_eval:  # a fixed training subset as large as the validation set, scored alike
        xb, mask = eval_batches(splits.eval_view(splits.train["x"][: len(splits.val["x"])]), tc.val_batch_size)
        data["train_eval"] = {"x": xb, "mask": mask}
    return jax.device_put(data)


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


def _host(metrics) -> dict:
    out = {}
    for k, v in jax.device_get(metrics).items():
        v = np.asarray(v)
        out[k] = bool(v) if v.dtype == bool else (int(v) if np.issubdtype(v.dtype, np.integer) else float(v))
    return out


def _read_history(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["epoch"] <= upto]


def fit(
    cfg,
    family: Family,
    splits: DataSplits,
    workdir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> FitResult:
    """Train ``family`` on ``splits`` for ``cfg.train.epochs`` epochs (or until early stopping).

    With ``workdir``: appends ``metrics.jsonl`` and writes checkpoints to ``workdir/checkpoints``
    every ``train.checkpoint_every`` epochs and at the end. ``resume=True`` restores the latest
    checkpoint there and continues; the result equals an uninterrupted run's. ``stop_after=e``
    ends this call after epoch ``e`` (with a checkpoint), as a preempted job would.
    """
    prog = build_program(cfg, family, splits)
    data = split_data(cfg, splits)
    state = prog.init()
    ckpt = Checkpointer(Path(workdir) / "checkpoints") if workdir is not None else None
    metrics_path = Path(workdir) / "metrics.jsonl" if workdir is not None else None
    history: list[dict] = []
    if resume:
        if ckpt is None or ckpt.latest_epoch() is None:
            raise TrainingError(f"--resume: no checkpoint to resume from in {workdir}.")
        state = ckpt.restore(state)
        history = _read_history(metrics_path, int(state.epoch))
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in history))

    t0 = time.perf_counter()
    epoch_fn = prog.epoch.lower(state, data).compile()
    compile_s = time.perf_counter() - t0

    start, total = int(state.epoch), int(cfg.train.epochs)
    end = total if stop_after is None else max(start, min(total, int(stop_after)))
    bar = tqdm(
        range(start, end),
        initial=start,
        total=total,
        desc=cfg.name,
        disable=not progress,
        unit="epoch",
        mininterval=1.0,
    )
    t_train = time.perf_counter()
    stopped = bool(state.es.stopped)
    for _ in [] if stopped else bar:
        state, m = epoch_fn(state, data)
        m = _host(m)
        e = int(state.epoch)
        if m["nonfinite_steps"] > 0 or not math.isfinite(m.get("val_nll", 0.0)):
            raise TrainingError(
                f"training diverged in epoch {e}: {m['nonfinite_steps']} steps gave a non-finite loss "
                f"(validation NLL {m.get('val_nll', 'not computed')}); lower optim.lr or set optim.clip_norm. "
                f"The last good checkpoint is kept."
            )
        row = {"epoch": e, "step": int(state.step), **m, "time": round(time.perf_counter() - t_train, 3)}
        history.append(row)
        if metrics_path is not None:
            with metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        shown = {k: m[k] for k in m if k in ("loss", "rec", "kl", "val_nll", "disc/loss", "gen/loss")}
        bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()}, refresh=False)
        stopped = m["stopped"]
        if ckpt is not None and (e % cfg.train.checkpoint_every == 0 or e == end or stopped):
            ckpt.save(e, state)
        if stopped:
            bar.write(
                f"early stopping at epoch {e}: best validation NLL {m['best_val_nll']:.4f} "
                f"at epoch {int(state.es.best_epoch)}"
            )
            break
    bar.close()
    jax.block_until_ready(state)
    train_s = time.perf_counter() - t_train
    if ckpt is not None:
        if ckpt.latest_epoch() != int(state.epoch):
            ckpt.save(int(state.epoch), state)
        ckpt.close()
    return FitResult(state, history, compile_s, train_s, bool(cfg.train.keep_best))
