"""Samplers and the probability-flow likelihood of a Gaussian diffusion (``score.Process``).

Every function takes the noise predictor ``eps_fn(x [B, ...], t [B]) -> eps_hat`` of a model
trained on one of ``genjax.objectives.score``'s losses (score s(x, t) = -eps_hat / s(t)), runs as
one ``lax.scan`` over a descending time grid ``times`` (from 1 to 0, index 0 meaning data:
``Process.coeffs``) and is a pure function of its key, so it jits, vmaps and reproduces.

* ``ancestral`` — x_s ~ q(x_s | x_t, x0_hat(x_t)): DDPM's sampler (Ho et al. 2020, Alg. 2) on a VP
  process, the 'reverse diffusion' sampler of Song et al. (2021) on a VE one.
* ``ddim`` — x_s = a_s x0_hat + sqrt(s_s^2 - c^2) eps_hat + c z, c = eta x (the posterior std)
  (Song, Meng & Ermon 2021, eq. 12): eta = 1 is ancestral, eta = 0 deterministic; any subgrid of
  the training steps. ``ddim_encode`` runs eta = 0 forwards (data -> noise).
* ``annealed_langevin`` — NCSN's sampler (Song & Ermon 2019, Alg. 1): at each level, steps
  x <- x + alpha_i / 2 s(x, t_i) + sqrt(alpha_i) z with alpha_i = lr s_i^2 / s_min^2.
* ``predictor_corrector`` — Song et al. (2021, Alg. 2/3): a Langevin corrector with step
  2 (snr ||z|| / ||s||)^2 (norms averaged over the batch), then a reverse-SDE Euler-Maruyama predictor
  x <- x - (f x - g^2 s) dt + g sqrt(dt) z.
* ``probability_flow`` — the ODE dx/dt = f x - 1/2 g^2 s(x, t) integrated with RK4
  (``probability_flow_solve``: on any grid with any of ``genjax.objectives.ode``'s methods).
* ``dpm_solver_pp`` — DPM-Solver++(2M) (Lu et al. 2022): the same ODE, second order in
  log-SNR with one network evaluation per step.

The stochastic-differential samplers end with Tweedie's denoising step x0_hat = (x + s^2 s(x)) / a.

``ode_log_prob`` is the probability-flow likelihood (Song et al. 2021, Sec. 4.3; Chen et al.
2018; Grathwohl et al. 2019): log p_eps(x) = log p_1(x(1)) + int_eps^1 div v(x(t), t) dt along the
ODE from x(eps) = x, the divergence exact (D Jacobian-vector products) or Hutchinson's
estimate v^T (dv/dx) v with one probe v per example held fixed along the path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genjax.objectives import ode
from genjax.objectives.score import Process, posterior


def grid(n_steps: int, t_end: float = 0.0, ladder: int = 0):
    """``n_steps + 1`` descending times from 1 to ``t_end``; snapped to the training ladder
    i / ``ladder`` (unique, so a grid finer than the ladder is the ladder) when it is discrete."""
    t = jnp.linspace(1.0, t_end, n_steps + 1)
    if ladder:
        t = jnp.round(t * ladder) / ladder
    return t


def logsnr_grid(process: Process, n_steps: int, t_end: float, ladder: int = 0):
    """``n_steps + 1`` descending times from 1 to ``t_end`` > 0 evenly spaced in
    lambda = log(a / s) (the grid DPM-Solver recommends for small images; Lu et al. 2022),
    found by interpolating lambda on a fine grid; snapped to ``ladder`` as in ``grid``."""
    fine = jnp.linspace(1.0, t_end, 4097)
    a, s = process.marginal(fine)
    lam = jnp.log(a / s)  # increasing along the descending grid
    t = jnp.interp(jnp.linspace(lam[0], lam[-1], n_steps + 1), lam, fine)
    t = t.at[0].set(1.0).at[-1].set(t_end)
    if ladder:
        t = jnp.round(t * ladder) / ladder
    return t


def _pairs(times):
    return times[:-1], times[1:]


def _x0_hat(eps_fn, process, x, t, clip):
    a, s = process.coeffs(t)
    eps = eps_fn(x, jnp.full(x.shape[:1], t))
    x0 = (x - s * eps) / a
    if clip is not None:
        x0 = jnp.clip(x0, *clip)
        eps = (x - a * x0) / jnp.maximum(s, 1e-12)
    return x0, eps


def prior_sample(process: Process, key, shape):
    return process.prior_std * jax.random.normal(key, shape)


def ancestral(eps_fn, process: Process, key, shape, times, clip=None):
    """Ancestral sampling along ``times``: x_s ~ q(x_s | x_t, x0_hat(x_t)), which is DDIM with
    eta = 1 (its mean a_s x0_hat + sqrt(s_s^2 - var) eps_hat is the posterior mean).
    ``clip``: (lo, hi) for x0_hat."""
    return ddim(eps_fn, process, key, shape, times, eta=1.0, clip=clip)


def ddim(eps_fn, process: Process, key, shape, times, eta: float = 0.0, clip=None, x_init=None):
    """DDIM along ``times`` (module docstring); ``x_init`` replaces the prior draw (decoding)."""
    k0, key = jax.random.split(key)

    def step(x, inp):
        t, s_, k = inp
        x0, eps = _x0_hat(eps_fn, process, x, t, clip)
        a_t, s_t = process.coeffs(t)
        a_s, s_s = process.coeffs(s_)
        _, var = posterior(x0, x, a_s, s_s, a_t, s_t)
        c = eta * jnp.sqrt(var)
        x = a_s * x0 + jnp.sqrt(jnp.maximum(s_s**2 - c**2, 0.0)) * eps + c * jax.random.normal(k, x.shape)
        return x, None

    x = prior_sample(process, k0, shape) if x_init is None else x_init
    t, s_ = _pairs(times)
    x, _ = jax.lax.scan(step, x, (t, s_, jax.random.split(key, t.shape[0])))
    return x


def ddim_encode(eps_fn, process: Process, x0, times):
    """Deterministic DDIM (eta = 0) run forwards from data ``x0`` along ascending ``times``
    (0 -> 1): x_t = a_t x0_hat(x_u) + s_t eps_hat(x_u) for each step u -> t. ``ddim`` with the
    reversed grid and ``x_init`` = the result decodes it back (up to the discretization)."""

    def step(x, inp):
        u, t = inp
        a_u, s_u = process.coeffs(u)
        eps = eps_fn(x, jnp.full(x.shape[:1], u))
        x0 = (x - s_u * eps) / a_u
        a_t, s_t = process.coeffs(t)
        return a_t * x0 + s_t * eps, None

    x, _ = jax.lax.scan(step, x0, (times[:-1], times[1:]))
    return x


def _score(eps_fn, process, x, t):
    _, s = process.coeffs(t)
    return -eps_fn(x, jnp.full(x.shape[:1], t)) / s


def _tweedie(eps_fn, process, x, t):
    a, s = process.coeffs(t)
    return (x + s**2 * _score(eps_fn, process, x, t)) / a


def annealed_langevin(eps_fn, process: Process, key, shape, levels, n_steps_each: int = 5, lr: float = 2e-5,
                      denoise: bool = True):  # fmt: skip
    """Annealed Langevin dynamics over the noise ``levels`` (times, descending, all > 0)."""
    k0, key = jax.random.split(key)
    s_min = process.coeffs(levels[-1])[1]

    def level(x, inp):
        t, k = inp
        alpha = lr * (process.coeffs(t)[1] / s_min) ** 2

        def inner(x, kk):
            return x + 0.5 * alpha * _score(eps_fn, process, x, t) + jnp.sqrt(alpha) * jax.random.normal(
                kk, x.shape
            ), None

        x, _ = jax.lax.scan(inner, x, jax.random.split(k, n_steps_each))
        return x, None

    x, _ = jax.lax.scan(level, prior_sample(process, k0, shape), (levels, jax.random.split(key, levels.shape[0])))
    return _tweedie(eps_fn, process, x, levels[-1]) if denoise else x


def predictor_corrector(eps_fn, process: Process, key, shape, times, snr: float = 0.16, n_corrector: int = 1,
                        denoise: bool = True):  # fmt: skip
    """Langevin corrector + Euler-Maruyama reverse-SDE predictor along ``times`` (descending,
    all > 0), then Tweedie's denoising at the last time."""
    k0, key = jax.random.split(key)

    def step(x, inp):
        t, t_next, k = inp
        kc, kp = jax.random.split(k)

        def correct(x, kk):
            g = _score(eps_fn, process, x, t)
            z = jax.random.normal(kk, x.shape)
            # the norms averaged over the batch, as in score_sde: a per-example ratio explodes
            # wherever the score is near zero (at a mode)
            norm = lambda v: jnp.mean(jnp.linalg.norm(v.reshape(v.shape[0], -1), axis=-1))
            eps = 2.0 * (snr * norm(z) / norm(g)) ** 2
            return x + eps * g + jnp.sqrt(2.0 * eps) * z, None

        x, _ = jax.lax.scan(correct, x, jax.random.split(kc, n_corrector))
        dt = t - t_next
        f, g2 = process.sde(t)
        drift = f * x - g2 * _score(eps_fn, process, x, t)
        return x - drift * dt + jnp.sqrt(g2 * dt) * jax.random.normal(kp, x.shape), None

    t, t_next = _pairs(times)
    x, _ = jax.lax.scan(step, prior_sample(process, k0, shape), (t, t_next, jax.random.split(key, t.shape[0])))
    return _tweedie(eps_fn, process, x, times[-1]) if denoise else x


