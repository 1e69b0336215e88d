"""Closed-form and brute-force guards for the formulas behind printed figures: noise schedules
pinned to the papers' values, sampler noise scales held against the posterior variance they must
equal, the bound's terms with a model that uses its input, kernel constants, dequantization
constants, predictive intervals with their floors. Each was broken on purpose
(``tools/mutants.py``) and fails here. References in float64 (numpy / scipy)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.objectives import elbo as E
from genjax.objectives import samplers as smp
from genjax.objectives import score as sc
from genjax.objectives.likelihood import bits_per_dim

VP = sc.Process("vp", "linear", 0.1, 20.0)
VE = sc.Process("ve", sigma_min=0.01, sigma_max=10.0)
COS = sc.Process("vp", "cosine")


def gaussian_eps(process, mu, var):
    """The exact noise predictor of data N(mu, var I): eps = s (x - a mu) / (a^2 var + s^2)."""

    def eps(x, t):
        a, s = process.coeffs(t)
        a, s = sc._bcast(a, x), sc._bcast(s, x)
        return s * (x - a * mu) / (a**2 * var + s**2)

    return eps


# ---- noise schedules at chosen t, from the papers' formulas -------------------------------------


def test_schedules_are_the_papers_at_chosen_times():
    t = np.array([0.0, 0.1, 0.37, 0.5, 0.9, 1.0])
    # VP linear (Song et al. 2021, Ho et al. 2020): alpha_bar = exp(-int_0^t beta), beta linear in t
    want = np.exp(-(0.1 * t + 0.5 * (20.0 - 0.1) * t**2))
    np.testing.assert_allclose(np.asarray(VP.marginal(t)[0], np.float64) ** 2, want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(VP.marginal(t)[1], np.float64) ** 2, 1 - want, rtol=1e-4, atol=1e-7)
    # cosine (Nichol & Dhariwal 2021, eq. 17): alpha_bar = f(t) / f(0), f = cos^2((t + s) / (1 + s) pi / 2),
    # s = 0.008, kept above 1e-4 by genjax's smooth floor 1e-4 + (1 - 1e-4) alpha_bar
    f = lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    want = 1e-4 + (1 - 1e-4) * f(t) / f(0.0)
    np.testing.assert_allclose(np.asarray(COS.marginal(t)[0], np.float64) ** 2, want, rtol=2e-5, atol=1e-7)
    # its discrete betas at T = 1000 are the paper's 1 - alpha_bar_t / alpha_bar_(t-1) (below the clip)
    # VE (Song & Ermon 2019; Song et al. 2021): sigma(t) = sigma_min (sigma_max / sigma_min)^t, a = 1
    a, s = VE.marginal(t)
    np.testing.assert_allclose(np.asarray(s, np.float64), 0.01 * 1000.0**t, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(a), 1.0)
    # the DDPM grid: t_i = i / T, index 0 the data itself
    a, s = VP.ladder(4)
    np.testing.assert_allclose(np.asarray(a[1:], np.float64) ** 2, np.exp(-(0.1 * t4() + 9.95 * t4() ** 2)), rtol=1e-5)
    assert float(a[0]) == 1.0 and float(s[0]) == 0.0


def t4():
    return np.arange(1, 5) / 4


def test_posterior_is_ho_et_al_eq_7():
    """q(x_(t-1) | x_t, x_0) on the DDPM ladder: mean = sqrt(abar_(t-1)) beta_t / (1 - abar_t) x0 +
    sqrt(alpha_t) (1 - abar_(t-1)) / (1 - abar_t) x_t, var = (1 - abar_(t-1)) / (1 - abar_t) beta_t."""
    T = 10
    tt = np.arange(T + 1) / T
    abar = np.exp(-(0.1 * tt + 9.95 * tt**2))
    a, s = VP.ladder(T)
    x0, xt = jnp.array([[0.7, -1.2]]), jnp.array([[0.1, 0.4]])
    for i in (1, 2, 5, 10):
        beta = 1 - abar[i] / abar[i - 1]
        mean, var = sc.posterior(x0, xt, a[i - 1], s[i - 1], a[i], s[i])
        m_want = np.sqrt(abar[i - 1]) * beta / (1 - abar[i]) * np.asarray(x0) + np.sqrt(1 - beta) * (
            1 - abar[i - 1]
        ) / (1 - abar[i]) * np.asarray(xt)
        np.testing.assert_allclose(np.asarray(mean), m_want, rtol=1e-4, atol=1e-6)
        assert float(var) == pytest.approx((1 - abar[i - 1]) / (1 - abar[i]) * beta, rel=1e-4, abs=1e-9)


# ---- sampler noise scales against the posterior variance they must equal -----------------------


@pytest.mark.parametrize("eta", [1.0, 0.5, 0.0])
def test_one_ddim_step_draws_from_the_posterior_it_claims(eta):
    """With x0_hat exact (the model knows x0), one step t -> s of DDIM draws x_s ~
    N(a_s x0 + sqrt(s_s^2 - c^2) eps, c^2) with c = eta x the posterior std; at eta = 1 (ancestral)
    that is the posterior q(x_s | x_t, x0) itself (Song, Meng & Ermon 2021, eq. 12, 16)."""
    n, x0 = 200_000, 0.8
    t, s_ = 0.6, 0.3
    a_t, s_t = (float(v) for v in VP.coeffs(t))
    a_s, s_s = (float(v) for v in VP.coeffs(s_))
    xt = jnp.full((n, 1), a_t * x0 + s_t * 0.5)  # x_t from the noise eps = 0.5
    eps_fn = lambda x, tt: (x - sc._bcast(VP.coeffs(tt)[0], x) * x0) / sc._bcast(VP.coeffs(tt)[1], x)  # noqa: E731
    out = np.asarray(jax.jit(lambda k: smp.ddim(eps_fn, VP, k, (n, 1), jnp.array([t, s_]), eta=eta, x_init=xt))(
        jax.random.key(0)), np.float64)  # fmt: skip
    # Ho et al. eq. 7 in float64 with a = sqrt(abar)
    a_ts = a_t / a_s
    v_ts = s_t**2 - a_ts**2 * s_s**2
    post_var = v_ts * s_s**2 / s_t**2
    post_mean = a_ts * s_s**2 / s_t**2 * float(xt[0, 0]) + a_s * v_ts / s_t**2 * x0
    c2 = eta**2 * post_var
    mean = a_s * x0 + math.sqrt(s_s**2 - c2) * 0.5
    assert out.var() == pytest.approx(c2, rel=0.02, abs=1e-9)
    assert out.mean() == pytest.approx(mean, abs=4 * math.sqrt(c2 / n) + 1e-5)
    if eta == 1.0:
        assert mean == pytest.approx(post_mean, rel=1e-6)  # ancestral: the posterior mean and variance


def test_tweedie_and_langevin_against_closed_forms():
    """Tweedie's denoiser with the exact score of Gaussian data is E[x0 | x_t]; a Langevin chain
    x <- x + alpha/2 s(x) + sqrt(alpha) z at one level of the exact score of N(0, v) is stationary
    at variance v / (1 - alpha / (4 v)) (the discretized chain's own fixed point)."""
    mu, var, t = 0.4, 0.25, 0.3
    a, s = (float(u) for u in VP.coeffs(t))
    x = jnp.array([[-1.0], [0.2], [2.0]])
    got = smp._tweedie(gaussian_eps(VP, mu, var), VP, x, t)
    want = mu + a * var / (a**2 * var + s**2) * (np.asarray(x, np.float64) - a * mu)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
    # one Langevin level: VE data N(0, 1), level t: the perturbed marginal N(0, 1 + sigma^2)
    lv = jnp.array([0.5])
    sig = float(VE.coeffs(0.5)[1])
    v = 1.0 + sig**2
    lr = 0.3  # alpha = lr (sigma / sigma_min)^2 = lr at the only level
    n = 100_000
    out = jax.jit(lambda k: smp.annealed_langevin(gaussian_eps(VE, 0.0, 1.0), VE, k, (n, 1), lv, 200, lr,
                                                  denoise=False))(jax.random.key(1))  # fmt: skip
    assert float(jnp.var(out)) == pytest.approx(v / (1 - lr / (4 * v)), rel=0.03)


def test_reverse_sde_and_probability_flow_carry_the_prior_to_gaussian_data():
    """With the exact score of N(mu, var), the reverse-SDE predictor alone (no corrector) and the
    probability-flow ODE (then Tweedie) map the prior onto the data's mean and variance."""
    mu, var, n = 0.7, 0.2, 40_000
    eps = gaussian_eps(VP, mu, var)
    pc = jax.jit(lambda k: smp.predictor_corrector(eps, VP, k, (n, 1), smp.grid(400, 1e-3), 0.16, 0))(
        jax.random.key(2)
    )
    assert float(jnp.mean(pc)) == pytest.approx(mu, abs=0.02)
    assert float(jnp.var(pc)) == pytest.approx(var, rel=0.05)
    ode = jax.jit(lambda k: smp.probability_flow(eps, VP, k, (n, 1), 100))(jax.random.key(3))
    assert float(jnp.mean(ode)) == pytest.approx(mu, abs=0.02)
    assert float(jnp.var(ode)) == pytest.approx(var, rel=0.05)


def test_ode_likelihood_of_a_gaussian_path_is_the_closed_form_in_float64():
    """The probability-flow likelihood with the exact score of N(mu, var) equals log N(x; a mu,
    a^2 var + s^2) at t_eps: the path in float64, the process's coefficients in float32 (their
    rounding moves the figure by ~4e-5 nats; a wrong RK4 weight, a factor on the drift or the
    divergence's sign moves it by far more)."""
    with jax.enable_x64(True):
        mu, var, t_eps = jnp.array([0.5, -1.0]), 0.3, 1e-3
        process = sc.Process("vp", "linear", 0.1, 40.0)  # x_1 is N(0, I) to 1e-9 nats
        x = mu + jnp.array([[0.2, -0.4], [1.0, 0.3]], jnp.float64)
        a, s = (float(u) for u in process.coeffs(jnp.float64(t_eps)))
        v = a**2 * var + s**2
        closed = np.sum(-0.5 * (math.log(2 * math.pi) + np.log(v) + (np.asarray(x) - a * np.asarray(mu)) ** 2 / v), -1)
        lp = smp.ode_log_prob(gaussian_eps(process, mu, var), process, x, jax.random.key(0), 200, t_eps, "exact")
        np.testing.assert_allclose(np.asarray(lp), closed, atol=2e-4)


# ---- the DDPM bound with a model that uses its input -------------------------------------------


def test_bound_terms_in_expectation_with_the_exact_posterior_mean_model():
    """Gaussian data N(0, var), the model eps(x_t, t) exact (x0_hat = E[x0 | x_t], a function of
    x_t). Then E L_(i-1) = c_i^2 Var[x0 | x_i] / (2 v_i), with c_i = a_(i-1) v_ts / s_i^2 the
    posterior's coefficient on x0 and v_i its variance, and E L_T = 1/2 (a_T^2 var + s_T^2 - 1 -
    log s_T^2); the decoder term is the Gaussian -log N(x0; x0_hat(x_1), s_1^2)."""
    T, var, n = 6, 0.5, 200_000
    x0 = jnp.sqrt(var) * jax.random.normal(jax.random.key(0), (n, 1))
    eps = gaussian_eps(VP, 0.0, var)
    terms = jax.jit(lambda x, k: sc.vlb_terms(lambda xt, t: eps(xt, t), x, k, VP, T, sc.Decoder(0)))(
        x0, jax.random.key(1)
    )
    a, s = (np.asarray(u, np.float64) for u in VP.ladder(T))
    for i in range(2, T + 1):
        a_ts = a[i] / a[i - 1]
        v_ts = s[i] ** 2 - a_ts**2 * s[i - 1] ** 2
        c0 = a[i - 1] * v_ts / s[i] ** 2
        v_post = v_ts * s[i - 1] ** 2 / s[i] ** 2
        cond_var = var * s[i] ** 2 / (a[i] ** 2 * var + s[i] ** 2)  # Var[x0 | x_i]
        want = c0**2 * cond_var / (2 * v_post)
        got = np.asarray(terms["steps"][:, i - 2], np.float64)
        assert got.mean() == pytest.approx(want, rel=0.03), i
    prior = 0.5 * (a[T] ** 2 * var + s[T] ** 2 - 1 - np.log(s[T] ** 2))
    assert float(jnp.mean(terms["prior"])) == pytest.approx(prior, rel=0.03, abs=1e-6)
    cond_var1 = var * s[1] ** 2 / (a[1] ** 2 * var + s[1] ** 2)
    dec = 0.5 * (math.log(2 * math.pi) + 2 * math.log(s[1]) + cond_var1 / s[1] ** 2)
    assert float(jnp.mean(terms["decoder"])) == pytest.approx(dec, rel=0.01)


# ---- kernels, dequantization, bits/dim -----------------------------------------------------------


def test_mmd_kernels_at_hand_values():
    a, b = jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 2.0]])  # ||a - b||^2 = 5, K = 2
    assert float(E.rbf_kernel(a, b)[0, 0]) == pytest.approx(math.exp(-5 / (2 * 2)), rel=1e-6)
    assert float(E.rbf_kernel(a, b, bandwidth=3.0)[0, 0]) == pytest.approx(math.exp(-5 / (2 * 9)), rel=1e-6)
    assert float(E.imq_kernel(a, b)[0, 0]) == pytest.approx(4 / (4 + 5), rel=1e-6)  # C = 2 K s^2 = 4
    assert float(E.imq_kernel(a, b, bandwidth=2.0)[0, 0]) == pytest.approx(16 / (16 + 5), rel=1e-6)
    x, y = jnp.array([[0.0, 0.0], [1.0, 0.0]]), jnp.array([[0.0, 1.0]])
    for kernel in ("rbf", "imq"):
        k = E.KERNELS[kernel]
        want = np.mean(k(x, x)) + np.mean(k(y, y)) - 2 * np.mean(k(x, y))
        assert float(E.mmd(x, y, kernel)) == pytest.approx(float(want), rel=1e-6)
    kxx = (1 + 1 + 2 * math.exp(-1 / 4)) / 4  # the RBF's V-statistic by hand
    assert float(E.mmd(x, y)) == pytest.approx(kxx + 1 - 2 * (math.exp(-1 / 4) + math.exp(-2 / 4)) / 2, rel=1e-6)


