"""The training core: one state pytree, a pure step, a scanned epoch, early stopping.

    step(state, batch) -> (state, metrics)             players updated in turn (or together)
    epoch(state, train, val) -> (state, metrics)       lax.scan of steps, validation, early stop

Both are pure functions of one ``TrainState`` pytree, so ``jax.jit(epoch)`` trains one model,
``jax.jit(jax.vmap(epoch))`` trains k folds (or a grid of settings) at once, and a stopped
model's state is frozen inside the compiled epoch.

Keys (``genjax.keys``): ``state.rng`` is fixed for the run; step t uses ``stream(rng, "step",
t)``, epoch e's shuffle ``stream(rng, "data", e)`` and its validation ``stream(rng, "val", e)``.
Everything is a function of the state, so a run restored from a checkpoint continues exactly as
an uninterrupted one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from genjax import keys
from genjax.data.batching import epoch_batches
from genjax.models.base import Context, Player, batch_multiple
from genjax.objectives.regularizers import penalty
from genjax.train.optim import plateau_scale
from genjax.train.programs import digest, lower


class EarlyStopState(NamedTuple):
    best: jax.Array  # best validation NLL so far (+inf at start)
    best_epoch: jax.Array  # epoch (1-based) of the best; 0 before any
    bad_epochs: jax.Array  # epochs since the last improvement by more than min_delta
    stopped: jax.Array  # bool
    best_params: Any  # params at the best epoch
    recent: jax.Array  # [window] the last validation NLLs, oldest first (+inf before any): the rise rule


class TrainState(NamedTuple):
    params: dict  # {player: nnx.State}
    opt: dict  # {player: optax state over that player's nnx.Param leaves}
    step: jax.Array  # int32, global step
    epoch: jax.Array  # int32, completed epochs (the data position)
    rng: jax.Array  # typed PRNG key, fixed for the run
    es: EarlyStopState
    hparams: dict  # loss hyperparameters {name: float32 scalar}: the family's, plus l1 and l2


def split_trainable(state: nnx.State):
    """(nnx.Param leaves, everything else) of one player's state."""
    return nnx.split_state(state, nnx.Param, ...)


def player_split(params: dict, pl: Player):
    """(trainable, rest) of the params entries player ``pl`` updates: ``params[pl.name]`` split,
    or for a player over several entries (``pl.params``) dicts ``{entry: part}``."""
    if not pl.params:
        return split_trainable(params[pl.name])
    parts = {t: split_trainable(params[t]) for t in pl.params}
    return {t: d for t, (d, _) in parts.items()}, {t: r for t, (_, r) in parts.items()}


def player_merge(params: dict, pl: Player, diff, rest) -> dict:
    """``params`` with the entries of player ``pl`` rebuilt from ``player_split``'s parts."""
    if not pl.params:
        return {**params, pl.name: nnx.merge_state(diff, rest)}
    return {**params, **{t: nnx.merge_state(diff[t], rest[t]) for t in pl.params}}


def init_state(
    params: dict,
    txs: dict[str, optax.GradientTransformation],
    rng: jax.Array,
    hparams: dict | None = None,
    window: int = 1,
    players: Sequence[Player] = (),
) -> TrainState:
    """A fresh state; ``window``: how many past validation NLLs early stopping keeps (the rise
    rule's k, ``train.patience``); ``players``: those updating several params entries
    (``Player.params``; the others update ``params[name]``)."""
    over = {pl.name: pl for pl in players if pl.params}
    opt = {
        name: tx.init(player_split(params, over[name])[0] if name in over else split_trainable(params[name])[0])
        for name, tx in txs.items()
    }
    es = EarlyStopState(
        best=jnp.array(jnp.inf, jnp.float32),
        best_epoch=jnp.array(0, jnp.int32),
        bad_epochs=jnp.array(0, jnp.int32),
        stopped=jnp.array(False),
        best_params=jax.tree.map(jnp.copy, params),  # own buffers: the state is donated
        recent=jnp.full((max(int(window), 1),), jnp.inf, jnp.float32),
    )
    hp = {k: jnp.asarray(v, jnp.float32) for k, v in (hparams or {}).items()}
    return TrainState(params, opt, jnp.array(0, jnp.int32), jnp.array(0, jnp.int32), rng, es, hp)


