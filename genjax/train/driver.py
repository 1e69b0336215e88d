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

import contextlib
import dataclasses
import gc
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from genjax.train.checkpoint import Checkpointer, why_skipped
from genjax.train.engine import TrainState, host_epoch
from genjax.train.programs import digest, lower
from genjax.train.sharding import Plan, is_main_process, to_host


class TrainingError(RuntimeError):
    pass


class Interrupted(Exception):
    """SIGINT or SIGTERM reached the training loop: the epoch under way was finished, the last
    completed epoch checkpointed (``saved``) and in-flight saves waited for."""

    def __init__(self, signum: int, epoch: int, saved: bool):
        self.signum, self.epoch, self.saved = int(signum), int(epoch), saved
        super().__init__(f"interrupted by {signal.Signals(signum).name} after epoch {epoch}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM


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


def _live_mean(v: np.ndarray, was: np.ndarray) -> float:
    """The mean of ``v [members]`` over the members still training, NaN values skipped (NaN when
    none is left): ``np.nanmean`` of the live values without its overhead, which a short epoch's
    bookkeeping paid ~20 times (the demo's bookkeeping: 2.4-2.6 -> 2.0-2.2 ms an epoch)."""
    keep = v[~was]
    if keep.dtype.kind == "f":
        keep = keep[~np.isnan(keep)]
    return float(np.mean(keep)) if keep.size else float("nan")


def read_history(path: Path, upto: int) -> list[dict]:
    """The rows of ``metrics.jsonl`` up to epoch ``upto`` (a line cut short by a kill is dropped)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [r for r in rows if r.get("epoch", upto + 1) <= upto]


@contextlib.contextmanager
def deferred_signals():
    """While the block runs, SIGINT and SIGTERM only record themselves in the yielded list (the
    training loop acts on them between epochs); the previous handlers come back afterwards.
    Outside the main thread (where Python cannot set handlers) nothing changes."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    old = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def should_checkpoint(epoch: int, every: int, minutes: float, since_s: float) -> bool:
    """The checkpoint policy: after epoch 1, then every ``every`` epochs or once ``minutes``
    minutes have passed since the last save (``minutes`` 0: no time rule), whichever comes
    first. (The driver also saves at the end, on early stopping and on a signal.)"""
    return epoch == 1 or epoch % every == 0 or (minutes > 0 and since_s >= 60.0 * minutes)


def loss_rose(loss: float, best: float, factor: float) -> bool:
    """The explosion warning's rule: ``loss - best > factor * |best|`` (``factor`` 0: never).
    For a positive loss with ``factor = 10`` that is "more than 11 times its running minimum"."""
    return factor > 0 and np.isfinite(loss) and np.isfinite(best) and loss - best > factor * abs(best)


def fault_point(point: str, epoch: int) -> None:
    """Fault injection for the crash tests. ``GENJAX_FAULT='<sig>@<point>[:<epoch>]'`` (``sig``:
    kill | int | term) sends this process that signal on reaching ``point`` — ``epoch``: epoch's
    metrics are written, its checkpoint not yet; ``save``: epoch's checkpoint save was just issued
    (asynchronously, so it is in flight); ``eval``: training is over, evaluation about to start.
    Unset (always, outside tests): nothing happens."""
    spec = os.environ.get("GENJAX_FAULT")
    if not spec:
        return
    sig, _, where = spec.partition("@")
    p, _, e = where.partition(":")
    if p == point and (not e or int(e) == epoch):
        os.kill(os.getpid(), {"kill": signal.SIGKILL, "int": signal.SIGINT, "term": signal.SIGTERM}[sig])


def tensorboard_figures(workdir: Path, paths: Sequence[Path], step: int) -> None:
    """Add the PNG figures ``paths`` to ``workdir/tb`` as images at ``step``."""
    import matplotlib.image

    tb = _tensorboard(Path(workdir))
    if tb is None:
        return
    try:
        for p in paths:
            img = matplotlib.image.imread(str(p))[..., :3]
            tb.add_image(f"figures/{Path(p).stem}", img, step, dataformats="HWC")
    finally:
        tb.close()


def _tensorboard(workdir: Path):
    """A tensorboardX writer for ``workdir/tb`` (``None`` when tensorboardX is missing)."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return SummaryWriter(str(workdir / "tb"), flush_secs=30)


@contextlib.contextmanager
def gc_paused():
    """Python's cyclic garbage collector paused for the block, as it was after. Tracing and lowering
    a training epoch allocate hundreds of thousands of short-lived objects; every 700 net allocations
    start a collection, every tenth of those an older generation's and some a pass over the whole
    heap (~290,000 objects after ``import genjax``, ~380,000 once Glow's program is built). Glow's
    epoch compiled from the persistent cache ran ~250 of them, and pausing took 13-17% off such
    compiles (2 CPU cores, medians of 4: Glow 3.51 -> 3.05 s, WGAN-GP 2.17 -> 1.83 s, the MLP VAE
    1.42 -> 1.18 s). Nothing is lost: what the block left unreachable is collected by the
    collector's next pass after it."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def compile_epoch(epoch_fn: Callable, state, data: dict, stacked: bool = False, data_axes: dict | None = None,
                  host_loop: bool = False) -> Callable:  # fmt: skip
    """The epoch as ``drive`` runs it, compiled for ``state`` and ``data``: jitted with the state
    donated (vmapped over the members axis when ``stacked``), or as a host loop over one compiled
    step (``host_loop``, ``genjax.train.engine.host_epoch``); traced, lowered and compiled with the
    garbage collector paused (``gc_paused``)."""
    with gc_paused():
        return _compile_epoch(epoch_fn, state, data, stacked, data_axes, host_loop)


def _compile_epoch(epoch_fn: Callable, state, data: dict, stacked: bool, data_axes: dict | None,
                   host_loop: bool) -> Callable:  # fmt: skip
    axes = {k: (data_axes or {}).get(k) for k in data}
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), (state, data))
    base = getattr(epoch_fn, "program_key", None)  # the traced programs kept on disk (genjax.train.programs)
    key = lambda piece: None if base is None else digest(base, piece, stacked, repr(axes), host_loop)  # noqa: E731
    if host_loop:
        host = lambda pieces, k: host_epoch(pieces, (0, axes) if stacked else None, key=k)  # noqa: E731
        if getattr(epoch_fn, "fast_pieces", None) is None:
            return host(epoch_fn.pieces, key("epoch")).lower(state, data).compile()
        return CheckedEpoch(host(epoch_fn.fast_pieces, key("fast")).lower(state, data).compile(),
                            lambda: host(epoch_fn.pieces, key("guarded")).lower(*shapes).compile())  # fmt: skip
    vm = lambda f: jax.vmap(f, in_axes=(0, axes), spmd_axis_name="members") if stacked else f  # noqa: E731
    fn = vm(epoch_fn)
    if getattr(epoch_fn, "fast", None) is None:
        return lower(fn, state, data, key=key("epoch"), donate_argnums=0).compile()
    return CheckedEpoch(lower(vm(epoch_fn.fast), state, data, key=key("fast")).compile(),
                        lambda: lower(fn, *shapes, key=key("guarded"), donate_argnums=0).compile())  # fmt: skip