def test_dequantization_constants_reach_the_reported_bits_per_dim():
    """bits/dim of a dequantized density: (NLL - D ln Delta) / (D ln 2) with Delta one level's
    width in the data's own scale (1/L on [0, 1], 2/L on [-1, 1]; the diffusion model's inner
    dequantization: the level spacing (hi - lo) / (L - 1))."""
    from genjax.config import base_config
    from genjax.data import load_splits

    assert float(bits_per_dim(100.0, 64, 1 / 17)) == pytest.approx((100 + 64 * math.log(17)) / (64 * math.log(2)))
    assert float(bits_per_dim(100.0, 64)) == pytest.approx(100 / (64 * math.log(2)))
    for scale, width in (("01", 1 / 17), ("-11", 2 / 17)):
        c = base_config().data
        c.dequantize, c.scale = True, scale
        s = load_splits(c, 64)
        assert s.bin_width == pytest.approx(width)
        lo = 0.0 if scale == "01" else -1.0
        x = np.asarray(s.test["x"])  # each value within its own bin of the 17 levels
        k = np.floor((x - lo) / width)
        assert np.all((k >= 0) & (k <= 16))
    x = jnp.array([[[[-1.0], [0.0]], [[0.5], [1.0]]]])  # 2x2x1 on 5 levels over [-1, 1]: spacing 0.5
    xd, log_vol = sc.dequantize_levels(x, jax.random.key(0), 5, -1.0, 1.0)
    assert log_vol == pytest.approx(4 * math.log(0.5))
    assert float(jnp.max(jnp.abs(xd - x))) <= 0.25


