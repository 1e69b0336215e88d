"""The consistency family: the boundary condition, the iCT loss against its formula, one- and
two-step sampling, the curriculum through ctx.step, bad fields."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.config import base_config
from genjax.models import Context, DataInfo, build_family
from genjax.objectives import edm

TOY = DataInfo((2,), max_norm=4.0, levels=0)


def _cfg(**kw):
    c = base_config()
    c.model.family = "consistency"
    d = c.model.consistency
    d.hidden = (16, 16)
    d.curriculum_steps = 80
    for k, v in kw.items():
        d[k] = v
    return c


def test_the_boundary_condition_holds_for_any_weights():
    """f(x, sigma_min) = x exactly, whatever the network: c_skip = 1 and c_out = 0 there. The
    two-step sampler's last call at a level just above sigma_min returns nearly its input."""
    fam = build_family(_cfg(mid_sigmas=(0.0020001,), sigma_max=80.0), TOY)
    params = fam.init(jax.random.key(0))
    c_skip, c_out = edm.consistency_coeffs(jnp.float32(0.002), 0.5, 0.002)
    assert float(c_skip) == 1.0 and float(c_out) == 0.0
    # one step vs two: the second adds sqrt(s^2 - s_min^2) z (about 2e-5) and applies f at ~sigma_min
    one = build_family(_cfg(sigma_max=80.0), TOY).sample(params, jax.random.key(3), 8)
    two = fam.sample(params, jax.random.key(3), 8)
    np.testing.assert_allclose(two, one, atol=2e-4)


def test_the_ict_loss_is_the_pseudo_huber_gap_over_the_level_gap():
    fam = build_family(_cfg(ema=0.0), TOY)
    params = fam.init(jax.random.key(0))
    y = jax.random.normal(jax.random.key(1), (16, 2))
    step = 25  # K = 80, s0 = 10, s1 = 1280: K' = 10, so N = min(10 * 2^2, 1280) + 1 = 41
    loss, metrics = fam.players[0].loss(params, {"x": y}, jax.random.key(2), Context(jnp.int32(step), {}))
    assert float(metrics["levels"]) == 41
    # the same loss by hand from the family's own f at the drawn levels
    k_i, k_n = jax.random.split(jax.random.key(2))
    sig = edm.ict_sigmas(jnp.int32(41), 0.002, 80.0, 7.0, 1281)
    probs = np.asarray(edm.ict_level_probs(sig, jnp.int32(41), -1.1, 2.0), np.float64)
    u = np.asarray(jax.random.uniform(k_i, (16,)), np.float64)
    i = jnp.asarray([min(int(np.sum(np.cumsum(probs) <= v)), 39) for v in u])  # inverse CDF by hand
    assert int(jnp.max(i)) < 40 and len(set(np.asarray(i).tolist())) > 3
    z = jax.random.normal(k_n, y.shape)
    net = fam.modules(params)

    def f(x, s):
        c_skip = 0.25 / ((s - 0.002) ** 2 + 0.25)
        c_out = 0.5 * (s - 0.002) / jnp.sqrt(0.25 + s**2)
        t = (jnp.log(s) - math.log(0.002)) / (math.log(80.0) - math.log(0.002))
        return c_skip[:, None] * x + c_out[:, None] * net(x / jnp.sqrt(s**2 + 0.25)[:, None], t)

    a, b = sig[i + 1], sig[i]
    d = jnp.sum((f(y + a[:, None] * z, a) - f(y + b[:, None] * z, b)) ** 2, 1)
    c = 0.00054 * math.sqrt(2)
    want = jnp.mean((jnp.sqrt(d + c * c) - c) / (a - b))
    assert float(loss) == pytest.approx(float(want), rel=1e-4)
    # the target is not differentiated: the gradient is that of the upper level's f alone
    g = jax.grad(lambda p: fam.players[0].loss(p, {"x": y}, jax.random.key(2), Context(jnp.int32(step), {}))[0])(params)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(g))


def test_one_and_two_step_sampling_reproduce_and_count_their_evaluations():
    for mids, nfe in (((), 1), ((0.8,), 2), ((2.0, 0.5), 3)):
        fam = build_family(_cfg(mid_sigmas=mids), TOY)
        params = fam.init(jax.random.key(0))
        s = jax.jit(fam.sample, static_argnums=2)
        a, b = s(params, jax.random.key(4), 6), s(params, jax.random.key(4), 6)
        assert a.shape == (6, 2) and fam.info["nfe"] == nfe and fam.log_prob is None
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("field,value", [("s1", 100), ("mid_sigmas", (0.5, 2.0)), ("mid_sigmas", (90.0,)),
                                         ("sigma_min", 100.0), ("arch", "unet")])  # fmt: skip
def test_bad_fields_are_refused_in_one_sentence(field, value):
    with pytest.raises(ValueError, match=f"model.consistency.{field}"):
        build_family(_cfg(**{field: value}), TOY)
