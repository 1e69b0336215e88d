"""The diffusion family through the protocol: losses, samplers, likelihoods, EMA, guidance, CLI."""

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
from genjax.models.ema import ema_update
from genjax.objectives import score as sc

DIGITS = DataInfo((8, 8, 1), "-11", 10, 17)


def _cfg(**kw):
    c = base_config()
    c.model.family = "diffusion"
    d = c.model.diffusion
    d.hidden, d.channels, d.groups = (16, 16), (8, 16), 4
    d.timesteps, d.ode_steps, d.sample_steps, d.bound_steps, d.langevin_steps = 10, 4, 5, 0, 2
    for k, v in kw.items():
        d[k] = v
    return c


def _ctx():
    return Context(jnp.int32(0), {})


def test_ema_update_is_the_warmed_up_average():
    params = {"model": {"w": jnp.array([2.0])}, "model_ema": {"w": jnp.array([0.0])}}
    up = ema_update("model", "model_ema", 0.999)
    for step, d in ((0, 0.1), (90, 91 / 100), (10**6, 0.999)):  # d = min(0.999, (1 + t) / (10 + t))
        out = up(params, Context(jnp.int32(step), {}))
        assert float(out["model_ema"]["w"][0]) == pytest.approx(2.0 * (1 - d), rel=1e-5, abs=1e-6)
        assert out["model"] is params["model"]


@pytest.mark.parametrize(
    "kw",
    [
        dict(process="vp", loss="eps"),
        dict(process="ve", loss="dsm"),
        dict(process="vp", schedule="cosine", loss="dsm", timesteps=0),
        dict(process="ve", loss="ssm", timesteps=0),
    ],
    ids=["ddpm", "ncsn", "cosine-continuous", "ssm"],
)
def test_losses_train_every_process(kw):
    fam = build_family(_cfg(**kw), DataInfo((2,)))
    params = fam.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (32, 2))
    loss, g = jax.jit(jax.value_and_grad(lambda p: fam.players[0].loss(p, {"x": x}, jax.random.key(2), _ctx())[0]))(
        params
    )
    assert np.isfinite(float(loss)) and float(loss) > 0
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(g))
    assert kw["loss"] in fam.players[0].loss(params, {"x": x}, jax.random.key(2), _ctx())[1]


def test_every_sampler_and_likelihood_runs_and_reproduces():
    fam = build_family(_cfg(process="ve", timesteps=0), DataInfo((2,)))
    params = fam.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (32, 2))
    for fn in (fam.log_prob, fam.bound, fam.val_log_prob):
        v = jax.jit(fn)(params, x, jax.random.key(3))
        assert v.shape == (32,) and np.all(np.isfinite(np.asarray(v)))
    want = {"ancestral", "ddim", "langevin", "pc", "ode", "heun", "dpmpp2m"}
    assert set(fam.samplers) | {fam.info["sampler"]} == want
    for draw in (fam.sample, *fam.samplers.values()):
        s = jax.jit(draw, static_argnums=2)
        a, b = s(params, jax.random.key(4), 6), s(params, jax.random.key(4), 6)
        assert a.shape == (6, 2)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_digit_levels_give_discrete_bits_per_dim():
    fam = build_family(_cfg(arch="mlp"), DIGITS)
    params = fam.init(jax.random.key(0))
    x = jnp.round(jax.random.uniform(jax.random.key(1), (8, 8, 8, 1)) * 16) / 8 - 1  # 17 levels in [-1, 1]
    m = heldout_metrics(fam, params, np.asarray(x), jax.random.key(3), batch_size=8, num_dims=64)
    # discrete 17-level data: bits/dim = NLL / (D ln 2), for the ODE figure and for the bound
    assert m["bits_per_dim"] == pytest.approx(m["nll"] / (64 * math.log(2)), rel=1e-5)
    assert m["ddpm_bound_bits_per_dim"] == pytest.approx(-m["ddpm_bound"] / (64 * math.log(2)), rel=1e-5)
    assert m["ddpm_bound"] < 0  # a bound on a discrete log-probability
    s = fam.sample(params, jax.random.key(4), 3)
    assert s.shape == (3, 8, 8, 1) and float(jnp.max(jnp.abs(s))) <= 1.0  # x0_hat clipped to the range


def test_unet_family_trains_and_samples_images():
    fam = build_family(_cfg(sampler="ddim"), DIGITS)
    params = fam.init(jax.random.key(0))
    x = jnp.round(jax.random.uniform(jax.random.key(1), (4, 8, 8, 1)) * 16) / 8 - 1
    step = jax.jit(jax.value_and_grad(lambda p: fam.players[0].loss(p, {"x": x}, jax.random.key(2), _ctx())[0]))
    loss, g = step(params)
    assert np.isfinite(float(loss)) and all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(g))
    assert jax.jit(fam.sample, static_argnums=2)(params, jax.random.key(4), 2).shape == (2, 8, 8, 1)


