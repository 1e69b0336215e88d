"""k-fold cross-validation, sweeps and seeds: many members trained in one compiled run.

The training pool (train + validation of the split) is partitioned into k folds. Every *member*
— a (fold, setting) pair, where a setting gives values to continuous hyperparameters — is one
``TrainState``; members are stacked on a leading axis and the pure epoch function is
``jax.vmap``-ed over it by the one driver (``genjax.train.driver``), so folds x settings train in
one compiled program. Each member has its own parameters, optimizer state, keys and early-stopping
state; a stopped member keeps its best parameters frozen while the others go on, and the run ends
when all have stopped or at ``train.epochs``.

Continuous fields a setting may change (no shapes change, so they vmap; ``sweepable``):
``optim.lr``, ``optim.weight_decay`` (optimizer state, via ``optax.inject_hyperparams``),
``objective.l1``, ``objective.l2`` and the family's loss hyperparameters ``model.<family>.<hp>``
(``state.hparams``: a VAE's ``beta``, a GAN's ``gp`` and ``r1``), and ``model.<family>.dropout``
where the family can set its rate per member. Members of the same fold start from the same
initialization.

Strategies (``cv.strategy``): ``vmap`` (default; on the mesh of ``train.mesh``); ``loop`` — the
driver called once per member (the reference and the fallback); ``shard`` — ``vmap`` with every
device on the members axis (``train.mesh="members=-1"``).

``train_seeds`` trains one model per seed on one split the same way (any family, a GAN included:
no held-out likelihood needed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from genjax import keys
from genjax.data.batching import eval_set
from genjax.data.pipeline import DataSplits
from genjax.data.splits import fold_indices, kfold_assign
from genjax.models.base import Family
from genjax.train.driver import TrainingError, drive, examples_per_second
from genjax.train.engine import TrainState, batched_mean
from genjax.train.loop import BASE_SWEEPABLE, Program, build_program, split_data
from genjax.train.optim import set_hyperparams

STRATEGIES = ("vmap", "loop", "shard")


def sweepable(cfg, family: Family) -> tuple[str, ...]:
    """The config fields whose values can differ between members of one compiled run."""
    block = f"model.{cfg.model.family}."
    return BASE_SWEEPABLE + tuple(block + f for f in family.sweepable())


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
    state: TrainState | None = None  # the stacked final states

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


def apply_setting(state: TrainState, setting: dict, cfg, family: Family) -> TrainState:
    """Write a setting's values into a member's state."""
    hp, opt, params, es = dict(state.hparams), dict(state.opt), state.params, state.es
    block = f"model.{cfg.model.family}."
    for field, v in setting.items():
        name = field.removeprefix(block).removeprefix("objective.")
        if field in ("objective.l1", "objective.l2") or (field.startswith(block) and name in family.hparams):
            hp[name] = jnp.asarray(v, jnp.float32)
        elif field in ("optim.lr", "optim.weight_decay"):
            key = {"optim.lr": "learning_rate", "optim.weight_decay": "weight_decay"}[field]
            opt = {n: set_hyperparams(o, **{key: v}) for n, o in opt.items()}
        elif field == block + "dropout" and family.set_dropout is not None:
            params = family.set_dropout(params, v)
            es = es._replace(best_params=family.set_dropout(es.best_params, v))
        else:
            raise ValueError(
                f"cv.sweep field {field} cannot be vmapped; continuous fields are {', '.join(sweepable(cfg, family))}."
            )
    return state._replace(hparams=hp, opt=opt, params=params, es=es)


def _stack(trees):
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def _member(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


@dataclasses.dataclass
class Folds:
    """k folds of the training pool as padded index arrays and held-out evaluation batches."""

    k: int
    pool: dict  # training form: the epoch transform draws afresh each epoch
    idx: dict  # fold_indices: train_idx, train_n, held_idx, held_n
    held: list  # per fold: eval batches {"x": [nb, B, ...], "mask": [nb, B] (, "y")}, padded to the same nb
    train_eval: list | None  # per fold: a training subset of the held-out size, scored alike
    steps: int  # training steps per epoch (the smallest fold's)


def make_folds(cfg, splits: DataSplits, per_step: int, labels: bool = False) -> Folds:
    """Partition the training pool into ``cv.folds`` folds (stratified by label where asked);
    ``labels`` (a labelled family): the held-out batches carry the labels."""
    k, tc = int(cfg.cv.folds), cfg.train
    pool = splits.training_pool()
    eval_x = splits.eval_view(pool["x"])  # evaluation form: one fixed draw, like validation and test
    if k > len(pool["x"]):
        raise ValueError(f"cv.folds={k} exceeds the {len(pool['x'])} examples of the training pool.")
    strata = pool.get("y") if cfg.cv.stratify else None
    if strata is not None and not np.issubdtype(strata.dtype, np.integer):
        strata = None  # real-valued targets: nothing to stratify by

    if labels and "y" not in pool:
        raise ValueError(f"cv: the model needs labels, and the training pool of {splits.name!r} has none.")
    fi = fold_indices(kfold_assign(len(pool["x"]), k, int(cfg.cv.seed), strata), k)
    steps = int(fi["train_n"].min()) // per_step
    if steps < 1:
        raise ValueError(
            f"cv: the smallest fold has {fi['train_n'].min()} training examples, fewer than one step's "
            f"{per_step} (train.batch_size={tc.batch_size})."
        )
    bs = int(min(tc.val_batch_size, fi["held_n"].min()))

    def padded(sets):
        nb = max(b["x"].shape[0] for b in sets)
        pad = lambda a: np.concatenate([a, np.zeros((nb - a.shape[0], *a.shape[1:]), a.dtype)])  # noqa: E731
        return [{n: pad(a) for n, a in b.items()} for b in sets]

    def subset(idx):
        return eval_set(eval_x[idx], bs, pool["y"][idx] if labels else None)

    held = padded([subset(fi["held_idx"][f][: fi["held_n"][f]]) for f in range(k)])
    tr = None
    if tc.train_eval:
        tr = padded([subset(fi["train_idx"][f][: fi["held_n"][f]]) for f in range(k)])
    return Folds(k, pool, fi, held, tr, steps)


def member_data(folds: Folds, fold_of: np.ndarray) -> dict:
    """Per-member data (a leading members axis): fold indices and held-out batches."""
    stack = lambda sets: {n: np.stack([sets[f][n] for f in fold_of]) for n in sets[0]}  # noqa: E731
    out = {"idx": folds.idx["train_idx"][fold_of], "n": folds.idx["train_n"][fold_of], "val": stack(folds.held)}
    if folds.train_eval is not None:
        out["train_eval"] = stack(folds.train_eval)
    return out


def run_members(
    cfg,
    prog: Program,
    states: list,
    shared: dict,
    per_member: dict,
    strategy: str,
    *,
    progress: bool = True,
    callback: Callable | None = None,
    desc: str = "cv",
    shown=("loss",),
):
    """Train ``states`` as members: stacked and vmapped (``vmap``/``shard``), or one at a time
    (``loop``). Returns (stacked final state, history [epochs, members], compile s, train s,
    epochs run per member)."""
    common = dict(epochs=int(cfg.train.epochs), progress=progress, shown=shown, host_loop=prog.host_loop)
    if strategy != "loop":
        res = drive(prog.epoch, _stack(states), {**shared, **per_member}, prog.plan,
                    data_axes={k: 0 for k in per_member}, desc=f"{cfg.name} {desc} ({strategy})",
                    callback=callback, **common)  # fmt: skip
        return res.state, res.history, res.compile_seconds, res.train_seconds, res.epochs_run
    single = dataclasses.replace(prog, plan=dataclasses.replace(prog.plan, stacked=False))
    finals, hists, epochs_run, compiled, compile_s, train_s = [], [], [], None, 0.0, 0.0
    for i, st in enumerate(states):
        data = {**shared, **_member(per_member, i)}
        desc_i = f"{cfg.name} {desc} (loop, member {i + 1}/{len(states)})"
        res = drive(single.epoch, st, data, single.plan, desc=desc_i, compiled=compiled, **common)
        compiled = res.compiled
        compile_s, train_s = compile_s or res.compile_seconds, train_s + res.train_seconds
        finals.append(res.state)
        hists.append(res.history)
        epochs_run.append(int(res.epochs_run[0]))
    longest = max(epochs_run)
    hist = {}
    for key in hists[0]:
        cols = [np.concatenate([h[key][:, 0].astype(float), np.full(longest - len(h[key]), np.nan)]) for h in hists]
        hist[key] = np.stack(cols, 1)
    return _stack(finals), hist, compile_s, train_s, np.array(epochs_run)


def score_members(cfg, family: Family, params, held: dict, test: dict) -> tuple[np.ndarray, np.ndarray]:
    """Held-out and test NLL of stacked ``params`` ([members]), with the evaluation estimator;
    ``test``: the test split (its labels scored too for a labelled family)."""
    key = keys.key(cfg.seed, "eval")
    nll = lambda p, b: -batched_mean(family.log_prob, p, b, key)  # noqa: E731
    heldout = np.asarray(jax.jit(jax.vmap(nll))(params, jax.device_put(held)))
    test_y = test["y"] if family.labelled else None
    test_b = jax.device_put(eval_set(test["x"], cfg.train.val_batch_size, test_y))
    test = np.asarray(jax.jit(jax.vmap(lambda p: nll(p, test_b)))(params))
    if not np.all(np.isfinite(heldout)):
        raise TrainingError(
            f"cv: non-finite held-out NLL for members {np.flatnonzero(~np.isfinite(heldout)).tolist()}."
        )
    return heldout, test


def _strategy_mesh(cfg, strategy: str) -> str | None:
    if strategy not in STRATEGIES:
        raise ValueError(f"cv.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
    return "members=-1" if strategy == "shard" else None


def check_cv(cfg, family: Family, splits: DataSplits) -> Folds:
    """Everything that makes cross-validation impossible, refused in one sentence before anything
    is trained or written; returns the folds."""
    if family.log_prob is None:
        raise ValueError(
            f"cv scores folds by held-out NLL, which the {family.name} family has not; "
            "train several seeds at once with genjax.train.cv.train_seeds instead."
        )
    if cfg.train.easy_first:
        raise ValueError("train.easy_first ranks one training set; cross-validation does not take it.")
    if family.labelled:
        splits.require_labels(f"the {family.name} model scores labelled examples")
    return make_folds(cfg, splits, cfg.train.batch_size * family.batch_multiple, labels=family.labelled)


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
    folds = check_cv(cfg, family, splits)
    strategy = strategy or cfg.cv.strategy
    mesh = _strategy_mesh(cfg, strategy)
    settings = settings or [{}]
    members = [(g, f) for g in range(len(settings)) for f in range(folds.k)]
    swept = frozenset(f for s in settings for f in s)
    prog = build_program(cfg, family, splits, swept=swept, steps_per_epoch=folds.steps,
                         n_members=len(members), mesh=mesh)  # fmt: skip
    fold_of = np.array([f for _, f in members])
    per_member = member_data(folds, fold_of)
    states = [apply_setting(prog.init(keys.key(cfg.seed, "fold", f)), settings[g], cfg, family) for g, f in members]
    state, hist, compile_s, train_s, epochs_run = run_members(
        cfg, prog, states, {"train": folds.pool}, per_member, strategy,
        progress=progress, callback=callback, shown=family.progress,
    )  # fmt: skip
    best = state.es.best_params if cfg.train.keep_best else state.params
    heldout, test = score_members(cfg, family, best, per_member["val"], splits.test)
    return CVResult(
        folds=folds.k,
        settings=settings,
        fold=fold_of,
        setting=np.array([g for g, _ in members]),
        heldout_nll=heldout,
        test_nll=test,
        best_epoch=np.asarray(jax.device_get(state.es.best_epoch)),
        epochs_run=epochs_run,
        history=hist,
        compile_seconds=compile_s,
        train_seconds=train_s,
        examples_per_second=examples_per_second(epochs_run, folds.steps, prog.per_step, train_s),
        strategy=strategy,
        state=state,
    )


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
    settings: list[dict] | None = None,
    *,
    strategy: str = "vmap",
    progress: bool = True,
    callback: Callable | None = None,
) -> SeedsResult:
    """Train one model per (setting, seed) on the same split, all at once (``vmap``, or ``shard``
    with the members axis over the devices): seed ``s`` is initialized and trained from
    ``jax.random.key(s)``, so a member equals ``fit`` with ``cfg.seed = s`` and the setting's
    values (``settings``: continuous fields as in ``cv.sweep``, e.g. a GAN's
    ``{"model.gan.gp": 1.0}``; members are ordered setting-major)."""
    if strategy not in ("vmap", "shard"):
        raise ValueError(f"train_seeds: strategy must be 'vmap' or 'shard', got {strategy!r}.")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("train_seeds: no seeds given.")
    settings = settings or [{}]
    swept = frozenset(f for st in settings for f in st)
    n = len(seeds) * len(settings)
    prog = build_program(cfg, family, splits, swept=swept, n_members=n, mesh=_strategy_mesh(cfg, strategy))
    states = [apply_setting(prog.init(keys.root(s)), st, cfg, family) for st in settings for s in seeds]
    state, hist, compile_s, train_s, epochs_run = run_members(
        cfg, prog, states, split_data(cfg, splits, labels=family.labelled), {}, strategy, progress=progress,
        callback=callback,
        desc="seeds", shown=family.progress,
    )  # fmt: skip
    return SeedsResult(seeds, state, hist, compile_s, train_s,
                       examples_per_second(epochs_run, prog.steps, prog.per_step, train_s))  # fmt: skip
