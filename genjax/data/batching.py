"""Pre-batched, device-resident epochs.

``epoch_batches`` is pure ``jnp`` and runs inside the jitted epoch: it shuffles the device-
resident training arrays with a key and reshapes them to ``(steps, batch, ...)`` for ``lax.scan``.
``eval_batches`` pads an evaluation set to whole batches once, with a mask, so every example
counts exactly once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def epoch_batches(tree, key: jax.Array, batch_size: int):
    """Shuffle the leading axis of every leaf of ``tree`` (same permutation) and cut it into
    ``steps = N // batch_size`` batches: leaves ``[N, ...] -> [steps, batch_size, ...]``.
    The remainder (N mod batch_size examples, different ones each epoch) is dropped."""
    n = jax.tree.leaves(tree)[0].shape[0]
    steps = n // batch_size
    perm = jax.random.permutation(key, n)[: steps * batch_size]
    return jax.tree.map(lambda a: jnp.take(a, perm, axis=0).reshape(steps, batch_size, *a.shape[1:]), tree)


def eval_batches(x: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``[N, ...] -> ([nb, batch, ...], mask [nb, batch])`` with zero padding, mask 1 on real rows."""
    n = x.shape[0]
    bs = max(1, min(batch_size, n))
    nb = -(-n // bs)
    pad = nb * bs - n
    xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return xp.reshape(nb, bs, *x.shape[1:]), mask.reshape(nb, bs)
