"""Noise networks: shapes at 8x8, 28x28 and 32x32, label conditioning, refused shapes."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genjax.nn.score import ScoreMLP, UNet, timestep_embedding


@pytest.mark.parametrize("shape,channels", [((8, 8, 1), (8, 16)), ((28, 28, 1), (8, 8, 16)), ((32, 32, 3), (8, 16))])
def test_unet_keeps_the_image_shape_and_uses_time_and_label(shape, channels):
    net = UNet(shape, channels, groups=4, n_classes=10, rngs=nnx.Rngs(0))
    # the output convolution starts at zero (eps = 0); move every weight off its initialization
    state = nnx.state(net)
    flat, unravel = jax.flatten_util.ravel_pytree(state)  # one draw for every weight: one random op to compile
    nnx.update(net, unravel(flat + 0.05 * jax.random.normal(jax.random.key(1), flat.shape)))
    x = jax.random.normal(jax.random.key(2), (2,) + shape)
    t = jnp.array([0.1, 0.1])
    f = nnx.jit(lambda net, x, t, y: net(x, t, y))
    out = f(net, x, t, jnp.array([0, 0]))
    assert out.shape == x.shape and np.all(np.isfinite(np.asarray(out)))
    assert not np.allclose(out, f(net, x, t, jnp.array([3, 3])))  # the label matters
    assert not np.allclose(out, f(net, x, t + 0.5, jnp.array([0, 0])))  # so does the time


def test_unet_refuses_a_level_that_cannot_halve():
    with pytest.raises(ValueError, match="model.diffusion.channels"):
        UNet((28, 28, 1), (8, 8, 8, 8), rngs=nnx.Rngs(0))  # 28 -> 14 -> 7 -> odd


def test_score_mlp_and_time_embedding():
    e = timestep_embedding(jnp.array([0.0, 0.5]), 8)
    np.testing.assert_allclose(e[0], [1, 1, 1, 1, 0, 0, 0, 0], atol=1e-6)  # cos 0 = 1, sin 0 = 0
    assert e.shape == (2, 8)
    net = ScoreMLP(3, (16, 16), rngs=nnx.Rngs(0))
    assert net(jnp.ones((5, 3)), jnp.full(5, 0.3)).shape == (5, 3)
    with pytest.raises(ValueError, match="equal widths"):
        ScoreMLP(3, (16, 32), rngs=nnx.Rngs(0))
