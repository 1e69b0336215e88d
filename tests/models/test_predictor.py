"""The predictor family p(y | x): its log_prob against closed forms at the network's own
outputs, the MSE model's variance at its optimum, focal = cross-entropy at gamma 0, intervals
against scipy quantiles, samples against the predictive moments, k-fold held-out NLL against a
direct computation per fold, and the predictive metrics against sklearn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import recall_score

from genjax.config import base_config
from genjax.data import load_splits
from genjax.eval.predictive import confusion_matrix, coverage, per_class_recall, predictive_metrics
from genjax.models import Context, DataInfo, build_family

TOY = DataInfo((1,), target_shape=(1,))
CLS = DataInfo((8, 8, 1), n_classes=10)


def fam(info, **kw):
    c = base_config()
    c.model.family = "predictor"
    c.model.predictor.hidden = (16,)
    for k, v in kw.items():
        c.model.predictor[k] = v
    return build_family(c, info)


def raw_head(f, params, x):
    return np.asarray(f.modules(params).net(jnp.asarray(x)))


@pytest.mark.parametrize("lik", ["heteroscedastic", "student_t", "gaussian"])
def test_log_prob_is_the_closed_form_at_the_network_outputs(lik):
    f = fam(TOY, likelihood=lik, min_var=0.01, df=3.0)
    params = f.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 1)).astype(np.float32), rng.normal(size=(6, 1)).astype(np.float32)
    h = raw_head(f, params, x)
    got = np.asarray(f.log_prob(params, jnp.asarray(x), None, jnp.asarray(y)))
    if lik == "heteroscedastic":
        want = stats.norm.logpdf(y[:, 0], h[:, 0], np.sqrt(np.exp(h[:, 1]) + 0.01))
    elif lik == "student_t":
        want = stats.t.logpdf(y[:, 0], 3.0, h[:, 0], np.exp(h[:, 1]) + 0.1)
    else:
        log_var = float(f.modules(params).log_var[...][0])
        want = stats.norm.logpdf(y[:, 0], h[:, 0], np.exp(0.5 * log_var))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_mse_model_variance_optimum_is_the_residual_variance():
    f = fam(TOY, likelihood="gaussian")
    params = f.init(jax.random.key(1))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(50, 1)).astype(np.float32), rng.normal(size=(50, 1)).astype(np.float32)
    mse = float(np.mean((y - raw_head(f, params, x)) ** 2))
    batch = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
    ctx = Context(jnp.int32(0), f.hparams)

    def loss_at(log_var):
        p = jax.tree.map(lambda a: a, params)
        p["model"]["log_var"] = p["model"]["log_var"].replace(jnp.full((1,), log_var))
        return f.players[0].loss(p, batch, jax.random.key(0), ctx)[0]

    g = jax.grad(loss_at)
    assert abs(float(g(jnp.log(mse)))) < 1e-5
    assert float(g(jnp.log(mse) + 0.5)) > 0 > float(g(jnp.log(mse) - 0.5))


def test_focal_at_gamma_zero_is_the_categorical_family_and_down_weights_at_two():
    x = jax.random.uniform(jax.random.key(2), (12, 8, 8, 1))
    y = jnp.arange(12) % 10
    batch = {"x": x, "y": y}
    ce = fam(CLS, likelihood="categorical")
    params = ce.init(jax.random.key(3))
    ctx0 = Context(jnp.int32(0), {"gamma": jnp.float32(0.0)})
    ctx2 = Context(jnp.int32(0), {"gamma": jnp.float32(2.0)})
    fl = fam(CLS, likelihood="focal")
    assert fl.hparams == {"gamma": 2.0} and "gamma" in fl.sweepable()
    l_ce = ce.players[0].loss(params, batch, None, Context(jnp.int32(0), {}))[0]
    focal = jax.jit(fl.players[0].loss)  # gamma traced, as the engine holds it in the state
    np.testing.assert_allclose(focal(params, batch, None, ctx0)[0], l_ce, rtol=1e-6)
    g0 = jax.grad(lambda p: focal(p, batch, None, ctx0)[0])(params)
    g_ce = jax.grad(lambda p: ce.players[0].loss(p, batch, None, Context(jnp.int32(0), {}))[0])(params)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g_ce)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    l2, m2 = focal(params, batch, None, ctx2)
    assert float(l2) < float(l_ce)
    np.testing.assert_allclose(m2["nll"], l_ce, rtol=1e-6)  # the NLL logged beside the focal loss
    # the log-likelihood is the categorical one either way
    np.testing.assert_allclose(fl.log_prob(params, x, None, y), ce.log_prob(params, x, None, y), rtol=1e-6)
    # per-class alpha scales each example by its class's weight
    w = tuple(float(i + 1) for i in range(10))
    fw = fam(CLS, likelihood="focal", class_weights=w)
    lw = fw.players[0].loss(params, batch, None, ctx0)[0]
    per = -np.asarray(ce.log_prob(params, x, None, y))
    np.testing.assert_allclose(lw, np.mean(per * np.asarray(w)[np.asarray(y)]), rtol=1e-5)


@pytest.mark.parametrize("lik", ["heteroscedastic", "student_t"])
def test_intervals_are_the_predictive_quantiles_and_samples_match_the_moments(lik):
    f = fam(TOY, likelihood=lik, df=5.0, min_var=0.0)
    params = f.init(jax.random.key(4))
    x = np.full((20_000, 1), 0.3, np.float32)
    h = raw_head(f, params, x[:1])[0]
    loc = h[0]
    s = np.sqrt(np.exp(h[1])) if lik == "heteroscedastic" else np.exp(h[1])
    dist = stats.norm(loc, s) if lik == "heteroscedastic" else stats.t(5.0, loc, s)
    for level in (0.5, 0.9):
        lo, hi = f.predictor.interval(params, jnp.asarray(x[:1]), level)
        np.testing.assert_allclose([float(lo[0, 0]), float(hi[0, 0])], dist.interval(level), rtol=1e-5)
    np.testing.assert_allclose(float(f.predictor.std(params, jnp.asarray(x[:1]))[0, 0]), dist.std(), rtol=1e-5)
    ys = np.asarray(jax.jit(f.sample, static_argnums=2)(params, jax.random.key(5), len(x), jnp.asarray(x)))[:, 0]
    assert abs(ys.mean() - loc) < 4 * dist.std() / np.sqrt(len(ys))
    np.testing.assert_allclose(ys.std(), dist.std(), rtol=0.05)
    # a calibrated interval covers its level: targets drawn from the model itself
    lo, hi = f.predictor.interval(params, jnp.asarray(x), 0.9)
    assert abs(coverage(ys, np.asarray(lo)[:, 0], np.asarray(hi)[:, 0]) - 0.9) < 0.01
    with pytest.raises(ValueError, match="cond"):
        f.sample(params, jax.random.key(0), 3)


def test_confusion_and_recall_match_sklearn():
    rng = np.random.default_rng(3)
    t, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    conf = confusion_matrix(t, p, 4)
    np.testing.assert_array_equal(conf, sk_confusion(t, p, labels=range(4)))
    np.testing.assert_allclose(per_class_recall(conf), recall_score(t, p, average=None), rtol=1e-12)


def test_predictive_metrics_of_a_known_classifier(tmp_path):
    f = fam(CLS, likelihood="categorical")
    params = f.init(jax.random.key(6))
    x = np.asarray(jax.random.uniform(jax.random.key(7), (64, 8, 8, 1)))
    probs = np.asarray(f.predictor.probs(params, jnp.asarray(x)))
    y = probs.argmax(-1).copy()
    y[:16] = (y[:16] + 1) % 10  # 16 of 64 wrong
    m = predictive_metrics(f, params, x, y, tmp_path)
    assert m["accuracy"] == pytest.approx(48 / 64)
    np.testing.assert_array_equal(m["confusion"], sk_confusion(y, probs.argmax(-1), labels=range(10)))
    assert (tmp_path / "confusion.png").is_file()


def test_kfold_heldout_nll_is_the_direct_nll_of_each_fold():
    from genjax.train.cv import cross_validate, make_folds

    c = base_config()
    c.data.name = "toy1d:hetero"
    c.data.toy_n = 300
    c.model.family = "predictor"
    c.model.predictor.hidden = (16,)
    c.model.predictor.activation = "tanh"
    c.optim.lr = 1e-2
    c.train.epochs = 40
    c.train.batch_size = 32
    c.cv.folds = 3
    splits = load_splits(c.data, c.train.batch_size)
    info = DataInfo.of(splits)
    assert info.target_shape == (1,) and info.n_classes == 0
    f = build_family(c, info)
    res = cross_validate(c, f, splits, progress=False)
    best = res.state.es.best_params
    folds = make_folds(c, splits, c.train.batch_size, labels=True)
    pool = splits.training_pool()
    for i in range(3):
        idx = folds.idx["held_idx"][i][: folds.idx["held_n"][i]]
        p = jax.tree.map(lambda a, i=i: a[i], best)
        direct = -float(jnp.mean(f.log_prob(p, jnp.asarray(pool["x"][idx]), None, jnp.asarray(pool["y"][idx]))))
        np.testing.assert_allclose(res.heldout_nll[i], direct, rtol=1e-5)
    # the labels travel with their inputs: shuffled targets score far worse
    p0 = jax.tree.map(lambda a: a[0], best)
    idx = folds.idx["held_idx"][0][: folds.idx["held_n"][0]]
    shuffled = np.random.default_rng(0).permutation(pool["y"][idx])
    worse = -float(jnp.mean(f.log_prob(p0, jnp.asarray(pool["x"][idx]), None, jnp.asarray(shuffled))))
    assert worse > res.heldout_nll[0]


def test_wrong_targets_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match="needs integer class labels.*real-valued targets"):
        fam(TOY, likelihood="categorical")
    with pytest.raises(ValueError, match="needs real-valued targets.*class labels"):
        fam(CLS, likelihood="heteroscedastic")
    with pytest.raises(ValueError, match="class_weights must be 10"):
        fam(CLS, likelihood="focal", class_weights=(1.0, 2.0))
    with pytest.raises(ValueError, match="model.predictor.df"):
        fam(TOY, likelihood="student_t", df=0.0)
    assert nnx  # the module is used by the family's modules()


def test_predictive_metrics_for_real_targets_against_direct_computation(tmp_path):
    f = fam(TOY, likelihood="heteroscedastic")
    params = f.init(jax.random.key(8))
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-4, 4, (300, 1)).astype(np.float32), rng.normal(size=(300, 1)).astype(np.float32)
    m = predictive_metrics(f, params, x, y, tmp_path)
    h = raw_head(f, params, x)
    mean, std = h[:, 0], np.sqrt(np.exp(h[:, 1]) + 1e-4)
    assert m["rmse"] == pytest.approx(float(np.sqrt(np.mean((mean - y[:, 0]) ** 2))), rel=1e-5)
    for a in ("0.5", "0.9", "0.95"):
        z = stats.norm.ppf(0.5 + float(a) / 2)
        inside = np.abs(y[:, 0] - mean) <= z * std
        assert m["coverage"][a] == pytest.approx(inside.mean(), abs=1 / 300)
    assert (tmp_path / "calibration.png").is_file() and (tmp_path / "predictive.png").is_file()
