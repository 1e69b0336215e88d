"""Flow matching and the ODE solvers against closed forms: Gaussian data, whose paths' marginals
and marginal velocities are known exactly; the minibatch OT coupling against brute force."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.objectives import flow_matching as fm
from genjax.objectives import ode
from genjax.objectives import samplers as smp
from genjax.objectives import score as sc

PATHS = {
    "ot": fm.Path("ot", 0.05),
    "rectified": fm.Path("ot", 0.0),
    "vp": fm.Path("vp", process=sc.Process("vp", "linear", 0.1, 20.0)),
    "cosine": fm.Path("vp", process=sc.Process("vp", "cosine")),
    "ve": fm.Path("ve", process=sc.Process("ve", sigma_min=0.01, sigma_max=10.0)),
}
M = np.array([1.0, -2.0])
S = np.array([[2.0, 0.6], [0.6, 0.5]])  # the data N(M, S), correlated


def marginal(path, t):
    """The path's marginal N(a M, a^2 S + s^2 I) at time t (float64)."""
    a, s = (float(u) for u in path.coeffs(t))
    return a * M, a * a * S + s * s * np.eye(2)


def exact_velocity(path):
    """v(x, t) = E[a' x0 + s' eps | x_t] = a' M + (a a' S + s s' I)(a^2 S + s^2 I)^-1 (x - a M):
    x0 and x_t are jointly Gaussian."""

    def v(x, t):
        a, s = path.coeffs(t)
        da, ds = path.rates(t)
        cov = a * a * S + s * s * jnp.eye(2)
        cross = a * da * S + s * ds * jnp.eye(2)
        return da * M + (x - a * M) @ jnp.linalg.solve(cov, cross).T

    return v


@pytest.mark.parametrize("name", list(PATHS))
def test_target_is_the_time_derivative_of_the_path(name):
    path = PATHS[name]
    x = jax.random.normal(jax.random.key(0), (5, 3))
    eps = jax.random.normal(jax.random.key(1), (5, 3))
    t = jnp.array([0.1, 0.3, 0.5, 0.7, 0.9])
    h = 1e-3
    fd = (fm.interpolate(path, x, eps, t + h) - fm.interpolate(path, x, eps, t - h)) / (2 * h)
    np.testing.assert_allclose(fm.target(path, x, eps, t), fd, rtol=2e-3, atol=2e-3)
    # the interpolant itself: a x + s eps with the path's coefficients
    a, s = path.coeffs(t)
    np.testing.assert_allclose(fm.interpolate(path, x, eps, t), a[:, None] * x + s[:, None] * eps, rtol=1e-6)


def test_ot_path_coefficients_are_lipmans():
    """a(t) = 1 - t, s(t) = sigma_min + (1 - sigma_min) t; the data end keeps sigma_min of noise."""
    a, s = fm.Path("ot", 0.05).coeffs(jnp.array([0.0, 0.25, 1.0]))
    np.testing.assert_allclose(a, [1.0, 0.75, 0.0], atol=1e-7)
    np.testing.assert_allclose(s, [0.05, 0.05 + 0.95 * 0.25, 1.0], atol=1e-7)
    x, eps = jnp.ones((1, 2)), jnp.full((1, 2), 3.0)
    np.testing.assert_allclose(fm.target(fm.Path("ot", 0.05), x, eps, jnp.array([0.4])), [[-1 + 0.95 * 3] * 2])