def make_step(
    players: Sequence[Player],
    txs: dict[str, optax.GradientTransformation],
    *,
    regularize: bool = False,
    order: str = "alternating",
    dtype: str = "float32",
    fixed: dict[str, float] | None = None,
    grad_norm: bool = True,
) -> Callable:
    """The pure training step: each player takes ``n_steps`` gradient steps on its own loss with
    its own optax chain; only its ``nnx.Param`` leaves are differentiated.

    ``order`` (``train.update_order``): ``"alternating"`` updates the players one after the other,
    each seeing the parameters its predecessors just updated (Gauss-Seidel);
    ``"simultaneous"`` computes every player's gradient at the step's incoming parameters and
    applies all updates together (Jacobi: theta_i <- theta_i - lr g_i(theta_1, ..., theta_n)),
    which needs one update per player per step. ``post_update`` hooks run after a player's
    updates (simultaneous: after all of them).

    With ``regularize``, each player's objective is ``loss + l1 L1(w) + l2 L2(w)`` over its own
    kernels (``genjax.objectives.regularizers``), strengths from ``state.hparams``; the penalty
    is logged as ``reg`` apart from the data term ``loss``.

    ``fixed``: hyperparameters whose values no member changes (``build_program`` passes every one
    a sweep does not vary). The loss reads them as compile-time constants instead of from
    ``state.hparams``, so XLA folds them: a branch on a weight that is zero (a GAN's ``r1``, a
    ``gp`` penalty's ``lax.cond``) disappears, and products with a weight of 1 cost nothing.
    Measured on the WGAN-GP benchmark (2 CPU cores): an epoch 0.82x its plain-JAX twin's speed
    with the weights read from the state, 1.02x with them folded. ``state.hparams`` keeps every
    value (the record a checkpoint holds, and what a sweep writes per member).

    ``grad_norm``: log each player's gradient global L2 norm as ``grad_norm`` (``<player>/grad_norm``
    with several players). The guarded epoch's step needs it (a NaN gradient behind a finite loss
    must stop the step); the fast epoch's logs it only when ``train.grad_norm`` asks.

    ``dtype`` (``train.dtype``): ``"bfloat16"`` is mixed precision — the loss sees every floating
    parameter and batch leaf cast to bfloat16, so the forward and backward passes compute in
    bfloat16, while the parameters, the optimizer state, the gradients (the cast's cotangent is
    float32) and the loss and metrics (cast back) stay float32. A family keeps its reductions
    exact by casting its logits or per-example terms to float32 before summing.
    """
    if order not in ("alternating", "simultaneous"):
        raise ValueError(f"train.update_order must be 'alternating' or 'simultaneous', got {order!r}.")
    if order == "simultaneous":
        for pl in players:
            if pl.n_steps != 1:
                raise ValueError(
                    f"train.update_order='simultaneous' takes one update per player per step; player "
                    f"{pl.name!r} takes {pl.n_steps} (e.g. model.gan.n_critic={pl.n_steps}): set it to 1."
                )
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"train.dtype must be 'float32' or 'bfloat16', got {dtype!r}.")
    single = len(players) == 1
    mult = batch_multiple(players)
    consts = {k: np.float32(v) for k, v in (fixed or {}).items()}

    def hp(state: TrainState) -> dict:
        """The hyperparameters a loss sees: the state's, with the fixed ones as constants."""
        return {**state.hparams, **{k: v for k, v in consts.items() if k in state.hparams}}
    low = None if dtype == "float32" else jnp.dtype(dtype)

    def to(tree, dt):
        """Floating leaves of ``tree`` cast to ``dt``."""
        return jax.tree.map(lambda a: a.astype(dt) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a, tree)

    def slice_of(batch, pl: Player, j: int):
        """The examples of player ``pl``'s update ``j``: ``per_update`` of the ``mult`` equal parts
        of the step's batch, part ``j x per_update`` on for a split-batch player, else the first."""
        if mult == 1:
            return batch
        start = (j if pl.split_batch else 0) * pl.per_update

        def cut(a):
            unit = a.shape[0] // mult
            return jax.lax.dynamic_slice_in_dim(a, start * unit, pl.per_update * unit)

        return jax.tree.map(cut, batch)

    def grads(params, state, pl: Player, b, k):
        """(gradient, (data loss, metrics)) of ``pl``'s objective at ``params``."""
        diff, rest = player_split(params, pl)

        def own(d):
            # fresh Variable objects inside this trace, so a loss may mutate non-Param ones
            r = jax.tree.map(lambda v: v, rest)
            h = hp(state)
            ctx = Context(state.step, h)
            p = player_merge(params, pl, d, r)
            if low is None:
                loss, m = pl.loss(p, b, k, ctx)
            else:  # mixed precision: compute in bf16, hand back float32
                loss, m = pl.loss(to(p, low), to(b, low), k, ctx)
                loss, m = loss.astype(jnp.float32), to(dict(m), jnp.float32)
            if not regularize:
                return loss, (loss, m)
            reg = penalty(d, h["l1"], h["l2"])
            return loss + reg, (loss, m | {"reg": reg})

        (_, (loss, m)), g = jax.value_and_grad(own, has_aux=True)(diff)
        return g, loss, dict(m)

    def apply(params, opt, pl: Player, g, m):
        """``params`` with ``pl``'s update from gradient ``g`` applied (and the non-trainable
        variables its loss returned in ``m["_vars"]``)."""
        diff, rest = player_split(params, pl)
        new_vars = m.pop("_vars", None)
        updates, opt[pl.name] = txs[pl.name].update(g, opt[pl.name], diff)
        diff = optax.apply_updates(diff, updates)
        return player_merge(params, pl, diff, rest if new_vars is None else new_vars)

    def log(metrics, pl, loss, g, m):
        prefix = "" if single else f"{pl.name}/"
        metrics |= {prefix + "loss": loss} | ({prefix + "grad_norm": optax.global_norm(g)} if grad_norm else {})
        return metrics | {prefix + n: v for n, v in m.items()}

    def one_update(state, batch, key, i: int, pl: Player, params, own_opt, j):
        """Player ``pl``'s update ``j`` (a traced index) in an alternating step: jitted and called
        once per update, so its loss is traced once however many updates a step makes (XLA
        inlines the calls: the same program as writing each out)."""
        g, loss, m = grads(params, state, pl, slice_of(batch, pl, j), keys.update_key(key, i, j))
        o = {pl.name: own_opt}
        params = apply(params, o, pl, g, m)
        return params, o[pl.name], g, loss, m

    def step(state: TrainState, batch) -> tuple[TrainState, dict]:
        key = keys.stream(state.rng, "step", state.step)
        params, opt, metrics = dict(state.params), dict(state.opt), {}
        ctx = Context(state.step, hp(state))
        if order == "simultaneous":
            at = params  # every gradient at the incoming parameters
            outs = [
                grads(at, state, pl, slice_of(batch, pl, 0), keys.update_key(key, i, 0)) for i, pl in enumerate(players)
            ]
            for pl, (g, loss, m) in zip(players, outs):
                params = apply(params, opt, pl, g, m)
                metrics = log(metrics, pl, loss, g, m)
            for pl in players:
                if pl.post_update is not None:
                    params = pl.post_update(params, ctx)
        else:
            for i, pl in enumerate(players):
                update = jax.jit(functools.partial(one_update, state, batch, key, i, pl))
                for j in range(pl.n_steps):
                    params, opt[pl.name], g, loss, m = update(params, opt[pl.name], jnp.int32(j))
                if pl.post_update is not None:
                    params = pl.post_update(params, ctx)
                metrics = log(metrics, pl, loss, g, m)
        return state._replace(params=params, opt=opt, step=state.step + 1), metrics

    if order == "alternating" and single and players[0].n_steps == 1:
        pl = players[0]

        def compute(state: TrainState, batch):
            """The step's gradient and metrics, nothing applied yet."""
            key = keys.stream(state.rng, "step", state.step)
            g, loss, m = grads(dict(state.params), state, pl, slice_of(batch, pl, 0), keys.update_key(key, 0, 0))
            new_vars = m.pop("_vars", None)
            return (g, new_vars), log({}, pl, loss, g, m)

        def commit(state: TrainState, update) -> TrainState:
            """The step's update applied: what ``step`` returns."""
            g, new_vars = update
            params, opt = dict(state.params), dict(state.opt)
            params = apply(params, opt, pl, g, {} if new_vars is None else {"_vars": new_vars})
            if pl.post_update is not None:
                params = pl.post_update(params, Context(state.step, hp(state)))
            return state._replace(params=params, opt=opt, step=state.step + 1)

        step.parts = (compute, commit)  # the guard applies the update only when the step is finite
    return step


