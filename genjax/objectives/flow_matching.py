"""Flow matching on Gaussian probability paths (Lipman et al. 2023; Liu et al. 2023; Tong et al. 2024).

Time runs as in ``genjax.objectives.score``: t = 0 is data, t = 1 is noise. A Gaussian path
perturbs an example x with x_t = a(t) x + s(t) eps, eps ~ N(0, I) (``Path``):

* ``ot`` — the optimal-transport path of Lipman et al. (their eq. 20 with t -> 1 - t):
  a(t) = 1 - t, s(t) = sigma_min + (1 - sigma_min) t. With sigma_min = 0 it is rectified flow's
  straight interpolant x_t = (1 - t) x + t eps (Liu et al. 2023).
* ``vp`` / ``ve`` — the diffusion processes of ``score.Process`` (a, s as there), so a model
  trained by flow matching on them and a diffusion model on the same process learn the same ODE.

The conditional velocity that moves x_t along its own path is, in closed form,

    u_t(x_t | x) = d x_t / dt = a'(t) x + s'(t) eps = a' x + (s' / s) (x_t - a x)     (Lipman eq. 15)

and flow matching regresses a network on it: L = E_(t, x, eps) || v_theta(x_t, t) - u_t ||^2.
Its minimizer is the marginal velocity v(x_t, t) = E[u_t | x_t], whose ODE dx/dt = v carries
N(a(1) x, s(1)^2 I) ~ the prior at t = 1 to the data (convolved with N(0, s(0)^2 I)) at t = 0.
In terms of a noise predictor eps_hat(x_t, t) = E[eps | x_t] (``velocity_from_eps``):
v = (a'/a) x_t + (s' - s a'/a) eps_hat, the probability-flow velocity of the diffusion model.

``ot_pairing`` is OT-CFM's minibatch coupling: noise and data of a batch paired by the exact
minimum-cost assignment under the squared Euclidean cost (Tong et al. 2024; Pooladian et al. 2023).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from genjax import hostcall
from genjax.objectives.score import LOG_2PI, Process, _bcast, _sum_event

PATHS = ("ot", "vp", "ve")


class Path(NamedTuple):
    """A Gaussian probability path x_t = a(t) x + s(t) eps (module docstring)."""

    kind: str = "ot"
    sigma_min: float = 0.0  # ot: the std left at the data end
    process: Process = Process()  # vp / ve: the diffusion process

    def coeffs(self, t):
        """(a(t), s(t)), elementwise in ``t``."""
        t = jnp.asarray(t, jnp.float32)
        if self.kind == "ot":
            return 1.0 - t, self.sigma_min + (1.0 - self.sigma_min) * t
        if self.kind in ("vp", "ve"):
            if self.kind != self.process.kind:
                raise ValueError(f"the {self.kind} path needs a {self.kind} process, got {self.process.kind!r}.")
            return self.process.marginal(t)
        raise ValueError(f"the path must be one of {', '.join(PATHS)}, got {self.kind!r}.")

    def rates(self, t):
        """(a'(t), s'(t)), the time derivatives (closed form for ``ot``, forward-mode otherwise)."""
        t = jnp.asarray(t, jnp.float32)
        if self.kind == "ot":
            return -jnp.ones_like(t), jnp.full_like(t, 1.0 - self.sigma_min)
        return jax.jvp(self.coeffs, (t,), (jnp.ones_like(t),))[1]

    @property
    def prior_std(self) -> float:
        """The path's distribution at t = 1 is taken as N(0, prior_std^2 I) (exact for ``ot``)."""
        return 1.0 if self.kind == "ot" else self.process.prior_std

    def prior_log_prob(self, x):
        """log N(x; 0, prior_std^2 I) per example ``[B]``."""
        v = self.prior_std**2
        return _sum_event(-0.5 * (LOG_2PI + math.log(v) + x**2 / v))


