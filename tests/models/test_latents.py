"""Two-stage models: a second model trained on a first stage's codes (data.name='latents:<run>'),
its samples decoded through the first stage, and the bound the pair gives on the data."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genjax
from genjax.cli import main
from genjax.config import base_config
from genjax.keys import key as seed_key


def _cfg(family, **fields):
    c = base_config()
    c.name = "two_stage"
    c.model.family = family
    c.train.epochs = 2
    c.train.batch_size = 64
    c.train.checkpoint_every = 1
    c.eval.sample_metrics = False
    c.eval.n_samples = 8
    for path, v in fields.items():
        node = c
        *head, last = path.split(".")
        for h in head:
            node = node[h]
        node[last] = v
    return c


@pytest.fixture(scope="module")
def vq_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("vq") / "vq"
    cfg = _cfg("vqvae", **{"data.binarize": "static", "model.vqvae.likelihood": "bernoulli",
                           "model.vqvae.channels": (16, 16), "model.vqvae.codebook_size": 16})  # fmt: skip
    genjax.fit(cfg, workdir=d, progress=False)
    return d


def test_a_prior_over_vq_codes_reproduces_the_codes_decodes_its_samples_and_bounds_the_nll(vq_run, tmp_path):
    cfg = _cfg("autoregressive", **{"data.name": f"latents:{vq_run}", "model.autoregressive.d_model": 16,
                                    "model.autoregressive.n_layers": 1})  # fmt: skip
    second = genjax.fit(cfg, workdir=tmp_path / "prior", progress=False)
    first = genjax.load(vq_run)
    codes = first.family.codes
    # the source is the first stage's encoder output: the test split's codes, as images of K levels
    want = np.asarray(codes.encode(first.params, jnp.asarray(first.data.test["x"])))
    got = np.asarray(second.data.test["x"])
    assert got.shape == (len(want), 2, 2, 1) and second.data.levels == 16
    np.testing.assert_array_equal(np.round(got[..., 0] * 15).astype(int), want)
    st = second.data.stage
    np.testing.assert_array_equal(np.asarray(st.to_codes(jnp.asarray(got))), want)
    # a two-stage sample is the first stage's draw from p(x | c) at the second model's codes c
    key = jax.random.key(3)
    x = np.asarray(second.sample(6, seed=3))
    k_c, k_x = jax.random.split(key)
    c = st.to_codes(second.family.sample(second.params, k_c, 6))
    np.testing.assert_array_equal(x, np.asarray(codes.draw(first.params, c, k_x)))
    np.testing.assert_array_equal(np.asarray(second.sample(6, seed=3, codes=True)),
                                  np.asarray(second.family.sample(second.params, key, 6)))  # fmt: skip
    # the mean decode is the first stage's decoder output at those codes
    np.testing.assert_allclose(np.asarray(st.decode(st.to_data(np.asarray(c)))),
                               np.asarray(codes.decode(first.params, c)), rtol=1e-6)  # fmt: skip
    # the bound: log p(x | c(x)) + log p2(c(x)), by hand on the first stage's test images
    scorer, why = st.bound(second.family)
    assert why is None
    xt = jnp.asarray(first.data.test["x"][:20])
    idx = codes.encode(first.params, xt)
    k = jax.random.key(0)
    hand = codes.log_px(first.params, xt, idx) + second.family.log_prob(second.params, st.as_data(idx),
                                                                        jax.random.split(k)[1])  # fmt: skip
    np.testing.assert_allclose(np.asarray(scorer.log_prob((second.params, first.params), xt, k)), hand, rtol=1e-5)
    # a learned prior over the codes is tighter than the uniform one (the first stage's own bound), on average
    ev = genjax.evaluate(second)
    ts = ev["two_stage"]
    assert ts["nll_unit"] == "nats per image (8x8x1)" and ts["bits_per_dim_over"] == 64
    uniform = -float(np.mean(np.asarray(first.family.log_prob(first.params, jnp.asarray(first.data.test["x"])))))
    assert ts["nll"] < uniform
    np.testing.assert_allclose(uniform - ts["nll"], 4 * math.log(16) - ev["nll"], rtol=1e-4)  # P ln K - NLL2
    assert ev["nll_unit"] == "nats per code grid (2x2 positions of 16 codes)"


def test_a_prior_over_vae_latents_scales_them_and_its_bound_is_the_elbo_with_that_prior(tmp_path):
    vae = tmp_path / "vae"
    genjax.fit(_cfg("vae", **{"data.binarize": "static", "model.vae.hidden": (32,), "model.vae.latent_dim": 3,
                              "model.vae.nll_samples": 4, "model.vae.nll_chunk": 2}), workdir=vae, progress=False)
    cfg = _cfg("flow", **{"data.name": f"latents:{vae}", "model.flow.kind": "realnvp", "model.flow.n_layers": 2,
                          "model.flow.hidden": (16,)})  # fmt: skip
    second = genjax.fit(cfg, workdir=tmp_path / "prior", progress=False)
    first = genjax.load(vae)
    st, codes = second.data.stage, first.family.codes
    pool = np.concatenate([first.data.eval_view(first.data.train["x"]), first.data.val["x"]])
    means = np.asarray(codes.encode(first.params, jnp.asarray(pool)), np.float64)
    np.testing.assert_allclose(st.scale, means.std(), rtol=1e-5)  # Rombach et al.'s one scale: the codes' std
    test_means = np.asarray(codes.encode(first.params, jnp.asarray(first.data.test["x"])))
    np.testing.assert_allclose(second.data.test["x"], test_means / st.scale, rtol=1e-5)
    # log p(x) >= log p(x | z) + log p2(z / s) - d ln s - log q(z | x), z ~ q(z | x)
    scorer, why = st.bound(second.family)
    xt = jnp.asarray(first.data.test["x"][:16])
    k = jax.random.key(1)
    k_q, k_p = jax.random.split(k)
    z = codes.encode(first.params, xt, k_q)
    mean, log_var = first.family.latent.encode(first.params, xt)
    log_q = np.sum(-0.5 * (np.log(2 * np.pi) + log_var + (z - mean) ** 2 / np.exp(log_var)), -1)
    prior = second.family.log_prob(second.params, z / st.scale, k_p) - 3 * math.log(st.scale)
    hand = codes.log_px(first.params, xt, z) + prior - log_q
    np.testing.assert_allclose(np.asarray(scorer.log_prob((second.params, first.params), xt, k)), hand, rtol=1e-5)
    # its samples: the VAE's decoder draws at the prior's samples, scaled back
    x = np.asarray(second.sample(5, seed=2))
    k_c, k_x = jax.random.split(jax.random.key(2))
    zs = second.family.sample(second.params, k_c, 5) * st.scale
    np.testing.assert_array_equal(x, np.asarray(codes.draw(first.params, zs, k_x)))


def test_sampled_latents_are_posterior_draws_from_the_data_seed(tmp_path):
    vae = tmp_path / "vae"
    genjax.fit(_cfg("vae", **{"data.binarize": "static", "model.vae.hidden": (32,), "model.vae.latent_dim": 3,
                              "model.vae.nll_samples": 4, "model.vae.nll_chunk": 2}), workdir=vae, progress=False)
    cfg = _cfg("flow", **{"data.name": f"latents:{vae}", "data.latents": "sample", "model.flow.kind": "realnvp",
                          "model.flow.n_layers": 2, "model.flow.hidden": (16,), "train.epochs": 1})  # fmt: skip
    second = genjax.fit(cfg, progress=False)
    first = genjax.load(vae)
    st, codes = second.data.stage, first.family.codes
    xt = jnp.asarray(first.data.test["x"])
    k = jax.random.fold_in(jax.random.fold_in(seed_key(0, "latents"), 1), 0)
    np.testing.assert_allclose(second.data.test["x"], np.asarray(codes.encode(first.params, xt, k)) / st.scale,
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    means = np.asarray(codes.encode(first.params, xt)) / st.scale
    assert np.abs(second.data.test["x"] - means).mean() > 0.05  # draws, not the means


def test_an_autoencoders_codes_give_no_bound_and_say_why(tmp_path):
    ae = tmp_path / "ae"
    genjax.fit(_cfg("vae", **{"data.binarize": "static", "model.vae.hidden": (32,), "model.vae.latent_dim": 3,
                              "model.vae.objective": "ae"}), workdir=ae, progress=False)  # fmt: skip
    cfg = _cfg("flow", **{"data.name": f"latents:{ae}", "model.flow.kind": "realnvp", "model.flow.n_layers": 2,
                          "model.flow.hidden": (16,)})  # fmt: skip
    second = genjax.fit(cfg, workdir=tmp_path / "prior", progress=False)
    ts = genjax.evaluate(second)["two_stage"]
    assert ts["bound"] is None and "no posterior density" in ts["why"]


def test_latent_sources_are_refused_in_one_sentence(vq_run, tmp_path, capsys):
    gan = tmp_path / "gan"
    base = ["genjax", "train", "--config=experiments/vae_digits/config.py:smoke", "--noprogress",
            "--config.train.epochs=1"]  # fmt: skip
    assert main(base + ["--config.model.family=gan", "--config.data.binarize=none", "--config.train.patience=0",
                        f"--workdir={gan}"]) == 0
    ar = ["--config.model.family=autoregressive", "--config.model.autoregressive.d_model=16",
          "--config.model.autoregressive.n_layers=1"]  # fmt: skip
    for extra, why in (([f"--config.data.name=latents:{gan}", "--config.data.binarize=none"], "has no codes"),
                       ([f"--config.data.name=latents:{tmp_path}/none", "--config.data.binarize=none"], "not a run"),
                       ([f"--config.data.name=latents:{vq_run}"], "data.binarize='none'"),
                       ([f"--config.data.name=latents:{vq_run}", "--config.data.binarize=none",
                         "--config.data.latents=sample"], "nothing to draw"),
                       (["--config.data.latents=sample"], "applies to data.name='latents:<run>'")):  # fmt: skip
        capsys.readouterr()
        assert main(base + ar + extra + [f"--workdir={tmp_path}/bad"]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err and not (tmp_path / "bad").exists(), err


def test_genjax_sample_of_a_prior_writes_decoded_images_and_its_codes(vq_run, tmp_path, capsys):
    prior = tmp_path / "prior"
    args = ["genjax", "train", "--config=experiments/vae_digits/config.py:smoke", "--noprogress",
            "--config.train.epochs=1", "--config.model.family=autoregressive", "--config.data.binarize=none",
            "--config.model.autoregressive.d_model=16", "--config.model.autoregressive.n_layers=1",
            f"--config.data.name=latents:{vq_run}", f"--workdir={prior}"]  # fmt: skip
    assert main(args) == 0
    assert main(["genjax", "sample", str(prior), "--n=5", "--seed=1"]) == 0
    x, c = np.load(prior / "samples-seed1.npy"), np.load(prior / "samples-seed1-codes.npy")
    assert x.shape == (5, 8, 8, 1) and c.shape == (5, 2, 2, 1)
    assert set(np.unique(x)) <= {0.0, 1.0}  # Bernoulli draws of the first stage's decoder
    assert (prior / "samples-seed1.png").is_file()
    ev = json.loads((prior / "eval.json").read_text())
    assert ev["two_stage"]["first_stage"] == str(vq_run) and np.isfinite(ev["two_stage"]["nll"])