def early_stop_update(
    es: EarlyStopState, val: jax.Array, params, epoch, patience: int, min_delta: float, rule: str = "patience"
):
    """Track the best validation NLL (improved iff ``val < best - min_delta``; a non-finite
    ``val`` never improves) and decide whether to stop (``patience = 0`` never stops):

    * ``rule="patience"``: after ``patience`` epochs in a row without improvement;
    * ``rule="rise"`` (the notes' rule): at epoch t once NLL_val(t) > NLL_val(t - k) + min_delta
      with k = ``patience`` (never in the first k epochs; a non-finite ``val`` counts as a rise).
    """
    improved = val < es.best - min_delta
    pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(improved, a, b), new, old)  # noqa: E731
    bad = jnp.where(improved, 0, es.bad_epochs + 1)
    if rule == "patience":
        stop = bad >= patience
    elif rule == "rise":
        k = es.recent.shape[0]
        if patience > 0 and k != patience:
            raise ValueError(
                f"the early-stopping window holds {k} epochs, the rise rule needs train.patience={patience}."
            )
        then = es.recent[0]  # NLL_val(t - k); +inf until k epochs have passed
        stop = jnp.isfinite(then) & ~(val <= then + min_delta)
    else:
        raise ValueError(f"train.stop_rule must be 'patience' or 'rise', got {rule!r}.")
    return EarlyStopState(
        best=jnp.where(improved, val, es.best),
        best_epoch=jnp.where(improved, epoch, es.best_epoch),
        bad_epochs=bad,
        stopped=jnp.asarray(patience > 0) & stop,
        best_params=pick(params, es.best_params),
        recent=jnp.concatenate([es.recent[1:], jnp.reshape(val, (1,)).astype(es.recent.dtype)]),
    )


