import math

import numpy as np
import pytest

from genjax.eval import divergences as dv


def test_discrete_kl_and_js_closed_forms():
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    assert dv.kl_discrete(p, q) == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1))
    assert dv.kl_discrete(p, p) == 0.0
    assert dv.js_discrete([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.log(2))  # disjoint: ln 2
    assert dv.kl_discrete([0.5, 0.5], [1.0, 0.0]) == math.inf
    with pytest.raises(ValueError, match="probability vector"):
        dv.kl_discrete([0.5, 0.6], p)


def test_histogram_divergences_small_for_same_distribution_large_for_different():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20000, 2)), rng.normal(size=(20000, 2))
    c = rng.normal(size=(20000, 2)) + 3.0
    same, diff = dv.histogram_divergences(a, b, bins=20), dv.histogram_divergences(a, c, bins=20)
    assert same["js"] < 0.01 and same["kl_data_model"] < 0.02
    assert diff["js"] > 0.5 and diff["kl_data_model"] > 3.0
    # 1-D Gaussians N(0,1) vs N(1,1): KL = 1/2
    x, y = rng.normal(size=200000), rng.normal(size=200000) + 1.0
    assert dv.histogram_divergences(x, y, bins=80, bounds=[(-6, 7)])["kl_data_model"] == pytest.approx(0.5, abs=0.03)


def test_wasserstein_exact_1d_assignment_and_sliced_for_a_shift():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 2))
    s = np.array([0.6, -0.8])  # |s| = 1
    y = x + s
    assert dv.wasserstein_1d(x[:, 0], y[:, 0]) == pytest.approx(0.6, abs=1e-9)
    assert dv.wasserstein_exact(x, y) == pytest.approx(1.0, abs=1e-9)  # translation: the identity matching
    # sliced W_1 of a translation: E|theta . s| = |s| E|cos| = 2/pi in 2-D
    assert dv.sliced_wasserstein(x, y, n_projections=4000) == pytest.approx(2 / math.pi, abs=0.02)
    with pytest.raises(ValueError, match="equal size"):
        dv.wasserstein_exact(x, y[:10])