# ---- predictive intervals and std with their floors ---------------------------------------------


@pytest.mark.parametrize("lik", ["heteroscedastic", "student_t"])
def test_predictive_interval_and_std_with_the_floor(lik):
    from genjax.config import base_config
    from genjax.models import DataInfo, build_family

    c = base_config()
    c.model.family = "predictor"
    c.model.predictor.update(hidden=(8,), likelihood=lik, min_var=0.3, df=5.0)
    fam = build_family(c, DataInfo((1,), target_shape=(1,)))
    params = fam.init(jax.random.key(0))
    x = jnp.array([[0.5], [-1.0]])
    mean = np.asarray(fam.predictor.mean(params, x), np.float64)
    # the head's raw (loc, log-variance or log-scale): read the distribution off the log-likelihood
    ys = np.linspace(-60, 60, 120_001)
    for row in range(2):
        lp = np.asarray(jax.vmap(lambda y: fam.log_prob(params, x[row : row + 1], None, jnp.full((1, 1), y)))(
            jnp.asarray(ys)))[:, 0]  # fmt: skip
        p = np.exp(lp)
        assert np.trapezoid(p, ys) == pytest.approx(1.0, abs=2e-3)
        sd_num = math.sqrt(np.trapezoid(p * (ys - mean[row, 0]) ** 2, ys))
        for level in (0.5, 0.9):
            lo, hi = (np.asarray(v, np.float64)[row, 0] for v in fam.predictor.interval(params, x, level))
            mass = np.trapezoid(np.where((ys >= lo) & (ys <= hi), p, 0.0), ys)
            assert mass == pytest.approx(level, abs=4e-3), (lik, level)
        std = float(np.asarray(fam.predictor.std(params, x))[row, 0])
        if lik == "heteroscedastic":
            assert std == pytest.approx(sd_num, rel=2e-3)
        else:  # the t's std s sqrt(nu / (nu - 2)); the tails beyond +-60 hold a little
            assert std == pytest.approx(sd_num, rel=5e-3)
        assert std >= math.sqrt(0.3) - 1e-6 if lik == "heteroscedastic" else std > 0



