"""Ordinary differential equations dx/dt = v(x, t) on a time grid, and the density they carry.

Every generative ODE in genjax (a diffusion model's probability flow, a flow-matching velocity,
EDM's dx/dsigma) is a velocity ``v(x [B, ...], t) -> [B, ...]`` with ``t`` a scalar, integrated
over a grid ``times`` that may run either way (noise -> data when sampling, data -> noise for a
likelihood). Each solver is one ``lax.scan`` over the grid's intervals, so it jits and vmaps:

* ``euler`` — x' = x + h v(x, t): first order, one evaluation per step.
* ``heun`` — the explicit trapezoid (RK2): x~ = x + h v(x, t), x' = x + h/2 (v(x, t) + v(x~, t'))
  — second order, two evaluations per step (EDM's sampler without churn).
* ``rk4`` — the classical Runge-Kutta method, fourth order, four evaluations per step.

``log_prob`` is the instantaneous change of variables (Chen et al. 2018): along the ODE,
d/dt log p_t(x(t)) = -div v(x(t), t), so for x(t_0) = x and the grid running from t_0 to t_1,
log p_(t_0)(x) = log p_(t_1)(x(t_1)) + int_(t_0)^(t_1) div v(x(t), t) dt, the divergence exact
(D Jacobian-vector products) or Hutchinson's estimate u^T (dv/dx) u with one probe u per example
held fixed along the path (Grathwohl et al. 2019).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

METHODS = ("euler", "heun", "rk4")
_EVALS = {"euler": 1, "heun": 2, "rk4": 4}


def evaluations(method: str, steps: int) -> int:
    """Network evaluations of ``steps`` steps of ``method`` (the NFE a sampler reports)."""
    return _EVALS[method] * int(steps)


def _axpy(a, x, y):
    return jax.tree.map(lambda u, w: u + a * w, x, y)


def step(fn, y, t, h, method: str):
    """One step of ``method`` from time ``t`` to ``t + h`` of dy/dt = fn(y, t) (y a pytree).
    The stages call one ``jax.jit`` of ``fn``, so ``fn`` (a network) is traced and lowered once
    per step, not once per stage; XLA inlines the calls, so the program is the same."""
    fn = jax.jit(fn)
    if method == "euler":
        return _axpy(h, y, fn(y, t))
    if method == "heun":
        k1 = fn(y, t)
        k2 = fn(_axpy(h, y, k1), t + h)
        return jax.tree.map(lambda a, b1, b2: a + 0.5 * h * (b1 + b2), y, k1, k2)
    if method == "rk4":
        k1 = fn(y, t)
        k2 = fn(_axpy(0.5 * h, y, k1), t + 0.5 * h)
        k3 = fn(_axpy(0.5 * h, y, k2), t + 0.5 * h)
        k4 = fn(_axpy(h, y, k3), t + h)
        return jax.tree.map(lambda a, b1, b2, b3, b4: a + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4), y, k1, k2, k3, k4)
    raise ValueError(f"the ODE method must be one of {', '.join(METHODS)}, got {method!r}.")


def solve(fn, y, times, method: str = "heun"):
    """y(times[-1]) of dy/dt = fn(y, t) from y(times[0]) = ``y``, one ``method`` step per
    interval of the grid ``times`` (ascending or descending)."""
    times = jnp.asarray(times, jnp.result_type(float))  # float64 under jax.enable_x64
    y, _ = jax.lax.scan(lambda y, th: (step(fn, y, th[0], th[1] - th[0], method), None), y, (times[:-1], times[1:]))
    return y


def probes(key, shape, kind: str = "rademacher"):
    """Hutchinson probes u with E[u u^T] = I: Rademacher signs or standard normals."""
    if kind not in ("rademacher", "gaussian"):
        raise ValueError(f"the probe must be 'rademacher' or 'gaussian', got {kind!r}.")
    u = jax.random.normal(key, shape)
    return jnp.sign(u) if kind == "rademacher" else u


def _sum_event(x):
    return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def divergence(v, x, t, trace: str = "exact", u=None):
    """(v(x, t), div_x v(x, t) ``[B]``): exact (D Jacobian-vector products with the basis) or
    Hutchinson's u^T (dv/dx) u with the probes ``u`` (shaped like x)."""
    if trace == "hutchinson":
        out, jv = jax.jvp(lambda z: v(z, t), (x,), (u,))
        return out, _sum_event(u * jv)
    if trace != "exact":
        raise ValueError(f"the divergence must be 'exact' or 'hutchinson', got {trace!r}.")
    d = x[0].size
    basis = jnp.eye(d, dtype=x.dtype).reshape((d, 1) + x.shape[1:])

    def along(e):  # the velocity is the JVP's primal, unbatched: one trace of v, one evaluation
        out, jv = jax.jvp(lambda z: v(z, t), (x,), (jnp.broadcast_to(e, x.shape),))
        return out, _sum_event(e * jv)

    out, diag = jax.vmap(along, out_axes=(None, 0))(basis)
    return out, jnp.sum(diag, 0)


def log_prob(v, x, key, times, prior_log_prob, trace: str = "exact", probe: str = "rademacher",
             method: str = "rk4"):  # fmt: skip
    """log p_(times[0])(x) ``[B]`` (module docstring): the pair (x, int div v) carried by
    ``method`` along ``times`` (from the data end to the prior end), plus ``prior_log_prob`` of
    where x lands. ``trace``: 'exact' | 'hutchinson' (``probe``: 'rademacher' | 'gaussian')."""
    u = probes(key, x.shape, probe) if trace == "hutchinson" else None
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"the divergence must be 'exact' or 'hutchinson', got {trace!r}.")
    x1, delta = solve(lambda s, t: divergence(v, s[0], t, trace, u), (x, jnp.zeros(x.shape[0])), times, method)
    return prior_log_prob(x1) + delta
