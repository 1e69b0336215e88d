"""The one host-side training loop: every run — one model, k folds, seeds, sweep settings — is a
run of *members* driven here.

``drive`` compiles the epoch (``jax.vmap``-ed over a leading members axis when the state is
stacked, with ``spmd_axis_name="members"`` so the mesh splits members across devices), then
loops over epochs: the progress bar, ``metrics.jsonl``, orbax checkpoints, the divergence check,
members that stopped early (their state frozen inside the compiled epoch; their metrics NaN
here), ``stop_after`` and resume. Only process 0 prints or writes files; every process joins the
checkpoint saves (orbax coordinates them).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from genjax.train.checkpoint import Checkpointer
from genjax.train.engine import TrainState
from genjax.train.sharding import Plan, is_main_process, to_host


class TrainingError(RuntimeError):
    pass


@dataclasses.dataclass
class RunResult:
    state: TrainState  # stacked (leading members axis) or a single model's
    history: dict[str, np.ndarray]  # metric -> [epochs, members]; NaN once a member stopped
    rows: list[dict]  # one dict per epoch of this call, as written to metrics.jsonl
    compile_seconds: float
    train_seconds: float
    epochs_run: np.ndarray  # [members] epochs each member trained in this call
    compiled: Callable  # the compiled epoch, reusable for states of the same shapes


def _scalar(v):
    v = np.asarray(v)
    if v.ndim:
        return [_scalar(a) for a in v]
    return bool(v) if v.dtype == bool else (int(v) if np.issubdtype(v.dtype, np.integer) else float(v))


def read_history(path: Path, upto: int) -> list[dict]:
    """The rows of ``metrics.jsonl`` up to epoch ``upto``."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["epoch"] <= upto]


def drive(
    epoch_fn: Callable,
    state: TrainState,
    data: dict,
    plan: Plan,
    *,
    epochs: int,
    data_axes: dict | None = None,
    workdir: str | Path | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    desc: str = "train",
    shown: Sequence[str] = ("loss",),
    callback: Callable | None = None,
    compiled: Callable | None = None,
) -> RunResult:
    """Train ``state`` with the pure ``epoch_fn(state, data) -> (state, metrics)`` up to epoch
    ``epochs`` (or until every member stopped early).

    Args:
        plan: the mesh (``genjax.train.sharding.plan``); ``plan.stacked`` says whether ``state``
            has a leading members axis.
        data_axes: for a stacked state, ``{key: 0 or None}`` per entry of ``data`` (per-member or
            shared); default: all shared.
        workdir: where ``metrics.jsonl`` and ``checkpoints/`` go (``None``: nowhere).
        resume: restore the latest checkpoint in ``workdir`` first (``state`` is the template).
        stop_after: end this call after that epoch (with a checkpoint), as a preempted job would.
        shown: metrics on the progress bar (mean over the members still training).
        callback: ``callback(epoch, state, metrics)`` after every epoch.
        compiled: an epoch compiled earlier for the same shapes (the loop strategy's members).
    """
    main = is_main_process()
    ckpt = Checkpointer(Path(workdir) / "checkpoints") if workdir is not None else None
    metrics_path = Path(workdir) / "metrics.jsonl" if workdir is not None else None
    rows: list[dict] = []
    state = plan.put_state(state)
    data = plan.put_data(data)
    if resume:
        if ckpt is None or ckpt.latest_epoch() is None:
            raise TrainingError(f"--resume: no checkpoint to resume from in {workdir}.")
        state = ckpt.restore(state)
        if main:
            kept = read_history(metrics_path, int(np.max(to_host(state.epoch))))
            metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    t0 = time.perf_counter()
    if compiled is None:
        fn = epoch_fn
        if plan.stacked:
            axes = {k: (data_axes or {}).get(k) for k in data}
            fn = jax.vmap(epoch_fn, in_axes=(0, axes), spmd_axis_name="members")
        compiled = jax.jit(fn, donate_argnums=0).lower(state, data).compile()
    compile_s = time.perf_counter() - t0

    host = lambda tree: {k: np.asarray(v) for k, v in to_host(tree).items()}  # noqa: E731
    stopped = np.atleast_1d(to_host(state.es.stopped))
    n = len(stopped)
    start = int(np.max(to_host(state.epoch)))
    end = epochs if stop_after is None else max(start, min(epochs, int(stop_after)))
    label = desc if n == 1 else f"{desc} ({n} models)"
    bar = tqdm(range(start, end), initial=start, total=epochs, desc=label, unit="epoch", mininterval=1.0,
               disable=not (progress and main))  # fmt: skip
    hist: dict[str, list] = {}
    epochs_run = np.zeros(n, np.int64)
    saved = None
    t_train = time.perf_counter()
    for _ in [] if stopped.all() else bar:
        was = stopped
        state, m = compiled(state, data)
        m = {k: np.reshape(v, (n,)) for k, v in host(m).items()}
        e = int(np.max(to_host(state.epoch)))
        bad = np.flatnonzero(~was & ((m["nonfinite_steps"] > 0) | ~np.isfinite(m.get("val_nll", np.zeros(n)))))
        if len(bad):
            who = "" if n == 1 else f" for members {bad.tolist()}"
            raise TrainingError(
                f"training diverged in epoch {e}{who}: {int(m['nonfinite_steps'][bad].sum())} steps gave a non-finite "
                f"loss (validation NLL {m.get('val_nll', np.array(['not computed'] * n))[bad][0]}); lower optim.lr "
                "or set optim.clip_norm. The last good checkpoint is kept."
            )
        epochs_run += ~was
        stopped = m["stopped"].astype(bool)
        for k, v in m.items():
            hist.setdefault(k, []).append(v if v.dtype == bool else np.where(was, np.nan, v))
        row = {"epoch": e, "step": _scalar(to_host(state.step)) if n > 1 else int(to_host(state.step))}
        row |= {k: _scalar(v if n > 1 else v[0]) for k, v in m.items()}
        row["time"] = round(time.perf_counter() - t_train, 3)
        rows.append(row)
        if metrics_path is not None and main:
            with metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        if callback is not None:
            callback(e, state, m)
        post = {}
        for k in [*shown, "val_nll"]:
            if k in m and not np.all(was):
                post[k] = f"{np.nanmean(np.where(was, np.nan, m[k])):.3f}"
        if n > 1:
            post["stopped"] = f"{int(stopped.sum())}/{n}"
        bar.set_postfix(post, refresh=False)
        if ckpt is not None and (e % checkpoint_every == 0 or e == end or stopped.all()):
            ckpt.save(e, state)
            saved = e
        if stopped.all():
            if n == 1 and "best_val_nll" in m:
                bar.write(f"early stopping at epoch {e}: best validation NLL {m['best_val_nll'][0]:.4f} "
                          f"at epoch {int(to_host(state.es.best_epoch))}")  # fmt: skip
            break
    bar.close()
    jax.block_until_ready(state)
    train_s = time.perf_counter() - t_train
    if ckpt is not None:
        e = int(np.max(to_host(state.epoch)))
        if saved != e and ckpt.latest_epoch() != e:
            ckpt.save(e, state)
        ckpt.close()
    history = {k: np.stack(v) for k, v in hist.items()}
    return RunResult(state, history, rows, compile_s, train_s, epochs_run, compiled)


def examples_per_second(epochs_run, steps: int, per_step: int, seconds: float) -> float:
    """Training examples processed per second, all members together."""
    return float(np.sum(epochs_run)) * steps * per_step / max(seconds, 1e-9)


__all__ = ["RunResult", "TrainingError", "drive", "examples_per_second", "read_history"]
