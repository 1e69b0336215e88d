import jax
import jax.numpy as jnp
import numpy as np
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
    x = jax.random.normal(jax.random.key(0), (4, 16))
    # evaluation (no key): exactly the network without dropout, no rescaling
    l0, l1 = mlp.layers[0], mlp.layers[1]
    plain = jax.nn.relu(x @ l0.kernel[...] + l0.bias[...]) @ l1.kernel[...] + l1.bias[...]
    np.testing.assert_allclose(mlp(x), plain, rtol=1e-5, atol=1e-6)
    # training: inverted dropout, so the mean over many keys is the evaluation output
    mean = jnp.mean(jax.vmap(lambda k: mlp(x, k))(jax.random.split(jax.random.key(9), 4000)), 0)
    np.testing.assert_allclose(mean, plain, atol=0.1)
    a, b = mlp(x, jax.random.key(1)), mlp(x, jax.random.key(2))
    assert not jnp.allclose(a, b)
    assert jnp.array_equal(a, mlp(x, jax.random.key(1)))


def test_conv_size_error_names_the_problem():
    with pytest.raises(ValueError, match="not divisible"):
        ConvEncoder((28, 28, 1), (8, 16, 32), 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="activation"):
        MLP([2, 2], act="nope", rngs=nnx.Rngs(0))


def test_dropout_rate_is_state_and_can_be_set():
    from genjax.nn import set_dropout_rate

    mlp = MLP([8, 256, 8], dropout=0.5, rngs=nnx.Rngs(0))
    graph, state = nnx.split(mlp)
    x = jnp.ones((2000, 8))
    h = jax.jit(
        lambda s, k: nnx.merge(graph, s).layers[0](x) * 0 + nnx.merge(graph, s).dropout(jnp.ones((2000, 256)), k)
    )

    for rate in (0.0, 0.2, 0.7):
        out = h(set_dropout_rate(state, rate), jax.random.key(0))
        assert float(jnp.mean(out == 0)) == pytest.approx(rate, abs=0.01)
        assert float(jnp.mean(out)) == pytest.approx(1.0, abs=0.02)  # inverted scaling keeps the mean
    assert not any(
        "dropout_rate" in jax.tree_util.keystr(p)
        for p, _ in jax.tree_util.tree_leaves_with_path(nnx.state(mlp, nnx.Param))
    )


def test_fixed_dropout_is_the_constructors_rate_and_draws_nothing_at_zero():
    """Dropout(rate, fixed=True) keeps its state variable (saved states restore) but uses the
    constructor's rate: at 0 no mask is drawn (no random op in the program), at 0.3 a share 0.3 is
    dropped whatever the variable says; the identity without a key either way."""
    from genjax.nn import Dropout, set_dropout_rate

    x = jnp.ones((4000,))
    for rate in (0.0, 0.3):
        graph, state = nnx.split(Dropout(rate, fixed=True))
        assert any("dropout_rate" in jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state))
        f = jax.jit(lambda s, k: nnx.merge(graph, s)(x, k))  # noqa: B023
        out = f(set_dropout_rate(state, 0.8), jax.random.key(1))  # the variable is not read
        assert float(jnp.mean(out == 0)) == pytest.approx(rate, abs=0.02)
        hlo = f.lower(state, jax.random.key(1)).as_text()
        assert ("threefry" in hlo or "rng" in hlo) == (rate > 0)
        assert jnp.array_equal(nnx.merge(graph, state)(x, None), x)
    graph, state = nnx.split(Dropout(0.0))  # a sweepable one reads its variable
    out = jax.jit(lambda s, k: nnx.merge(graph, s)(x, k))(set_dropout_rate(state, 0.5), jax.random.key(1))
    assert float(jnp.mean(out == 0)) == pytest.approx(0.5, abs=0.03)


def test_parameter_table_counts():
    from genjax.nn.summary import format_table, mlp_param_count, param_table

    enc = MLPEncoder((8, 8, 1), (32, 16), 4, rngs=nnx.Rngs(0))
    rows = param_table(enc)
    assert [r["params"] for r in rows] == [64 * 32 + 32, 32 * 16 + 16, 16 * 8 + 8]
    assert sum(r["params"] for r in rows) == mlp_param_count([64, 32, 16, 8])
    conv = ConvEncoder((8, 8, 1), (4, 8), 2, rngs=nnx.Rngs(0))
    rows = {r["layer"]: r for r in param_table(conv)}
    assert rows["convs/0"]["params"] == 4 * 4 * 1 * 4 + 4
    # a dense map from the 8x8x1 input to the 4x4x4 feature map
    assert rows["convs/0"]["dense_equivalent"] == 64 * 64 + 64
    assert sum(r["params"] for r in rows.values()) == sum(x.size for x in jax.tree.leaves(nnx.state(conv, nnx.Param)))
    assert "Weight sharing" in format_table(list(rows.values()))


def test_spectral_normalization_brings_the_top_singular_value_to_one():
    from genjax.nn.spectral import SNLinear

    layer = SNLinear(20, 12, rngs=nnx.Rngs(0))
    layer.kernel[...] = 3.0 * layer.kernel[...]
    assert float(jnp.linalg.svd(layer.kernel[...], compute_uv=False)[0]) > 1.5
    u0 = layer.u[...]
    for _ in range(30):  # one power-iteration step per training call
        layer(jnp.ones((2, 20)), update=True)
    assert not jnp.allclose(u0, layer.u[...])
    s = jnp.linalg.svd(layer.normalized_kernel(), compute_uv=False)
    assert float(s[0]) == pytest.approx(1.0, abs=1e-3)
    before = layer.u[...]
    layer(jnp.ones((2, 20)))  # evaluation: the state is left alone
    assert jnp.array_equal(before, layer.u[...])
    # gradients reach the kernel but not the power-iteration state
    g = nnx.grad(lambda m: jnp.sum(m(jnp.ones((2, 20)))))(layer)
    assert float(jnp.abs(g.kernel[...]).sum()) > 0