def batched_mean(fn: Callable, params, batches, key: jax.Array) -> jax.Array:
    """Mean over real examples of ``fn(params, x, key) -> [B]`` over padded eval batches
    ``{"x": [nb, B, ...], "mask": [nb, B]}``, one batch at a time (``lax.scan``). Batches with
    labels ``"y"`` (built for a labelled family, ``genjax.data.batching.eval_set``) are scored as
    ``fn(params, x, key, y)``."""

    def body(acc, inp):
        i, b = inp
        labels = (b["y"],) if "y" in b else ()
        v = fn(params, b["x"], jax.random.fold_in(key, i), *labels)
        chex.assert_shape(v, b["mask"].shape)  # a per-example [B] value, as the family protocol says
        return acc + jnp.sum(jnp.where(b["mask"] > 0, v, 0.0)), None

    nb = batches["mask"].shape[0]
    total, _ = jax.lax.scan(body, jnp.zeros((), jnp.float32), (jnp.arange(nb), dict(batches)))
    return total / jnp.sum(batches["mask"])


class EpochPieces(NamedTuple):
    """An epoch in parts: ``start(state, data) -> batches [steps, ...]``, the guarded step
    ``body((state, halted), batch) -> ((state, halted), (metrics, bad, ok))`` and
    ``end(state, new, halted, ms, bad, ok, data) -> (state, metrics)``. ``epoch`` is their
    composition with ``lax.scan``; ``host_epoch`` runs the steps as a loop on the host."""

    start: Callable
    body: Callable
    end: Callable
    steps: int


