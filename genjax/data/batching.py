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


def epoch_batches(tree, key: jax.Array, batch_size: int, steps: int | None = None, idx=None, n=None):
    """Shuffle and cut into ``steps`` batches: leaves ``[N, ...] -> [steps, batch_size, ...]``.

    Without ``idx``: a random permutation of all N rows, ``steps = N // batch_size`` by default;
    the remainder (different rows each epoch) is dropped. With ``idx [M]`` (int) and ``n`` (a
    possibly traced count): draw from the first ``n`` entries of ``idx`` only, in random order —
    how k folds of different sizes share one pooled array under ``jax.vmap``, and how an
    easy-first curriculum draws from its easiest examples; when ``n < steps x batch_size`` the
    epoch cycles through those ``n`` in one random order.
    """
    n_rows = jax.tree.leaves(tree)[0].shape[0]
    if idx is None:
        steps = n_rows // batch_size if steps is None else steps
        perm = jax.random.permutation(key, n_rows)[: steps * batch_size]
    else:
        u = jax.random.uniform(key, idx.shape)
        u = jnp.where(jnp.arange(idx.shape[0]) < n, u, jnp.inf)  # padding sorts last
        perm = idx[jnp.argsort(u)[jnp.arange(steps * batch_size) % n]]
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


def eval_set(x: np.ndarray, batch_size: int, y: np.ndarray | None = None) -> dict:
    """Padded evaluation batches as the epoch scores them: ``{"x": [nb, B, ...], "mask": [nb, B]}``
    and, given labels (a labelled family: ``Family.labelled``), ``"y": [nb, B, ...]``."""
    xb, mask = eval_batches(np.asarray(x), batch_size)
    if y is None:
        return {"x": xb, "mask": mask}
    y = np.asarray(y)
    if len(y) != len(x):
        raise ValueError(f"evaluation labels: {len(y)} labels for {len(x)} examples.")
    return {"x": xb, "mask": mask, "y": eval_batches(y, batch_size)[0]}