def ode_drift(eps_fn, process: Process):
    """The probability-flow velocity v(x, t) = f(t) x - 1/2 g(t)^2 s(x, t) (t a scalar)."""

    def v(x, t):
        f, g2 = process.sde(t)
        return f * x - 0.5 * g2 * _score(eps_fn, process, x, t)

    return v


def probability_flow(eps_fn, process: Process, key, shape, n_steps: int = 100, t_eps: float = 1e-3,
                     denoise: bool = True):  # fmt: skip
    """Deterministic sampling: the prior draw carried by the probability-flow ODE from t = 1 to
    ``t_eps`` (RK4, ``n_steps`` steps), then Tweedie's denoising."""
    v = ode_drift(eps_fn, process)
    x = ode.solve(v, prior_sample(process, key, shape), jnp.linspace(1.0, t_eps, n_steps + 1), "rk4")
    return _tweedie(eps_fn, process, x, t_eps) if denoise else x


def probability_flow_solve(eps_fn, process: Process, key, shape, times, method: str = "heun", x_init=None):
    """The probability-flow ODE carried along ``times`` (descending, last > 0) by ``method``
    (``genjax.objectives.ode``), then Tweedie's denoising at the last time."""
    x = prior_sample(process, key, shape) if x_init is None else x_init
    x = ode.solve(ode_drift(eps_fn, process), x, times, method)
    return _tweedie(eps_fn, process, x, times[-1])


