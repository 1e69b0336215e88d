import json

import ml_collections
import pytest

from genjax.models import DataInfo
from genjax.sweep import run_cv, sweep_grid

DIGITS = DataInfo((8, 8, 1))


def test_sweep_grid_splits_looped_and_vmapped(smoke_cfg):
    smoke_cfg.cv.sweep = ml_collections.ConfigDict(
        {"optim": {"lr": [1e-3, 3e-3]}, "model": {"vae": {"hidden": [(8,), (16,)], "dropout": [0.0, 0.2]}}}
    )
    looped, vmapped = sweep_grid(smoke_cfg, DIGITS)
    assert looped == [{"model.vae.hidden": (8,)}, {"model.vae.hidden": (16,)}]
    assert len(vmapped) == 4 and {"optim.lr", "model.vae.dropout"} == set(vmapped[0])
    smoke_cfg.cv.sweep = ml_collections.ConfigDict({"data": {"seed": [1, 2]}})
    with pytest.raises(ValueError, match="cv.sweep field 'data.seed'"):
        sweep_grid(smoke_cfg, DIGITS)
    smoke_cfg.cv.sweep = ml_collections.ConfigDict({"model": {"vae": {"nope": [1, 2]}}})
    with pytest.raises(ValueError, match="cv.sweep field 'model.vae.nope'"):
        sweep_grid(smoke_cfg, DIGITS)


def test_gan_penalties_are_sweepable_from_the_family(smoke_cfg):
    """What vmaps comes from the family's declared hyperparameters, not a fixed list."""
    smoke_cfg.model.family = "gan"
    smoke_cfg.cv.sweep = ml_collections.ConfigDict(
        {"model": {"gan": {"gp": [0.0, 1.0], "r1": [0.0, 0.5], "latent_dim": [2, 4]}}}
    )
    looped, vmapped = sweep_grid(smoke_cfg, DataInfo((2,)))
    assert looped == [{"model.gan.latent_dim": 2}, {"model.gan.latent_dim": 4}]
    assert len(vmapped) == 4 and set(vmapped[0]) == {"model.gan.gp", "model.gan.r1"}


def test_run_cv_with_a_sweep_writes_the_report(smoke_cfg, tmp_path):
    c = smoke_cfg
    c.cv.folds, c.train.epochs = 2, 2
    c.model.vae.nll_samples = c.model.vae.nll_chunk = 5
    c.cv.sweep = ml_collections.ConfigDict({"optim": {"lr": [1e-3, 3e-3]}, "model": {"vae": {"hidden": [(8,), (16,)]}}})
    rep = run_cv(c, tmp_path, progress=False)
    assert len(rep["rows"]) == 4 and set(rep["swept"]) == {"optim.lr", "model.vae.hidden"}
    best = min(rep["rows"], key=lambda r: r["heldout_nll_mean"])
    assert rep["best"]["heldout_nll_mean"] == best["heldout_nll_mean"]
    assert rep["rows"][0]["params"] < rep["rows"][2]["params"]  # 8 hidden units vs 16
    for f in ("cv.json", "sweep.md", "sweep.png", "cv_curves_0.png", "cv_curves_1.png"):
        assert (tmp_path / f).is_file(), f
    assert "Best:" in (tmp_path / "sweep.md").read_text()
    assert json.loads((tmp_path / "cv.json").read_text())["folds"] == 2


def test_the_best_settings_lead_is_judged_against_the_paired_fold_spread():
    from genjax.sweep import best_lead, sweep_table

    rows = [
        {"optim.lr": 3e-3, "per_fold": [1.5, 2.2, 3.4], "heldout_nll_mean": 7.1 / 3},
        {"optim.lr": 1e-3, "per_fold": [1.0, 2.0, 3.0], "heldout_nll_mean": 2.0},
        {"optim.lr": 1e-2, "per_fold": [9.0, 9.0, 9.0], "heldout_nll_mean": 9.0},
    ]
    for r in rows:
        r |= {"heldout_nll_std": 1.0, "test_nll_mean": r["heldout_nll_mean"]}
    ld = best_lead(rows)
    # d = runner-up - best per fold = (0.5, 0.2, 0.4): mean 11/30, sd (ddof 1) sqrt(0.07/3), se sd/sqrt(3)
    assert ld["runner_up"] == 0
    assert ld["lead"] == pytest.approx(11 / 30, rel=1e-12)
    assert ld["lead_se"] == pytest.approx((0.07 / 3) ** 0.5 / 3**0.5, rel=1e-12)
    assert ld["clear"] and ld["lead_over_se"] == pytest.approx((11 / 30) / ld["lead_se"])
    rows[0]["per_fold"] = [0.0, 2.0, 4.1]  # same mean lead 0.3667, but the folds disagree
    rows[0]["heldout_nll_mean"] = 6.1 / 3
    noisy = best_lead(rows)
    assert not noisy["clear"] and noisy["lead_over_se"] < 2
    report = {"swept": ["optim.lr"], "rows": rows, "folds": 3, "metric_kind": "nats per image",
              "best": {"optim.lr": 1e-3, "heldout_nll_mean": 2.0, "heldout_nll_std": 1.0, "lead": noisy}}
    assert "no clear winner" in sweep_table(report)
