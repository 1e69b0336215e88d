"""The flow-matching family through the protocol: paths, couplings, solvers, likelihood, guidance, CLI."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.cli import main
from genjax.config import base_config
from genjax.eval import heldout_metrics
from genjax.models import Context, DataInfo, build_family
from genjax.objectives import flow_matching as fm

DIGITS = DataInfo((8, 8, 1), "-11", 10, 17, max_norm=8.0)
TOY = DataInfo((2,), max_norm=4.0, levels=0)


def _cfg(**kw):
    c = base_config()
    c.model.family = "flow_matching"
    d = c.model.flow_matching
    d.hidden, d.channels, d.groups = (16, 16), (8, 16), 4
    d.ode_steps, d.val_ode_steps, d.sample_steps = 4, 2, 3
    for k, v in kw.items():
        d[k] = v
    return c


def _loss(fam, params, batch, key=2):
    return fam.players[0].loss(params, batch, jax.random.key(key), Context(jnp.int32(0), {}))


@pytest.mark.parametrize("kw", [dict(path="ot"), dict(path="ot", ot_sigma=0.1, coupling="ot"), dict(path="vp"),
                                dict(path="ve", sigma_max=10.0)], ids=["rectified", "otcfm", "vp", "ve"])  # fmt: skip
def test_every_path_and_coupling_trains(kw):
    fam = build_family(_cfg(**kw), TOY)
    params = fam.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (32, 2))
    loss, g = jax.jit(jax.value_and_grad(lambda p: _loss(fam, p, {"x": x})[0]))(params)
    assert np.isfinite(float(loss)) and float(loss) > 0
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(g))


def test_the_loss_is_the_cfm_regression_on_the_paired_noise():
    """With a velocity network that returns 0, the loss is E ||u_t||^2 = E ||a' x + s' eps||^2;
    on the ot path with OT coupling, the noise is the permuted draw."""
    fam = build_family(_cfg(coupling="ot"), TOY)
    params = jax.tree.map(jnp.zeros_like, fam.init(jax.random.key(0)))  # every weight 0: v = 0
    x = jax.random.normal(jax.random.key(1), (16, 2)) + 3.0
    loss, _ = _loss(fam, params, {"x": x}, key=5)
    k_t, k_n, _ = jax.random.split(jax.random.key(5), 3)
    eps = jax.random.normal(k_n, x.shape)
    eps = eps[fm.ot_pairing(x, eps)]
    t = jax.random.uniform(k_t, (16,))
    want = jnp.mean(jnp.sum(fm.target(fm.Path("ot", 0.0), x, eps, t) ** 2, 1))
    assert float(loss) == pytest.approx(float(want), rel=1e-5)
    # the independent pairing costs more on data far from the noise
    indep = build_family(_cfg(), TOY)
    assert float(_loss(indep, params, {"x": x}, key=5)[0]) != pytest.approx(float(loss), rel=1e-3)


def test_solvers_reproduce_and_report_their_evaluations():
    fam = build_family(_cfg(path="vp"), TOY)
    params = fam.init(jax.random.key(0))
    assert set(fam.samplers) | {fam.info["sampler"]} == {"euler", "heun", "rk4"}
    assert fam.info["nfe"] == 6  # heun, 3 steps
    for draw in (fam.sample, *fam.samplers.values()):
        s = jax.jit(draw, static_argnums=2)
        a, b = s(params, jax.random.key(4), 6), s(params, jax.random.key(4), 6)
        assert a.shape == (6, 2) and np.all(np.isfinite(np.asarray(a)))
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = jax.random.normal(jax.random.key(1), (8, 2))
    for fn in (fam.log_prob, fam.val_log_prob):
        v = jax.jit(fn)(params, x, jax.random.key(3))
        assert v.shape == (8,) and np.all(np.isfinite(np.asarray(v)))


def test_an_untrained_zero_velocity_gives_the_prior_density():
    """v = 0: the ODE does not move x, so log p(x) is the prior's N(0, I) density (ot path)."""
    fam = build_family(_cfg(ode_steps=3), TOY)
    params = jax.tree.map(jnp.zeros_like, fam.init(jax.random.key(0)))
    x = jnp.array([[0.0, 0.0], [1.0, -2.0]])
    want = -0.5 * jnp.sum(x**2, 1) - math.log(2 * math.pi)
    np.testing.assert_allclose(fam.log_prob(params, x, jax.random.key(0)), want, rtol=1e-6)


