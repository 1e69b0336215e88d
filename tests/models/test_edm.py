"""The EDM family through the protocol: the preconditioned loss, Heun / Euler sampling, the ODE
likelihood, guidance, bad fields."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.config import base_config
from genjax.models import Context, DataInfo, build_family
from genjax.objectives import edm

TOY = DataInfo((2,), max_norm=4.0, levels=0)
DIGITS = DataInfo((8, 8, 1), "-11", 10, 17, max_norm=8.0)


def _cfg(**kw):
    c = base_config()
    c.model.family = "edm"
    d = c.model.edm
    d.hidden, d.channels, d.groups = (16, 16), (8, 16), 4
    d.ode_steps, d.val_ode_steps, d.sample_steps = 4, 2, 3
    for k, v in kw.items():
        d[k] = v
    return c


def _loss(fam, params, batch, key=2):
    return fam.players[0].loss(params, batch, jax.random.key(key), Context(jnp.int32(0), {}))


def test_the_loss_is_the_weighted_denoising_error_of_the_preconditioned_denoiser():
    """F = 0 (every weight 0): D = c_skip x, so the loss is E lambda ||c_skip (y + sigma n) - y||^2
    with ln sigma ~ N(P_mean, P_std^2) as drawn."""
    fam = build_family(_cfg(sigma_data=0.8, p_mean=-0.5, p_std=1.5), TOY)
    params = jax.tree.map(jnp.zeros_like, fam.init(jax.random.key(0)))
    y = jax.random.normal(jax.random.key(1), (16, 2))
    loss, _ = _loss(fam, params, {"x": y}, key=3)
    k_s, k_n, _ = jax.random.split(jax.random.key(3), 3)
    sigma = jnp.exp(-0.5 + 1.5 * jax.random.normal(k_s, (16,)))
    n = jax.random.normal(k_n, y.shape)
    c_skip = 0.64 / (sigma**2 + 0.64)
    lam = (sigma**2 + 0.64) / (sigma * 0.8) ** 2
    want = jnp.mean(lam * jnp.sum((c_skip[:, None] * (y + sigma[:, None] * n) - y) ** 2, 1))
    assert float(loss) == pytest.approx(float(want), rel=1e-5)
    loss, g = jax.value_and_grad(lambda p: _loss(fam, p, {"x": y})[0])(fam.init(jax.random.key(0)))
    assert np.isfinite(float(loss)) and all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(g))


def test_samplers_reproduce_and_report_their_evaluations():
    fam = build_family(_cfg(), TOY)
    params = fam.init(jax.random.key(0))
    assert fam.info["nfe"] == 5 and set(fam.samplers) == {"euler"}  # Heun: 2 N - 1 with N = 3
    assert build_family(_cfg(sampler="euler"), TOY).info["nfe"] == 3
    for draw in (fam.sample, fam.samplers["euler"]):
        s = jax.jit(draw, static_argnums=2)
        a, b = s(params, jax.random.key(4), 6), s(params, jax.random.key(4), 6)
        assert a.shape == (6, 2) and np.all(np.isfinite(np.asarray(a)))
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = jax.random.normal(jax.random.key(1), (8, 2))
    for fn in (fam.log_prob, fam.val_log_prob):
        v = jax.jit(fn)(params, x, jax.random.key(3))
        assert v.shape == (8,) and np.all(np.isfinite(np.asarray(v)))


def test_the_family_samples_with_the_preconditioned_denoiser():
    """F = 0: D = c_skip x, so sampling is the flow of that denoiser; ``edm.sample`` with the same
    D and key reproduces the family's draw."""
    fam = build_family(_cfg(sample_steps=4, ema=0.0), TOY)
    params = jax.tree.map(jnp.zeros_like, fam.init(jax.random.key(0)))
    got = fam.sample(params, jax.random.key(7), 5)
    d = lambda x, s: (0.25 / (s**2 + 0.25))[:, None] * x
    want = edm.sample(d, jax.random.split(jax.random.key(7))[1], (5, 2), edm.sigma_steps(4, 0.002, 80.0, 7.0))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # its likelihood: for D = c_skip x the flow is x(sigma) ~ sqrt(sigma^2 + sigma_d^2), so it
    # carries N(0, sigma_max^2 I) to N(0, v I) at sigma_min with v = sigma_max^2 (sigma_min^2 +
    # sigma_d^2) / (sigma_max^2 + sigma_d^2)
    fam = build_family(_cfg(sample_steps=4, ema=0.0, ode_steps=64), TOY)
    x = jnp.array([[0.0, 0.0], [1.0, -2.0]])
    v = 80.0**2 * (0.002**2 + 0.25) / (80.0**2 + 0.25)
    want = -jnp.sum(x**2, 1) / (2 * v) - math.log(2 * math.pi * v)
    np.testing.assert_allclose(fam.log_prob(params, x, jax.random.key(0)), want, rtol=1e-4)


def test_images_and_guidance():
    fam = build_family(_cfg(arch="mlp", conditional=True, guidance=2.0), DIGITS)
    params = fam.init(jax.random.key(0))
    a = fam.sample(params, jax.random.key(5), 4, cond=jnp.zeros(4, jnp.int32))
    b = fam.sample(params, jax.random.key(5), 4, cond=jnp.full(4, 7, jnp.int32))
    assert not np.allclose(np.asarray(a), np.asarray(b)) and float(jnp.max(jnp.abs(a))) <= 1.0
    assert fam.info["nfe"] == 10  # guidance: two evaluations each
    assert np.isfinite(float(_loss(fam, params, {"x": jnp.zeros((4, 8, 8, 1)), "y": jnp.arange(4)})[0]))


@pytest.mark.parametrize("field,value", [("sigma_min", 100.0), ("sampler", "dpm"), ("sample_steps", 0),
                                         ("sigma_max", 1.0), ("sigma_data", 0.0)])  # fmt: skip
def test_bad_fields_are_refused_in_one_sentence(field, value):
    with pytest.raises(ValueError, match=f"model.edm.{field}"):
        build_family(_cfg(**{field: value}), TOY)
