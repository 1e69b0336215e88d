"""The flow family: exact densities that integrate to one, training through the engine, CLI."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genjax.cli import main
from genjax.config import base_config
from genjax.data import load_splits
from genjax.models import Context, DataInfo, build_family
from genjax.train import fit
from genjax.train.engine import split_trainable


def _cfg(flow, data="toy2d:8gaussians"):
    c = base_config()
    c.model.family, c.model.flow.kind, c.data.name = "flow", flow, data
    c.data.toy_n = 2000
    c.model.flow.hidden, c.model.flow.n_layers, c.model.flow.bins = (32,), 4, 6
    c.model.flow.levels, c.model.flow.steps, c.model.flow.channels = 2, 1, 8
    c.train.epochs, c.train.batch_size = 15, 128
    return c


def test_trained_2d_flow_density_integrates_to_one():
    cfg = _cfg("spline")
    splits = load_splits(cfg.data, cfg.train.batch_size)
    fam = build_family(cfg, DataInfo.of(splits))
    res = fit(cfg, fam, splits, progress=False)
    assert res.history[-1]["val_nll"] < res.history[0]["val_nll"]
    g = np.linspace(-6, 6, 241)
    xy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2).astype(np.float32)
    mass = float(jnp.sum(jnp.exp(jax.jit(fam.log_prob)(res.params, jnp.asarray(xy)))) * (g[1] - g[0]) ** 2)
    assert mass == pytest.approx(1.0, abs=0.03)
    x = fam.sample(res.params, jax.random.key(0), 500)
    assert x.shape == (500, 2) and np.all(np.isfinite(np.asarray(x)))


@pytest.mark.parametrize("flow", ["realnvp", "nice", "maf", "iaf"])
def test_vector_flows_log_prob_and_sample(flow):
    cfg = _cfg(flow)
    fam = build_family(cfg, (2,))
    params = fam.init(jax.random.key(0), jnp.asarray(np.random.default_rng(0).normal(size=(64, 2)), jnp.float32))
    x = jax.random.normal(jax.random.key(1), (7, 2))
    lp = jax.jit(fam.log_prob)(params, x)
    assert lp.shape == (7,) and np.all(np.isfinite(np.asarray(lp)))
    # with every weight perturbed (a non-trivial map), the density still integrates to 1
    noisy = {}
    for name, st in params.items():  # trainable weights only: masks and permutations stay as built
        w, rest = split_trainable(st)
        leaves, tree = jax.tree.flatten(w)
        ks = jax.random.split(jax.random.fold_in(jax.random.key(5), len(noisy)), len(leaves))
        w = jax.tree.unflatten(tree, [a + 0.1 * jax.random.normal(k, a.shape) for a, k in zip(leaves, ks)])
        noisy[name] = nnx.merge_state(w, rest)
    g = np.linspace(-30, 30, 1201)  # wide: a perturbed IAF has heavy tails
    xy = jnp.asarray(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2), jnp.float32)
    dens = jax.lax.map(lambda rows: jnp.exp(fam.log_prob(noisy, rows)), xy.reshape(1201, 1201, 2))
    assert float(jnp.sum(dens)) * (g[1] - g[0]) ** 2 == pytest.approx(1.0, abs=0.01)
    assert not np.allclose(np.asarray(jax.jit(fam.log_prob)(noisy, x)), np.asarray(lp), atol=0.05)
    loss, m = fam.players[0].loss(params, {"x": x}, jax.random.key(2), Context(0, {}))
    assert float(loss) == pytest.approx(-float(jnp.mean(lp)), rel=1e-5)
    assert fam.sample(params, jax.random.key(3), 4).shape == (4, 2)


@pytest.mark.parametrize("flow", ["glow", "realnvp_ms", "realnvp"])
def test_image_flows_on_dequantized_digits(flow):
    cfg = _cfg(flow, "digits")
    cfg.data.dequantize = True
    cfg.model.flow.hidden = (64,)
    splits = load_splits(cfg.data, cfg.train.batch_size)
    fam = build_family(cfg, DataInfo.of(splits))
    params = fam.init(jax.random.key(0), jnp.asarray(splits.val["x"][:64]))
    x = jnp.asarray(splits.val["x"][:16])
    lp = jax.jit(fam.log_prob)(params, x)
    assert lp.shape == (16,) and np.all(np.isfinite(np.asarray(lp)))
    # the value: with perturbed weights, log p(x) = log N(f(x)) + log|det df/dx| by brute force
    # (jax.jacobian of the whole 64-D map), and the inverse maps f(x) back to x
    w, rest = split_trainable(params["model"])
    leaves, tree = jax.tree.flatten(w)
    ks = jax.random.split(jax.random.key(7), len(leaves))
    w = jax.tree.unflatten(tree, [a + 0.02 * jax.random.normal(k, a.shape) for a, k in zip(leaves, ks)])
    noisy = {"model": nnx.merge_state(w, rest)}
    flow = fam.modules(noisy)
    jacobian = jax.jit(jax.jacobian(lambda u: flow.forward(u)[0].reshape(-1)))
    for v in x[:2]:
        z, logdet = jax.jit(flow.forward)(v)
        jac = jacobian(v).reshape(64, 64)
        np.testing.assert_allclose(logdet, jnp.linalg.slogdet(jac)[1], rtol=1e-3, atol=1e-2)
        z = z.reshape(-1)
        want = -0.5 * float(z @ z) - 32 * np.log(2 * np.pi) + float(jnp.linalg.slogdet(jac)[1])
        assert float(jax.jit(fam.log_prob)(noisy, v[None])[0]) == pytest.approx(want, abs=2e-2)
        np.testing.assert_allclose(jax.jit(flow.inverse)(z.reshape(jnp.shape(flow.forward(v)[0])))[0], v, atol=1e-3)
    s = fam.sample(params, jax.random.key(1), 4)
    assert s.shape == (4, 8, 8, 1)
    assert np.all((np.asarray(s) > -0.2) & (np.asarray(s) < 1.2))  # the logit transform maps back into ~[0, 1]


def test_flow_cli_reports_bits_per_dim(tmp_path, classifier_dir):
    run = tmp_path / "flow"
    clf = f"--config.eval.classifier_dir={classifier_dir}"  # the suite's shared domain classifiers
    assert (
        main(
            ["genjax", "train", "--config=experiments/flow_digits/config.py:smoke", f"--workdir={run}", "--noprogress",
             clf]  # fmt: skip
        )
        == 0
    )
    ev = json.loads((run / "eval.json").read_text())
    assert ev["nll_kind"] == "exact" and np.isfinite(ev["bits_per_dim"])
    # dequantized 17-level digits: bits/dim = (nll + 64 ln 17) / (64 ln 2)
    assert ev["bits_per_dim"] == pytest.approx((ev["nll"] + 64 * np.log(17)) / (64 * np.log(2)), rel=1e-5)
    assert (run / "samples.png").is_file()
    assert (
        main(
            [
                "genjax",
                "train",
                "--config=experiments/flow_toy2d/config.py:smoke",
                f"--workdir={tmp_path / 't'}",
                "--noprogress",
            ]
        )
        == 0
    )
    assert (tmp_path / "t" / "samples.png").is_file()


def test_mnist_flow_config_on_mock_tfds(tmp_path):
    import tensorflow_datasets as tfds

    run = tmp_path / "mnist"
    with tfds.testing.mock_data(num_examples=128):
        code = main(
            [
                "genjax",
                "train",
                "--config=experiments/flow_digits/config.py:mnist",
                "--config.model.flow.steps=1",
                "--config.model.flow.channels=8",
                "--config.train.epochs=1",
                "--config.optim.schedule=constant",
                "--config.optim.warmup_steps=0",  # warm-up applies to every schedule
                f"--workdir={run}",
                "--noprogress",
                "--noplots",
            ]
        )
    assert code == 0
    ev = json.loads((run / "eval.json").read_text())
    # 28x28 images, 256 levels: bits/dim = (nll + 784 ln 256) / (784 ln 2)
    assert ev["bits_per_dim"] == pytest.approx((ev["nll"] + 784 * np.log(256)) / (784 * np.log(2)), rel=1e-5)
