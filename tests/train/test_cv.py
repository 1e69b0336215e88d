"""k-fold cross-validation and sweeps trained at once (vmap), against the loop reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.data import load_splits
from genjax.models import DataInfo, build_family
from genjax.train import init_state, make_step
from genjax.train.cv import cross_validate
from genjax.train.optim import make_optimizer


@pytest.fixture
def cv_cfg(smoke_cfg):
    c = smoke_cfg
    c.cv.folds = 3
    c.train.epochs = 4
    c.model.vae.nll_samples = 10
    c.model.vae.nll_chunk = 10
    return c


def _run(cfg, settings=None, strategy="vmap", **kw):
    splits = load_splits(cfg.data, cfg.train.batch_size)
    return cross_validate(
        cfg, build_family(cfg, DataInfo.of(splits)), splits, settings, strategy=strategy, progress=False, **kw
    )


def test_vmap_and_loop_agree(cv_cfg):
    """(The shard strategy and meshes of several devices: tests/train/test_sharding.py, in a
    process of its own with forced host devices.)"""
    settings = [{"optim.lr": 1e-3}, {"optim.lr": 3e-3, "model.vae.beta": 0.5}]
    v = _run(cv_cfg, settings, "vmap")
    lo = _run(cv_cfg, settings, "loop")
    assert len(v.heldout_nll) == 6 and np.all(np.isfinite(v.heldout_nll))
    np.testing.assert_allclose(v.heldout_nll, lo.heldout_nll, rtol=1e-4)
    np.testing.assert_allclose(v.history["val_nll"], lo.history["val_nll"], rtol=1e-4)
    # the two settings differ
    assert not np.allclose(v.heldout_nll[:3], v.heldout_nll[3:])
    s = v.summary()
    assert s[0]["heldout_nll_mean"] == pytest.approx(np.mean(v.heldout_nll[:3]), rel=1e-6)


def test_sweep_member_equals_a_separate_run(cv_cfg):
    swept = _run(cv_cfg, [{"optim.lr": 1e-3}, {"optim.lr": 4e-3, "objective.l2": 1e-3}])
    cv_cfg.optim.lr, cv_cfg.objective.l2 = 4e-3, 1e-3
    alone = _run(cv_cfg, None, "loop")
    np.testing.assert_allclose(swept.heldout_nll[3:], alone.heldout_nll, rtol=1e-4)
    assert "reg" in alone.history and np.all(alone.history["reg"] > 0)  # logged apart from the data term


def test_dropout_rates_sweep(cv_cfg):
    cv_cfg.model.vae.dropout = 0.5  # dropout layers present; each member sets its rate
    r = _run(cv_cfg, [{"model.vae.dropout": 0.0}, {"model.vae.dropout": 0.5}])
    cv_cfg.model.vae.dropout = 0.5
    alone = _run(cv_cfg, None, "loop")
    np.testing.assert_allclose(r.heldout_nll[3:], alone.heldout_nll, rtol=1e-4)
    assert not np.allclose(r.heldout_nll[:3], r.heldout_nll[3:])


def test_a_stopped_fold_stays_frozen(cv_cfg):
    cv_cfg.train.epochs = 12
    cv_cfg.train.patience = 1
    cv_cfg.optim.lr = 3e-2  # noisy enough that folds stop at different epochs
    snaps = []
    r = _run(cv_cfg, callback=lambda e, st, m: snaps.append((np.asarray(m["stopped"]), jax.device_get(st.params))))
    stopped_at = {}
    for e, (stopped, _) in enumerate(snaps):
        for f in np.flatnonzero(stopped):
            stopped_at.setdefault(int(f), e)
    assert stopped_at, "no fold stopped early"
    for f, e in stopped_at.items():
        for later in snaps[e + 1 :]:
            for a, b in zip(jax.tree.leaves(snaps[e][1]), jax.tree.leaves(later[1])):
                np.testing.assert_array_equal(a[f], b[f])
    assert np.all(r.epochs_run <= cv_cfg.train.epochs)


def test_adamw_weight_decay_is_not_an_l2_penalty(smoke_cfg):
    """With no data gradient, Adam on an L2 penalty moves a weight by ~lr per step whatever the
    strength (Adam normalizes the gradient); AdamW's decoupled decay moves it by lr * wd * w."""
    from flax import nnx

    from genjax.models.base import Player

    class W(nnx.Module):
        def __init__(self):
            self.kernel = nnx.Param(jnp.ones((3,)))

    params = {"m": nnx.split(W())[1]}
    zero_loss = Player("m", lambda p, b, k, c: (0.0 * jnp.sum(p["m"]["kernel"][...]), {}))
    o = smoke_cfg.optim
    o.lr = 0.01
    results = {}
    for name, wd, l2 in (("adam+l2", 0.0, 1e-4), ("adamw", 1e-4 / 0.01 * 2, 0.0)):
        o.name, o.weight_decay = ("adam", 0.0) if name == "adam+l2" else ("adamw", wd)
        tx = make_optimizer(o, 100)
        st = init_state(params, {"m": tx}, jax.random.key(0), {"l1": 0.0, "l2": l2})
        step = jax.jit(make_step([zero_loss], {"m": tx}, regularize=True))
        for _ in range(10):
            st, _ = step(st, {"x": jnp.zeros(1)})
        results[name] = float(st.params["m"]["kernel"][...][0])
    assert results["adam+l2"] == pytest.approx(1 - 10 * 0.01, abs=1e-3)  # ~lr per step despite l2 = 1e-4
    assert results["adamw"] == pytest.approx((1 - 0.01 * 0.02) ** 10, rel=1e-5)  # lr * wd * w per step
    assert abs(results["adam+l2"] - results["adamw"]) > 0.09


def test_l1_l2_penalties_on_kernels_only():
    from genjax.objectives.regularizers import l1_norm, l2_norm_sq, penalty

    p = {"layer": {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([5.0])}}
    assert float(l1_norm(p)) == 3.0 and float(l2_norm_sq(p)) == 5.0
    assert float(penalty(p, 0.5, 0.1)) == pytest.approx(2.0)
    g = jax.grad(lambda q: penalty(q, 0.0, 1.0))(p)
    np.testing.assert_allclose(g["layer"]["bias"], 0.0)
    np.testing.assert_allclose(g["layer"]["kernel"], [[2.0, -4.0]])


def test_folds_are_scored_on_binarized_images(cv_cfg):
    """With dynamic binarization the pool trains on grey levels drawn afresh each epoch, but every
    held-out fold is scored on one fixed binary draw, like the validation and test splits."""
    splits = load_splits(cv_cfg.data, cv_cfg.train.batch_size)
    pool = splits.training_pool()
    assert len(np.unique(pool["x"])) > 2 and len(pool["x"]) == len(splits.train["x"]) + len(splits.val["x"])
    view = splits.eval_view(pool["x"])
    assert set(np.unique(view)) == {0.0, 1.0}
    np.testing.assert_allclose(view.mean(), pool["x"].mean(), atol=0.01)