def test_digit_levels_give_discrete_bits_per_dim_and_clipped_samples():
    fam = build_family(_cfg(arch="unet"), DIGITS)
    params = fam.init(jax.random.key(0))
    x = jnp.round(jax.random.uniform(jax.random.key(1), (8, 8, 8, 1)) * 16) / 8 - 1
    m = heldout_metrics(fam, params, np.asarray(x), jax.random.key(3), batch_size=8, num_dims=64)
    assert m["bits_per_dim"] == pytest.approx(m["nll"] / (64 * math.log(2)), rel=1e-5)
    s = fam.sample(params, jax.random.key(4), 3)
    assert s.shape == (3, 8, 8, 1) and float(jnp.max(jnp.abs(s))) <= 1.0


def test_conditional_model_uses_labels_and_guidance():
    fam = build_family(_cfg(arch="mlp", conditional=True, guidance=2.0), DIGITS)
    params = fam.init(jax.random.key(0))
    a = fam.sample(params, jax.random.key(5), 4, cond=jnp.zeros(4, jnp.int32))
    b = fam.sample(params, jax.random.key(5), 4, cond=jnp.full(4, 7, jnp.int32))
    assert not np.allclose(np.asarray(a), np.asarray(b))
    x = jnp.zeros((4, 8, 8, 1))
    assert np.isfinite(float(_loss(fam, params, {"x": x, "y": jnp.arange(4)})[0]))
    with pytest.raises(ValueError, match="class labels"):
        build_family(_cfg(conditional=True), DataInfo((8, 8, 1), "-11", 0, 17))


@pytest.mark.parametrize(
    "field,value",
    [("path", "cosine"), ("coupling", "sinkhorn"), ("sampler", "dopri5"), ("sample_steps", 0), ("ot_sigma", 1.0),
     ("arch", "unet")],
)  # fmt: skip
def test_bad_fields_are_refused_in_one_sentence(field, value):
    with pytest.raises(ValueError, match=f"model.flow_matching.{field}"):
        build_family(_cfg(**{field: value}), TOY)


def test_a_path_that_misses_the_prior_is_refused():
    with pytest.raises(ValueError, match="model.flow_matching.sigma_max=2.0: the ve path"):
        build_family(_cfg(path="ve", sigma_max=2.0), DataInfo((2,), max_norm=6.0, levels=0))


