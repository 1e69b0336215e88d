"""Score matching and Gaussian diffusion: noise processes, their training losses and the DDPM bound.

A Gaussian diffusion perturbs data x_0 with q(x_t | x_0) = N(a(t) x_0, s(t)^2 I), t in [0, 1]
(``Process``):

* ``vp`` (variance preserving: DDPM, Ho et al. 2020; the VP SDE of Song et al. 2021):
  a(t)^2 = alpha_bar(t), s(t)^2 = 1 - alpha_bar(t).
  ``linear``: beta(t) = beta_min + t (beta_max - beta_min), alpha_bar(t) = exp(-int_0^t beta) =
  exp(-beta_min t - (beta_max - beta_min) t^2 / 2); DDPM's linear schedule (beta_i from 1e-4 to
  0.02 over T = 1000 steps) is this process on the grid t_i = i / T with beta_min = 0.1,
  beta_max = 20 (beta_i = 1 - alpha_bar(t_i) / alpha_bar(t_(i-1)) ~ beta(t_i) / T).
  ``cosine`` (Nichol & Dhariwal 2021): alpha_bar(t) = f(t) / f(0), f(t) = cos^2(pi/2 (t + 0.008) / 1.008),
  kept above 1e-4 as alpha_bar <- 1e-4 + (1 - 1e-4) alpha_bar (their beta <= 0.999 clip, made smooth).
* ``ve`` (variance exploding: NCSN, Song & Ermon 2019; the VE SDE): a = 1,
  s(t) = sigma_min (sigma_max / sigma_min)^t, a geometric ladder of noise levels.

Time is continuous; a discrete-time model with T steps uses the grid t_i = i / T, i = 1..T, and
index 0 is the data itself (a = 1, s = 0: ``Process.coeffs`` maps t <= 0 there). The same
coefficients give the SDE dx = f(t) x dt + g(t) dw with f = d log a / dt and
g^2 = d s^2 / dt - 2 f s^2 (VP: f = -beta / 2, g^2 = beta; VE: f = 0, g^2 = d s^2 / dt), so one
network trained on any of these losses serves every sampler and the probability-flow likelihood
(``genjax.objectives.samplers``).

The networks predict the noise: eps_hat(x_t, t), so the score is s(x_t, t) = -eps_hat / s(t) and
the denoised mean is x0_hat = (x_t - s(t) eps_hat) / a(t). Every loss returns per-example ``[B]``
terms, summed over the event axes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

LOG_2PI = math.log(2.0 * math.pi)
_COSINE_S = 0.008
_COSINE_FLOOR = 1e-4


def _sum_event(x):
    return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def _bcast(v, x):
    """A per-example ``[B]`` vector shaped to broadcast against ``x [B, ...]``."""
    return jnp.reshape(v, (-1,) + (1,) * (x.ndim - 1))


class Process(NamedTuple):
    """A Gaussian noise process q(x_t | x_0) = N(a(t) x_0, s(t)^2 I) (module docstring)."""

    kind: str = "vp"  # vp | ve
    schedule: str = "linear"  # vp: linear | cosine
    beta_min: float = 0.1
    beta_max: float = 20.0
    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def log_alpha_bar(self, t):
        """log a(t)^2 (VP)."""
        t = jnp.asarray(t, jnp.float32)
        if self.schedule == "linear":
            return -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)
        if self.schedule == "cosine":
            f = lambda u: jnp.cos(0.5 * math.pi * (u + _COSINE_S) / (1 + _COSINE_S)) ** 2
            return jnp.log(_COSINE_FLOOR + (1 - _COSINE_FLOOR) * f(t) / f(0.0))
        raise ValueError(f"the schedule must be 'linear' or 'cosine', got {self.schedule!r}.")

    def marginal(self, t):
        """(a(t), s(t)) of the continuous process."""
        t = jnp.asarray(t, jnp.float32)
        if self.kind == "vp":
            la = self.log_alpha_bar(t)
            return jnp.exp(0.5 * la), jnp.sqrt(-jnp.expm1(la))
        if self.kind == "ve":
            return jnp.ones_like(t), self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        raise ValueError(f"the process must be 'vp' or 've', got {self.kind!r}.")

    def variance(self, t):
        """s(t)^2, written without a square root (differentiable at t = 0)."""
        if self.kind == "vp":
            return -jnp.expm1(self.log_alpha_bar(t))
        return self.marginal(t)[1] ** 2

    def coeffs(self, t):
        """(a, s) at time t, with t <= 0 meaning the data themselves (a = 1, s = 0)."""
        a, s = self.marginal(jnp.maximum(t, 0.0))
        data = jnp.asarray(t) <= 0
        return jnp.where(data, 1.0, a), jnp.where(data, 0.0, s)

    def sde(self, t):
        """(f(t), g(t)^2) of dx = f x dt + g dw, by differentiating log a and s^2."""
        t = jnp.asarray(t, jnp.float32)
        log_a = lambda u: jnp.log(self.marginal(u)[0])
        var = self.variance
        f = jax.vmap(jax.grad(log_a))(t.reshape(-1)).reshape(t.shape)
        dvar = jax.vmap(jax.grad(var))(t.reshape(-1)).reshape(t.shape)
        return f, dvar - 2.0 * f * var(t)

    @property
    def prior_std(self) -> float:
        """The reference distribution at t = 1 is N(0, prior_std^2 I)."""
        return 1.0 if self.kind == "vp" else float(self.sigma_max)

    def prior_log_prob(self, x):
        """log N(x; 0, prior_std^2 I) per example ``[B]``."""
        v = self.prior_std**2
        return _sum_event(-0.5 * (LOG_2PI + math.log(v) + x**2 / v))

    def ladder(self, n_steps: int):
        """(a [T + 1], s [T + 1]) on the grid t_i = i / T; index 0 is the data."""
        return self.coeffs(jnp.arange(n_steps + 1, dtype=jnp.float32) / n_steps)


def transition(a_s, s_s, a_t, s_t):
    """q(x_t | x_s) = N(a_ts x_s, v_ts I) for s < t: a_ts = a_t / a_s, v_ts = s_t^2 - a_ts^2 s_s^2."""
    a_ts = a_t / a_s
    return a_ts, s_t**2 - a_ts**2 * s_s**2


def posterior(x0, xt, a_s, s_s, a_t, s_t):
    """q(x_s | x_t, x_0) = N(mean, var) for s < t (Ho et al. 2020, eq. 7, in (a, s) form):
    mean = (a_ts s_s^2 / s_t^2) x_t + (a_s v_ts / s_t^2) x_0, var = v_ts s_s^2 / s_t^2.
    The coefficients may be ``[B]`` vectors (one time per example)."""
    a_ts, v_ts = transition(a_s, s_s, a_t, s_t)
    c_t = _bcast(a_ts * s_s**2 / s_t**2, xt)
    c_0 = _bcast(a_s * v_ts / s_t**2, xt)
    return c_t * xt + c_0 * x0, v_ts * s_s**2 / s_t**2


def perturb(x0, key, a, s):
    """x_t = a x0 + s eps with eps ~ N(0, I); ``a``, ``s`` scalars or ``[B]``. Returns (x_t, eps)."""
    eps = jax.random.normal(key, x0.shape).astype(x0.dtype)  # float32 draw: the same noise under bf16
    return _bcast(jnp.broadcast_to(a, x0.shape[:1]), x0) * x0 + _bcast(jnp.broadcast_to(s, x0.shape[:1]), x0) * eps, eps


# --- score matching ---------------------------------------------------------------------------


def dsm(score_fn, x, key, sigma):
    """Denoising score matching at one noise level (Vincent 2011):
    1/2 || s(x~) - grad log q(x~ | x) ||^2 = 1/2 || s(x~) + (x~ - x) / sigma^2 ||^2,
    x~ = x + sigma eps. Its minimizer is the score of the perturbed data q_sigma. ``[B]``."""
    xt, eps = perturb(x, key, 1.0, sigma)
    return 0.5 * _sum_event((score_fn(xt) + eps / sigma) ** 2)


def dsm_weighted(score_fn, x, key, a, s):
    """Denoising score matching at per-example levels with lambda(s) = s^2 (Song & Ermon 2019):
    1/2 s^2 || s_theta(x_t, t) + (x_t - a x) / s^2 ||^2 = 1/2 || s s_theta + eps ||^2, x_t = a x + s eps.
    ``score_fn(x_t) -> [B, ...]`` is evaluated at the levels the caller drew. ``[B]``."""
    xt, eps = perturb(x, key, a, s)
    return 0.5 * _sum_event((_bcast(s, x) * score_fn(xt) + eps) ** 2)


def dsm_ladder(score_fn, x, key, sigmas, alphas=None):
    """NCSN's objective (Song & Ermon 2019, eq. 6): one level i ~ U{0..L-1} per example from the
    ladder ``sigmas [L]`` (x~ = x + sigma_i eps; with ``alphas``, x~ = alpha_i x + sigma_i eps),
    DSM weighted by lambda(sigma_i) = sigma_i^2. ``score_fn(x~, i) -> [B, ...]`` with ``i [B]`` the
    level index. ``[B]``."""
    k_i, k_e = jax.random.split(key)
    i = jax.random.randint(k_i, (x.shape[0],), 0, sigmas.shape[0])
    a = 1.0 if alphas is None else alphas[i]
    return dsm_weighted(lambda xt: score_fn(xt, i), x, k_e, a, sigmas[i])


def exact_score_matching(score_fn, x):
    """Hyvarinen's score-matching objective tr(d s / d x) + 1/2 ||s(x)||^2 per example, with the
    trace from the full Jacobian (D Jacobian-vector products): the brute-force oracle. ``[B]``."""
    flat = x.reshape(x.shape[0], -1)
    d = flat.shape[1]

    def one(v):
        f = lambda u: score_fn(u.reshape((1,) + x.shape[1:])).reshape(-1)
        s = f(v)
        jac = jax.jacfwd(f)(v)
        return jnp.trace(jac.reshape(d, d)) + 0.5 * jnp.sum(s**2)

    return jax.vmap(one)(flat)


def sliced_score_matching(score_fn, x, key, n_projections: int = 1, dist: str = "gaussian",
                          variance_reduced: bool = True):  # fmt: skip
    """Sliced score matching (Song et al. 2019): with random projections v,
    J = E_v[ v^T (d s / d x) v + 1/2 (v^T s)^2 ],  or, variance-reduced (SSM-VR),
    J = E_v[ v^T (d s / d x) v ] + 1/2 ||s||^2  (E[v v^T] = I for Gaussian and Rademacher v).
    Equals ``exact_score_matching`` in expectation over v. v^T (ds/dx) v is one
    Jacobian-vector product per projection. ``dist``: 'gaussian' | 'rademacher'. ``[B]``."""
    if dist not in ("gaussian", "rademacher"):
        raise ValueError(f"the projection distribution must be 'gaussian' or 'rademacher', got {dist!r}.")
    vs = jax.random.normal(key, (n_projections,) + x.shape).astype(x.dtype)
    if dist == "rademacher":
        vs = jnp.sign(vs)

    def term(v):
        s, jv = jax.jvp(score_fn, (x,), (v,))
        quad = _sum_event(v * jv)
        return quad + (0.5 * _sum_event(s**2) if variance_reduced else 0.5 * _sum_event(v * s) ** 2)

    return jnp.mean(jax.vmap(term)(vs), axis=0)


# --- DDPM ---------------------------------------------------------------------------------------


def ddpm_simple(eps_fn, x0, key, a, s):
    """Ho et al. (2020) L_simple: || eps - eps_theta(a x0 + s eps) ||^2 at the levels the caller
    drew (a, s ``[B]``); ``eps_fn(x_t) -> [B, ...]``. Equal to 2 x ``dsm_weighted`` with the
    score s_theta = -eps_theta / s. ``[B]``."""
    xt, eps = perturb(x0, key, a, s)
    return _sum_event((eps_fn(xt) - eps) ** 2)


def v_target(x0, eps, a, s):
    """v-prediction's target (Salimans & Ho 2022): v = a eps - s x0 for x_t = a x0 + s eps
    (``a``, ``s`` scalars or ``[B]``); on a VP process (a^2 + s^2 = 1) v = d x_t / d phi with
    a = cos phi, s = sin phi."""
    return _bcast(jnp.broadcast_to(a, x0.shape[:1]), x0) * eps - _bcast(jnp.broadcast_to(s, x0.shape[:1]), x0) * x0


def from_v(xt, v, a, s):
    """(x0, eps) from x_t and v: inverting [x_t; v] = [[a, s], [-s, a]] [x0; eps],
    x0 = (a x_t - s v) / (a^2 + s^2), eps = (s x_t + a v) / (a^2 + s^2) (exact for any process)."""
    a, s = _bcast(jnp.broadcast_to(a, xt.shape[:1]), xt), _bcast(jnp.broadcast_to(s, xt.shape[:1]), xt)
    n = a * a + s * s
    return (a * xt - s * v) / n, (s * xt + a * v) / n


def min_snr_weight(a, s, gamma: float, prediction: str = "eps"):
    """Min-SNR-gamma loss weights (Hang et al. 2023), SNR = a^2 / s^2: the x0 loss weighted by
    min(SNR, gamma), written for the regression actually run. An eps error e gives the x0 error
    (s / a) e and a v error e gives s e / (a^2 + s^2) (``from_v``), so the weights are
    min(SNR, gamma) / SNR for eps and min(SNR, gamma) s^2 / (a^2 + s^2)^2 for v — on a VP process
    (a^2 + s^2 = 1) the paper's min(SNR, gamma) / (SNR + 1)."""
    snr = (a / s) ** 2
    w = jnp.minimum(snr, gamma)
    if prediction == "eps":
        return w / snr
    if prediction == "v":
        return w * s**2 / (a**2 + s**2) ** 2
    raise ValueError(f"the prediction must be 'eps' or 'v', got {prediction!r}.")


