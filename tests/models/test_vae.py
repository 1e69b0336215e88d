"""The VAE family against an independent plain-JAX implementation, plus protocol checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks import plain_vae
from genjax import keys
from genjax.models import Context, build_family
from genjax.train import init_state, make_step


def _family(cfg, shape=(8, 8, 1)):
    return build_family(cfg, shape)


def test_one_step_matches_plain_jax(smoke_cfg):
    """Golden one-step test: the genjax loss, gradient and Adam update equal plain JAX's."""
    cfg = smoke_cfg
    cfg.model.vae.hidden = (16, 8)
    fam = _family(cfg)
    params = fam.init(jax.random.key(0))
    x = (jax.random.uniform(jax.random.key(1), (10, 8, 8, 1)) > 0.5).astype(jnp.float32)
    key, ctx = jax.random.key(2), Context(jnp.array(0), {"beta": jnp.float32(1.0)})
    # genjax's elbo loss draws eps from the second of three keys split from the step key
    eps = jax.random.normal(jax.random.split(key, 3)[1], (10, cfg.model.vae.latent_dim))
    plain = plain_vae.from_genjax(params["model"])
    loss_g, _ = jax.jit(fam.players[0].loss)(params, {"x": x}, key, ctx)
    loss_p = plain_vae.loss(plain, x.reshape(10, -1), eps)
    np.testing.assert_allclose(loss_g, loss_p, rtol=1e-5)

    tx = optax.adam(1e-2)
    state = init_state(params, {"model": tx}, jax.random.key(3), fam.hparams)
    step = jax.jit(make_step(fam.players, {"model": tx}))
    new, metrics = step(state, {"x": x})
    k_loss = keys.update_key(keys.stream(state.rng, "step", 0), 0, 0)
    eps = jax.random.normal(jax.random.split(k_loss, 3)[1], (10, cfg.model.vae.latent_dim))
    g = jax.grad(plain_vae.loss)(plain, x.reshape(10, -1), eps)
    upd, _ = tx.update(g, tx.init(plain), plain)
    want = optax.apply_updates(plain, upd)
    got = plain_vae.from_genjax(new.params["model"])
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert int(new.step) == 1
    assert float(metrics["loss"]) == pytest.approx(float(plain_vae.loss(plain, x.reshape(10, -1), eps)), rel=1e-5)


@pytest.mark.parametrize(
    "arch,likelihood,objective",
    [
        ("mlp", "bernoulli", "iwae"),
        ("conv", "gaussian", "elbo"),
        ("conv", "bernoulli", "elbo"),
    ],
)
def test_losses_and_protocol_functions(smoke_cfg, arch, likelihood, objective):
    cfg = smoke_cfg
    cfg.model.vae.arch, cfg.model.vae.likelihood, cfg.model.vae.objective = arch, likelihood, objective
    cfg.model.vae.channels = (4, 8)
    cfg.model.vae.learn_std = True
    fam = _family(cfg)
    params = fam.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (6, 8, 8, 1))
    if likelihood == "bernoulli":
        x = jnp.round(x)
    loss, m = jax.jit(fam.players[0].loss)(params, {"x": x}, jax.random.key(2), Context(0, fam.hparams))
    assert jnp.isfinite(loss) and all(jnp.isfinite(v) for v in m.values())
    lp = jax.jit(lambda p, x, k: fam.log_prob(p, x, k, k=40, chunk=8))(params, x, jax.random.key(3))
    el = jax.jit(fam.bound)(params, x, jax.random.key(3))
    assert lp.shape == el.shape == (6,)
    # log p estimate with 40 samples is (in expectation) above the one-sample ELBO
    assert float(jnp.mean(lp)) > float(jnp.mean(el)) - 1.0
    s = jax.jit(fam.sample, static_argnums=2)(params, jax.random.key(4), 5)
    assert s.shape == (5, 8, 8, 1) and jnp.all(jnp.isfinite(s))
    if likelihood == "bernoulli":
        assert set(np.unique(np.asarray(s))) <= {0.0, 1.0}
    assert fam.latent.reconstruct(params, x).shape == x.shape


def test_nll_chunking_is_checked(smoke_cfg):
    fam = _family(smoke_cfg)
    params = fam.init(jax.random.key(0))
    with pytest.raises(ValueError, match="multiple of model.vae.nll_chunk"):
        fam.log_prob(params, jnp.zeros((2, 8, 8, 1)), jax.random.key(0), k=30, chunk=7)


def test_kl_schedule_reaches_the_loss(smoke_cfg):
    smoke_cfg.model.vae.kl_schedule = "linear"
    smoke_cfg.model.vae.warmup_steps = 10
    fam = _family(smoke_cfg)
    params = fam.init(jax.random.key(0))
    x = jnp.ones((4, 8, 8, 1))
    loss = fam.players[0].loss
    betas = [
        float(loss(params, {"x": x}, jax.random.key(1), Context(jnp.array(t), {"beta": 2.0}))[1]["beta"])
        for t in (0, 5, 20)
    ]
    assert betas == [0.0, 1.0, 2.0]  # the hyperparameter beta times the warm-up shape
    smoke_cfg.model.vae.kl_schedule = "bogus"
    with pytest.raises(ValueError, match="model.vae.kl_schedule"):
        _family(smoke_cfg)
