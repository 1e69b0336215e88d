"""Data transforms. Static ones run once in NumPy from a seed; epoch ones are pure ``jnp``
functions ``(key, x) -> x`` that run inside the jitted epoch (a fresh draw every epoch).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def binarize_static(x: np.ndarray, seed: int) -> np.ndarray:
    """One fixed Bernoulli draw per pixel, x_bin ~ Bern(x), from ``seed``."""
    rng = np.random.default_rng(seed)
    return (rng.random(x.shape) < x).astype(np.float32)


def binarize(key: jax.Array, x: jax.Array) -> jax.Array:
    """Dynamic binarization: x_bin ~ Bern(x), a fresh draw per call (Salakhutdinov & Murray 2008)."""
    return jax.random.bernoulli(key, x).astype(x.dtype)


def dequantize(key: jax.Array, x: jax.Array, levels: int) -> jax.Array:
    """Uniform dequantization of ``x`` in [0, 1] holding ``levels`` discrete values:
    y = (round(x (levels - 1)) + u) / levels, u ~ U[0, 1)^D. Then y lies in [0, 1) and a density
    on y lower-bounds the discrete likelihood (Theis et al. 2016) with bin width 1/levels."""
    x_int = jnp.round(x * (levels - 1))
    return (x_int + jax.random.uniform(key, x.shape, x.dtype)) / levels


def dequantize_static(x: np.ndarray, levels: int, seed: int) -> np.ndarray:
    """One fixed uniform dequantization (for validation and test sets)."""
    rng = np.random.default_rng(seed)
    return ((np.round(x * (levels - 1)) + rng.random(x.shape)) / levels).astype(np.float32)


def scale(x, to: str):
    """Map [0, 1] data to ``to``: '01' (unchanged) or '-11' (2x - 1)."""
    if to == "01":
        return x
    if to == "-11":
        return 2.0 * x - 1.0
    raise ValueError(f"data.scale must be '01' or '-11', got {to!r}.")


def epoch_transform(name: str, levels: int | None = None, to: str = "01") -> Callable | None:
    """The per-epoch transform ``(key, x) -> x`` named ``name`` ('none', 'binarize',
    'dequantize', 'window'), followed by ``scale(., to)``; None when there is nothing to do. With
    'none' the splits hold the training examples already in ``to`` (``load_splits`` scales them
    once), so nothing is left to do: scaling them again put [-1, 1] images on [-3, 1]."""
    if name == "none":
        return None
    if name == "window":  # text: a random window of each training row (genjax.data.text)
        from genjax.data.text import random_window

        return random_window
    if name == "binarize":
        return lambda key, x: scale(binarize(key, x), to)
    if name == "dequantize":
        if not levels:
            raise ValueError("data.dequantize needs a source with discrete levels (images), got none.")
        return lambda key, x: scale(dequantize(key, x, levels), to)
    raise ValueError(f"unknown epoch transform {name!r}.")
