"""Spectral normalization (Miyato et al. 2018): W_SN = W / sigma(W), with sigma(W) the largest
singular value estimated by power iteration. The left singular vector estimate ``u`` is an
``nnx.Variable`` — state carried in the training state, not a trainable parameter — advanced by
one power-iteration step per training call (``update=True``) and left alone at evaluation.

Power iteration: v = W^T u / ||W^T u||, u = W v / ||W v||, sigma = u^T W v (gradients do not flow
through u and v).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def _normalize(x):
    return x / (jnp.linalg.norm(x) + 1e-12)


def power_iteration(w_2d: jax.Array, u: jax.Array, steps: int = 1):
    """(sigma, u) after ``steps`` iterations for a matrix ``[out, in]`` (u: ``[out]``)."""
    for _ in range(steps):
        v = _normalize(w_2d.T @ u)
        u = _normalize(w_2d @ v)
    u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(_normalize(w_2d.T @ u))
    return u @ w_2d @ v, u


def _normalized_kernel(layer, update: bool) -> jax.Array:
    """``layer.kernel / sigma``, sigma from one power-iteration step on the kernel as an
    ``[out, everything else]`` matrix; with ``update`` the new ``u`` is written back."""
    k = layer.kernel[...]
    sigma, u = power_iteration(k.reshape(-1, k.shape[-1]).T, layer.u[...])
    if update:
        layer.u[...] = u
    return k / sigma


class SNLinear(nnx.Module):
    """A dense layer whose kernel is spectrally normalized."""

    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros(out_features))
        self.u = nnx.Variable(_normalize(jax.random.normal(rngs.params(), (out_features,))))

    def normalized_kernel(self, update: bool = False) -> jax.Array:
        return _normalized_kernel(self, update)

    def __call__(self, x: jax.Array, update: bool = False) -> jax.Array:
        return x @ self.normalized_kernel(update) + self.bias[...]


class SNConv(nnx.Module):
    """A 2-D convolution (NHWC, 'SAME' padding) whose kernel ``[kh, kw, in, out]`` is divided by
    the top singular value of its ``[out, kh kw in]`` reshape (Miyato et al. 2018, Sec. 2.1)."""

    def __init__(self, in_features: int, out_features: int, kernel_size=(4, 4), strides: int = 2, *, rngs):
        shape = (*kernel_size, in_features, out_features)
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), shape))
        self.bias = nnx.Param(jnp.zeros(out_features))
        self.u = nnx.Variable(_normalize(jax.random.normal(rngs.params(), (out_features,))))
        self.strides = strides

    def normalized_kernel(self, update: bool = False) -> jax.Array:
        return _normalized_kernel(self, update)

    def __call__(self, x: jax.Array, update: bool = False) -> jax.Array:
        y = jax.lax.conv_general_dilated(
            x,
            self.normalized_kernel(update),
            (self.strides, self.strides),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return y + self.bias[...]