def test_conditional_model_uses_labels_and_guidance():
    fam = build_family(_cfg(arch="mlp", conditional=True, guidance=2.0, sampler="ddim"), DIGITS)
    params = fam.init(jax.random.key(0))
    a = fam.sample(params, jax.random.key(5), 4, cond=jnp.zeros(4, jnp.int32))
    b = fam.sample(params, jax.random.key(5), 4, cond=jnp.full(4, 7, jnp.int32))
    assert not np.allclose(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="class labels"):
        build_family(_cfg(conditional=True), DataInfo((8, 8, 1), "-11", 0, 17))


@pytest.mark.parametrize(
    "field,value",
    [
        ("process", "vpx"),
        ("loss", "sm"),
        ("sampler", "euler"),
        ("timesteps", -1),
        ("sample_steps", 11),
        ("sigma_min", 20.0),
        ("ema", 1.0),
        ("prediction", "x0"),
    ],
)
def test_bad_fields_are_refused_in_one_sentence(field, value):
    with pytest.raises(ValueError, match=f"model.diffusion.{field}"):
        build_family(_cfg(**{field: value}), DataInfo((2,)))


def test_toy_cli_run_reports_ode_nll_bound_and_sample_metrics(tmp_path):
    run = tmp_path / "score"
    argv = ["genjax", "train", "--config=experiments/score_toy2d/config.py:ddpm,8gaussians:smoke", f"--workdir={run}"]
    assert main(argv + ["--noprogress", "--config.train.epochs=1"]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["nll_kind"] == "probability-flow ODE" and ev["bound_name"] == "ddpm_bound"
    assert np.isfinite(ev["nll"]) and np.isfinite(ev["ddpm_bound"])
    assert "sliced_wasserstein" in ev["samples"]["model"] and "modes" in ev["samples"]["model"]
    assert (run / "samples.png").exists() and (run / "curves.png").exists()


def test_decoder_levels_follow_the_data():
    """The bound's decoder is discretized to the data's levels and range (the family reads them
    from DataInfo): on [0, 1] data with 2 levels the decoder probabilities of 0 and 1 sum to 1."""
    dec = sc.Decoder(2, 0.0, 1.0)
    lp = dec.log_prob(jnp.array([[0.0], [1.0]]), 0.3, 0.4)
    assert float(jnp.sum(jnp.exp(lp))) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("prediction,weighting", [("eps", "min_snr"), ("v", "none"), ("v", "min_snr")])
def test_v_prediction_and_min_snr_losses_are_the_weighted_regression(prediction, weighting):
    """A network whose every weight is 0 outputs 0: the loss is then E[w ||target||^2] with the
    target eps or v = a eps - s x0 at the drawn times, and Min-SNR's w (gamma = 2)."""
    kw = dict(process="vp", timesteps=0, prediction=prediction, weighting=weighting, snr_gamma=2.0, ema=0.0)
    fam = build_family(_cfg(**kw), DataInfo((2,)))
    params = jax.tree.map(jnp.zeros_like, fam.init(jax.random.key(0)))
    x = jax.random.normal(jax.random.key(1), (64, 2)) + 2.0
    loss, _ = fam.players[0].loss(params, {"x": x}, jax.random.key(2), _ctx())
    k_t, k_n, _ = jax.random.split(jax.random.key(2), 3)
    t = jax.random.uniform(k_t, (64,), minval=1e-3, maxval=1.0)
    proc = sc.Process("vp", "linear", 0.1, 20.0)
    a, s = proc.coeffs(t)
    _, eps = sc.perturb(x, k_n, a, s)
    target = sc.v_target(x, eps, a, s) if prediction == "v" else eps
    snr = (a / s) ** 2
    w = jnp.minimum(snr, 2.0) / (snr if prediction == "eps" else snr + 1.0) if weighting == "min_snr" else 1.0
    assert float(loss) == pytest.approx(float(jnp.mean(w * jnp.sum(target**2, 1))), rel=1e-4)
    # v-prediction samples through eps = (s x_t + a v) / (a^2 + s^2): with v = 0, eps = s x_t
    from genjax.models.diffusion import noise_predictor

    eps_hat = noise_predictor(_cfg(**kw).model.diffusion, DataInfo((2,)), params)(x, t)
    want = s[:, None] * x if prediction == "v" else jnp.zeros_like(x)
    np.testing.assert_allclose(eps_hat, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="model.diffusion.prediction"):
        build_family(_cfg(loss="dsm", prediction="v"), DataInfo((2,)))


def test_fast_samplers_report_their_network_evaluations():
    for sampler, nfe in (("ddim", 5), ("dpmpp2m", 5), ("heun", 11), ("ancestral", 5)):
        fam = build_family(_cfg(timesteps=0, sampler=sampler), DataInfo((2,)))
        assert fam.info["nfe"] == nfe, sampler
