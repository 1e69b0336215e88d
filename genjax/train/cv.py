"""k-fold cross-validation and hyperparameter sweeps, every model trained in one compiled run.

The training pool (train + validation of the split) is partitioned into k folds. Every *member*
— a (fold, setting) pair, where a setting gives values to continuous hyperparameters — is one
``TrainState``; members are stacked on a leading axis and the pure epoch function is
``jax.vmap``-ed over it, so folds x settings train in one compiled program. Each member has its
own parameters, optimizer state, keys and early-stopping state; a stopped member keeps its best
parameters frozen while the others go on, and the run ends when all have stopped or at
``train.epochs``.

Continuous hyperparameters a setting may change (no shapes change, so they vmap):
``optim.lr``, ``optim.weight_decay`` (optimizer state, via ``optax.inject_hyperparams``),
``objective.beta``, ``objective.l1``, ``objective.l2`` (``state.hparams``), ``model.dropout``
(the dropout-rate variables). Members of the same fold start from the same initialization.

Strategies (``cv.strategy``): ``vmap`` (default); ``loop`` — a Python loop over members, each
trained to the end by the same jitted epoch (the reference and the fallback); ``shard`` — the
vmapped run with the member axis spread over a device mesh.

``train_seeds`` uses the same vmapped runner to train one model per seed on one split (any
family, a GAN included: no held-out likelihood needed).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from genjax.data.batching import eval_batches
from genjax.data.pipeline import DataSplits
from genjax.data.splits import fold_indices, kfold_assign
from genjax.models.base import Family
from genjax.nn.layers import set_dropout_rate
from genjax.train.engine import TrainState, batched_mean
from genjax.train.loop import TrainingError, build_program, split_data
from genjax.train.optim import set_hyperparams

CONTINUOUS = ("optim.lr", "optim.weight_decay", "objective.beta", "objective.l1", "objective.l2", "model.dropout")
STRATEGIES = ("vmap", "loop", "shard")


@dataclasses.dataclass
class CVResult:
    folds: int
    settings: list[dict]  # one dict of continuous values per setting
    fold: np.ndarray  # [members] fold of each member
    setting: np.ndarray  # [members] setting index of each member
    heldout_nll: np.ndarray  # [members] on the member's held-out fold, best parameters
    test_nll: np.ndarray  # [members] on the split's test set, best parameters
    best_epoch: np.ndarray  # [members]
    epochs_run: np.ndarray  # [members] epochs until the member stopped
    history: dict[str, np.ndarray]  # metric -> [epochs, members]
    compile_seconds: float
    train_seconds: float
    examples_per_second: float  # training examples processed per second, all members together
    strategy: str
    state: TrainState | None = None  # the stacked final states (vmap/shard)

    def summary(self) -> list[dict]:
        """Per setting: mean and standard deviation over folds of the held-out NLL."""
        rows = []
        for g, s in enumerate(self.settings):
            v = self.heldout_nll[self.setting == g]
            t = self.test_nll[self.setting == g]
            rows.append(
                {
                    **s,
                    "heldout_nll_mean": float(v.mean()),
                    "heldout_nll_std": float(v.std(ddof=1)),
                    "test_nll_mean": float(t.mean()),
                    "per_fold": [float(a) for a in v],
                }
            )
        return rows


def _apply_setting(state: TrainState, setting: dict) -> TrainState:
    """Write a setting's values into a member's state."""
    hp, opt, params, es = dict(state.hparams), dict(state.opt), state.params, state.es
    for field, v in setting.items():
        if field in ("objective.beta", "objective.l1", "objective.l2"):
            name = field.split(".")[1]
            if name not in hp:
                raise ValueError(f"cv.sweep field {field} is not a hyperparameter of this family.")
            hp[name] = jnp.asarray(v, jnp.float32)
        elif field in ("optim.lr", "optim.weight_decay"):
            key = {"optim.lr": "learning_rate", "optim.weight_decay": "weight_decay"}[field]
            opt = {n: set_hyperparams(o, **{key: v}) for n, o in opt.items()}
        elif field == "model.dropout":
            params = {n: set_dropout_rate(p, v) for n, p in params.items()}
            es = es._replace(best_params={n: set_dropout_rate(p, v) for n, p in es.best_params.items()})
        else:
            raise ValueError(
                f"cv.sweep field {field} cannot be vmapped; continuous fields are {', '.join(CONTINUOUS)}."
            )
    return state._replace(hparams=hp, opt=opt, params=params, es=es)


def _stack(trees):
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def _member(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def cross_validate(
    cfg,
    family: Family,
    splits: DataSplits,
    settings: list[dict] | None = None,
    *,
    strategy: str | None = None,
    progress: bool = True,
    callback: Callable | None = None,
) -> CVResult:
    """Train ``cfg.cv.folds`` folds x ``settings`` members at once; see the module docstring.

    ``callback(epoch, state, metrics)`` is called after every epoch of the vmap/shard strategies
    with the stacked state (for tests and live plots).
    """
    if family.log_prob is None:
        raise ValueError(
            f"cv scores folds by held-out NLL, which the {family.name} family has not; "
            "train several seeds at once with genjax.train.cv.train_seeds instead."
        )
    k, strategy = int(cfg.cv.folds), strategy or cfg.cv.strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"cv.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
    settings = settings or [{}]
    tc = cfg.train
    pool = splits.training_pool()  # training form: the epoch transform draws afresh each epoch
    eval_x = splits.eval_view(pool["x"])  # evaluation form: one fixed draw, like validation and test
    labels = pool.get("y") if cfg.cv.stratify else None
    fold = kfold_assign(len(pool["x"]), k, int(cfg.cv.seed), labels)
    fi = fold_indices(fold, k)
    steps = int(fi["train_n"].min()) // tc.batch_size
    if steps < 1:
        raise ValueError(
            f"cv: the smallest fold has {fi['train_n'].min()} training examples, fewer than one batch "
            f"(train.batch_size={tc.batch_size})."
        )
    swept = frozenset(f for s in settings for f in s)
    prog = build_program(cfg, family, splits, swept=swept, steps_per_epoch=steps)
    # per-fold data: indices into the pool, padded held-out batches (and training subsets to score)
    bs = int(min(tc.val_batch_size, fi["held_n"].min()))
    held = [eval_batches(eval_x[fi["held_idx"][f][: fi["held_n"][f]]], bs) for f in range(k)]
    nb = max(h[0].shape[0] for h in held)

    def pad_to(xb, mask):
        extra = nb - xb.shape[0]
        return (
            np.concatenate([xb, np.zeros((extra, *xb.shape[1:]), xb.dtype)]),
            np.concatenate([mask, np.zeros((extra, *mask.shape[1:]), mask.dtype)]),
        )

    held = [pad_to(*h) for h in held]
    members = [(g, f) for g in range(len(settings)) for f in range(k)]
    fold_of = np.array([f for _, f in members])
    per_member = {
        "idx": fi["train_idx"][fold_of],
        "n": fi["train_n"][fold_of],
        "val": {"x": np.stack([held[f][0] for f in fold_of]), "mask": np.stack([held[f][1] for f in fold_of])},
    }
    if tc.train_eval:
        tr = [pad_to(*eval_batches(eval_x[fi["train_idx"][f][: fi["held_n"][f]]], bs)) for f in range(k)]
        per_member["train_eval"] = {
            "x": np.stack([tr[f][0] for f in fold_of]),
            "mask": np.stack([tr[f][1] for f in fold_of]),
        }
    root = jax.random.key(cfg.seed)
    states = [_apply_setting(prog.init(jax.random.fold_in(root, f)), settings[g]) for g, f in members]
    train_pool = jax.device_put(pool)

    if strategy == "loop":
        out = _run_loop(cfg, prog, states, train_pool, per_member, progress)
    else:
        out = _run_vmapped(cfg, prog, states, {"train": train_pool}, per_member, strategy, progress, callback)
    state, hist, compile_s, train_s, epochs_run = out
    examples = float(np.sum(epochs_run)) * steps * tc.batch_size

    # held-out and test NLL of every member's best parameters, with the evaluation estimator
    key = jax.random.key(cfg.seed + 10_000)
    score = jax.jit(jax.vmap(lambda p, b: -batched_mean(family.log_prob, p, b, key)))
    best = state.es.best_params if cfg.train.keep_best else state.params
    heldout = np.asarray(score(best, jax.device_put(per_member["val"])))
    txb, tmask = eval_batches(splits.test["x"], tc.val_batch_size)
    test = np.asarray(
        jax.jit(jax.vmap(lambda p: -batched_mean(family.log_prob, p, {"x": txb, "mask": tmask}, key)))(best)
    )
    if not np.all(np.isfinite(heldout)):
        raise TrainingError(
            f"cv: non-finite held-out NLL for members {np.flatnonzero(~np.isfinite(heldout)).tolist()}."
        )
    return CVResult(
        folds=k,
        settings=settings,
        fold=fold_of,
        setting=np.array([g for g, _ in members]),
        heldout_nll=heldout,
        test_nll=test,
        best_epoch=np.asarray(state.es.best_epoch),
        epochs_run=epochs_run,
        history=hist,
        compile_seconds=compile_s,
        train_seconds=train_s,
        examples_per_second=examples / max(train_s, 1e-9),
        strategy=strategy,
        state=state,
    )


def _host(m) -> dict:
    return {key: np.asarray(v) for key, v in jax.device_get(m).items()}


def _check(m, epoch):
    bad = np.flatnonzero((np.asarray(m["nonfinite_steps"]) > 0) & ~np.asarray(m["stopped"]))
    if len(bad):
        raise TrainingError(
            f"training diverged in epoch {epoch} for members {bad.tolist()}: non-finite loss; "
            "lower optim.lr or set optim.clip_norm."
        )


def _run_vmapped(cfg, prog, states, shared, per_member, strategy, progress, callback, desc="cv"):
    """Train stacked ``states`` with the vmapped epoch; ``shared`` data are the same for every
    member (device arrays), ``per_member`` ones have a leading member axis."""
    state = _stack(states)
    data = {**shared, **jax.device_put(per_member)}
    axes = {**{key: None for key in shared}, **{key: 0 for key in per_member}}
    vepoch = jax.vmap(prog.pure_epoch, in_axes=(0, axes))
    if strategy == "shard":
        n_members = len(states)
        devices = jax.devices()
        d = max(i for i in range(1, len(devices) + 1) if n_members % i == 0)
        mesh = Mesh(np.array(devices[:d]), ("members",))
        shard = NamedSharding(mesh, PartitionSpec("members"))
        repl = NamedSharding(mesh, PartitionSpec())
        state = jax.device_put(state, shard)
        data = {key: jax.device_put(v, shard if key in per_member else repl) for key, v in data.items()}
    fn = jax.jit(vepoch, donate_argnums=0)
    t = time.perf_counter()
    fn = fn.lower(state, data).compile()
    compile_s = time.perf_counter() - t
    hist: dict[str, list] = {}
    n = len(states)
    epochs_run = np.zeros(n, np.int64)
    bar = tqdm(
        range(cfg.train.epochs),
        desc=f"{cfg.name} {desc} ({strategy}, {n} models)",
        disable=not progress,
        unit="epoch",
        mininterval=1.0,
    )
    t = time.perf_counter()
    for e in bar:
        was_stopped = np.asarray(state.es.stopped)
        state, m = fn(state, data)
        m = _host(m)
        _check(m, e + 1)
        epochs_run += ~was_stopped
        for key, v in m.items():
            hist.setdefault(key, []).append(np.where(was_stopped, np.nan, v) if v.dtype != bool else v)
        if callback is not None:
            callback(e + 1, state, m)
        shown = [key for key in ("val_nll", "loss", "disc/loss", "gen/loss") if key in m][:2]
        post = {key: f"{np.nanmean(np.where(was_stopped, np.nan, m[key])):.3f}" for key in shown}
        bar.set_postfix(post | {"stopped": f"{int(m['stopped'].sum())}/{n}"}, refresh=False)
        if m["stopped"].all():
            break
    bar.close()
    jax.block_until_ready(state)
    return state, {key: np.stack(v) for key, v in hist.items()}, compile_s, time.perf_counter() - t, epochs_run


def _run_loop(cfg, prog, states, train_pool, per_member, progress):
    t = time.perf_counter()
    fn = prog.epoch.lower(states[0], {"train": train_pool, **jax.device_put(_member(per_member, 0))}).compile()
    compile_s = time.perf_counter() - t
    finals, hists, epochs_run = [], [], []
    t = time.perf_counter()
    for i, st in enumerate(tqdm(states, desc=f"{cfg.name} cv (loop)", disable=not progress, unit="model")):
        data = {"train": train_pool, **jax.device_put(_member(per_member, i))}
        h: dict[str, list] = {}
        for e in range(cfg.train.epochs):
            st, m = fn(st, data)
            m = _host(m)
            _check({key: v[None] for key, v in m.items()}, e + 1)
            for key, v in m.items():
                h.setdefault(key, []).append(v)
            if m["stopped"]:
                break
        finals.append(st)
        hists.append(h)
        epochs_run.append(len(h["val_nll"]))
    train_s = time.perf_counter() - t
    longest = max(epochs_run)
    hist = {}
    for key in hists[0]:
        cols = [np.array(h[key] + [np.nan] * (longest - len(h[key])), dtype=float) for h in hists]
        hist[key] = np.stack(cols, 1)
    return _stack(finals), hist, compile_s, train_s, np.array(epochs_run)


@dataclasses.dataclass
class SeedsResult:
    seeds: list[int]
    state: TrainState  # stacked final states, leading axis = seed
    history: dict[str, np.ndarray]  # metric -> [epochs, seeds]
    compile_seconds: float
    train_seconds: float
    examples_per_second: float

    def params(self, keep_best: bool = True):
        """Stacked parameters (leading axis = seed) to evaluate."""
        return self.state.es.best_params if keep_best else self.state.params


def train_seeds(
    cfg,
    family: Family,
    splits: DataSplits,
    seeds,
    *,
    strategy: str = "vmap",
    progress: bool = True,
    callback: Callable | None = None,
) -> SeedsResult:
    """Train one model per seed on the same split, all at once (``vmap``, or ``shard`` over a
    device mesh): seed ``s`` is initialized and trained from ``jax.random.key(s)``, so member
    ``s`` equals ``fit`` with ``cfg.seed = s``."""
    if strategy not in ("vmap", "shard"):
        raise ValueError(f"train_seeds: strategy must be 'vmap' or 'shard', got {strategy!r}.")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("train_seeds: no seeds given.")
    prog = build_program(cfg, family, splits)
    shared = split_data(cfg, splits)
    states = [prog.init(jax.random.key(s)) for s in seeds]
    state, hist, compile_s, train_s, epochs_run = _run_vmapped(
        cfg, prog, states, shared, {}, strategy, progress, callback, desc="seeds"
    )
    per_step = cfg.train.batch_size * family.batch_multiple
    examples = float(np.sum(epochs_run)) * (len(splits.train["x"]) // per_step) * per_step
    return SeedsResult(seeds, state, hist, compile_s, train_s, examples / max(train_s, 1e-9))