def host_epoch(pieces: EpochPieces, vmap_axes=None, key: str | None = None):
    """The same epoch as ``lax.scan`` over the steps, run as a Python loop that dispatches one
    compiled step per training step (its batch read from the epoch's device array by index, its
    metrics stacked at the end). For convolution networks on a CPU, where an
    XLA loop slows convolution gradients about 20x (jax-ml/jax#12868) and full unrolling compiles
    for minutes, this compiles one step and trains at the unrolled speed.

    ``vmap_axes``: ``(state_axis, data_axes)`` to vmap every piece over a members axis (folds,
    seeds, settings), as the driver vmaps the scanned epoch. ``key``: the pieces' traced programs are
    kept on disk under it (``genjax.train.programs``; None: traced). Returns an object with
    ``lower(state, data).compile()`` -> a callable ``(state, data) -> (state, metrics)``."""
    start, body, end, steps = pieces

    def step_at(carry, batches, i):
        batch = jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), batches)
        return body(carry, batch)  # -> (carry, the step's outputs)

    def begin(state):
        """The steps' first carry: a copy of the state less its early-stopping part (no step
        reads or writes it; the start is kept for ``end`` and for a rerun) and the halt flags."""
        return jax.tree.map(jnp.copy, state._replace(es=None)), jnp.zeros(jnp.shape(state.step), bool)

    def finish(state, core, halted, outs, data):
        """``end`` after the steps, their outputs ``outs`` (one per step) stacked."""
        ms, bad, ok = jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
        return end(state, core._replace(es=state.es), halted, ms, bad, ok, data)

    if vmap_axes is not None:
        s_ax, d_ax = vmap_axes
        vm = lambda f, axes: jax.vmap(f, in_axes=axes, spmd_axis_name="members")  # noqa: E731
        start = vm(start, (s_ax, d_ax))
        begin = vm(begin, (s_ax,))
        step_at = vm(step_at, (0, 0, None))
        finish = vm(finish, (s_ax, 0, 0, 0, d_ax))

    class Lowered:
        def __init__(self, state, data):
            self.args = (state, data)

        def compile(self):
            state, data = self.args
            # every piece takes the state as a flat list of arrays, and the step gives it back so,
            # which a dispatch passes on the C++ fast path: a Python flatten or unflatten of the
            # state's ~N nnx variables costs ~2-7 us each (Glow's 431: 1-3 ms a time, ~9 ms an
            # epoch over the pieces); the end gives the new state whole, unflattened once an epoch
            s_def = jax.tree.structure(state)
            st = lambda sl: jax.tree.unflatten(s_def, sl)  # noqa: E731
            s_leaves = jax.tree.leaves(state)
            leaves, tdef = jax.tree.flatten(jax.eval_shape(begin, state))
            # each piece is compiled (or read from the persistent cache) on a thread of its own
            # while the next one is traced and lowered: XLA works without Python's lock, so a
            # cold compile of the step overlaps the lowering and compile of ``finish``
            with ThreadPoolExecutor(3) as pool:

                def first(sl, d):  # the epoch's batches and the steps' first carry, one program
                    state = st(sl)
                    return start(state, d), jax.tree.leaves(begin(state))

                piece = lambda name: None if key is None else digest(key, name)  # noqa: E731
                lo_first = lower(first, s_leaves, data, key=piece("first"))
                c_first = pool.submit(lo_first.compile)
                batches = lo_first.out_info[0]

                def flat_step(xs, b, i):  # the step is traced once, here
                    new, outs = step_at(jax.tree.unflatten(tdef, xs), b, i)
                    return jax.tree.leaves(new), outs

                lo_step = lower(flat_step, leaves, batches, jnp.int32(0), key=piece("step"), donate_argnums=0)
                c_step = pool.submit(lo_step.compile)
                outs = lo_step.out_info[1]

                def flat_finish(sl, xs, outs, d):
                    return finish(st(sl), *jax.tree.unflatten(tdef, xs), outs, d)

                lo_end = lower(flat_finish, s_leaves, leaves, [outs] * steps, data, key=piece("end"), donate_argnums=1)
                c_end = pool.submit(lo_end.compile)
                c_first, c_step, c_end = c_first.result(), c_step.result(), c_end.result()

            def run(state, data):
                sl = jax.tree.leaves(state)
                batches, xs = c_first(sl, data)
                outs = []
                for i in range(steps):
                    xs, o = c_step(xs, batches, jnp.int32(i))
                    outs.append(o)
                return c_end(sl, xs, outs, data)

            return run

    class Fn:
        def lower(self, state, data):
            return Lowered(state, data)

    return Fn()