def interpolate(path: Path, x, eps, t):
    """x_t = a(t) x + s(t) eps for per-example times ``t [B]``."""
    a, s = path.coeffs(t)
    return _bcast(a, x) * x + _bcast(s, x) * eps


def target(path: Path, x, eps, t):
    """The conditional velocity u_t(x_t | x) = a'(t) x + s'(t) eps for ``t [B]``."""
    da, ds = path.rates(t)
    return _bcast(da, x) * x + _bcast(ds, x) * eps


def cfm_loss(v_fn, x, eps, t, path: Path):
    """Conditional flow matching || v_theta(x_t, t) - u_t(x_t | x) ||^2 per example ``[B]``
    (``v_fn(x_t) -> [B, ...]`` at the caller's times ``t [B]``)."""
    xt = interpolate(path, x, eps, t)
    return _sum_event((v_fn(xt) - target(path, x, eps, t)) ** 2)


def velocity_from_eps(path: Path, x_t, eps_hat, t):
    """The marginal velocity a noise predictor defines: (a'/a) x_t + (s' - s a'/a) eps_hat, for
    a scalar or per-example ``t``."""
    a, s = path.coeffs(t)
    da, ds = path.rates(t)
    r = da / a
    if jnp.ndim(t):
        return _bcast(r, x_t) * x_t + _bcast(ds - s * r, x_t) * eps_hat
    return r * x_t + (ds - s * r) * eps_hat


def _assignment(cost):
    """Each [B, B] cost matrix's (any leading axes: vmapped members) minimizing column permutation."""
    from scipy.optimize import linear_sum_assignment

    cost = np.asarray(cost, np.float64)
    flat = cost.reshape((-1,) + cost.shape[-2:])
    out = np.empty(flat.shape[:2], np.int32)
    for i, c in enumerate(flat):  # a diverged batch (a non-finite cost) keeps the independent pairing
        out[i] = linear_sum_assignment(c)[1] if np.all(np.isfinite(c)) else np.arange(c.shape[0])
    return out.reshape(cost.shape[:-1])


hostcall.register("genjax_ot_assignment", _assignment)


def ot_pairing(x, z):
    """The permutation ``perm [B]`` that minimizes sum_i ||x_i - z_(perm_i)||^2: the exact
    minibatch OT coupling of equal-size batches (a Hungarian solve on the host, scipy's
    ``linear_sum_assignment``, called from inside the jitted step as a named host function
    (``genjax.hostcall``: the step stays cacheable); vmapped members are solved in one call)."""
    b = x.shape[0]
    xf, zf = x.reshape(b, -1).astype(jnp.float32), z.reshape(b, -1).astype(jnp.float32)
    cost = jnp.sum(xf**2, 1)[:, None] + jnp.sum(zf**2, 1)[None, :] - 2.0 * xf @ zf.T
    out = jax.ShapeDtypeStruct((b,), jnp.int32)
    return jax.lax.stop_gradient(hostcall.call("genjax_ot_assignment", out, cost))


def straightness(v_fn, x1, times):
    """Liu et al.'s straightness of the paths an ODE draws from ``x1`` along ``times``:
    S = int || (x_end - x1) / (t_end - t_1) - v(x(t), t) ||^2 dt / |t_end - t_1| per example ``[B]``
    (Euler on the grid; 0 for straight paths, which one Euler step integrates exactly)."""
    times = jnp.asarray(times, jnp.float32)

    def step(x, th):
        t, t2 = th
        v = v_fn(x, t)
        return x + (t2 - t) * v, (v, jnp.abs(t2 - t))

    x_end, (vs, hs) = jax.lax.scan(step, x1, (times[:-1], times[1:]))
    chord = (x_end - x1) / (times[-1] - times[0])
    dev = jax.vmap(lambda v: _sum_event((chord - v) ** 2))(vs)  # [steps, B]
    return jnp.sum(hs[:, None] * dev, 0) / jnp.abs(times[-1] - times[0])
