"""EDM (Karras et al. 2022, "Elucidating the design space of diffusion-based generative models")
and the consistency parametrization (Song et al. 2023; Song & Dhariwal 2024).

Data y are noised as x = y + sigma n, n ~ N(0, I) (a VE process with time sigma). The denoiser is
preconditioned (Table 1, "ours"):

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma)),
    c_skip = sigma_d^2 / (sigma^2 + sigma_d^2),  c_out = sigma sigma_d / sqrt(sigma^2 + sigma_d^2),
    c_in = 1 / sqrt(sigma^2 + sigma_d^2),        c_noise = 1/4 ln sigma,

trained with ln sigma ~ N(P_mean, P_std^2) and the weight lambda(sigma) = (sigma^2 + sigma_d^2) /
(sigma sigma_d)^2 = 1 / c_out^2 on || D(y + sigma n; sigma) - y ||^2, so that the network's own
target (y - c_skip x) / c_out has unit variance at every sigma. Sampling solves the probability
flow dx/dsigma = (x - D(x; sigma)) / sigma over sigma_i = (sigma_max^(1/rho) + i / (N - 1)
(sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, sigma_N = 0, with Heun's method (Algorithm 2) and
optional churn: at each step the noise is raised to sigma_hat = (1 + gamma) sigma_i,
gamma = min(S_churn / N, sqrt 2 - 1) for sigma_i in [S_tmin, S_tmax], by adding
sqrt(sigma_hat^2 - sigma_i^2) S_noise n.

A consistency function f(x, sigma) maps any point of a probability-flow trajectory to its start;
``consistency_coeffs`` builds the boundary condition f(x, sigma_min) = x into it (Song et al. 2023,
Appendix C): c_skip = sigma_d^2 / ((sigma - sigma_min)^2 + sigma_d^2),
c_out = sigma_d (sigma - sigma_min) / sqrt(sigma_d^2 + sigma^2).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from genjax.objectives.score import _bcast, _sum_event


def precond(sigma, sigma_data: float):
    """(c_skip, c_out, c_in, c_noise) of EDM's preconditioning at ``sigma`` (module docstring)."""
    v = sigma**2 + sigma_data**2
    return sigma_data**2 / v, sigma * sigma_data / jnp.sqrt(v), 1.0 / jnp.sqrt(v), 0.25 * jnp.log(sigma)