def test_gradient_penalty_is_taken_at_uniform_interpolates():
    """With the critic D(x) = ||x||^2 / 2 (gradient x), the penalty's mean over draws is
    E_e (|e r + (1 - e) f| - 1)^2, e ~ U(0, 1): by quadrature for r = 3, f = -1 in 1-D."""
    from genjax.objectives import adversarial as A

    n = 200_000
    real, fake = jnp.full((n, 1), 3.0), jnp.full((n, 1), -1.0)
    gp = A.gradient_penalty(lambda x: 0.5 * jnp.sum(x**2, -1), real, fake, jax.random.key(0))
    e = np.linspace(0, 1, 200_001)
    want = np.trapezoid((np.abs(e * 3.0 + (1 - e) * -1.0) - 1) ** 2, e)
    assert float(jnp.mean(gp)) == pytest.approx(want, rel=0.01)


def test_infovae_loss_weights_its_terms_as_zhao_et_al():
    """loss = rec + (1 - alpha) KL + (alpha + lambda - 1) MMD, at an alpha where 1 - alpha != alpha."""
    from genjax.config import base_config
    from genjax.models import Context, DataInfo, build_family

    c = base_config()
    c.model.vae.update(objective="infovae", hidden=(16,), latent_dim=3, info_alpha=0.3, info_lambda=10.0)
    fam = build_family(c, DataInfo((8, 8, 1), levels=2))
    p = fam.init(jax.random.key(0))
    x = (jax.random.uniform(jax.random.key(1), (32, 8, 8, 1)) > 0.5).astype(jnp.float32)
    ctx = Context(jnp.int32(0), {k: jnp.float32(v) for k, v in fam.hparams.items()})
    loss, m = fam.players[0].loss(p, {"x": x}, jax.random.key(2), ctx)
    assert float(m["kl"]) > 0.1 and float(m["mmd"]) != 0.0
    assert float(loss) == pytest.approx(float(m["rec"] + 0.7 * m["kl"] + 9.3 * m["mmd"]), rel=1e-5)


