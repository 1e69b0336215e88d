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
  ActNorm init) returns them in ``metrics["_vars"]``. A player with ``split_batch`` (a critic taking
  ``n_steps`` updates) gets a fresh slice of the step's batch for each update: the epoch then
  draws ``n_steps x batch_size`` examples per step and every other player sees the first slice.
  ``post_update(params, ctx) -> params`` runs after the player's updates (e.g. an EMA copy of the
  generator's weights kept in ``params["gen_ema"]``, a params entry that is no player's).
* ``hparams`` — the loss hyperparameters and their configured values (a VAE's ``beta``).
* ``sample(params, key, n, cond=None) -> x``
* ``log_prob(params, x, key) -> [B]``: exact, or an estimate/bound, as ``log_prob_kind`` says;
  ``None`` for an implicit model (a GAN): then training has no validation NLL and no early
  stopping, and evaluation uses sample-based metrics only.

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
    split_batch: bool = False  # each of the n_steps updates gets its own slice of the batch
    post_update: Callable[..., Any] | None = None  # (params, ctx) -> params, after the updates


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    init: Callable[..., Any]
    players: tuple[Player, ...]
    sample: Callable[..., Any]
    log_prob: Callable[..., Any] | None
    log_prob_kind: str  # "exact" | "importance-sampled estimate" | "bound" | "none"
    hparams: dict[str, float] = dataclasses.field(default_factory=dict)
    extras: dict[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)

    @property
    def batch_multiple(self) -> int:
        """Examples drawn per step, in units of ``train.batch_size`` (a split-batch critic's
        ``n_steps``; 1 otherwise)."""
        return batch_multiple(self.players)


def batch_multiple(players) -> int:
    """Batches drawn per training step: the largest ``n_steps`` of a split-batch player, else 1."""
    return max([p.n_steps for p in players if p.split_batch] or [1])
