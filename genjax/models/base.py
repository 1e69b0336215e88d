"""The family protocol: what the trainer and the CLI know about any model family.

A family is a handful of pure functions over a parameter pytree ``params`` — a dict
``{player_name: nnx.State}`` holding the whole state of that player's modules as ``nnx.split``
gives it (trainable ``nnx.Param``s and any other variables):

* ``init(key, example=None) -> params`` (``example``: a batch for data-dependent init)
* ``players`` — one ``Player`` per optimizer, updated in order each step;
  ``player.loss(params, batch, key, ctx) -> (loss, metrics)`` differentiates only the
  ``nnx.Param`` leaves of ``params[player.name]``. ``ctx`` is a ``Context``: the global step and
  the loss hyperparameters ``ctx.hp`` (scalars in the training state, so ``jax.vmap`` can train
  several values at once). A loss that changes non-trainable variables (spectral-norm vectors,
  ActNorm init) returns them in ``metrics["_vars"]``.
* ``hparams`` — the loss hyperparameters and their configured values (a VAE's ``beta``).
* ``sample(params, key, n, cond=None) -> x``
* ``log_prob(params, x, key) -> [B]``: exact, or an estimate/bound, as ``log_prob_kind`` says.

``extras`` holds family-specific functions the CLI may use when present (``reconstruct``,
``encode``, ``decode_mean``, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple


class Context(NamedTuple):
    """What a loss may read besides params, batch and key."""

    step: Any  # int32 global step
    hp: dict  # loss hyperparameters {name: scalar array}


class Player(NamedTuple):
    """One optimizer's worth of a model: its parameters ``params[name]`` and its loss."""

    name: str
    loss: Callable[..., Any]  # (params, batch, key, ctx) -> (loss, metrics)
    n_steps: int = 1  # updates per training step (a critic's n_critic)


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    init: Callable[..., Any]
    players: tuple[Player, ...]
    sample: Callable[..., Any]
    log_prob: Callable[..., Any]
    log_prob_kind: str  # "exact" | "importance-sampled estimate" | "bound"
    hparams: dict[str, float] = dataclasses.field(default_factory=dict)
    extras: dict[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)
