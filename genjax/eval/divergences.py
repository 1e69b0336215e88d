"""Divergence estimates between data and samples, for low-dimensional data.

* Discrete (exact): KL(p || q) = sum p log(p / q); JS(p, q) = KL(p || m)/2 + KL(q || m)/2 with
  m = (p + q)/2 (natural log; JS <= ln 2).
* Histogram plug-in: both sets binned on one grid (1-D or 2-D); JS from the raw frequencies;
  KL(p || q) after adding ``alpha`` pseudo-counts to every bin of both (else it is infinite
  wherever q has an empty bin that p does not). Biased for few samples per bin.
* Wasserstein: exact in 1-D (``scipy.stats.wasserstein_distance``: the L1 distance between the
  CDFs); exact for two equal-size point sets in any dimension as an assignment problem
  (``scipy.optimize.linear_sum_assignment``: W_p^p = min over permutations of the mean
  ||x_i - y_pi(i)||^p; O(n^3), for n up to a few thousand); sliced, the mean of 1-D W_1 over
  random unit directions (Rabin et al. 2011), for large sets.
"""

from __future__ import annotations

import numpy as np


def _check_probs(p, name):
    p = np.asarray(p, np.float64)
    if p.ndim != 1 or np.any(p < 0) or not np.isclose(p.sum(), 1.0, atol=1e-6):
        raise ValueError(f"{name} must be a probability vector (non-negative, summing to 1).")
    return p


def kl_discrete(p, q) -> float:
    """KL(p || q) in nats; inf where q = 0 < p."""
    p, q = _check_probs(p, "p"), _check_probs(q, "q")
    nz = p > 0
    with np.errstate(divide="ignore"):
        return float(np.sum(p[nz] * (np.log(p[nz]) - np.log(q[nz]))))


def js_discrete(p, q) -> float:
    """Jensen-Shannon divergence in nats (0 to ln 2)."""
    p, q = _check_probs(p, "p"), _check_probs(q, "q")
    m = 0.5 * (p + q)
    return 0.5 * kl_discrete(p, m) + 0.5 * kl_discrete(q, m)


def histograms(x: np.ndarray, y: np.ndarray, bins: int = 50, bounds=None) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``x`` and ``y`` ``[N, d]`` (d = 1 or 2) on one grid spanning both sets (or
    ``bounds``: ``[(lo, hi)] * d``)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    d = x.shape[1]
    if d not in (1, 2) or y.shape[1] != d:
        raise ValueError(f"histogram divergences need 1-D or 2-D data of one dimension, got {d} and {y.shape[1]}.")
    both = np.concatenate([x, y])
    bounds = bounds or [(both[:, i].min(), both[:, i].max()) for i in range(d)]
    hx = np.histogramdd(x, bins=bins, range=bounds)[0].ravel()
    hy = np.histogramdd(y, bins=bins, range=bounds)[0].ravel()
    return hx, hy


def histogram_divergences(x, y, bins: int = 50, alpha: float = 0.5, bounds=None) -> dict:
    """Plug-in KL(x || y), KL(y || x) and JS from shared-grid histograms (module docstring)."""
    hx, hy = histograms(x, y, bins, bounds)
    sx, sy = (hx + alpha) / (hx + alpha).sum(), (hy + alpha) / (hy + alpha).sum()
    return {
        "kl_data_model": kl_discrete(sx, sy),
        "kl_model_data": kl_discrete(sy, sx),
        "js": js_discrete(hx / hx.sum(), hy / hy.sum()),
        "bins": bins,
    }


def wasserstein_1d(x, y) -> float:
    """Exact W_1 between two 1-D samples."""
    import scipy.stats  # here, not at import (~0.6 s)

    return float(scipy.stats.wasserstein_distance(np.ravel(x), np.ravel(y)))


def wasserstein_exact(x, y, p: int = 1) -> float:
    """Exact W_p between two equal-size empirical distributions (optimal assignment)."""
    import scipy.optimize  # here, not at import

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    if len(x) != len(y):
        raise ValueError(f"wasserstein_exact needs sets of equal size, got {len(x)} and {len(y)}.")
    cost = np.linalg.norm(x[:, None] - y[None], axis=-1) ** p
    r, c = scipy.optimize.linear_sum_assignment(cost)
    return float(cost[r, c].mean() ** (1.0 / p))


def sliced_wasserstein(x, y, n_projections: int = 200, seed: int = 0) -> float:
    """Mean over random unit directions theta of W_1(theta.x, theta.y)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    theta = np.random.default_rng(seed).standard_normal((n_projections, x.shape[1]))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    px, py = x @ theta.T, y @ theta.T
    return float(np.mean([wasserstein_1d(px[:, i], py[:, i]) for i in range(n_projections)]))
