"""Optimizers from config as optax chains.

``optim.name``: ``adam`` | ``adamw`` (decoupled weight decay, Loshchilov & Hutter 2019, applied to
kernels only: w <- w - lr_t (adam_update + weight_decay w)) | ``sgd`` (with ``momentum`` and
optional ``nesterov``). ``optim.clip_norm > 0`` prepends ``clip_by_global_norm``.

The learning rate at step s is ``lr x shape(s)``; ``optim.schedule`` picks the shape (optax
schedules). Every shape first warms up linearly from 0 to 1 over ``warmup_steps``; then, with
u = (s - warmup_steps) / (total - warmup_steps) the fraction of the remaining steps done and
r = ``final_lr_ratio``:

    ``constant``        1
    ``warmup_cosine``   r + (1 - r) (1 + cos(pi u)) / 2
    ``linear``          1 - (1 - r) u
    ``exponential``     r^u                                   (r > 0)
    ``step``            step_factor^(number of step_at fractions <= u)   (piecewise constant)
    ``plateau``         1, times the reduce-on-plateau scale: after ``plateau_patience`` epochs
                        whose validation NLL is not below the best by more than
                        ``plateau_min_delta``, the scale is multiplied by ``plateau_factor``
                        (not below ``plateau_min_scale``): ``optax.contrib.reduce_on_plateau``,
                        fed once per epoch with the validation NLL (``observe_plateau``)

``optim.players``: per-player overrides of any of these fields, e.g. a GAN's
``optim.players = {"disc": {"lr": 4e-4, "schedule": "constant"}}``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax
from optax.contrib import ReduceLROnPlateauState, reduce_on_plateau

from genjax.objectives.regularizers import kernel_mask

SCHEDULES = ("constant", "warmup_cosine", "linear", "exponential", "step", "plateau")


def make_schedule(ocfg, total_steps: int) -> optax.Schedule:
    """The learning-rate *shape* (module docstring): multiplies ``optim.lr``."""
    if not float(ocfg.lr) > 0:
        raise ValueError(f"optim.lr must be positive, got {ocfg.lr}.")
    if ocfg.schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {ocfg.schedule!r}.")
    warm = int(ocfg.warmup_steps)
    if not 0 <= warm < total_steps:
        raise ValueError(f"optim.warmup_steps must lie in [0, {total_steps}) (the run's steps), got {warm}.")
    rest, r = total_steps - warm, float(ocfg.final_lr_ratio)
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"optim.final_lr_ratio must lie in [0, 1], got {r}.")
    kind = ocfg.schedule
    if kind in ("constant", "plateau"):
        decay = optax.constant_schedule(1.0)
    elif kind == "warmup_cosine":
        decay = optax.cosine_decay_schedule(1.0, rest, alpha=r)
    elif kind == "linear":
        decay = optax.linear_schedule(1.0, r, rest)
    elif kind == "exponential":
        if not r > 0:
            raise ValueError("optim.schedule='exponential' decays to optim.final_lr_ratio, which must be > 0, got 0.")
        decay = optax.exponential_decay(1.0, rest, r)
    else:  # step
        at, factor = tuple(float(a) for a in ocfg.step_at), float(ocfg.step_factor)
        if not all(0 < a < 1 for a in at) or list(at) != sorted(at):
            raise ValueError(f"optim.step_at must be increasing fractions in (0, 1), got {tuple(ocfg.step_at)}.")
        if not 0 < factor < 1:
            raise ValueError(f"optim.step_factor must lie in (0, 1), got {factor}.")
        decay = optax.piecewise_constant_schedule(1.0, {max(1, round(a * rest)): factor for a in at})
    if warm == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, 1.0, warm), decay], [warm])


def _plateau(ocfg) -> optax.GradientTransformationExtraArgs:
    factor, patience = float(ocfg.plateau_factor), int(ocfg.plateau_patience)
    if not 0 < factor < 1:
        raise ValueError(f"optim.plateau_factor must lie in (0, 1), got {factor}.")
    if patience < 1:
        raise ValueError(f"optim.plateau_patience must be >= 1, got {patience}.")
    delta = float(ocfg.plateau_min_delta)
    if delta < 0:
        raise ValueError(f"optim.plateau_min_delta must be >= 0, got {delta}.")
    # an absolute threshold (rtol = 0): NLLs may be negative, where a relative one flips its sense
    return reduce_on_plateau(factor, patience, rtol=0.0, atol=max(delta, 1e-12),
                             min_scale=float(ocfg.plateau_min_scale))  # fmt: skip


def scale_by_plateau(ocfg) -> optax.GradientTransformation:
    """Multiplies updates by the reduce-on-plateau scale kept in its state; a training step
    leaves the state alone, ``observe_plateau`` advances it once per epoch."""
    inner = _plateau(ocfg)

    def update(updates, state, params=None):
        return jax.tree.map(lambda g: state.scale.astype(g.dtype) * g, updates), state

    return optax.GradientTransformation(inner.init, update)


def _is_plateau(s) -> bool:
    return isinstance(s, ReduceLROnPlateauState)


def observe_plateau(ocfg, opt, value):
    """``opt`` (any pytree of optimizer states) with every reduce-on-plateau state fed the
    epoch's validation NLL ``value``."""
    inner = _plateau(ocfg)
    feed = lambda s: inner.update({}, s, value=value)[1] if _is_plateau(s) else s  # noqa: E731
    return jax.tree.map(feed, opt, is_leaf=_is_plateau)


