"""Parameter-norm penalties over a parameter pytree.

    L1(theta) = sum_{w in kernels} |w|          L2(theta) = sum_{w in kernels} w^2

Only weight matrices and convolution kernels (leaves under a key named ``kernel``) are
penalized, not biases or normalization scales (Goodfellow et al. 2016, Sec. 7.1). An L2 penalty
added to the loss differs from decoupled weight decay (AdamW, Loshchilov & Hutter 2019) under
adaptive optimizers: its gradient is rescaled by Adam's preconditioner, decay is not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def is_kernel(path) -> bool:
    """True for a leaf under a key named 'kernel' (weights), False for biases, scales, etc."""
    return any(getattr(k, "key", getattr(k, "name", None)) == "kernel" for k in path)


def kernel_mask(params):
    """A pytree of bools over ``params``, True on kernels."""
    return jax.tree_util.tree_map_with_path(lambda p, _: is_kernel(p), params)


def _masked_sum(fn, params) -> jax.Array:
    leaves = [fn(x) for p, x in jax.tree_util.tree_leaves_with_path(params) if is_kernel(p)]
    return sum((jnp.sum(x) for x in leaves), jnp.zeros((), jnp.float32))


def l1_norm(params) -> jax.Array:
    """sum |w| over kernels."""
    return _masked_sum(jnp.abs, params)


def l2_norm_sq(params) -> jax.Array:
    """sum w^2 over kernels."""
    return _masked_sum(jnp.square, params)


def penalty(params, l1: jax.typing.ArrayLike = 0.0, l2: jax.typing.ArrayLike = 0.0) -> jax.Array:
    """l1 * L1(params) + l2 * L2(params); ``l1``, ``l2`` may be traced (swept under vmap)."""
    return l1 * l1_norm(params) + l2 * l2_norm_sq(params)
