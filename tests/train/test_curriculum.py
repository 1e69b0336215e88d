import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from genjax.models.base import Player
from genjax.train import init_state, make_epoch, make_step
from genjax.train.curriculum import competence, easy_first, resolution, resolution_curriculum, stage_at


def test_resolution_is_the_identity_at_full_size_and_2x2_pooling_at_half():
    x = jax.random.normal(jax.random.key(0), (3, 8, 8, 2))
    np.testing.assert_array_equal(resolution(x, 8), x)
    a = np.asarray(x)
    pooled = (a[:, 0::2, 0::2] + a[:, 1::2, 0::2] + a[:, 0::2, 1::2] + a[:, 1::2, 1::2]) / 4  # 2x2 average
    up = pooled.repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_allclose(resolution(x, 4), up, rtol=1e-6, atol=1e-6)
    q = np.asarray(resolution(x, 2))  # 4x4 blocks, each the block's mean
    np.testing.assert_allclose(q[0, 0, 0], a[0, :4, :4].mean((0, 1)), rtol=1e-5)
    np.testing.assert_allclose(resolution(x[None], 4)[0], up, rtol=1e-6, atol=1e-6)  # leading axes ([steps, B, ...])
    wide = jnp.ones((1, 4, 8, 1))  # non-square: the width pooled by the same factor
    assert resolution(wide, 2).shape == (1, 4, 8, 1)


def test_stages_and_fade_follow_the_schedule():
    # stages (2, 4) then 8; 3 epochs each; fade over 2 epochs
    got = [tuple(float(v) for v in stage_at(e, 2, 3, 2)) for e in range(8)]
    assert [g[0] for g in got] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert [g[2] for g in got] == pytest.approx([1, 1, 1, 1 / 3, 2 / 3, 1, 1 / 3, 2 / 3])
    cur = resolution_curriculum((2, 4), (8, 8, 1), 3, 2)
    x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 1))
    np.testing.assert_allclose(cur(0, x), resolution(x, 2), rtol=1e-6)
    np.testing.assert_allclose(cur(4, x), resolution(x, 2) / 3 + 2 * resolution(x, 4) / 3, rtol=1e-5)
    np.testing.assert_allclose(cur(20, x), x, rtol=1e-6)
    for bad, msg in (((3,), "divide"), ((4, 2), "increasing"), ((8,), "below")):
        with pytest.raises(ValueError, match=f"train.curriculum.*{msg}"):
            resolution_curriculum(bad, (8, 8, 1), 3)
    assert resolution_curriculum((), (8, 8, 1), 3) is None


def test_easy_first_draws_from_the_easiest_fraction():
    """Examples x = 0..99 ranked by x (easy = small); competence 0.25 -> 1 over 3 epochs: epoch 0
    draws only x < 25, every example of the subset once before any repeats, epoch 3 anything."""
    assert [float(competence(e, 0.25, 3)) for e in (0, 1, 3, 9)] == [0.25, 0.5, 1.0, 1.0]

    class W(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.zeros(()))

    def loss(params, batch, key, ctx):
        return jnp.mean(params["m"]["w"][...] * batch["x"]), {"xmax": jnp.max(batch["x"]), "xsum": jnp.sum(batch["x"])}

    txs = {"m": optax.sgd(0.0)}
    epoch = jax.jit(
        make_epoch(
            make_step([Player("m", loss)], txs),
            None,
            batch_size=10,
            steps=10,
            patience=0,
            min_delta=0.0,
            easy=easy_first(0.25, 3),
        )  # fmt: skip
    )
    state = init_state({"m": nnx.split(W())[1]}, txs, jax.random.key(0))
    pool = np.arange(100.0)[::-1].copy()  # stored hardest first
    scores = pool - 1000.0  # low = easy: the smallest x
    data = {"train": {"x": pool}, "idx": np.argsort(scores).astype(np.int32), "n": 100}
    maxes = []
    for _ in range(4):
        state, m = epoch(state, data)
        maxes.append(float(m["xmax"]))
    assert maxes[0] <= 24 and maxes[1] <= 49 and maxes[3] > 49
    # epoch 0: 100 draws cycle through the 25 easiest, each exactly 4 times: the sum is 4 x (0 + ... + 24)
    state = init_state({"m": nnx.split(W())[1]}, txs, jax.random.key(0))
    _, m = epoch(state, data)
    assert float(m["xsum"]) * 10 == pytest.approx(4 * sum(range(25)))


def test_nll_scores_are_per_example_over_padded_batches():
    from genjax.train.curriculum import nll_scores

    x = np.random.default_rng(0).normal(size=(23, 3)).astype(np.float32)
    got = nll_scores(lambda p, xb, k: -jnp.sum(xb**2, -1) * p, 2.0, x, jax.random.key(0), batch_size=7)
    np.testing.assert_allclose(got, 2.0 * np.sum(x**2, -1), rtol=1e-6)