def test_diffusion_likelihood_on_discrete_levels_adds_the_dequantization_volume(monkeypatch):
    """The family's log_prob on 17-level images in [-1, 1] is the ODE log-density at a point
    within half a level of x, plus D log Delta with Delta = 2 / 16: with the ODE replaced by 0,
    exactly D log Delta."""
    from genjax.config import base_config
    from genjax.models import DataInfo, build_family

    seen = {}

    def fake_ode(eps_fn, process, x, key, *a, **kw):
        seen["x"] = x
        return jnp.zeros(x.shape[0])

    monkeypatch.setattr(smp, "ode_log_prob", fake_ode)
    c = base_config()
    c.model.family = "diffusion"
    c.model.diffusion.update(arch="mlp", hidden=(8, 8), timesteps=10, sample_steps=5)
    fam = build_family(c, DataInfo((2, 2, 1), "-11", 0, 17))
    x = jnp.array([[[[-1.0], [0.125]], [[0.5], [1.0]]]] * 3)
    lp = fam.log_prob(fam.init(jax.random.key(0)), x, jax.random.key(1))
    np.testing.assert_allclose(np.asarray(lp), 4 * math.log(2 / 16), rtol=1e-6)
    assert float(jnp.max(jnp.abs(seen["x"] - x))) <= 1 / 16 + 1e-6 and not np.allclose(seen["x"], x)


