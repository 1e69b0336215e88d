"""Optimizers from config as optax chains.

``optim.name``: ``adam`` | ``adamw`` (decoupled weight decay, Loshchilov & Hutter 2019, applied to
kernels only: w <- w - lr_t (adam_update + weight_decay w)) | ``sgd`` (with ``momentum`` and
optional ``nesterov``). ``optim.clip_norm > 0``
prepends ``clip_by_global_norm``. ``optim.schedule``: ``constant`` | ``warmup_cosine`` (linear
warm-up over ``warmup_steps`` to ``lr``, cosine decay to ``lr * final_lr_ratio`` at the last step).
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from genjax.objectives.regularizers import kernel_mask


def make_schedule(ocfg, total_steps: int) -> optax.Schedule:
    """The learning-rate *shape*: multiplies ``optim.lr`` (1 for ``constant``)."""
    if not float(ocfg.lr) > 0:
        raise ValueError(f"optim.lr must be positive, got {ocfg.lr}.")
    if ocfg.schedule == "constant":
        return optax.constant_schedule(1.0)
    if ocfg.schedule == "warmup_cosine":
        warm = int(ocfg.warmup_steps)
        if not 0 <= warm < total_steps:
            raise ValueError(f"optim.warmup_steps must lie in [0, {total_steps}) (the run's steps), got {warm}.")
        return optax.warmup_cosine_decay_schedule(0.0, 1.0, warm, total_steps, end_value=float(ocfg.final_lr_ratio))
    raise ValueError(f"optim.schedule must be 'constant' or 'warmup_cosine', got {ocfg.schedule!r}.")


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

    def build(learning_rate, weight_decay):
        parts = [optax.clip_by_global_norm(clip)] if clip > 0 else []
        if ocfg.name in ("adam", "adamw"):
            parts.append(optax.scale_by_adam(b1=ocfg.b1, b2=ocfg.b2, eps=ocfg.eps))
            if ocfg.name == "adamw":
                parts.append(optax.add_decayed_weights(weight_decay, mask=kernel_mask))
        else:
            parts.append(optax.trace(decay=float(ocfg.momentum), nesterov=bool(ocfg.nesterov)))
        parts += [optax.scale_by_schedule(shape), optax.scale(-1.0 * learning_rate)]
        return optax.chain(*parts)

    wd = float(ocfg.weight_decay) if ocfg.name == "adamw" else 0.0
    lr = float(ocfg.lr if lr is None else lr)
    if not lr > 0:
        raise ValueError(f"a player's learning rate must be positive, got {lr}.")
    return optax.inject_hyperparams(build)(learning_rate=lr, weight_decay=wd)


def set_hyperparams(opt_state, **values):
    """A copy of an ``inject_hyperparams`` state with ``hyperparams[name] = value``."""
    hp = dict(opt_state.hyperparams)
    for k, v in values.items():
        if k not in hp:
            raise ValueError(f"the optimizer has no hyperparameter {k!r} (has {sorted(hp)}).")
        hp[k] = jnp.asarray(v, jnp.asarray(hp[k]).dtype)
    return opt_state._replace(hyperparams=hp)
