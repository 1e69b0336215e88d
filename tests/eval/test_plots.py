"""The figures: what each must show (captured before they are closed)."""

import numpy as np
import pytest

from genjax.eval import plots


@pytest.fixture
def figures(monkeypatch):
    kept = []
    monkeypatch.setattr(plots.plt, "close", lambda fig=None: kept.append(fig))
    return kept


def test_scatter_keeps_the_datas_axes_and_counts_far_samples(figures, tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(500, 2))
    samples = np.concatenate([rng.normal(size=(499, 2)), [[27_000.0, 3.0]]])
    plots.scatter2d(data, samples, tmp_path / "s.png")
    ax_data, ax_samples = figures[0].axes
    lo, hi = ax_data.get_xlim()
    assert lo < data[:, 0].min() and hi > data[:, 0].max() and hi - lo < 4 * np.ptp(data[:, 0])
    notes = [t.get_text() for t in ax_samples.texts]
    assert notes == ["1 of 500 outside this view (largest |coordinate| 2.7e+04)"]
    assert not ax_data.texts


def test_epoch_axes_have_integer_ticks(figures, tmp_path):
    history = [{"epoch": e, "loss": 3.0 - e, "val_nll": 3.1 - e} for e in (1, 2, 3)]
    plots.curves(history, tmp_path / "c.png")
    ticks = figures[0].axes[0].get_xticks()
    assert len(ticks) and np.all(ticks == np.round(ticks))
    plots.cv_curves({"val_nll": np.ones((3, 2))}, np.array([0, 1]), np.array([0, 0]), [""], tmp_path / "cv.png")
    ticks = figures[1].axes[0].get_xticks()
    assert np.all(ticks == np.round(ticks))


def test_interpolation_frames_its_endpoints(figures, tmp_path):
    rows = np.full((3, 5, 4, 4, 1), 0.5)
    plots.interpolation(rows, tmp_path / "i.png", ends=(np.zeros((3, 4, 4, 1)), np.ones((3, 4, 4, 1))))
    ax = figures[0].axes[0]
    assert len(ax.patches) == 2  # one frame per end column
    img = ax.images[0].get_array()
    assert img.shape[1] == 7 * 5 + 1  # the inputs at both ends of the 5 decodes
    assert np.all(img[1:5, 1:5] == 0.0) and np.all(img[1:5, 31:35] == 1.0)


def test_sweep_plot_sets_each_groups_error_bars_apart(figures, tmp_path):
    rows = [{"optim.lr": lr, "model.vae.beta": b, "heldout_nll_mean": 1.0, "heldout_nll_std": 0.1}
            for b in (0.5, 1.0) for lr in (1e-3, 3e-3)]  # fmt: skip
    plots.sweep_plot(rows, ["optim.lr", "model.vae.beta"], tmp_path / "sw.png")
    ax = figures[0].axes[0]
    xs = sorted({tuple(np.round(line.get_xdata(), 6)) for line in ax.lines})  # markers and caps of each group
    assert len(xs) == 2 and not set(xs[0]) & set(xs[1])  # the two beta groups never share an x position