# ---- sample-quality statistics against brute force ----------------------------------------------


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel_by_brute_force():
    from genjax.eval.sample_quality import kernel_distance

    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(7, 3)), rng.normal(0.5, 1.2, size=(9, 3))
    k = lambda a, b: (np.dot(a, b) / 3 + 1.0) ** 3  # noqa: E731
    xx = sum(k(f1[i], f1[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(f2[i], f2[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    xy = sum(k(a, b) for a in f1 for b in f2) / (7 * 9)
    assert kernel_distance(f1, f2) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_knn_radii_and_precision_recall_by_hand():
    """Kynkaanniemi et al. (2019): the radius of a point is the distance to its k-th nearest
    other point of its own set; precision = share of fakes inside some real ball."""
    from genjax.eval.sample_quality import knn_radii, precision_recall

    x = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    np.testing.assert_allclose(knn_radii(x, 3), [6.0, 5.0, 3.0, 5.0, 9.0])  # 3rd nearest of each
    np.testing.assert_allclose(knn_radii(x, 1), [1.0, 1.0, 2.0, 3.0, 4.0])
    # inside 0's ball (radius 6), outside every ball, inside 10's (9), inside, outside
    fake = np.array([[-5.5], [-6.5], [17.5], [4.0], [20.0]])
    assert precision_recall(x, fake, k=3)["precision"] == pytest.approx(3 / 5)


def test_infovae_objective_and_iwae_from_log_weights_alone():
    """The InfoVAE loss weights (1 - alpha) on the KL and (alpha + lambda - 1) on the MMD, and is
    -ELBO at alpha = 0, lambda = 1; L_k from log weights is log-mean-exp over the k axis."""
    from genjax.objectives import elbo as E

    rng = np.random.default_rng(0)
    lp, kl = rng.normal(-50, 5, 16), rng.uniform(1, 5, 16)
    got = float(E.infovae_objective(jnp.asarray(lp), jnp.asarray(kl), 0.2, 0.3, 10.0))
    assert got == pytest.approx(-lp.mean() + 0.7 * kl.mean() + 9.3 * 0.2, rel=1e-6)
    assert float(E.infovae_objective(lp, kl, 0.2, 0.0, 1.0)) == pytest.approx(-np.mean(lp - kl), rel=1e-6)
    lw = rng.normal(-80, 3, (7, 5))
    want = np.log(np.mean(np.exp(lw - lw.max(0)), 0)) + lw.max(0)  # float64 log-mean-exp
    np.testing.assert_allclose(np.asarray(E.iwae_from_log_weights(jnp.asarray(lw, jnp.float32))), want, rtol=1e-6)


def test_vae_loss_weights_the_kl_by_beta():
    """The beta-VAE family's loss is rec + beta KL (beta = 3, a constant KL schedule)."""
    from genjax.config import base_config
    from genjax.models import Context, DataInfo, build_family

    c = base_config()
    c.model.vae.update(hidden=(16,), latent_dim=3, beta=3.0)
    fam = build_family(c, DataInfo((8, 8, 1), levels=2))
    p = fam.init(jax.random.key(0))
    x = (jax.random.uniform(jax.random.key(1), (32, 8, 8, 1)) > 0.5).astype(jnp.float32)
    ctx = Context(jnp.int32(0), {k: jnp.float32(v) for k, v in fam.hparams.items()})
    loss, m = fam.players[0].loss(p, {"x": x}, jax.random.key(2), ctx)
    assert float(m["kl"]) > 0.1 and float(m["beta"]) == 3.0
    assert float(loss) == pytest.approx(float(m["rec"] + 3.0 * m["kl"]), rel=1e-5)


def test_every_mutant_breaks_a_snippet_that_is_in_its_source_once():
    """``tools/mutants.py`` can run: each mutant's snippet occurs exactly once in its file (a
    source that moved on leaves a mutant breaking nothing — the OT coupling's stood stale until
    2026-12-03), its replacement differs from it, and the tests it names exist."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("genjax_mutants", root / "tools" / "mutants.py")
    mutants = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutants)
    assert mutants.check_snippets() == []
    assert len(mutants.MUTANTS) > 100
    for name, _, old, new, tests in mutants.MUTANTS:
        assert old != new, name
        for t in tests:
            assert (root / t.split("::")[0]).exists(), (name, t)