def loss_weight(sigma, sigma_data: float):
    """lambda(sigma) = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def sample_sigma(key, n: int, p_mean: float, p_std: float):
    """Training noise levels: ln sigma ~ N(P_mean, P_std^2), ``[n]``."""
    return jnp.exp(p_mean + p_std * jax.random.normal(key, (n,)))


def denoising_loss(denoise, y, noise, sigma, sigma_data: float):
    """lambda(sigma) || D(y + sigma n; sigma) - y ||^2 per example ``[B]`` (``denoise(x, sigma [B])``)."""
    x = y + _bcast(sigma, y) * noise
    return loss_weight(sigma, sigma_data) * _sum_event((denoise(x, sigma) - y) ** 2)


def sigma_steps(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0):
    """EDM's time steps (eq. 5): ``n`` levels from sigma_max down to sigma_min, spaced evenly in
    sigma^(1/rho), and a final 0. ``[n + 1]``."""
    i = jnp.arange(n, dtype=jnp.float32)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sig = (hi + i / max(n - 1, 1) * (lo - hi)) ** rho
    return jnp.concatenate([sig, jnp.zeros(1)])


def sample(denoise, key, shape, sigmas, method: str = "heun", s_churn: float = 0.0, s_tmin: float = 0.0,
           s_tmax: float = math.inf, s_noise: float = 1.0, x_init=None):  # fmt: skip
    """EDM's Algorithm 2 over ``sigmas`` (descending, ending at 0): Heun steps (Euler on the last
    step to 0; ``method = 'euler'``: Euler everywhere) with churn. ``denoise(x, sigma [B])``.
    Network evaluations: 2 N - 1 for Heun, N for Euler (N = len(sigmas) - 1)."""
    n = sigmas.shape[0] - 1
    k0, key = jax.random.split(key)
    x = sigmas[0] * jax.random.normal(k0, shape) if x_init is None else x_init
    gamma_max = min(s_churn / n, math.sqrt(2.0) - 1.0) if s_churn > 0 else 0.0

    @jax.jit  # Heun's two evaluations share one trace of the network (compile time)
    def d_of(x, s):
        return (x - denoise(x, jnp.full(x.shape[:1], s))) / s

    def step(x, inp):
        s_cur, s_next, k = inp
        gamma = jnp.where((s_cur >= s_tmin) & (s_cur <= s_tmax), gamma_max, 0.0)
        s_hat = s_cur * (1.0 + gamma)
        x_hat = x + jnp.sqrt(jnp.maximum(s_hat**2 - s_cur**2, 0.0)) * s_noise * jax.random.normal(k, x.shape)
        d = d_of(x_hat, s_hat)
        x_next = x_hat + (s_next - s_hat) * d
        if method == "heun":
            safe = jnp.where(s_next > 0, s_next, 1.0)
            d2 = d_of(x_next, safe)
            x_next = jnp.where(s_next > 0, x_hat + (s_next - s_hat) * 0.5 * (d + d2), x_next)
        return x_next, None

    if method not in ("heun", "euler"):
        raise ValueError(f"the EDM sampler must be 'heun' or 'euler', got {method!r}.")
    x, _ = jax.lax.scan(step, x, (sigmas[:-1], sigmas[1:], jax.random.split(key, n)))
    return x


def velocity(denoise):
    """The probability flow dx/dsigma = (x - D(x; sigma)) / sigma, as ``genjax.objectives.ode``
    takes it (sigma a scalar)."""
    return lambda x, s: (x - denoise(x, jnp.full(x.shape[:1], s))) / s


# --- consistency models ------------------------------------------------------------------------


def consistency_coeffs(sigma, sigma_data: float, sigma_min: float):
    """(c_skip, c_out) with c_skip(sigma_min) = 1 and c_out(sigma_min) = 0 (module docstring)."""
    c_skip = sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)
    c_out = sigma_data * (sigma - sigma_min) / jnp.sqrt(sigma_data**2 + sigma**2)
    return c_skip, c_out


def ict_levels(step, total_steps: int, s0: int = 10, s1: int = 1280):
    """The improved consistency training curriculum (Song & Dhariwal 2024, eq. 7): N(k) =
    min(s0 2^floor(k / K'), s1) + 1 levels at step k, K' = floor(K / (log2(s1 / s0) + 1))."""
    stages = int(math.log2(s1 // s0)) + 1
    k_prime = max(total_steps // stages, 1)
    doublings = jnp.minimum(jnp.asarray(step) // k_prime, stages)  # past K: no int32 overflow of 2^k
    return jnp.minimum(s0 * 2**doublings, s1).astype(jnp.int32) + 1


def ict_sigmas(n_levels, sigma_min: float, sigma_max: float, rho: float, size: int):
    """Karras levels sigma_1 = sigma_min < ... < sigma_N = sigma_max for a traced ``n_levels``
    N, padded to ``size`` (entries past N repeat sigma_max). ``[size]``."""
    i = jnp.arange(size, dtype=jnp.float32)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    frac = jnp.minimum(i / jnp.maximum(n_levels - 1, 1), 1.0)
    return (lo + frac * (hi - lo)) ** rho


def ict_level_probs(sigmas, n_levels, p_mean: float, p_std: float):
    """p(i) proportional to erf((ln sigma_(i+1) - P_mean) / (sqrt 2 P_std)) - erf((ln sigma_i -
    P_mean) / (sqrt 2 P_std)) over i = 0 .. N - 2 (the discretized log-normal; 0 past N - 1)."""
    z = (jnp.log(sigmas) - p_mean) / (math.sqrt(2.0) * p_std)
    w = erf(z[1:]) - erf(z[:-1])
    w = jnp.where(jnp.arange(w.shape[0]) < n_levels - 1, w, 0.0)
    return w / jnp.sum(w)


def pseudo_huber(a, b, c: float):
    """sqrt(||a - b||^2 + c^2) - c per example ``[B]``."""
    return jnp.sqrt(_sum_event((a - b) ** 2) + c * c) - c