def plateau_scale(opt) -> jax.Array | None:
    """The reduce-on-plateau scale in ``opt`` (the first one found; ``None``: there is none)."""
    found = [s.scale for s in jax.tree.leaves(opt, is_leaf=_is_plateau) if _is_plateau(s)]
    return found[0] if found else None


def _overrides(ocfg) -> dict:
    over = ocfg.get("players", None)
    return over.to_dict() if isinstance(over, ml_collections.ConfigDict) else dict(over or {})


def player_config(ocfg, player: str) -> ml_collections.ConfigDict:
    """``optim`` with ``optim.players[player]``'s overrides applied."""
    over = _overrides(ocfg)
    if player not in over:
        return ocfg
    c = ocfg.copy_and_resolve_references()
    for k, v in dict(over[player]).items():
        if k not in c or k == "players":
            raise ValueError(f"optim.players.{player}.{k}: optim has no field {k!r}.")
        c[k] = v
    return c


def check_players(ocfg, players) -> None:
    """Every player named in ``optim.players`` exists."""
    names = [p.name for p in players]
    for name in _overrides(ocfg):
        if name not in names:
            raise ValueError(f"optim.players names {name!r}, but the model's players are {', '.join(names)}.")


def make_optimizer(ocfg, total_steps: int, lr: float | None = None) -> optax.GradientTransformation:
    """The optax chain described in the module docstring.

    Wrapped in ``optax.inject_hyperparams``: ``learning_rate`` (the peak value) and
    ``weight_decay`` live in the optimizer state (``opt_state.hyperparams``), so a sweep sets them
    per model and ``jax.vmap`` trains several values at once (``set_hyperparams``). ``lr``
    overrides ``optim.lr`` (a player's own rate: two time-scale GAN updates).
    """
    shape = make_schedule(ocfg, total_steps)
    if ocfg.name not in ("adam", "adamw", "sgd"):
        raise ValueError(f"optim.name must be 'adam', 'adamw' or 'sgd', got {ocfg.name!r}.")
    clip = float(ocfg.clip_norm)
    plateau = scale_by_plateau(ocfg) if ocfg.schedule == "plateau" else None

    def build(learning_rate, weight_decay):
        parts = [optax.clip_by_global_norm(clip)] if clip > 0 else []
        if ocfg.name in ("adam", "adamw"):
            parts.append(optax.scale_by_adam(b1=ocfg.b1, b2=ocfg.b2, eps=ocfg.eps))
            if ocfg.name == "adamw":
                parts.append(optax.add_decayed_weights(weight_decay, mask=kernel_mask))
        else:
            parts.append(optax.trace(decay=float(ocfg.momentum), nesterov=bool(ocfg.nesterov)))
        parts.append(optax.scale_by_schedule(shape))
        if plateau is not None:
            parts.append(plateau)
        parts.append(optax.scale(-1.0 * learning_rate))
        return optax.chain(*parts)

    wd = float(ocfg.weight_decay) if ocfg.name == "adamw" else 0.0
    lr = float(ocfg.lr if lr is None else lr)
    if not lr > 0:
        raise ValueError(f"a player's learning rate must be positive, got {lr}.")
    return optax.inject_hyperparams(build)(learning_rate=lr, weight_decay=wd)


def make_optimizers(ocfg, players, total_steps: int) -> dict[str, optax.GradientTransformation]:
    """One chain per player: ``optim`` with the player's ``optim.players`` overrides; the
    player's own ``lr`` (e.g. ``model.gan.disc_lr``) unless the overrides set one."""
    check_players(ocfg, players)
    txs = {}
    for p in players:
        oc = player_config(ocfg, p.name)
        own = _overrides(ocfg).get(p.name, {})
        txs[p.name] = make_optimizer(oc, total_steps, lr=None if "lr" in own else p.lr)
    return txs


def plateau_observer(ocfg, players):
    """``(opt, val_nll) -> opt`` feeding every player's reduce-on-plateau state (each with its
    own settings), or ``None`` when no player uses ``schedule = "plateau"``."""
    cfgs = {p.name: player_config(ocfg, p.name) for p in players}
    if not any(c.schedule == "plateau" for c in cfgs.values()):
        return None
    return lambda opt, value: {n: observe_plateau(cfgs[n], s, value) for n, s in opt.items()}


def set_hyperparams(opt_state, **values):
    """A copy of an ``inject_hyperparams`` state with ``hyperparams[name] = value``."""
    hp = dict(opt_state.hyperparams)
    for k, v in values.items():
        if k not in hp:
            raise ValueError(f"the optimizer has no hyperparameter {k!r} (has {sorted(hp)}).")
        hp[k] = jnp.asarray(v, jnp.asarray(hp[k]).dtype)
    return opt_state._replace(hyperparams=hp)
