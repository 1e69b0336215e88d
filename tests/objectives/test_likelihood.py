"""Conditional likelihoods p(y | x) against closed forms: the heteroscedastic Gaussian NLL and
its minimizer, Student-t against scipy, categorical NLL, and the focal loss's reduction to the
cross-entropy and its weighting of easy examples."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize, stats

from genjax.objectives.likelihood import categorical_nll, focal_loss, heteroscedastic_gaussian_nll, student_t_nll


def test_gaussian_nll_closed_form_and_floor():
    rng = np.random.default_rng(0)
    y, mean, log_var = rng.normal(size=(3, 5, 2))
    want = -np.sum(stats.norm.logpdf(y, mean, np.exp(0.5 * log_var)), axis=-1)
    got = heteroscedastic_gaussian_nll(y, mean, log_var)
    assert got.shape == (5,)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # the floor adds to the variance: var = exp(log_var) + min_var
    want_floor = -np.sum(stats.norm.logpdf(y, mean, np.sqrt(np.exp(log_var) + 0.3)), axis=-1)
    np.testing.assert_allclose(heteroscedastic_gaussian_nll(y, mean, log_var, min_var=0.3), want_floor, rtol=1e-5)
    # and bounds the NLL below where the residual is 0 and log_var -> -inf
    lowest = heteroscedastic_gaussian_nll(np.zeros((1, 1)), np.zeros((1, 1)), np.full((1, 1), -80.0), min_var=1e-2)
    np.testing.assert_allclose(lowest, 0.5 * (math.log(2 * math.pi) + math.log(1e-2)), rtol=1e-5)


def test_gaussian_nll_minimizer_is_the_squared_error():
    f = jax.jit(lambda lv, r: heteroscedastic_gaussian_nll(jnp.array([[r]]), jnp.zeros((1, 1)), jnp.array([[lv]]))[0])
    for r in (0.1, 0.7, 3.0):
        # the minimum is flat: in float32 its rounding (~1e-7 of the NLL) moves the argmin by ~1e-3
        # relative, so the search runs in float64 (jax 0.11's float32 missed rtol 1e-4, 0.10's met it)
        with jax.enable_x64(True):
            res = optimize.minimize_scalar(lambda lv: float(f(np.float64(lv), np.float64(r))), bounds=(-20, 20),
                                           method="bounded", options={"xatol": 1e-10})  # fmt: skip
        np.testing.assert_allclose(math.exp(res.x), r**2, rtol=1e-6)
        # and the gradient in log_var vanishes there
        g = jax.grad(f)(jnp.float32(math.log(r**2)), r)
        assert abs(float(g)) < 1e-5


def test_student_t_matches_scipy_and_tends_to_gaussian():
    rng = np.random.default_rng(1)
    y, loc, log_scale = rng.normal(size=(3, 6, 3))
    for df in (1.0, 3.5, 30.0):
        want = -np.sum(stats.t.logpdf(y, df, loc, np.exp(log_scale)), axis=-1)
        np.testing.assert_allclose(student_t_nll(y, loc, log_scale, df), want, rtol=1e-5)
    gauss = heteroscedastic_gaussian_nll(y, loc, 2 * log_scale)
    np.testing.assert_allclose(student_t_nll(y, loc, log_scale, 1e6), gauss, rtol=1e-3)


def test_categorical_nll_and_focal_loss():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(7, 4)) * 3
    y = rng.integers(0, 4, size=7)
    logp = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
    ce = -logp[np.arange(7), y]
    np.testing.assert_allclose(categorical_nll(logits, y), ce, rtol=1e-5)
    # gamma = 0 is the cross-entropy
    np.testing.assert_allclose(focal_loss(logits, y, gamma=0.0), ce, rtol=1e-5)
    # the formula: -(1 - p_t)^gamma log p_t, and per-class alpha
    p_t = np.exp(-ce)
    for gamma in (0.5, 2.0, 5.0):
        np.testing.assert_allclose(focal_loss(logits, y, gamma=gamma), (1 - p_t) ** gamma * ce, rtol=1e-4)
    alpha = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(focal_loss(logits, y, 2.0, alpha), alpha[y] * (1 - p_t) ** 2 * ce, rtol=1e-4)
    np.testing.assert_allclose(focal_loss(logits, y, 2.0, 0.25), 0.25 * (1 - p_t) ** 2 * ce, rtol=1e-4)


def test_focal_loss_down_weights_easy_examples():
    # two examples with p_t = 0.9 (easy) and 0.3 (hard): focal / CE = (1 - p_t)^gamma
    def logits_for(p):  # two classes, class 0 the target
        return [math.log(p), math.log(1 - p)]

    logits = np.array([logits_for(0.9), logits_for(0.3)])
    y = np.array([0, 0])
    ratio = np.asarray(focal_loss(logits, y, 2.0)) / np.asarray(categorical_nll(logits, y))
    np.testing.assert_allclose(ratio, [0.1**2, 0.7**2], rtol=1e-4)
    # the easy example's share of the total loss falls as gamma grows
    shares = [float(focal_loss(logits, y, g)[0] / focal_loss(logits, y, g).sum()) for g in (0.0, 1.0, 2.0, 5.0)]
    assert all(a > b for a, b in zip(shares, shares[1:]))
    # and its gradient is smaller than the cross-entropy's by more than (1 - p_t)^gamma alone would not explain:
    g_fl = jax.grad(lambda lg: focal_loss(lg, y, 2.0)[0])(jnp.asarray(logits))
    g_ce = jax.grad(lambda lg: categorical_nll(lg, y)[0])(jnp.asarray(logits))
    assert float(jnp.abs(g_fl[0]).sum()) < 0.05 * float(jnp.abs(g_ce[0]).sum())