def make_epoch(
    step: Callable,
    val_nll: Callable,
    *,
    batch_size: int,
    steps: int,
    patience: int,
    min_delta: float,
    stop_rule: str = "patience",
    transform: Callable | None = None,
    constrain: Callable | None = None,
    unroll: int = 1,
    on_nonfinite: str = "halt",
    observe: Callable | None = None,
    curriculum: Callable | None = None,
    easy: Callable | None = None,
    fast_step: Callable | None = None,
    log_grad_norm: bool = True,
    freeze: bool = True,
) -> Callable:
    """``epoch(state, data) -> (state, metrics)``, pure.

    ``data`` (device arrays): ``train`` ``{"x": [N, ...], ...}`` — the pool to draw batches from;
    optionally ``idx [M]`` and ``n`` — draw only from ``train[idx[:n]]`` (a fold); ``val`` and
    optionally ``train_eval`` — padded evaluation batches ``{"x": [nb, B, ...], "mask": [nb, B]}``
    scored with ``val_nll`` (``train_eval`` gives ``train_nll``, for train-versus-held-out curves).

    Args:
        step: from ``make_step``.
        val_nll: ``(params, batches, key) -> scalar`` NLL; ``None`` for a family without a
            likelihood: no validation, no early stopping, and the "best" parameters are the last.
        steps: training steps per epoch (static).
        transform: per-epoch data transform ``(key, x) -> x`` (dynamic binarization, ...).
        constrain: ``batches -> batches`` placing the epoch's ``[steps, batch, ...]`` arrays on the
            device mesh (``genjax.train.sharding.Plan.constrain_batches``); identity by default.
        unroll: steps unrolled in the epoch's ``lax.scan`` (``steps``: no loop at all). On CPU,
            convolution gradients inside an XLA loop body run about 20x slower than outside one
            (jax-ml/jax#12868; a U-Net step: 6.7 s scanned, 0.30 s unrolled), so conv models on
            CPU train faster fully unrolled, at the price of compile time.
        on_nonfinite: what a step whose metrics (loss terms, gradient norms) are not all finite
            does. ``"skip"``: its update is dropped (the state is kept, the step counter moves
            on) and counted in ``skipped_steps``. ``"halt"``: that update and every later one of
            the epoch are dropped, so the epoch returns the last finite state (its ``step`` is the
            failing step's index) with ``halted`` set; the driver stops the run there. Either way
            ``nonfinite_steps`` counts the bad steps, ``nonfinite_at`` is the first one's global
            index (-1: none) and ``nonfinite/<term>`` says which terms were bad at it. The epoch's
            metrics are means over the steps whose update was applied.
        observe: ``(opt, val_nll) -> opt``, run after validation (reduce-on-plateau,
            ``genjax.train.optim.plateau_observer``); its scale is logged as ``lr_scale``.
        curriculum: ``(epoch, x) -> x`` applied to the epoch's training batches after
            ``transform`` (``genjax.train.curriculum.resolution_curriculum``).
        easy: ``(epoch, n) -> n_t`` shrinking the pool ``idx[:n]`` (ranked easiest first) the
            epoch draws from (``genjax.train.curriculum.easy_first``); needs ``idx`` and ``n``.
        fast_step: the step ``epoch.fast`` scans (default ``step``): ``step`` without the
            gradient norm when it is not logged.
        freeze: a model whose early stopping had stopped it before this epoch comes back with
            its whole state unchanged (a select over the state, ~4% of a small MLP's epoch). Members
            trained together need it; ``build_program`` turns it off for one model, which the
            driver never runs once it has stopped.
        log_grad_norm: report ``grad_norm`` (and ``<player>/grad_norm``) in the epoch's metrics;
            when False the guarded step still computes it to judge its steps (and names it in
            ``nonfinite/<term>``), and the epoch leaves it out of its means.

    ``epoch.fast(state, data) -> (state, metrics, clean)``: the same epoch with no per-step guard
    (``genjax.train.driver.CheckedEpoch`` runs it and falls back to ``epoch``). ``clean`` is True
    when every step's metrics and the final parameters and optimizer state are finite: then no
    step had a non-finite loss term or gradient — a non-finite gradient leaves the state it
    reaches non-finite for good under every optimizer genjax builds (clipping, Adam's moments,
    momentum and the parameters all carry a NaN or an infinity on) — and the result is the
    guarded epoch's.
    """
    if on_nonfinite not in ("halt", "skip"):
        raise ValueError(f"train.on_nonfinite must be 'halt' or 'skip', got {on_nonfinite!r}.")
    halt = on_nonfinite == "halt"

    parts = getattr(step, "parts", None)

    def guarded(carry, batch):
        st, halted = carry
        if parts is None:  # several players: the whole step is computed, then kept or dropped
            new, m = step(st, batch)
        else:  # one player: its update is applied only when the step is finite (no copy of the state)
            update, m = parts[0](st, batch)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in m.values()]))
        ok, bad = finite & ~halted, ~finite & ~halted  # after a halt, steps neither apply nor count
        if parts is None:
            kept = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, st)
        else:
            kept = jax.lax.cond(ok, parts[1], lambda s, u: s, st, update)
        if halt:
            halted = halted | ~finite
        else:
            kept = kept._replace(step=st.step + 1)
        return (kept, halted), (m, bad, ok)

    def start(state: TrainState, data: dict):
        """The epoch's training batches ``[steps, batch, ...]``: shuffled, transformed."""
        k_data = keys.stream(state.rng, "data", state.epoch)
        n = data.get("n")
        if easy is not None:
            n = easy(state.epoch, n)
        batches = epoch_batches(data["train"], k_data, batch_size, steps, data.get("idx"), n)
        if constrain is not None:
            batches = constrain(batches)
        if transform is not None:
            batches = batches | {"x": transform(jax.random.fold_in(k_data, 1), batches["x"])}
        if curriculum is not None:
            batches = batches | {"x": curriculum(state.epoch, batches["x"])}
        return batches

    def end(state: TrainState, new: TrainState, halted, ms: dict, bad, ok, data: dict):
        """Validation, early stopping and the epoch's metrics, after the steps took ``state`` to
        ``new`` (``ms``, ``bad``, ``ok``: the steps' metrics and flags, stacked)."""
        k_val = keys.stream(state.rng, "val", state.epoch)
        epoch_no = state.epoch + 1
        if val_nll is None:
            v = None
            es = new.es._replace(best_epoch=epoch_no, best_params=new.params)
        else:
            v = val_nll(new.params, data["val"], k_val)
            es = early_stop_update(new.es, v, new.params, epoch_no, patience, min_delta, stop_rule)
            if observe is not None:
                new = new._replace(opt=observe(new.opt, v))
        new = new._replace(epoch=epoch_no, es=es)
        if freeze:  # a model that had stopped before this epoch keeps its whole state frozen
            new = jax.tree.map(lambda old, nw: jnp.where(state.es.stopped, old, nw), state, new)
        n_ok = jnp.sum(ok)
        mean_ok = lambda v_: jnp.sum(jnp.where(ok.reshape(-1, *[1] * (v_.ndim - 1)), v_, 0.0)) / (n_ok * v_[0].size)  # noqa: E731
        metrics = {k: mean_ok(v_) for k, v_ in ms.items() if log_grad_norm or not is_grad_norm(k)}
        first = jnp.argmax(bad)  # the first bad step (0 when there is none)
        any_bad = jnp.any(bad)
        metrics |= {"nonfinite_steps": jnp.sum(bad), "nonfinite_at": jnp.where(any_bad, state.step + first, -1)}
        metrics |= {f"nonfinite/{k}": any_bad & ~jnp.all(jnp.isfinite(v_[first])) for k, v_ in ms.items()}
        if halt:
            metrics["halted"] = halted & ~state.es.stopped
        else:
            metrics["skipped_steps"] = jnp.sum(bad)
        metrics |= {"stopped": new.es.stopped}
        if v is not None:
            metrics |= {"val_nll": v, "best_val_nll": new.es.best}
        if observe is not None:
            metrics["lr_scale"] = plateau_scale(new.opt)
        if "train_eval" in data and val_nll is not None:
            metrics["train_nll"] = val_nll(new.params, data["train_eval"], jax.random.fold_in(k_val, 1))
        return new, metrics

    def epoch(state: TrainState, data: dict):
        batches = start(state, data)
        (new, halted), (ms, bad, ok) = jax.lax.scan(guarded, (state, jnp.array(False)), batches, unroll=unroll)
        return end(state, new, halted, ms, bad, ok, data)

    def is_grad_norm(k: str) -> bool:
        return k == "grad_norm" or k.endswith("/grad_norm")

    def fast_body(carry, batch):
        """An unguarded step: applied as it comes; ``dirty`` records a non-finite metric."""
        st, dirty = carry
        new, m = (fast_step or step)(st, batch)
        # the guarded step's terms this step does not log — each player's gradient norm, named
        # beside its loss by make_step — reported finite (not traced: a step can take a second)
        norms = {k[: -len("loss")] + "grad_norm" for k in m if k == "loss" or k.endswith("/loss")}
        m = m | {k: jnp.zeros((), jnp.float32) for k in sorted(norms) if k not in m}
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in m.values()]))
        return (new, dirty | ~finite), (m, ~finite, jnp.array(True))

    def fast_end(state: TrainState, new: TrainState, dirty, ms: dict, bad, ok, data: dict):
        """``end``, plus ``clean``: no step was dirty and the final state is finite (a member
        stopped before this epoch comes back frozen whatever its steps did)."""
        floats = [a for a in jax.tree.leaves((new.params, new.opt)) if jnp.issubdtype(a.dtype, jnp.inexact)]
        clean = (~dirty & jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in floats]))) | state.es.stopped
        new, metrics = end(state, new, jnp.zeros_like(dirty), ms, bad, ok, data)
        return new, metrics, clean

    def fast(state: TrainState, data: dict):
        """The epoch with no per-step guard: every step applied as it comes, plus ``clean`` (see
        above): when True, ``(state, metrics)`` is what ``epoch`` returns (the guard would have
        kept every update); when False the result is meaningless and the caller runs ``epoch``
        from the same ``state`` (``genjax.train.driver.CheckedEpoch``). On a CPU the per-step guard
        splits the step (the update inside ``lax.cond``, or a select of two whole states for
        several players) and cost 10-20% of an epoch of a small network; this costs one check
        of the step metrics and one read of the final state per epoch."""
        batches = start(state, data)
        (new, dirty), (ms, bad, ok) = jax.lax.scan(fast_body, (state, jnp.array(False)), batches, unroll=unroll)
        return fast_end(state, new, dirty, ms, bad, ok, data)

    epoch.pieces = EpochPieces(start, guarded, end, steps)  # for an epoch run as a host loop of steps
    epoch.fast = fast
    epoch.fast_pieces = EpochPieces(start, fast_body, fast_end, steps)  # its end returns (state, metrics, clean)
    return epoch
