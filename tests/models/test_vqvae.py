"""The discrete bottlenecks (genjax.objectives.quantize) against their formulas, and the VQ-VAE /
FSQ family's loss and bound against hand computations."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.config import base_config
from genjax.models import Context, DataInfo, build_family
from genjax.objectives import quantize as q


def test_nearest_is_the_brute_force_argmin():
    rng = np.random.default_rng(0)
    z, book = rng.normal(size=(5, 3, 4)), rng.normal(size=(7, 4))
    d = ((z[..., None, :] - book) ** 2).sum(-1)
    np.testing.assert_array_equal(np.asarray(q.nearest(jnp.asarray(z), jnp.asarray(book))), d.argmin(-1))


def test_straight_through_passes_the_identity_gradient():
    """d/dz_e f(z_e + sg(z_q - z_e)) = f'(z_q): the decoder's gradient at the code, unchanged."""
    z_e, z_q = jnp.array([0.3, -1.2, 2.0]), jnp.array([1.0, 0.5, -0.7])
    f = lambda v: jnp.sum(jnp.sin(v) * v**2)  # noqa: E731
    g = jax.grad(lambda z: f(q.straight_through(z, z_q)))(z_e)
    np.testing.assert_allclose(g, jax.grad(f)(z_q), rtol=1e-6)
    np.testing.assert_allclose(q.straight_through(z_e, z_q), z_q, rtol=1e-6)  # the forward value is the code


def test_vq_losses_and_their_gradients():
    rng = np.random.default_rng(1)
    z_e, z_q = jnp.asarray(rng.normal(size=(3, 2, 2, 4))), jnp.asarray(rng.normal(size=(3, 2, 2, 4)))
    cb, commit = q.vq_losses(z_e, z_q, 3)
    want = np.sum((np.asarray(z_e) - np.asarray(z_q)) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(cb, want, rtol=1e-5)
    np.testing.assert_allclose(commit, want, rtol=1e-5)
    # the codebook term moves only the code, the commitment term only the encoder output
    g_cb = jax.grad(lambda a, b: jnp.sum(q.vq_losses(a, b, 3)[0]), argnums=(0, 1))(z_e, z_q)
    g_cm = jax.grad(lambda a, b: jnp.sum(q.vq_losses(a, b, 3)[1]), argnums=(0, 1))(z_e, z_q)
    assert not np.any(np.asarray(g_cb[0])) and not np.any(np.asarray(g_cm[1]))
    np.testing.assert_allclose(g_cb[1], 2 * (z_q - z_e), rtol=1e-5)
    np.testing.assert_allclose(g_cm[0], 2 * (z_e - z_q), rtol=1e-5)


def test_ema_update_equals_the_hand_computation():
    rng = np.random.default_rng(2)
    k, d, gamma, eps = 4, 3, 0.9, 1e-2
    counts, sums = rng.uniform(0.5, 3, size=k), rng.normal(size=(k, d))
    z, idx = rng.normal(size=(6, d)), np.array([0, 2, 2, 3, 0, 2])
    n_new, s_new = counts * gamma, sums * gamma
    for i, c in enumerate(idx):
        n_new[c] += (1 - gamma) * 1.0
        s_new[c] += (1 - gamma) * z[i]
    total = n_new.sum()
    book = s_new / ((n_new + eps) / (total + k * eps) * total)[:, None]
    got = q.ema_update(jnp.asarray(counts, jnp.float32), jnp.asarray(sums, jnp.float32), jnp.asarray(z, jnp.float32),
                       jnp.asarray(idx), gamma, eps)  # fmt: skip
    for g, w in zip(got, (n_new, s_new, book)):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)


def test_dead_codes_are_restarted_on_batch_outputs():
    counts = jnp.array([5.0, 0.2, 3.0, 0.9])
    sums = jnp.arange(8.0).reshape(4, 2)
    book = sums / counts[:, None]
    z = jnp.array([[10.0, 11.0], [20.0, 21.0], [30.0, 31.0]])
    c2, s2, b2, n = q.restart_dead(jax.random.key(0), counts, sums, book, z, 1.0)
    assert float(n) == 2
    for j in (0, 2):  # alive: untouched
        np.testing.assert_array_equal(b2[j], book[j])
        assert float(c2[j]) == float(counts[j])
    for j in (1, 3):  # dead: on a batch row, one count, its sum that row
        assert any(np.array_equal(np.asarray(b2[j]), np.asarray(r)) for r in z)
        np.testing.assert_array_equal(s2[j], b2[j])
        assert float(c2[j]) == 1.0


def test_usage_perplexity():
    p, used = q.usage(jnp.array([0, 0, 1, 3]), 4)  # frequencies 1/2, 1/4, 0, 1/4
    np.testing.assert_allclose(p, math.exp(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))), rtol=1e-6)
    assert float(used) == 0.75
    np.testing.assert_allclose(q.usage(jnp.arange(8), 8)[0], 8.0, rtol=1e-6)


@pytest.mark.parametrize("levels", [(5, 3), (8, 5, 5, 5), (4, 2, 7)])
def test_fsq_levels_rounding_and_codebook(levels):
    f = q.FSQ(levels)
    assert f.size == math.prod(levels) and f.dim == len(levels)
    z = jax.random.normal(jax.random.key(0), (4000, len(levels))) * 4
    zhat = np.asarray(f.quantize(z))
    for i, L in enumerate(levels):  # each dimension takes exactly its L levels, (j - L//2) / (L//2)
        want = (np.arange(L) - L // 2) / (L // 2)
        np.testing.assert_allclose(np.unique(zhat[:, i]), want, atol=1e-6)
    # rounding: the level nearest the bounded value
    b = np.asarray(f.bound(z))
    np.testing.assert_allclose(zhat, np.round(b) / f.half, atol=1e-6)
    # index <-> code is a bijection over the whole implicit codebook
    idx = np.asarray(f.index(jnp.asarray(zhat)))
    np.testing.assert_allclose(np.asarray(f.code(idx)), zhat, atol=1e-6)
    every = np.asarray(f.code(jnp.arange(f.size)))
    assert len({tuple(r) for r in np.round(every, 6)}) == f.size
    np.testing.assert_array_equal(np.asarray(f.index(jnp.asarray(every))), np.arange(f.size))
    grid = list(itertools.product(*[range(L) for L in levels]))  # mixed radix, the first dimension fastest
    assert int(f.index(jnp.asarray((np.array(grid[-1]) - f.half) / f.half))) == sum(
        g * int(b) for g, b in zip(grid[-1], f.basis))
    # the gradient passes straight through the rounding (to the bound's derivative)
    g = jax.grad(lambda v: jnp.sum(f.quantize(v)))(z[:3])
    gb = jax.grad(lambda v: jnp.sum(f.bound(v) / f.half))(z[:3])
    np.testing.assert_allclose(g, gb, rtol=1e-6)


def _family(**kw):
    c = base_config()
    c.model.family = "vqvae"
    for k, v in kw.items():
        c.model.vqvae[k] = v
    return build_family(c, DataInfo((8, 8, 1), "01", 10, 2))


@pytest.mark.parametrize("update", ["grad", "ema"])
def test_vq_loss_and_bound_against_a_hand_computation(update):
    """The per-example loss -log p(x|z_q) + beta ||z_e - z_q||^2 (+ ||z_e - z_q||^2 for a learned-
    by-gradient codebook) and the bound log p(x | c(x)) - P ln K, recomputed in numpy (float64)."""
    fam = _family(codebook_update=update, restart_threshold=0.0, likelihood="bernoulli", codebook_size=5, code_dim=3)
    params = fam.init(jax.random.key(0))
    x = (jax.random.uniform(jax.random.key(1), (6, 8, 8, 1)) > 0.5).astype(jnp.float32)
    m = fam.modules(params)
    z_e = np.asarray(m.encoder(x), np.float64)
    book = np.asarray(m.codebook[...], np.float64)
    idx = ((z_e[..., None, :] - book) ** 2).sum(-1).argmin(-1)
    z_q = book[idx]
    logits = np.asarray(m.decoder(jnp.asarray(z_q, jnp.float32)), np.float64).reshape(6, -1)
    xs = np.asarray(x, np.float64).reshape(6, -1)
    log_px = np.sum(xs * logits - np.logaddexp(0, logits), -1)
    sq = ((z_e - z_q) ** 2).sum((1, 2, 3))
    beta = 0.3
    want = np.mean(-log_px + beta * sq + (sq if update == "grad" else 0.0))
    loss, metrics = fam.players[0].loss(params, {"x": x}, jax.random.key(2), Context(jnp.int32(0), {"beta": beta}))
    np.testing.assert_allclose(float(loss), want, rtol=1e-4)
    np.testing.assert_allclose(float(metrics["commit"]), sq.mean(), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(fam.log_prob(params, x)), log_px - 4 * math.log(5), rtol=1e-4)
    np.testing.assert_array_equal(np.asarray(fam.codes.encode(params, x)), idx)


def test_ema_loss_returns_the_updated_codebook_and_restarts():
    fam = _family(codebook_update="ema", restart_threshold=1.0, codebook_size=6, code_dim=2, likelihood="bernoulli",
                  ema_decay=0.8)  # fmt: skip
    params = fam.init(jax.random.key(0))
    x = (jax.random.uniform(jax.random.key(1), (16, 8, 8, 1)) > 0.5).astype(jnp.float32)
    _, metrics = fam.players[0].loss(params, {"x": x}, jax.random.key(3), Context(jnp.int32(0), {"beta": 0.25}))
    new = metrics["_vars"]
    m = fam.modules(params)
    z_e = m.encoder(x)
    idx = q.nearest(z_e, m.codebook[...])
    counts, sums, book = q.ema_update(m.counts[...], m.sums[...], z_e, idx, 0.8, 1e-5)
    dead = np.asarray(counts) < 1.0  # one count each to start: the codes no example chose fall below 1
    assert 0 < dead.sum() < 6 and float(metrics["restarts"]) == dead.sum()
    np.testing.assert_array_equal(np.asarray(new["counts"][...])[dead], 1.0)
    np.testing.assert_allclose(np.asarray(new["counts"][...])[~dead], np.asarray(counts)[~dead], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(new["codebook"][...])[~dead], np.asarray(book)[~dead], rtol=1e-5)
    rows = np.asarray(z_e).reshape(-1, 2)
    for r in np.asarray(new["codebook"][...])[dead]:
        assert np.min(np.abs(rows - r).sum(-1)) < 1e-6  # each restarted code is an encoder output of the batch


def test_fsq_loss_is_the_reconstruction_alone():
    fam = _family(quantizer="fsq", fsq_levels=(3, 4), likelihood="bernoulli")
    params = fam.init(jax.random.key(0))
    x = (jax.random.uniform(jax.random.key(1), (4, 8, 8, 1)) > 0.5).astype(jnp.float32)
    loss, _ = fam.players[0].loss(params, {"x": x}, jax.random.key(2), Context(jnp.int32(0), {}))
    lp = fam.log_prob(params, x) + 4 * math.log(12)
    np.testing.assert_allclose(float(loss), -float(jnp.mean(lp)), rtol=1e-5)
    assert fam.codes.vocab == 12 and fam.codes.shape == (2, 2)
    np.testing.assert_allclose(fam.codes.decode(params, fam.codes.encode(params, x)).shape, x.shape)


def test_bad_settings_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match="codebook_update='ema'"):
        _family(codebook_update="grad", restart_threshold=1.0, likelihood="bernoulli")
    with pytest.raises(ValueError, match="dequantize"):
        c = base_config()
        c.model.family = "vqvae"
        build_family(c, DataInfo((8, 8, 1), "01", 10, 17))  # a Gaussian density on 17 grey levels
