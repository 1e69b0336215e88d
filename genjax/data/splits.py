"""k-fold partitions as index arrays.

``kfold_assign`` gives every example a fold in 0..k-1, deterministically from a seed; with labels
it is stratified (each class dealt round-robin over the folds after shuffling, so every fold has
nearly the class proportions of the whole). ``fold_indices`` turns that into padded index arrays
that k models trained at once under ``jax.vmap`` can share.
"""

from __future__ import annotations

import numpy as np

from genjax.data.sources import DataError


def kfold_assign(n: int, k: int, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """Fold ids ``[n]`` in 0..k-1: each example held out exactly once; fold sizes differ by at
    most one (unstratified) or by at most the number of classes (stratified)."""
    if k < 2:
        raise DataError(f"cv.folds must be at least 2, got {k}.")
    if n < k:
        raise DataError(f"cv.folds={k} is more than the {n} examples available.")
    rng = np.random.default_rng(seed)
    fold = np.empty(n, np.int32)
    if labels is None:
        fold[rng.permutation(n)] = np.arange(n) % k
        return fold
    offset = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold[members] = (offset + np.arange(len(members))) % k  # continue the deal across classes
        offset += len(members)
    return fold


def fold_indices(fold: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-fold index arrays, padded to equal length (padding repeats index 0; counts say how
    many entries are real).

    Returns:
        ``train_idx [k, M]``, ``train_n [k]``, ``held_idx [k, H]``, ``held_n [k]``.
    """
    train = [np.flatnonzero(fold != f) for f in range(k)]
    held = [np.flatnonzero(fold == f) for f in range(k)]

    def pad(rows):
        m = max(len(r) for r in rows)
        return np.stack([np.concatenate([r, np.zeros(m - len(r), r.dtype)]) for r in rows]).astype(np.int32)

    return {
        "train_idx": pad(train),
        "train_n": np.array([len(r) for r in train], np.int32),
        "held_idx": pad(held),
        "held_n": np.array([len(r) for r in held], np.int32),
    }