def gaussian_kl(mean1, var1, mean2, var2):
    """KL(N(mean1, var1) || N(mean2, var2)) elementwise (variances broadcast), summed over the
    event: 1/2 [log(var2 / var1) + (var1 + (mean1 - mean2)^2) / var2 - 1]. ``[B]``."""
    var1, var2 = jnp.broadcast_to(var1, mean1.shape), jnp.broadcast_to(var2, mean1.shape)
    return _sum_event(0.5 * (jnp.log(var2) - jnp.log(var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0))


def _log_diff_ndtr(b, a):
    """log(Phi(b) - Phi(a)) for b > a, stable in both tails (upper tail by symmetry)."""
    upper = a > 0
    hi, lo = jnp.where(upper, -a, b), jnp.where(upper, -b, a)
    return log_ndtr(hi) + jnp.log1p(-jnp.exp(jnp.minimum(log_ndtr(lo) - log_ndtr(hi), -1e-12)))


def discretized_gaussian_log_prob(x, mean, std, half_width, lo, hi):
    """log P(x) of a Gaussian N(mean, std^2) discretized to bins [x - h, x + h] (Ho et al. 2020,
    eq. 13), the bins at the edges ``lo``/``hi`` of the data range extended to -inf/+inf, so the
    probabilities of the grid's levels sum to 1. Summed over the event. ``[B]``."""
    z_hi = (x + half_width - mean) / std
    z_lo = (x - half_width - mean) / std
    at_lo, at_hi = x <= lo + 0.5 * half_width, x >= hi - 0.5 * half_width
    mid = _log_diff_ndtr(z_hi, z_lo)
    return _sum_event(jnp.where(at_lo, log_ndtr(z_hi), jnp.where(at_hi, log_ndtr(-z_lo), mid)))


def dequantize_levels(x, key, levels: int, lo: float, hi: float):
    """Uniform dequantization of data on ``levels`` evenly spaced values over [lo, hi]:
    (x + u Delta, D log Delta) with u ~ U(-1/2, 1/2)^D and Delta = (hi - lo) / (levels - 1) the
    spacing of the levels. For any density p, E_u log p(x + u Delta) + D log Delta <= log P(x), the
    log-probability of the bin around x (Theis et al. 2016). ``x [B, ...]``; the second value is
    a scalar (D = the event size)."""
    delta = (hi - lo) / (levels - 1)
    u = jax.random.uniform(key, x.shape) - 0.5
    return x + u * delta, math.prod(x.shape[1:]) * math.log(delta)


class Decoder(NamedTuple):
    """How the bound scores x_0 given x_1: a Gaussian N(x0_hat, s_1^2) discretized to the data's
    ``levels`` over [lo, hi] (``levels = 0``: the continuous density)."""

    levels: int = 0
    lo: float = -1.0
    hi: float = 1.0

    def log_prob(self, x0, mean, std):
        if not self.levels:
            return _sum_event(-0.5 * (LOG_2PI + 2 * jnp.log(std) + ((x0 - mean) / std) ** 2))
        return discretized_gaussian_log_prob(x0, mean, std, 0.5 * (self.hi - self.lo) / (self.levels - 1),
                                             self.lo, self.hi)  # fmt: skip


def vlb_terms(eps_fn, x0, key, process: Process, n_steps: int, decoder: Decoder, steps=None):
    """Terms of the DDPM variational bound (Ho et al. 2020, eq. 5) on the ladder t_i = i / T:

        -log p(x0) <= L_T + sum_{i=2}^T L_(i-1) + L_0,
        L_T = KL(q(x_T | x0) || N(0, prior_std^2 I)),
        L_(i-1) = KL(q(x_(i-1) | x_i, x0) || p(x_(i-1) | x_i))        (x_i ~ q(x_i | x0)),
        L_0 = -log p(x0 | x_1), a Gaussian N(x0_hat(x_1), s_1^2) discretized to the data levels,

    with p(x_(i-1) | x_i) = q(x_(i-1) | x_i, x0_hat(x_i)) (the posterior with the predicted x0, its
    variance fixed: the 'sigma_t^2 = beta~_t' choice), so L_(i-1) = c_i^2 ||x0 - x0_hat||^2 / (2 var_i).
    ``eps_fn(x_t, t [B]) -> eps_hat``. ``steps [B, S]`` (default: every i = 2..T) are the indices
    whose L_(i-1) are returned. Returns ``{"prior": [B], "decoder": [B], "steps": [B, S]}`` (nats).
    """
    a, s = process.ladder(n_steps)
    b = x0.shape[0]
    k_prior, k_dec, k_kl = jax.random.split(key, 3)
    prior = gaussian_kl(a[-1] * x0, s[-1] ** 2, jnp.zeros_like(x0), process.prior_std**2)
    x1, _ = perturb(x0, k_dec, a[1], s[1])
    t1 = jnp.full((b,), 1.0 / n_steps)
    x0_hat = (x1 - s[1] * eps_fn(x1, t1)) / a[1]
    decoder_nll = -decoder.log_prob(x0, x0_hat, s[1])
    if steps is None:
        steps = jnp.broadcast_to(jnp.arange(2, n_steps + 1), (b, max(n_steps - 1, 0)))

    def kl_at(i, k):  # i [B]
        xi, _ = perturb(x0, k, a[i], s[i])
        eps_hat = eps_fn(xi, i / n_steps)
        x0_hat = (xi - _bcast(s[i], xi) * eps_hat) / _bcast(a[i], xi)
        mean_q, var = posterior(x0, xi, a[i - 1], s[i - 1], a[i], s[i])
        mean_p, _ = posterior(x0_hat, xi, a[i - 1], s[i - 1], a[i], s[i])
        return _sum_event((mean_q - mean_p) ** 2) / (2.0 * var)

    keys = jax.random.split(k_kl, steps.shape[1])
    kl = jax.lax.map(lambda ik: kl_at(ik[0], ik[1]), (steps.T, keys)).T if steps.shape[1] else jnp.zeros((b, 0))
    return {"prior": prior, "decoder": decoder_nll, "steps": kl}


def vlb(eps_fn, x0, key, process: Process, n_steps: int, decoder: Decoder):
    """The DDPM bound on log p(x0), every term computed (T network evaluations). ``[B]``."""
    t = vlb_terms(eps_fn, x0, key, process, n_steps, decoder)
    return -(t["prior"] + t["decoder"] + jnp.sum(t["steps"], axis=1))


def vlb_estimate(eps_fn, x0, key, process: Process, n_steps: int, decoder: Decoder):
    """An unbiased one-sample estimate of ``vlb``: L_T + L_0 + (T - 1) L_(i-1), i ~ U{2..T}
    (two network evaluations per example). ``[B]``."""
    k_i, k_t = jax.random.split(key)
    if n_steps < 2:
        return vlb(eps_fn, x0, k_t, process, n_steps, decoder)
    i = jax.random.randint(k_i, (x0.shape[0], 1), 2, n_steps + 1)
    t = vlb_terms(eps_fn, x0, k_t, process, n_steps, decoder, steps=i)
    return -(t["prior"] + t["decoder"] + (n_steps - 1) * t["steps"][:, 0])