@pytest.mark.parametrize("name", list(PATHS))
def test_exact_velocity_carries_one_gaussian_onto_the_other(name):
    """The ODE of the exact marginal velocity, from the marginal at t = 1 to the data end, lands on
    the marginal there: the flow of an affine field is affine, so it is read off from the images
    of 0 and the basis, and its mean and covariance compared with the closed form."""
    path = PATHS[name]
    t_lo = 0.0 if path.kind == "ot" else 1e-3
    m1, c1 = marginal(path, 1.0)
    m0, c0 = marginal(path, t_lo)
    L = np.linalg.cholesky(c1)
    z = jnp.asarray(np.stack([m1, m1 + L[:, 0], m1 + L[:, 1]]), jnp.float32)
    times = np.concatenate([np.linspace(1.0, 0.02, 200), np.geomspace(0.02, t_lo, 200)[1:]]) if t_lo else None
    times = jnp.linspace(1.0, 0.0, 201) if times is None else times
    out = np.asarray(ode.solve(exact_velocity(path), z, times, "rk4"), np.float64)
    A = np.stack([out[1] - out[0], out[2] - out[0]], 1)
    np.testing.assert_allclose(out[0], m0, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(A @ A.T, c0, rtol=5e-3, atol=5e-4)


@pytest.mark.parametrize("name", ["ot", "rectified", "vp"])
def test_ode_log_likelihood_equals_the_gaussian_closed_form(name):
    path = PATHS[name]
    t_lo = 0.0 if path.kind == "ot" else 1e-2
    m0, c0 = marginal(path, t_lo)
    m1, c1 = marginal(path, 1.0)
    x = jnp.asarray(m0 + np.array([[0.0, 0.0], [1.0, -0.5], [-2.0, 1.0]]), jnp.float32)
    times = jnp.linspace(t_lo, 1.0, 201)
    prior = lambda y: jax.scipy.stats.multivariate_normal.logpdf(y, jnp.asarray(m1), jnp.asarray(c1))
    lp = ode.log_prob(exact_velocity(path), x, jax.random.key(0), times, prior, "exact")
    want = [jax.scipy.stats.multivariate_normal.logpdf(np.asarray(r, np.float64), m0, c0) for r in x]
    np.testing.assert_allclose(lp, want, atol=2e-3)


@pytest.mark.parametrize("name", ["vp", "cosine", "ve"])
def test_a_noise_predictor_defines_the_probability_flow_velocity(name):
    """velocity_from_eps with the exact eps_hat = s (a^2 S + s^2 I)^-1 (x - a M) is the exact
    marginal velocity, and equals the diffusion family's probability-flow drift."""
    path = PATHS[name]

    def eps_exact(x, t):
        a, s = path.coeffs(t)
        a, s = a.reshape(-1, 1), s.reshape(-1, 1)
        return jax.vmap(lambda xi, ai, si: si * jnp.linalg.solve(ai**2 * S + si**2 * jnp.eye(2), xi - ai * M))(
            x, a[:, 0], s[:, 0]
        )

    x = jax.random.normal(jax.random.key(2), (4, 2)) * 2
    for t in (0.05, 0.4, 0.9):
        v = fm.velocity_from_eps(path, x, eps_exact(x, jnp.full(4, t)), t)
        np.testing.assert_allclose(v, exact_velocity(path)(x, t), rtol=2e-4, atol=2e-4)
        drift = smp.ode_drift(eps_exact, path.process)(x, t)
        np.testing.assert_allclose(v, drift, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("method,order", [("euler", 1), ("heun", 2), ("rk4", 4)])
def test_solvers_converge_at_their_order(method, order):
    """dx/dt = -x t + sin t from x(0) = 1 to t = 2: halving the step divides the error by 2^order."""
    fn = lambda x, t: -x * t + jnp.sin(t)
    with jax.enable_x64(True):
        from scipy.integrate import solve_ivp

        ref = solve_ivp(lambda t, x: -x * t + np.sin(t), (0, 2), [1.0], rtol=1e-13, atol=1e-13).y[0, -1]
        errs = [abs(float(ode.solve(fn, jnp.ones(()), jnp.linspace(0.0, 2.0, n + 1), method)) - ref) for n in (8, 16)]
    ratio = errs[0] / errs[1]
    assert 2**order * 0.8 < ratio < 2**order * 1.25, (errs, ratio)
    assert ode.evaluations(method, 10) == {1: 10, 2: 20, 4: 40}[order]



@pytest.mark.parametrize("method", ode.METHODS)
def test_a_solver_step_traces_the_velocity_once_and_keeps_its_values(method):
    """Each stage calls one jit of the velocity, so a network is traced once per step however
    many stages the method has (compile time), with the same values as calling it directly."""
    calls = []

    def fn(x, t):
        calls.append(t)
        return -x * t + jnp.sin(t)

    x, times = jnp.linspace(-1.0, 1.0, 5), jnp.linspace(0.0, 1.0, 4)
    got = jax.jit(lambda y: ode.solve(fn, y, times, method))(x)
    assert len(calls) == 1
    h, y = times[1] - times[0], x
    for t in times[:-1]:
        f = lambda z, s: -z * s + jnp.sin(s)  # noqa: E731
        if method == "euler":
            y = y + h * f(y, t)
        elif method == "heun":
            k1 = f(y, t)
            y = y + 0.5 * h * (k1 + f(y + h * k1, t + h))
        else:
            k1 = f(y, t)
            k2 = f(y + 0.5 * h * k1, t + 0.5 * h)
            k3 = f(y + 0.5 * h * k2, t + 0.5 * h)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + f(y + h * k3, t + h))
    np.testing.assert_allclose(got, y, rtol=1e-6, atol=1e-6)

def test_minibatch_ot_coupling_is_the_brute_force_minimum():
    for seed in range(4):
        x = jax.random.normal(jax.random.key(seed), (6, 3))
        z = jax.random.normal(jax.random.key(100 + seed), (6, 3))
        perm = np.asarray(jax.jit(fm.ot_pairing)(x, z))
        cost = lambda p: float(np.sum((np.asarray(x) - np.asarray(z)[list(p)]) ** 2))
        best = min(itertools.permutations(range(6)), key=cost)
        assert sorted(perm) == list(range(6))
        assert cost(perm) == pytest.approx(cost(best), rel=1e-6)
        assert cost(perm) <= cost(range(6))
    # vmapped (folds trained at once): each member solves its own assignment
    xs = jax.random.normal(jax.random.key(7), (3, 5, 2))
    zs = jax.random.normal(jax.random.key(8), (3, 5, 2))
    perms = jax.jit(jax.vmap(fm.ot_pairing))(xs, zs)
    for i in range(3):
        np.testing.assert_array_equal(perms[i], fm.ot_pairing(xs[i], zs[i]))


def test_straightness_is_zero_for_straight_paths_and_positive_for_curved_ones():
    x1 = jax.random.normal(jax.random.key(0), (8, 2))
    times = jnp.linspace(1.0, 0.0, 33)
    straight = fm.straightness(lambda x, t: jnp.ones_like(x) * jnp.array([1.0, -2.0]), x1, times)
    np.testing.assert_allclose(straight, 0.0, atol=1e-10)
    rot = lambda x, t: jnp.stack([-x[:, 1], x[:, 0]], 1)  # circles: a constant speed, a turning direction
    curved = fm.straightness(rot, x1, times)
    # a uniform turn through 1 radian: S is the variance of v along the path,
    # r^2 (1 - |int_0^1 e^(i theta) d theta|^2) = r^2 (1 - 2 (1 - cos 1))
    want = np.asarray(jnp.sum(x1**2, 1)) * (1 - 2 * (1 - math.cos(1.0)))
    np.testing.assert_allclose(curved, want, rtol=0.05)
