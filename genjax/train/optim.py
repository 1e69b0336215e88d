"""Optimizers from config as optax chains.

``optim.name``: ``adam`` | ``adamw`` (decoupled weight decay, Loshchilov & Hutter 2019, applied to
kernels only) | ``sgd`` (with ``momentum`` and optional ``nesterov``). ``optim.clip_norm > 0``
prepends ``clip_by_global_norm``. ``optim.schedule``: ``constant`` | ``warmup_cosine`` (linear
warm-up over ``warmup_steps`` to ``lr``, cosine decay to ``lr * final_lr_ratio`` at the last step).
"""

from __future__ import annotations

import jax
import optax


def is_kernel(path) -> bool:
    """True for weight matrices / conv kernels (named 'kernel'), False for biases and scales."""
    return any(getattr(k, "key", getattr(k, "name", None)) == "kernel" for k in path)


def kernel_mask(params):
    """A pytree of bools, True on kernels: the mask for weight decay and L1/L2 penalties."""
    return jax.tree_util.tree_map_with_path(lambda p, _: is_kernel(p), params)


def make_schedule(ocfg, total_steps: int) -> optax.Schedule:
    lr = float(ocfg.lr)
    if not lr > 0:
        raise ValueError(f"optim.lr must be positive, got {ocfg.lr}.")
    if ocfg.schedule == "constant":
        return optax.constant_schedule(lr)
    if ocfg.schedule == "warmup_cosine":
        warm = int(ocfg.warmup_steps)
        if not 0 <= warm < total_steps:
            raise ValueError(f"optim.warmup_steps must lie in [0, {total_steps}) (the run's steps), got {warm}.")
        return optax.warmup_cosine_decay_schedule(0.0, lr, warm, total_steps, end_value=lr * float(ocfg.final_lr_ratio))
    raise ValueError(f"optim.schedule must be 'constant' or 'warmup_cosine', got {ocfg.schedule!r}.")


def make_optimizer(ocfg, total_steps: int) -> optax.GradientTransformation:
    """The optax chain described in the module docstring."""
    sched = make_schedule(ocfg, total_steps)
    if ocfg.name == "adam":
        tx = optax.adam(sched, b1=ocfg.b1, b2=ocfg.b2, eps=ocfg.eps)
    elif ocfg.name == "adamw":
        tx = optax.adamw(sched, b1=ocfg.b1, b2=ocfg.b2, eps=ocfg.eps, weight_decay=ocfg.weight_decay, mask=kernel_mask)
    elif ocfg.name == "sgd":
        tx = optax.sgd(sched, momentum=ocfg.momentum or None, nesterov=bool(ocfg.nesterov))
    else:
        raise ValueError(f"optim.name must be 'adam', 'adamw' or 'sgd', got {ocfg.name!r}.")
    if float(ocfg.clip_norm) > 0:
        tx = optax.chain(optax.clip_by_global_norm(float(ocfg.clip_norm)), tx)
    return tx