def _run_epoch(compiled: Callable, state, data: dict, meanwhile: Callable):
    """``compiled(state, data)``, running ``meanwhile()`` on the host after the epoch is dispatched
    and before anything waits for it."""
    if isinstance(compiled, CheckedEpoch):
        return compiled(state, data, meanwhile)
    out = compiled(state, data)
    meanwhile()
    return out


class CheckedEpoch:
    """An epoch run unguarded first (``make_epoch``'s ``epoch.fast``, or its ``fast_pieces`` as a
    host loop; the state it is given is not donated, so the epoch's start survives it) and, only
    when a step of it was not finite, again from that start with the per-step guard (compiled
    then, once): the same states and metrics as the guarded epoch alone — ``train.on_nonfinite``'s
    halt and skip act on the exact step — at the cost of one copy of the state per epoch instead
    of a guard in every step."""

    def __init__(self, fast, compile_guarded: Callable):
        self.fast, self._compile_guarded, self.guarded, self.reruns = fast, compile_guarded, None, 0

    def __call__(self, state, data, meanwhile: Callable | None = None):
        new, metrics, clean = self.fast(state, data)
        if meanwhile is not None:  # host work while the epoch computes (dispatch is asynchronous)
            meanwhile()
        if bool(np.all(np.asarray(to_host(clean)))):
            return new, metrics
        del new, metrics
        if self.guarded is None:
            with gc_paused():
                self.guarded = self._compile_guarded()
        self.reruns += 1
        return self.guarded(state, data)

    def cost_analysis(self):
        return self.fast.cost_analysis()

    def memory_analysis(self):
        return self.fast.memory_analysis()

    def as_text(self):
        return self.fast.as_text()


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
    checkpoint_minutes: float = 0.0,
    loss_rise: float = 10.0,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    desc: str = "train",
    shown: Sequence[str] = ("loss",),
    callback: Callable | None = None,
    compiled: Callable | None = None,
    images: tuple[int, Callable] | None = None,
    host_loop: bool = False,
) -> RunResult:
    """Train ``state`` with the pure ``epoch_fn(state, data) -> (state, metrics)`` up to epoch
    ``epochs`` (or until every member stopped early).

    Args:
        plan: the mesh (``genjax.train.sharding.plan``); ``plan.stacked`` says whether ``state``
            has a leading members axis.
        data_axes: for a stacked state, ``{key: 0 or None}`` per entry of ``data`` (per-member or
            shared); default: all shared.
        workdir: where ``metrics.jsonl``, ``checkpoints/`` and TensorBoard's ``tb/`` go
            (``None``: nowhere).
        checkpoint_every, checkpoint_minutes: the checkpoint policy (``should_checkpoint``).
        loss_rise: warn once when the training loss rises that far over its minimum (``loss_rose``).
        resume: continue from the newest checkpoint in ``workdir`` that restores cleanly (the
            ones skipped are named on stderr); with none yet, start from ``state`` (a run killed
            before its first checkpoint starts over, as it would have run).
        stop_after: end this call after that epoch (with a checkpoint), as a preempted job would.
        shown: metrics on the progress bar (mean over the members still training).
        callback: ``callback(epoch, state, metrics)`` after every epoch.
        compiled: an epoch compiled earlier for the same shapes (the loop strategy's members).
        images: ``(every, fn)``: every ``every`` epochs, TensorBoard gets the grid of
            ``fn(state)`` (``[N, H, W, C]`` in [0, 1]: samples) beside the scalars in ``workdir/tb``.
        host_loop: run each epoch's steps as a host loop over one compiled step
            (``genjax.train.engine.host_epoch``; ``train.loop``) instead of one ``lax.scan``.

    Raises:
        TrainingError: a member's step went non-finite (``train.on_nonfinite='halt'``: the last
            finite state is saved to ``workdir/diverged``) or its validation NLL did.
        Interrupted: SIGINT/SIGTERM; the epoch under way finished and was checkpointed first.
    Committed checkpoints are never lost: in-flight saves are waited for on every way out.
    """
    main = is_main_process()
    workdir = Path(workdir) if workdir is not None else None
    ckpt = Checkpointer(workdir / "checkpoints") if workdir is not None else None
    metrics_path = workdir / "metrics.jsonl" if workdir is not None else None
    rows: list[dict] = []
    bar = tb = None
    with deferred_signals() as caught:
        try:
            state = plan.put_state(state)
            data = plan.put_data(data)
            if resume:
                if ckpt is None:
                    raise TrainingError("resume needs a workdir.")
                state, at, skipped = ckpt.restore_newest(state)
                if at is None and skipped:
                    raise TrainingError(
                        f"no checkpoint in {workdir / 'checkpoints'} restores ({why_skipped(skipped)})."
                    )
                if skipped and main:  # moved aside, so this run can write those epochs afresh
                    aside = ckpt.set_aside([ep for ep, _ in skipped], workdir / "damaged_checkpoints")
                    for ep, why in skipped:
                        print(f"genjax: skipped checkpoint of epoch {ep}: it does not restore ({why}); "
                              f"moved to {aside}.", file=sys.stderr)  # fmt: skip
                if main:
                    kept = read_history(metrics_path, int(np.max(to_host(state.epoch))))
                    metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))

            t0 = time.perf_counter()
            if compiled is None:
                compiled = compile_epoch(epoch_fn, state, data, plan.stacked, data_axes, host_loop)
            compile_s = time.perf_counter() - t0

            stopped = np.atleast_1d(to_host(state.es.stopped))
            n = len(stopped)
            start = int(np.max(to_host(state.epoch)))
            if caught:
                raise Interrupted(caught[0], start, saved=False)
            tb = _tensorboard(workdir) if workdir is not None and main else None
            end = epochs if stop_after is None else max(start, min(epochs, int(stop_after)))
            label = desc if n == 1 else f"{desc} ({n} models)"
            bar = tqdm(range(start, end), initial=start, total=epochs, desc=label, unit="epoch", mininterval=1.0,
                       disable=not (progress and main))  # fmt: skip
            hist: dict[str, list] = {}
            epochs_run = np.zeros(n, np.int64)
            saved, t_saved = None, time.perf_counter()
            low, warned = np.full(n, np.inf), np.zeros(n, bool)
            t_train = time.perf_counter()
            pending: list[tuple] = []  # epochs whose rows, scalars and progress are yet to be written

            def book():
                """Write the pending epochs' rows (metrics.jsonl, TensorBoard scalars, the history,
                the progress bar): called while the next epoch computes, so the device is not idle
                for them; always before a checkpoint, a break or an error, so every checkpoint has
                its epoch's row and no row is lost on a way out the run handles."""
                nonlocal low, warned
                while pending:
                    e, m, was, step, t = pending.pop(0)
                    for k, v in m.items():
                        hist.setdefault(k, []).append(v if v.dtype == bool else np.where(was, np.nan, v))
                    row = {"epoch": e, "step": _scalar(step) if n > 1 else int(step)}
                    row |= {k: _scalar(v if n > 1 else v[0]) for k, v in m.items()}
                    row["time"] = t
                    rows.append(row)
                    if metrics_path is not None and main:
                        with metrics_path.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                    if tb is not None:
                        for k, v in m.items():
                            if v.dtype != bool and np.isfinite(mu := _live_mean(v, was)):
                                tb.add_scalar(k, mu, e)
                    if "loss" in m:
                        loss = np.where(was, np.nan, m["loss"])
                        rose = ~warned & np.array([loss_rose(a, b, loss_rise) for a, b in zip(loss, low)])
                        for i in np.flatnonzero(rose):
                            who = "" if n == 1 else f" of member {i}"
                            bar.write(f"genjax: warning: the training loss{who} {loss[i]:.4g} in epoch {e} is more "
                                      f"than {loss_rise:g} x |{low[i]:.4g}| above its minimum; the run may be "
                                      "diverging.", file=sys.stderr)  # fmt: skip
                        warned |= rose
                        low = np.fmin(low, loss)
                    post = {}
                    for k in [*shown, "val_nll"]:
                        if k in m and not np.all(was):
                            post[k] = f"{_live_mean(m[k], was):.3f}"
                    if n > 1:
                        post["stopped"] = f"{int(np.sum(m['stopped']))}/{n}"
                    bar.set_postfix(post, refresh=False)

            for _ in [] if stopped.all() else bar:
                was = stopped
                state, m = _run_epoch(compiled, state, data, book)  # book(): the previous epoch's rows
                m, step, epoch = to_host((m, state.step, state.epoch))
                m = {k: np.reshape(np.asarray(v), (n,)) for k, v in m.items()}
                bad_terms = {k.split("/", 1)[1]: m.pop(k) for k in list(m) if k.startswith("nonfinite/")}
                halted, first_bad = m.pop("halted", np.zeros(n, bool)).astype(bool), m.pop("nonfinite_at")
                e = int(np.max(epoch))
                bad = np.flatnonzero(~was & (halted | ~np.isfinite(m.get("val_nll", np.zeros(n)))))
                if len(bad):
                    book()
                    raise TrainingError(_diverged(workdir, ckpt, state, e, n, bad, halted, first_bad, bad_terms, m))
                epochs_run += ~was
                stopped = m["stopped"].astype(bool)
                pending.append((e, m, was, step, round(time.perf_counter() - t_train, 3)))
                if tb is not None and images is not None and images[0] > 0 and e % images[0] == 0:
                    tb.add_images("samples", np.clip(np.asarray(images[1](state)), 0, 1), e, dataformats="NHWC")
                if callback is not None:
                    callback(e, state, dict(m))  # its own dict: the row is written after it
                fault_point("epoch", e)
                if ckpt is not None and (
                    should_checkpoint(e, checkpoint_every, checkpoint_minutes, time.perf_counter() - t_saved)
                    or e == end
                    or stopped.all()
                    or caught
                ):
                    book()
                    ckpt.save(e, state)
                    saved, t_saved = e, time.perf_counter()
                    fault_point("save", e)
                if caught:
                    book()
                    raise Interrupted(caught[0], e, saved=ckpt is not None)
                if stopped.all():
                    book()
                    if n == 1 and "best_val_nll" in m:
                        bar.write(f"early stopping at epoch {e}: best validation NLL {m['best_val_nll'][0]:.4f} "
                                  f"at epoch {int(to_host(state.es.best_epoch))}")  # fmt: skip
                    break
            book()
            bar.close()
            jax.block_until_ready(state)
            train_s = time.perf_counter() - t_train
            if ckpt is not None:
                e = int(np.max(to_host(state.epoch)))
                if saved != e and ckpt.latest_epoch() != e:
                    ckpt.save(e, state)
        finally:
            if bar is not None:
                bar.close()
            if ckpt is not None:
                ckpt.close()  # waits for in-flight saves, whatever the way out
            if tb is not None:
                tb.close()
    history = {k: np.stack(v) for k, v in hist.items()}
    return RunResult(state, history, rows, compile_s, train_s, epochs_run, compiled)


