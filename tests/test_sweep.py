import json

import ml_collections
import pytest

from genjax.sweep import run_cv, sweep_grid


def test_sweep_grid_splits_looped_and_vmapped(smoke_cfg):
    smoke_cfg.cv.sweep = ml_collections.ConfigDict(
        {"optim": {"lr": [1e-3, 3e-3]}, "model": {"hidden": [(8,), (16,)], "dropout": [0.0, 0.2]}}
    )
    looped, vmapped = sweep_grid(smoke_cfg)
    assert looped == [{"model.hidden": (8,)}, {"model.hidden": (16,)}]
    assert len(vmapped) == 4 and {"optim.lr", "model.dropout"} == set(vmapped[0])
    smoke_cfg.cv.sweep = ml_collections.ConfigDict({"data": {"seed": [1, 2]}})
    with pytest.raises(ValueError, match="cv.sweep field 'data.seed'"):
        sweep_grid(smoke_cfg)


def test_run_cv_with_a_sweep_writes_the_report(smoke_cfg, tmp_path):
    c = smoke_cfg
    c.cv.folds, c.train.epochs = 2, 2
    c.eval.nll_samples = c.eval.nll_chunk = 5
    c.cv.sweep = ml_collections.ConfigDict({"optim": {"lr": [1e-3, 3e-3]}, "model": {"hidden": [(8,), (16,)]}})
    rep = run_cv(c, tmp_path, progress=False)
    assert len(rep["rows"]) == 4 and set(rep["swept"]) == {"optim.lr", "model.hidden"}
    best = min(rep["rows"], key=lambda r: r["heldout_nll_mean"])
    assert rep["best"]["heldout_nll_mean"] == best["heldout_nll_mean"]
    assert rep["rows"][0]["params"] < rep["rows"][2]["params"]  # 8 hidden units vs 16
    for f in ("cv.json", "sweep.md", "sweep.png", "cv_curves_0.png", "cv_curves_1.png"):
        assert (tmp_path / f).is_file(), f
    assert "Best:" in (tmp_path / "sweep.md").read_text()
    assert json.loads((tmp_path / "cv.json").read_text())["folds"] == 2
