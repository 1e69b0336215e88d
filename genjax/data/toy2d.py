"""2-D toy distributions, sampled from a seed, with exact log-densities where they exist.

Definitions and scales follow FFJORD's toy data (Grathwohl et al. 2019, ``lib/toy_data.py``):

* ``8gaussians``: 8 centres at radius 4 (angles k*pi/4), std 0.5, the whole divided by 1.414,
  i.e. a mixture of N(c_k / 1.414, (0.5/1.414)^2 I).
* ``checkerboard``: uniform on 8 of the 16 unit squares of [-2, 2]^2 in a checkerboard
  pattern, scaled by 2: density 1/32 on its support, entropy ln 32 = 3.4657 nats.
* ``moons``: sklearn ``make_moons(noise=0.1) * 2 + (-1, -0.2)``.
* ``circles``: sklearn ``make_circles(factor=0.5, noise=0.08) * 3``.
* ``swissroll``: sklearn ``make_swiss_roll(noise=1.0)`` columns (0, 2), divided by 5.

And from the PacGAN experiments (Lin et al. 2018, Sec. 5; after VEEGAN, Srivastava et al. 2017):

* ``ring``: 8 Gaussians with means (cos(2 pi k/8), sin(2 pi k/8)), variance 1e-4 (std 0.01).
* ``grid``: 25 Gaussians with means (-4 + 2i, -4 + 2j), i, j in 0..4, variance 0.0025 (std 0.05).

Mixtures have equal weights.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

_S2 = 1.414


def _mixture_params(name: str) -> tuple[np.ndarray, float] | None:
    """(means [M, 2], std) of the Gaussian-mixture toys, None for the others."""
    if name == "8gaussians":
        a = np.arange(8) * np.pi / 4
        return 4.0 * np.stack([np.cos(a), np.sin(a)], 1) / _S2, 0.5 / _S2
    if name == "ring":
        a = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(a), np.sin(a)], 1), 0.01
    if name == "grid":
        g = np.arange(-4.0, 5.0, 2.0)
        return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2), 0.05
    return None


def mixture_modes(name: str) -> tuple[np.ndarray, float]:
    """Means and std of the mixture toys ``8gaussians``, ``ring``, ``grid``."""
    p = _mixture_params(name)
    if p is None:
        raise ValueError(f"toy2d:{name} is not a Gaussian mixture.")
    return p


def toy2d_sample(name: str, n: int, seed: int) -> np.ndarray:
    """``n`` samples ``[n, 2]`` float32 from toy ``name``, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    mix = _mixture_params(name)
    if mix is not None:
        means, std = mix
        idx = rng.integers(0, len(means), n)
        x = means[idx] + std * rng.standard_normal((n, 2))
    elif name == "checkerboard":
        x1 = rng.random(n) * 4 - 2
        x2_ = rng.random(n) - rng.integers(0, 2, n) * 2
        x2 = x2_ + (np.floor(x1) % 2)
        x = np.stack([x1, x2], 1) * 2
    elif name in ("moons", "circles", "swissroll"):
        from sklearn import datasets as skd  # here, not at import: sklearn costs ~0.4 s to import

        if name == "moons":
            x = skd.make_moons(n, noise=0.1, random_state=seed)[0] * 2 + np.array([-1.0, -0.2])
        elif name == "circles":
            x = skd.make_circles(n, factor=0.5, noise=0.08, random_state=seed)[0] * 3
        else:
            x = skd.make_swiss_roll(n, noise=1.0, random_state=seed)[0][:, [0, 2]] / 5.0
    else:
        raise ValueError(f"data.name 'toy2d:{name}' is unknown; choose one of {', '.join(TOY2D)}.")
    return x.astype(np.float32)


def toy2d_log_prob(name: str, x: np.ndarray) -> np.ndarray | None:
    """Exact log-density ``[N]`` of ``x [N, 2]`` under toy ``name``; None where none is known."""
    x = np.asarray(x, np.float64)
    mix = _mixture_params(name)
    if mix is not None:
        means, std = mix
        d2 = np.sum((x[:, None, :] - means[None]) ** 2, -1)
        comp = -0.5 * d2 / std**2 - 2 * math.log(std) - math.log(2 * math.pi)
        return logsumexp(comp, axis=1) - math.log(len(means))
    if name == "checkerboard":
        u = x / 2  # back to the unit-square construction
        inside = (np.abs(u[:, 0]) <= 2) & (np.abs(u[:, 1]) <= 2)
        on = (np.floor(u[:, 0]) + np.floor(u[:, 1])) % 2 == 0
        return np.where(inside & on, -math.log(32.0), -np.inf)
    return None


TOY2D = ("moons", "circles", "8gaussians", "checkerboard", "swissroll", "ring", "grid")