def _diverged(workdir, ckpt, state, e, n, bad, halted, first_bad, bad_terms, m) -> str:
    """Save the last finite state (``on_nonfinite='halt'`` froze it at the failing step) to
    ``workdir/diverged`` and say what went non-finite, where."""
    who = "" if n == 1 else f" (members {bad.tolist()})"
    i = bad[0]
    if halted[i]:
        terms = [k for k, v in bad_terms.items() if v[i]]
        terms = sorted(terms, key=lambda k: (k.endswith("loss") or k.endswith("grad_norm"), k))
        what = f"at step {int(first_bad[i]) + 1} (epoch {e}){who}: non-finite {', '.join(terms) or 'values'}"
    else:
        what = f"in epoch {e}{who}: the validation NLL is {m['val_nll'][i]}"
    kept = ""
    if ckpt is not None:
        ckpt.wait()
        last = ckpt.latest_epoch()
        kept = f"; the last checkpoint is epoch {last}" if last is not None else "; no checkpoint was written yet"
        if halted[i]:
            d = Checkpointer(workdir / "diverged", max_to_keep=1)
            try:
                d.save(int(np.max(to_host(state.step))), state)
            finally:
                d.close()
            kept += f", the last finite state is in {workdir / 'diverged'}"
    return f"training diverged {what}{kept}. Lower optim.lr, set optim.clip_norm or train.on_nonfinite='skip'."


def examples_per_second(epochs_run, steps: int, per_step: int, seconds: float) -> float:
    """Training examples processed per second, all members together."""
    return float(np.sum(epochs_run)) * steps * per_step / max(seconds, 1e-9)


__all__ = [
    "Interrupted",
    "RunResult",
    "TrainingError",
    "deferred_signals",
    "drive",
    "loss_rose",
    "should_checkpoint",
    "examples_per_second",
    "read_history",
]