def test_toy_cli_run_reports_the_ode_nll_and_sample_metrics(tmp_path):
    run = tmp_path / "fm"
    argv = ["genjax", "train", "--config=experiments/few_step/config.py:otcfm,8gaussians:smoke", f"--workdir={run}"]
    assert main(argv + ["--noprogress", "--config.train.epochs=1"]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["nll_kind"] == "flow ODE" and np.isfinite(ev["nll"])
    assert "sliced_wasserstein" in ev["samples"]["model"]
    assert (run / "samples.png").exists()


def test_paired_coupling_regresses_on_the_given_noise_and_one_step_training_at_t_1():
    """coupling='paired': the noise is batch['y']; t_train='one': t = 1, so with v = 0 the loss is
    E ||y - x||^2 (u = -x + eps on the straight path)."""
    paired = DataInfo((2,), max_norm=4.0, levels=0, target_shape=(2,))
    fam = build_family(_cfg(coupling="paired", t_train="one"), paired)
    params = jax.tree.map(jnp.zeros_like, fam.init(jax.random.key(0)))
    x = jax.random.normal(jax.random.key(1), (16, 2)) + 2.0
    z = jax.random.normal(jax.random.key(2), (16, 2))
    loss, _ = _loss(fam, params, {"x": x, "y": z})
    assert float(loss) == pytest.approx(float(jnp.mean(jnp.sum((z - x) ** 2, 1))), rel=1e-5)
    assert fam.log_prob is None and fam.log_prob_kind == "none"  # a one-step map has no density
    uniform = build_family(_cfg(coupling="paired"), paired)
    k_t = jax.random.split(jax.random.key(2), 3)[0]
    t = jax.random.uniform(k_t, (16,))
    want = jnp.mean(jnp.sum(fm.target(fm.Path("ot", 0.0), x, z, t) ** 2, 1))
    assert float(_loss(uniform, params, {"x": x, "y": z})[0]) == pytest.approx(float(want), rel=1e-5)
    with pytest.raises(ValueError, match="model.flow_matching.coupling='paired' needs"):
        build_family(_cfg(coupling="paired"), TOY)
    with pytest.raises(ValueError, match="model.flow_matching.t_train='one'"):
        build_family(_cfg(t_train="one", path="vp"), TOY)


def test_decode_noise_is_the_sampler_of_the_same_draw():
    fam = build_family(_cfg(sampler="euler", sample_steps=4), TOY)
    params = fam.init(jax.random.key(0))
    x = fam.sample(params, jax.random.key(3), 5)
    z = jax.random.normal(jax.random.split(jax.random.key(3))[1], (5, 2))
    np.testing.assert_allclose(fam.decode_noise(params, z), x, rtol=1e-6)


def _fit(fam, data, steps=500, seed=0):
    """A few hundred Adam steps on batches of 256 drawn from ``data`` ({"x", "y"?})."""
    import optax

    params = fam.init(jax.random.key(seed))
    opt = optax.adam(3e-3)
    state = opt.init(params["model"])
    n = len(data["x"])

    @jax.jit
    def step(model, state, key):
        k1, k2 = jax.random.split(key)
        idx = jax.random.randint(k1, (256,), 0, n)
        batch = {k: v[idx] for k, v in data.items()}
        g = jax.grad(lambda m: fam.players[0].loss({"model": m}, batch, k2, Context(jnp.int32(0), {}))[0])(model)
        upd, state = opt.update(g, state)
        return optax.apply_updates(model, upd), state

    model = params["model"]
    for k in jax.random.split(jax.random.key(seed + 1), steps):
        model, state = step(model, state, k)
    return {"model": model}


def test_reflow_straightens_the_paths_on_a_toy():
    """Liu et al. (2023): retraining on the (z, ODE(z)) pairs of a 1-rectified flow gives straighter
    paths — the straightness S = int ||(x_0 - z) / (0 - 1) - v(x_t, t)||^2 dt falls."""
    from genjax.objectives import flow_matching as fmo

    kw = dict(hidden=(64, 64), ema=0.0, sampler="rk4", sample_steps=16)
    key = jax.random.key(7)
    modes = jnp.array([[0.0, 3.0], [0.0, -3.0]])
    x = modes[jax.random.bernoulli(key, 0.5, (4096,)).astype(jnp.int32)] + 0.3 * jax.random.normal(key, (4096, 2))
    fam1 = build_family(_cfg(**kw), DataInfo((2,), max_norm=4.5, levels=0))
    p1 = _fit(fam1, {"x": x})
    z = jax.random.normal(jax.random.key(8), (4096, 2))
    pairs = {"x": fam1.decode_noise(p1, z), "y": z}
    fam2 = build_family(_cfg(coupling="paired", **kw), DataInfo((2,), max_norm=4.5, levels=0, target_shape=(2,)))
    p2 = _fit(fam2, pairs, seed=1)

    def s(fam, params):
        net = fam.modules(params)
        v = lambda u, t: net(u, jnp.full(u.shape[:1], t))
        return float(jnp.mean(fmo.straightness(v, jax.random.normal(jax.random.key(9), (1024, 2)),
                                               jnp.linspace(1.0, 0.0, 33))))  # fmt: skip

    s1, s2 = s(fam1, p1), s(fam2, p2)
    assert s2 < 0.2 * s1, (s1, s2)  # measured: 1.99 -> 0.0099


def test_reflow_through_genjax_train_on_a_runs_pairs(tmp_path, capsys):
    """data.name='pairs:<run>' draws a flow's (z, ODE(z)) pairs; a paired flow trains, evaluates and
    samples on them from the command line, and a run without a deterministic sampler is refused."""
    first, second = tmp_path / "fm", tmp_path / "rf2"
    base = ["genjax", "train", "--config=experiments/few_step/config.py:fm,8gaussians:smoke", "--noprogress",
            "--config.train.epochs=1", "--config.eval.sample_metrics=False"]  # fmt: skip
    assert main(base + [f"--workdir={first}"]) == 0
    reflow = [f"--config.data.name=pairs:{first}", "--config.model.flow_matching.coupling=paired"]
    assert main(base + reflow + [f"--workdir={second}"]) == 0
    ev = json.loads((second / "eval.json").read_text())
    assert ev["data"] == f"pairs:{first}" and np.isfinite(ev["nll"])
    assert main(["genjax", "sample", str(second), "--n=4"]) == 0  # reloads the same pairs from the teacher
    capsys.readouterr()
    # the pairs are the teacher's draws: decode_noise of the stream 'pairs' reproduces them
    from genjax.api import load
    from genjax.keys import key

    teacher, student = load(first), load(second)
    pool = np.concatenate([student.data.train["x"], student.data.val["x"]])
    z = np.asarray(jax.random.normal(key(0, "pairs"), (len(pool) + len(student.data.test["x"]), 2)))
    x = np.asarray(teacher.decode_noise(z))
    np.testing.assert_allclose(np.sort(pool[:, 0]), np.sort(x[: len(pool), 0]), rtol=1e-5, atol=1e-5)
    # refused in one sentence, before anything is written
    ddpm = tmp_path / "ddpm"
    ddpm_cfg = "--config=experiments/few_step/config.py:ddpm,8gaussians:smoke"
    assert main(["genjax", "train", ddpm_cfg, *base[3:], f"--workdir={ddpm}"]) == 0
    for name, why in ((f"pairs:{ddpm}", "no deterministic map from noise"), (f"pairs:{tmp_path}/none", "not a run")):
        capsys.readouterr()
        assert main(base + [f"--config.data.name={name}", "--config.model.flow_matching.coupling=paired",
                            f"--workdir={tmp_path}/bad"]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err and not (tmp_path / "bad").exists()


def test_image_pairs_come_in_the_unit_range_with_the_noise_flattened(tmp_path, capsys):
    """pairs:<run> of an image flow: the student's examples are the teacher's samples (scaled back by
    data.scale) and its targets the flattened noise; dequantizing them is refused."""
    from genjax.api import load
    from genjax.keys import key

    teacher_dir = tmp_path / "fm"
    base = ["genjax", "train", "--config=experiments/few_step/config.py:fm,digits:smoke", "--noprogress",
            "--config.model.flow_matching.arch=mlp",
            "--config.train.epochs=1", "--config.eval.sample_metrics=False"]  # fmt: skip
    assert main(base + [f"--workdir={teacher_dir}"]) == 0
    pairs = [f"--config.data.name=pairs:{teacher_dir}", "--config.model.flow_matching.coupling=paired",
             "--config.data.toy_n=500"]
    capsys.readouterr()
    assert main(base + pairs + [f"--workdir={tmp_path}/bad"]) == 2  # the digits config dequantizes
    assert "data.dequantize=True" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    student_dir = tmp_path / "rf2"
    assert main(base + pairs + ["--config.data.dequantize=False", f"--workdir={student_dir}"]) == 0
    teacher, student = load(teacher_dir), load(student_dir)
    n = len(student.data.test["x"])
    z = jax.random.normal(key(0, "pairs"), (len(student.data.train["x"]) + len(student.data.val["x"]) + n, 8, 8, 1))
    want = np.clip(np.asarray(teacher.decode_noise(z[-n:])), -1, 1)
    np.testing.assert_allclose(student.data.test["x"], want, atol=1e-5)  # [-1, 1] again after data.scale
    np.testing.assert_allclose(student.data.test["y"], np.asarray(z[-n:]).reshape(n, 64), atol=1e-6)
