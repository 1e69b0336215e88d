"""An exponential moving average of a player's weights, kept beside them in ``params``.

``ema_update(source, target, decay)`` is a ``Player.post_update``: after the player ``source``
is updated at step t, ``params[target] <- d params[target] + (1 - d) params[source]`` with the
warm-up decay d = min(decay, (1 + t) / (10 + t)) (so the initial weights fade quickly; the
schedule of TensorFlow's ExponentialMovingAverage with ``num_updates``). Families that keep an
average sample and evaluate with it (a GAN's generator, a diffusion model's network).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def ema_decay(decay: float, step):
    """The warm-up decay min(decay, (1 + t) / (10 + t)) at step t."""
    t = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + t) / (10.0 + t))


def ema_update(source: str, target: str, decay: float):
    """A ``post_update(params, ctx) -> params`` that moves ``params[target]`` towards
    ``params[source]`` (module docstring)."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"an EMA decay must lie in (0, 1), got {decay}.")

    def post_update(params, ctx):
        d = ema_decay(decay, ctx.step)
        new = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, params[target], params[source])
        return params | {target: new}

    return post_update


def ema_init(params: dict, source: str, target: str) -> dict:
    """``params`` with ``params[target]`` a copy of ``params[source]``."""
    return params | {target: jax.tree.map(jnp.copy, params[source])}
