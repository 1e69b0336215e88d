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


def _linear_gaussian_vae(smoke_cfg, exact_posterior: bool = True):
    """The VAE family with a linear decoder x = W z + b + sigma eps (W with orthogonal columns)
    and a linear encoder set to the exact posterior N(S W^T (x - b) / sigma^2, S),
    S = (I + W^T W / sigma^2)^-1 (diagonal), or a perturbed one. Returns the family, its params
    and log p(x) = log N(x; b, W W^T + sigma^2 I) as a function."""
    from flax import nnx
    from scipy.stats import multivariate_normal

    D, K, sigma = 5, 2, 0.7
    c = smoke_cfg.model.vae
    c.hidden, c.latent_dim, c.likelihood, c.gaussian_std, c.learn_std = (), K, "gaussian", sigma, False
    fam = build_family(smoke_cfg, (D,))
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(D, K)))
    W, b = q * np.array([1.5, 0.6]), rng.normal(size=D)
    S = 1.0 / (1.0 + np.sum(W**2, 0) / sigma**2)  # diagonal posterior covariance
    A = W * S / sigma**2  # [D, K]: posterior mean = (x - b) @ A
    if not exact_posterior:
        A, S = A * 1.2, S * 1.8  # over-dispersed: importance weights with light tails
    m = fam.modules(fam.init(jax.random.key(0)))
    enc, dec = m.encoder.mlp.layers[0], m.decoder.mlp.layers[0]
    enc.kernel[...] = jnp.asarray(np.concatenate([A, np.zeros((D, K))], 1), jnp.float32)
    enc.bias[...] = jnp.asarray(np.concatenate([-b @ A, np.log(S)]), jnp.float32)
    dec.kernel[...], dec.bias[...] = jnp.asarray(W.T, jnp.float32), jnp.asarray(b, jnp.float32)
    params = {"model": nnx.split(m)[1]}
    exact = multivariate_normal(b, W @ W.T + sigma**2 * np.eye(D)).logpdf
    return fam, params, exact, rng.normal(size=(6, D)) * 1.5 + b


def test_the_vae_likelihood_figures_against_the_linear_gaussian_closed_form(smoke_cfg):
    """What eval.json reports for a VAE (the importance-sampled NLL, the ELBO) and what the
    ELBO / IWAE losses train on, against log p(x) in closed form: with the exact posterior every
    importance weight equals p(x), so each is exact whatever k, the chunk size or the key."""
    fam, params, exact, x = _linear_gaussian_vae(smoke_cfg)
    want = exact(x)
    xj = jnp.asarray(x, jnp.float32)
    for k, chunk in [(1, 1), (20, 10), (20, 20), (60, 4)]:
        got = jax.jit(lambda p, x, k=k, chunk=chunk: fam.log_prob(p, x, jax.random.key(k), k=k, chunk=chunk))(
            params, xj
        )
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(fam.bound(params, xj, jax.random.key(1)), want, rtol=2e-5, atol=2e-5)
    # the IWAE loss is -mean L_k, exact here; the ELBO loss (analytic KL, one z per example) is
    # -log p(x) only in expectation: averaged over 20,000 copies of one x
    iwae_cfg = smoke_cfg
    iwae_cfg.model.vae.objective, iwae_cfg.model.vae.k = "iwae", 5
    fam_i, _, _, _ = _linear_gaussian_vae(iwae_cfg)
    ctx = Context(jnp.asarray(10**6), {"beta": jnp.asarray(1.0)})
    loss_i, _ = fam_i.players[0].loss(params, {"x": xj}, jax.random.key(2), ctx)
    np.testing.assert_allclose(loss_i, -want.mean(), rtol=2e-5)
    iwae_cfg.model.vae.objective, iwae_cfg.model.vae.kl_schedule = "elbo", "constant"
    fam_e, _, _, _ = _linear_gaussian_vae(iwae_cfg)
    many = jnp.repeat(xj[:1], 20_000, axis=0)
    loss_e, m = fam_e.players[0].loss(params, {"x": many}, jax.random.key(3), ctx)
    assert float(loss_e) == pytest.approx(-want[0], abs=0.02)
    assert float(m["elbo"]) == pytest.approx(want[0], abs=0.02)


def test_the_vae_nll_estimate_with_an_inexact_posterior(smoke_cfg):
    """With a wrong posterior, ELBO < L_k < log p(x) and L_k climbs to log p(x) with k; the
    estimate does not depend on the chunk size beyond Monte Carlo error."""
    fam, params, exact, x = _linear_gaussian_vae(smoke_cfg, exact_posterior=False)
    xj, want = jnp.asarray(x, jnp.float32), exact(x)
    lp = jax.jit(lambda p, x, key, k, chunk: fam.log_prob(p, x, key, k=k, chunk=chunk), static_argnums=(3, 4))
    elbo = np.mean([fam.bound(params, xj, jax.random.key(s)) for s in range(200)], 0)
    l10s = np.stack([lp(params, xj, jax.random.key(s), 10, 10) for s in range(400)])
    l10, se = l10s.mean(0), l10s.std(0) / np.sqrt(len(l10s))
    l4000_a = lp(params, xj, jax.random.key(7), 4000, 100)
    l4000_b = lp(params, xj, jax.random.key(8), 4000, 1000)
    assert np.all(elbo < l10 - 0.01) and np.all(l10 < want + 3 * se)
    np.testing.assert_allclose(l4000_a, want, atol=0.03)
    np.testing.assert_allclose(l4000_a, l4000_b, atol=0.03)
    assert np.all(want - l4000_a < want - l10)
