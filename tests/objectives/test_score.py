"""Score matching, the DDPM bound, the samplers and the probability-flow likelihood against
closed forms: Gaussian data, whose perturbed marginals and scores are known exactly."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.stats import norm

from genjax.data.toy2d import mixture_modes
from genjax.objectives import samplers as smp
from genjax.objectives import score as sc

VP = sc.Process("vp", "linear", 0.1, 20.0)
VE = sc.Process("ve", sigma_min=0.01, sigma_max=10.0)
COS = sc.Process("vp", "cosine")


def gaussian_eps(process, mu, var):
    """The exact noise predictor for data N(mu, var I): the marginal at t is
    N(a mu, a^2 var + s^2), so eps = -s score = s (x - a mu) / (a^2 var + s^2)."""

    def eps(x, t):
        a, s = process.coeffs(t)
        a, s = sc._bcast(a, x), sc._bcast(s, x)
        return s * (x - a * mu) / (a**2 * var + s**2)

    return eps


@pytest.mark.parametrize("process", [VP, VE, COS], ids=["vp", "ve", "cosine"])
def test_closed_form_marginal_matches_the_iterated_forward_chain(process):
    T, x0, n = 40, 1.5, 200_000
    a, s = process.ladder(T)
    x = jnp.full((n, 1), x0)
    mean, var = x0, 0.0  # exact propagation of the chain's moments
    for i in range(1, T + 1):
        a_ts, v_ts = sc.transition(a[i - 1], s[i - 1], a[i], s[i])
        x = a_ts * x + jnp.sqrt(v_ts) * jax.random.normal(jax.random.key(i), x.shape)
        mean, var = a_ts * mean, a_ts**2 * var + v_ts
        if i in (1, T // 2, T):
            assert float(mean) == pytest.approx(float(a[i] * x0), rel=1e-4, abs=1e-6)
            assert float(var) == pytest.approx(float(s[i] ** 2), rel=1e-4)
            sd = float(s[i])
            assert float(jnp.mean(x)) == pytest.approx(float(a[i]) * x0, abs=4 * sd / math.sqrt(n) + 1e-6)
            assert float(jnp.std(x)) == pytest.approx(sd, rel=0.01)


def test_linear_vp_on_a_1000_step_grid_is_ddpm_linear_schedule():
    a, _ = VP.ladder(1000)
    alpha_bar = np.asarray(a, np.float64) ** 2
    beta = 1 - alpha_bar[1:] / alpha_bar[:-1]
    ho = np.linspace(1e-4, 0.02, 1000)  # Ho et al. (2020)
    np.testing.assert_allclose(beta, ho, rtol=0.02, atol=1.5e-5)  # beta_i ~ beta(t_i - 1/2T) / T
    # the SDE coefficients of VP: f = -beta(t) / 2, g^2 = beta(t)
    f, g2 = VP.sde(jnp.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(np.asarray(g2), [0.1, 10.05, 20.0], rtol=1e-4)
    np.testing.assert_allclose(np.asarray(f), -0.5 * np.asarray(g2), rtol=1e-4)
    f, g2 = VE.sde(jnp.array(0.3))  # VE: f = 0, g^2 = d sigma^2 / dt = 2 sigma^2 ln(sigma_max / sigma_min)
    assert float(f) == 0.0
    assert float(g2) == pytest.approx(2 * (0.01 * 1000**0.3) ** 2 * math.log(1000), rel=1e-4)


def _fit_linear(loss_fn, n_params, steps=1500):
    opt = optax.adam(optax.cosine_decay_schedule(0.05, steps))  # decays to 0: no end-of-run jitter
    p = jnp.zeros(n_params)

    def step(carry, k):
        p, o = carry
        g = jax.grad(loss_fn)(p, k)
        u, o = opt.update(g, o)
        return (optax.apply_updates(p, u), o), None

    (p, _), _ = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), jax.random.split(jax.random.key(0), steps)))(p)
    return p


def test_dsm_on_gaussian_data_recovers_the_analytic_score():
    mu, var = jnp.array([1.0, -2.0]), jnp.array([0.5, 2.0])
    sigmas = jnp.array([0.1, 0.5, 1.5])

    def data(k):
        return mu + jnp.sqrt(var) * jax.random.normal(k, (1024, 2))

    # one level (Vincent 2011): s(x) = w * x + b, diagonal; optimum -(x - mu) / (var + sigma^2)
    def single(p, k):
        k1, k2 = jax.random.split(k)
        return jnp.mean(sc.dsm(lambda x: p[:2] * x + p[2:], data(k1), k2, 0.5))

    p = _fit_linear(single, 4)
    np.testing.assert_allclose(p[:2], -1 / (var + 0.25), rtol=0.05)
    np.testing.assert_allclose(p[2:], mu / (var + 0.25), rtol=0.05, atol=0.02)

    # the NCSN ladder with lambda = sigma^2: one linear score per level
    def ladder(p, k):
        k1, k2 = jax.random.split(k)
        w, b = p[:6].reshape(3, 2), p[6:].reshape(3, 2)
        return jnp.mean(sc.dsm_ladder(lambda x, i: w[i] * x + b[i], data(k1), k2, sigmas))

    p = _fit_linear(ladder, 12, 3000)
    np.testing.assert_allclose(p[:6].reshape(3, 2), -1 / (var + sigmas[:, None] ** 2), rtol=0.06)


def test_sliced_score_matching_equals_exact_score_matching_in_expectation():
    rng = np.random.default_rng(0)
    m = jnp.asarray(rng.normal(size=3), jnp.float32)
    q = rng.normal(size=(3, 3))
    lam = jnp.asarray(q @ q.T + np.eye(3), jnp.float32)  # a Gaussian model's precision
    score = lambda x: -(x - m) @ lam  # symmetric: -(Lambda (x - m))
    x = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    closed = -jnp.trace(lam) + 0.5 * jnp.sum(((x - m) @ lam) ** 2, -1)
    np.testing.assert_allclose(sc.exact_score_matching(score, x), closed, rtol=1e-5)
    for dist in ("gaussian", "rademacher"):
        for vr in (True, False):
            ssm = sc.sliced_score_matching(score, x, jax.random.key(1), 40_000, dist, vr)
            scale = float(jnp.max(jnp.abs(closed)))
            np.testing.assert_allclose(ssm, closed, atol=0.04 * scale, err_msg=f"{dist} vr={vr}")


@pytest.mark.parametrize("beta_max", [20.0, 3.0])  # 3: x_T keeps some signal, the prior term counts
def test_ddpm_bound_terms_sum_to_the_hand_computed_value(beta_max):
    """A model whose x0 prediction is known: eps(x_t, t) = (x_t - a_t x0) / s_t + d(t), so
    x0_hat = x0 - s_t d(t) / a_t whatever x_t. The bound is then recomputed with Ho et al.'s own
    formulas (eq. 7, 11, 13) in numpy."""
    T, levels = 4, 17
    x0 = np.array([[-1.0, -0.375, 0.5, 1.0]], np.float32)  # on the 17-level grid, both edges included
    d = lambda t: 0.1 + 0.2 * t
    vp = sc.Process("vp", "linear", 0.1, beta_max)

    def eps_fn(x, t):
        a, s = vp.coeffs(t)
        a, s = sc._bcast(a, x), sc._bcast(s, x)
        return (x - a * x0) / s + sc._bcast(d(t), x)

    dec = sc.Decoder(levels, -1.0, 1.0)
    got = float(jax.jit(lambda k: sc.vlb(eps_fn, jnp.asarray(x0), k, vp, T, dec))(jax.random.key(0))[0])

    t = np.arange(T + 1) / T
    abar = np.exp(-(0.1 * t + 0.5 * (beta_max - 0.1) * t**2))
    beta = np.r_[0.0, 1 - abar[1:] / abar[:-1]]
    x = x0[0].astype(np.float64)
    prior = 0.5 * np.sum(abar[T] * x**2 + (1 - abar[T]) - 1 - np.log(1 - abar[T]))
    kl = 0.0
    for i in range(2, T + 1):
        xt = np.sqrt(abar[i]) * x + np.sqrt(1 - abar[i]) * 0.7  # any x_t
        eps_hat = (xt - np.sqrt(abar[i]) * x) / np.sqrt(1 - abar[i]) + d(t[i])
        mu_theta = (xt - beta[i] / np.sqrt(1 - abar[i]) * eps_hat) / np.sqrt(1 - beta[i])  # eq. 11
        mu_q = (np.sqrt(abar[i - 1]) * beta[i] * x + np.sqrt(1 - beta[i]) * (1 - abar[i - 1]) * xt) / (1 - abar[i])
        var = (1 - abar[i - 1]) / (1 - abar[i]) * beta[i]
        kl += np.sum((mu_q - mu_theta) ** 2) / (2 * var)
    x1 = np.sqrt(abar[1]) * x - 0.3
    eps_hat = (x1 - np.sqrt(abar[1]) * x) / np.sqrt(1 - abar[1]) + d(t[1])
    mean = (x1 - beta[1] / np.sqrt(1 - abar[1]) * eps_hat) / np.sqrt(1 - beta[1])
    sd, h = np.sqrt(beta[1]), 1 / (levels - 1)
    upper = np.where(x >= 1 - 1e-6, 1.0, norm.cdf((x + h - mean) / sd))
    lower = np.where(x <= -1 + 1e-6, 0.0, norm.cdf((x - h - mean) / sd))
    decoder = -np.sum(np.log(upper - lower))
    assert got == pytest.approx(-(prior + kl + decoder), rel=1e-4)
    # the one-term estimate is unbiased: its mean over keys is the full bound (here every term is
    # deterministic, so each draw (T - 1) L_(i-1) averages to the sum)
    est = jax.jit(jax.vmap(lambda k: sc.vlb_estimate(eps_fn, jnp.asarray(x0), k, vp, T, dec)))(
        jax.random.split(jax.random.key(1), 2000)
    )
    assert float(jnp.mean(est)) == pytest.approx(got, rel=0.02)


def test_discretized_gaussian_is_a_distribution_over_the_levels():
    mass = jax.jit(
        lambda grid, mean, sd, h, lo, hi: jnp.sum(jnp.exp(sc.discretized_gaussian_log_prob(grid, mean, sd, h, lo, hi)))
    )
    for levels, lo, hi in ((17, -1.0, 1.0), (256, 0.0, 1.0), (2, 0.0, 1.0)):
        grid = jnp.linspace(lo, hi, levels)[:, None]
        for mean, sd in ((0.3, 0.05), (hi + 0.5, 0.2), (lo - 3.0, 0.01), (0.0, 3.0)):
            m = mass(grid, mean, sd, 0.5 * (hi - lo) / (levels - 1), lo, hi)
            assert float(m) == pytest.approx(1.0, abs=1e-4), (levels, mean, sd)


@pytest.mark.parametrize("trace", ["exact", "rademacher", "gaussian"])
def test_probability_flow_likelihood_of_the_exact_gaussian_score_is_the_closed_form(trace):
    mu, var, t_eps = jnp.array([0.5, -1.0]), 0.3, 1e-3
    # processes whose marginal at t = 1 is the prior N(0, prior_std^2) to within 1e-4 nats
    for process in (sc.Process("vp", "linear", 0.1, 40.0), sc.Process("ve", sigma_min=0.01, sigma_max=1000.0)):
        x = mu + jnp.array([[0.2, -0.4], [1.0, 0.3], [-0.7, 0.0]])
        a, s = process.coeffs(t_eps)
        v = a**2 * var + s**2
        closed = jnp.sum(-0.5 * (math.log(2 * math.pi) + jnp.log(v) + (x - a * mu) ** 2 / v), -1)
        eps = gaussian_eps(process, mu, var)
        if trace != "gaussian":  # exact; Rademacher probes are exact too for this diagonal Jacobian
            kind = "exact" if trace == "exact" else "hutchinson"
            lp = smp.ode_log_prob(eps, process, x, jax.random.key(0), 100, t_eps, kind, "rademacher")
            np.testing.assert_allclose(lp, closed, atol=2e-3)
        elif process.kind == "vp":  # unbiased: averaged over 4,000 probes (std of that mean ~0.015 here)
            xs = jnp.repeat(x, 4000, axis=0)
            lp = smp.ode_log_prob(eps, process, xs, jax.random.key(0), 50, t_eps, "hutchinson", "gaussian")
            np.testing.assert_allclose(lp.reshape(3, -1).mean(1), closed, atol=0.06)


def test_2d_ode_density_of_the_mixture_score_integrates_to_one():
    means, std = mixture_modes("8gaussians")
    means = jnp.asarray(means, jnp.float32)

    def eps(x, t):  # -s grad log of the perturbed mixture, sum_k N(a m_k, a^2 std^2 + s^2)
        a, s = VP.coeffs(t)
        logp = lambda v, a, s: jax.nn.logsumexp(-0.5 * jnp.sum((v - a * means) ** 2, -1) / (a**2 * std**2 + s**2))
        return -s[:, None] * jax.vmap(jax.grad(logp))(x, a, s)

    g = np.linspace(-4.5, 4.5, 61)
    xy = jnp.asarray(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2), jnp.float32)
    lp = jax.jit(lambda x: smp.ode_log_prob(eps, VP, x, jax.random.key(0), 40, 1e-3, "exact"))(xy)
    assert float(jnp.sum(jnp.exp(lp)) * (g[1] - g[0]) ** 2) == pytest.approx(1.0, abs=0.02)


def test_ddim_with_eta_zero_inverts_and_samplers_reproduce():
    mu, var = jnp.array([0.5, -1.0, 0.2]), 0.3
    eps = gaussian_eps(VP, mu, var)
    x0 = mu + jnp.sqrt(var) * jax.random.normal(jax.random.key(0), (16, 3))
    times = smp.grid(1000)
    z = jax.jit(smp.ddim_encode, static_argnums=(0, 1))(eps, VP, x0, times[::-1])
    back = jax.jit(lambda z: smp.ddim(eps, VP, jax.random.key(1), x0.shape, times, eta=0.0, x_init=z))(z)
    np.testing.assert_allclose(back, x0, atol=0.01)  # each way is Euler's method: O(1 / steps)
    # the latent is N(0, I)-like: the inversion carries the data to the prior
    assert abs(float(jnp.std(z)) - 1.0) < 0.3
    shape, k = (64, 3), jax.random.key(5)
    runs = {
        "ancestral": lambda k: smp.ancestral(eps, VP, k, shape, smp.grid(50)),
        "ddim": lambda k: smp.ddim(eps, VP, k, shape, smp.grid(20), eta=0.5),
        "langevin": lambda k: smp.annealed_langevin(gaussian_eps(VE, mu, var), VE, k, shape, smp.grid(9, 0.1), 3, 0.05),
        "pc": lambda k: smp.predictor_corrector(eps, VP, k, shape, smp.grid(50, 1e-3)),
        "ode": lambda k: smp.probability_flow(eps, VP, k, shape, 20),
    }
    for name, run in runs.items():
        run = jax.jit(run)
        a, b, c = run(k), run(k), run(jax.random.key(6))
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
        assert not np.allclose(np.asarray(a), np.asarray(c)), name
    # with the exact score, the VP samplers draw from N(mu, var) (ancestral steps need to be
    # small: its kernels leave out Var[x0 | x_t])
    big = (4000, 3)
    draws = {
        "ancestral": lambda k: smp.ancestral(eps, VP, k, big, smp.grid(1000)),
        "ode": lambda k: smp.probability_flow(eps, VP, k, big, 50),
        "pc": lambda k: smp.predictor_corrector(eps, VP, k, big, smp.grid(200, 1e-3)),
    }
    for name, draw in draws.items():
        x = jax.jit(draw)(k)
        np.testing.assert_allclose(jnp.mean(x, 0), mu, atol=0.06, err_msg=name)
        np.testing.assert_allclose(jnp.var(x, 0), var, rtol=0.1, err_msg=name)


def _gaussian_flow_map(process, mu, var, x1, t_end):
    """The probability-flow map of data N(mu, var) from t = 1 to ``t_end`` (float64): the ODE
    carries N(a_1 mu, a_1^2 var + s_1^2) onto N(a mu, a^2 var + s^2) by the monotone affine map."""
    (a1, s1), (a, s) = ([float(u) for u in process.coeffs(t)] for t in (1.0, t_end))
    return a * mu + math.sqrt(a * a * var + s * s) / math.sqrt(a1 * a1 * var + s1 * s1) * (x1 - a1 * mu)


def test_dpm_solver_pp_is_second_order_and_ddim_first():
    """With the exact eps of Gaussian data, doubling the steps divides DPM-Solver++(2M)'s error
    by about 4 and DDIM's (first order: deterministic Euler in lambda) by about 2."""
    mu, var, t_end = 0.5, 0.3, 1e-3
    eps = gaussian_eps(VP, mu, var)
    x1 = jnp.linspace(-2.0, 2.0, 9)[:, None]
    want = _gaussian_flow_map(VP, mu, var, np.asarray(x1, np.float64), t_end)

    def err(solver, n):
        out = solver(eps, VP, jax.random.key(0), x1.shape, smp.logsnr_grid(VP, n, t_end), x_init=x1)
        return float(np.max(np.abs(np.asarray(out, np.float64) - want)))

    dpm = [err(smp.dpm_solver_pp, n) for n in (20, 40, 80)]
    ddim = [err(lambda *a, **k: smp.ddim(*a, eta=0.0, **k), n) for n in (20, 40, 80)]
    for lo, hi in zip(dpm, dpm[1:]):
        assert 3.3 < lo / hi < 4.6, dpm
    for lo, hi in zip(ddim, ddim[1:]):
        assert 1.7 < lo / hi < 2.3, ddim
    assert dpm[0] < ddim[-1]  # 20 second-order steps beat 80 first-order ones
    # to the data (s = 0) its last step is first order: it returns x0_hat of the last state
    grid = jnp.concatenate([smp.logsnr_grid(VP, 10, 0.05), jnp.zeros(1)])
    out = smp.dpm_solver_pp(eps, VP, None, x1.shape, grid, x_init=x1)
    before = smp.dpm_solver_pp(eps, VP, None, x1.shape, grid[:-1], x_init=x1)
    a, s = VP.coeffs(0.05)
    np.testing.assert_allclose(out, (before - s * eps(before, jnp.full(9, 0.05))) / a, rtol=1e-5, atol=1e-6)