def dpm_solver_pp(eps_fn, process: Process, key, shape, times, clip=None, x_init=None):
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): the probability-flow ODE in data prediction,
    solved exactly in its linear part and to second order in x0_hat over lambda = log(a / s):

        x_(t_i) = (s_i / s_(i-1)) x_(t_(i-1)) - a_i (e^(-h_i) - 1) D_i,   h_i = lambda_i - lambda_(i-1),
        D_i = (1 + 1 / (2 r_i)) x0_hat_(i-1) - 1 / (2 r_i) x0_hat_(i-2),  r_i = h_(i-1) / h_i,

    with D_1 = x0_hat_0 (first order) and a first-order last step when it ends at the data (s = 0,
    where it returns x0_hat). One network evaluation per step. ``clip``: (lo, hi) for x0_hat."""
    x = prior_sample(process, key, shape) if x_init is None else x_init

    def step(carry, inp):
        x, x0_prev, h_prev, i = carry
        t, s_ = inp
        x0, _ = _x0_hat(eps_fn, process, x, t, clip)
        a_t, s_t = process.coeffs(t)
        a_s, s_s = process.coeffs(s_)
        ratio = s_s / s_t  # e^(-h) = (s_s / a_s) / (s_t / a_t); 0 at the data
        e_mh = ratio * a_t / a_s
        h = jnp.log(a_s / jnp.maximum(s_s, 1e-30)) - jnp.log(a_t / s_t)
        r = h_prev / h
        second = jnp.logical_and(i > 0, s_s > 0)
        d = jnp.where(second, (1 + 0.5 / r) * x0 - (0.5 / r) * x0_prev, x0)
        return (ratio * x - a_s * (e_mh - 1.0) * d, x0, h, i + 1), None

    t, s_ = _pairs(times)
    (x, _, _, _), _ = jax.lax.scan(step, (x, jnp.zeros_like(x), jnp.float32(1.0), jnp.int32(0)), (t, s_))
    return x


def ode_log_prob(eps_fn, process: Process, x, key, n_steps: int = 100, t_eps: float = 1e-3, trace: str = "hutchinson",
                 probe: str = "rademacher"):  # fmt: skip
    """log p_(t_eps)(x) ``[B]`` by the probability-flow ODE (module docstring), RK4 with
    ``n_steps`` steps from ``t_eps`` to 1. ``trace``: 'exact' | 'hutchinson' (``probe``:
    'rademacher' | 'gaussian')."""
    times = jnp.linspace(t_eps, 1.0, n_steps + 1)
    return ode.log_prob(ode_drift(eps_fn, process), x, key, times, process.prior_log_prob, trace, probe, "rk4")
