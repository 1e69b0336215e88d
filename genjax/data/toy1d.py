"""1-D regression data with input-dependent (heteroscedastic) noise, sampled from a seed, with
the true conditional mean and standard deviation for figures and calibration checks:

* ``hetero``: x ~ U[-4, 4], y = x sin(x) + sigma(x) eps, eps ~ N(0, 1),
  sigma(x) = 0.1 + 0.5 (x / 4)^2 — quiet in the middle, six times noisier at the edges;
* ``hetero_t``: the same mean and scale with Student-t noise of 3 degrees of freedom
  (heavy tails; the scale is sigma(x), the standard deviation sigma(x) sqrt(3)).

Examples are ``x [N, 1]`` with real targets ``y [N, 1]`` (float32).
"""

from __future__ import annotations

import numpy as np

TOY1D = ("hetero", "hetero_t")
X_RANGE = (-4.0, 4.0)


def toy1d_mean(x) -> np.ndarray:
    """E[y | x] = x sin x."""
    x = np.asarray(x, np.float64)
    return x * np.sin(x)


def toy1d_scale(x) -> np.ndarray:
    """The noise scale sigma(x) = 0.1 + 0.5 (x / 4)^2."""
    x = np.asarray(x, np.float64)
    return 0.1 + 0.5 * (x / 4.0) ** 2


def toy1d_sample(name: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples ``(x [n, 1], y [n, 1])`` of ``name`` (module docstring)."""
    if name not in TOY1D:
        raise ValueError(f"toy1d: unknown data {name!r}; choose one of {', '.join(TOY1D)}.")
    rng = np.random.default_rng(seed)
    x = rng.uniform(*X_RANGE, size=(n, 1))
    eps = rng.standard_normal((n, 1)) if name == "hetero" else rng.standard_t(3, size=(n, 1))
    y = toy1d_mean(x) + toy1d_scale(x) * eps
    return x.astype(np.float32), y.astype(np.float32)


def toy1d_interval(name: str, x, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The true central ``level`` interval of y given x."""
    from scipy import stats  # here, not at import: scipy.stats costs ~0.6 s to import

    q = stats.norm.ppf(0.5 + level / 2) if name == "hetero" else stats.t.ppf(0.5 + level / 2, 3)
    m, s = toy1d_mean(x), toy1d_scale(x)
    return m - q * s, m + q * s


def toy1d_log_prob(name: str, x, y) -> np.ndarray:
    """The true log p(y | x) ``[N]`` of ``[N, 1]`` inputs and targets."""
    from scipy import stats

    m, s = toy1d_mean(x), toy1d_scale(x)
    lp = stats.norm.logpdf(y, m, s) if name == "hetero" else stats.t.logpdf(y, 3, m, s)
    return np.sum(lp, axis=-1)
