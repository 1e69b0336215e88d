import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from genjax.nn import MLP, ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
def test_conv_encoder_decoder_shapes(shape):
    r = nnx.Rngs(0)
    enc = ConvEncoder(shape, (8, 16), 5, dropout=0.1, rngs=r)
    dec = ConvDecoder(5, (16, 8), shape, rngs=r)
    x = jax.random.uniform(jax.random.key(0), (3, *shape))
    mean, log_var = jax.jit(lambda x: enc(x))(x)
    assert mean.shape == log_var.shape == (3, 5)
    out = jax.jit(lambda z: dec(z))(mean)
    assert out.shape == (3, *shape)
    assert jnp.all(jnp.isfinite(out))


def test_mlp_encoder_decoder_and_parameter_count():
    r = nnx.Rngs(0)
    enc = MLPEncoder((8, 8, 1), (32, 16), 4, rngs=r)
    dec = MLPDecoder(4, (16, 32), (8, 8, 1), rngs=r)
    mean, _ = enc(jnp.ones((2, 8, 8, 1)))
    assert dec(mean).shape == (2, 8, 8, 1)
    n = sum(x.size for x in jax.tree.leaves(nnx.state(enc, nnx.Param)))
    sizes = [64, 32, 16, 8]
    assert n == sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def test_dropout_only_with_a_key():
    mlp = MLP([16, 64, 16], dropout=0.5, rngs=nnx.Rngs(0))
    x = jnp.ones((4, 16))
    assert jnp.array_equal(mlp(x), mlp(x))  # evaluation: deterministic
    a, b = mlp(x, jax.random.key(1)), mlp(x, jax.random.key(2))
    assert not jnp.allclose(a, b)
    assert jnp.array_equal(a, mlp(x, jax.random.key(1)))


def test_conv_size_error_names_the_problem():
    with pytest.raises(ValueError, match="not divisible"):
        ConvEncoder((28, 28, 1), (8, 16, 32), 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="model.activation"):
        MLP([2, 2], act="nope", rngs=nnx.Rngs(0))