def test_logsnr_grid_is_even_in_lambda():
    t = smp.logsnr_grid(VP, 8, 1e-3)
    a, s = VP.marginal(t)
    lam = np.log(np.asarray(a, np.float64) / np.asarray(s, np.float64))
    assert float(t[0]) == 1.0 and float(t[-1]) == pytest.approx(1e-3)
    np.testing.assert_allclose(np.diff(lam), np.full(8, (lam[-1] - lam[0]) / 8), rtol=2e-3)


@pytest.mark.parametrize("process", [VP, VE, COS], ids=["vp", "ve", "cosine"])
def test_v_prediction_converts_exactly_to_eps_and_x0(process):
    x0 = jax.random.normal(jax.random.key(0), (6, 3))
    eps = jax.random.normal(jax.random.key(1), (6, 3))
    t = jnp.linspace(0.05, 0.95, 6)
    a, s = process.coeffs(t)
    xt = a[:, None] * x0 + s[:, None] * eps
    v = sc.v_target(x0, eps, a, s)
    np.testing.assert_allclose(v, a[:, None] * eps - s[:, None] * x0, rtol=1e-6)
    x0_back, eps_back = sc.from_v(xt, v, a, s)
    np.testing.assert_allclose(x0_back, x0, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(eps_back, eps, rtol=1e-4, atol=1e-4)


def test_min_snr_weights_against_hand_values():
    """gamma = 5: SNR 10 -> eps 5/10, v 5/11; SNR 1 -> eps 1, v 1/2; SNR 0.25 -> eps 1, v 0.2 (VP)."""
    snr = np.array([10.0, 1.0, 0.25])
    a, s = np.sqrt(snr / (1 + snr)), np.sqrt(1 / (1 + snr))  # a VP pair with these SNRs
    np.testing.assert_allclose(sc.min_snr_weight(a, s, 5.0, "eps"), [0.5, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(sc.min_snr_weight(a, s, 5.0, "v"), [5 / 11, 0.5, 0.2], rtol=1e-6)
    # off VP (a = 1, s = 2: SNR 1/4): the v error maps to the x0 error by s / (a^2 + s^2) = 2/5
    np.testing.assert_allclose(sc.min_snr_weight(1.0, 2.0, 5.0, "v"), 0.25 * 4 / 25, rtol=1e-6)
