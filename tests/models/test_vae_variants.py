"""The VAE variants and the conditional generators, against closed forms and invariances:
a CVAE whose condition weights are zero is the plain VAE; its condition changes what it
decodes; each example is scored with its own label; a conditional flow's density integrates to
1 for every condition; free bits, InfoVAE and the autoencoders' losses are the formulas; the
adversarial autoencoder's regularization player moves the encoder alone; max-unpooling inverts
max-pooling at the switches; the two-layer VAE's bound climbs with k; active units and
pluralistic diversity against brute force; CVAE samples are classified as their class."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from genjax.config import base_config
from genjax.eval.conditional import class_samples, conditional_metrics, pluralistic_diversity
from genjax.eval.latent import latent_diagnostics
from genjax.models import Context, DataInfo, Latent, build_family
from genjax.nn.encoders import max_pool_switches, max_unpool
from genjax.objectives.elbo import gaussian_kl
from genjax.objectives.likelihood import bernoulli_log_prob
from genjax.train.engine import init_state, make_step

DIGITS = DataInfo((8, 8, 1), n_classes=10, levels=2)


def vae(info=DIGITS, **kw):
    c = base_config()
    c.model.vae.hidden = (16,)
    c.model.vae.latent_dim = 3
    c.model.vae.nll_samples = 20
    c.model.vae.nll_chunk = 20
    for k, v in kw.items():
        c.model.vae[k] = v
    return build_family(c, info)


def binary(n, seed=0):
    return jax.random.bernoulli(jax.random.key(seed), 0.4, (n, 8, 8, 1)).astype(jnp.float32)


def perturb(params, scale=0.5, seed=0):
    """Every nnx.Param moved by Gaussian noise (flows start as the identity)."""
    leaves, tree = jax.tree.flatten(params, is_leaf=lambda v: isinstance(v, nnx.Variable))
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    out = [v.replace(v[...] + scale * jax.random.normal(k, v[...].shape)) if isinstance(v, nnx.Param) else v
           for v, k in zip(leaves, keys)]  # fmt: skip
    return jax.tree.unflatten(tree, out)


def test_cvae_with_zero_condition_weights_is_the_plain_vae():
    plain, cond = vae(), vae(conditional=True)
    assert cond.labelled and cond.classes == 10 and not plain.labelled
    p_plain, p_cond = plain.init(jax.random.key(0)), cond.init(jax.random.key(1))
    # copy the plain VAE's weights in; the condition's rows of both first layers are zero
    enc0, dec0 = p_cond["model"]["encoder"]["mlp"]["layers"][0], p_cond["model"]["decoder"]["mlp"]["layers"][0]
    src_e, src_d = p_plain["model"]["encoder"]["mlp"]["layers"][0], p_plain["model"]["decoder"]["mlp"]["layers"][0]
    for name in ("encoder", "decoder"):
        for i in range(1, 2):
            p_cond["model"][name]["mlp"]["layers"][i] = p_plain["model"][name]["mlp"]["layers"][i]
    ke, kd = src_e["kernel"][...], src_d["kernel"][...]
    enc0["kernel"] = enc0["kernel"].replace(jnp.concatenate([ke, jnp.zeros((10, ke.shape[1]))]))
    dec0["kernel"] = dec0["kernel"].replace(jnp.concatenate([kd, jnp.zeros((10, kd.shape[1]))]))
    enc0["bias"], dec0["bias"] = src_e["bias"], src_d["bias"]
    x, y = binary(6), jnp.arange(6) % 10
    key = jax.random.key(3)
    np.testing.assert_allclose(cond.log_prob(p_cond, x, key, y), plain.log_prob(p_plain, x, key), rtol=1e-5)
    np.testing.assert_allclose(cond.bound(p_cond, x, key, y), plain.bound(p_plain, x, key), rtol=1e-5)
    # and with the condition's weights back, the condition matters
    p_rand = cond.init(jax.random.key(1))
    z = jax.random.normal(jax.random.key(4), (6, 3))
    d0 = cond.latent.decode_mean(p_rand, z, jnp.zeros(6, jnp.int32))
    d1 = cond.latent.decode_mean(p_rand, z, jnp.ones(6, jnp.int32))
    assert float(jnp.abs(d0 - d1).max()) > 1e-3
    lp0, lp1 = cond.log_prob(p_rand, x, key, 0 * y), cond.log_prob(p_rand, x, key, 0 * y + 1)
    assert float(jnp.abs(lp0 - lp1).max()) > 1e-3
    s0 = cond.sample(p_rand, key, 6, jnp.zeros(6, jnp.int32))
    s1 = cond.sample(p_rand, key, 6, jnp.ones(6, jnp.int32))
    assert float(jnp.abs(s0 - s1).sum()) > 0


def test_cvae_scores_each_example_with_its_own_label():
    """With a near-deterministic posterior (log-variance -16, std 3e-4) and one importance
    sample, the bound's change when the labels change is, up to ~1e-3, the deterministic
    log p(x | mu, c) + log N(mu; 0, I) of each example's own c, mu = mu(x, c) (the noise's
    terms cancel: the same key draws the same noise)."""
    cond = vae(conditional=True)
    p = cond.init(jax.random.key(5))
    head = p["model"]["encoder"]["mlp"]["layers"][1]
    head["bias"] = head["bias"].replace(head["bias"][...].at[3:].set(-16.0))
    head["kernel"] = head["kernel"].replace(head["kernel"][...].at[:, 3:].set(0.0))
    x, y, y2 = binary(5, 1), jnp.array([0, 3, 3, 7, 9]), jnp.array([1, 1, 8, 2, 0])
    key = jax.random.key(0)
    got = cond.bound(p, x, key, y) - cond.bound(p, x, key, y2)
    m = cond.modules(p)

    def f(c):  # per example, by hand from the module's layers
        oh = jax.nn.one_hot(c, 10)
        mu = m.encoder(jnp.concatenate([x.reshape(5, -1), oh], -1))[0]
        logits = m.decoder(jnp.concatenate([mu, oh], -1))
        return bernoulli_log_prob(logits, x) - 0.5 * jnp.sum(mu**2, -1)

    np.testing.assert_allclose(got, f(y) - f(y2), atol=0.02)
    # the same through the importance-sampled estimate: k = 4 samples per example, each decoded
    # with its own example's label
    lp = lambda labels: cond.log_prob(p, x, key, labels, k=4, chunk=4)  # noqa: E731
    np.testing.assert_allclose(lp(y) - lp(y2), f(y) - f(y2), atol=0.02)
    assert float(jnp.abs(got - (f(y[::-1]) - f(y2[::-1]))).max()) > 0.2  # labels not each example's own


@pytest.mark.parametrize("kind", ["realnvp", "maf"])
def test_conditional_flow_density_integrates_to_one_for_each_condition(kind):
    c = base_config()
    c.model.family = "flow"
    c.model.flow.kind = kind
    c.model.flow.hidden = (16, 16)
    c.model.flow.n_layers = 4
    c.model.flow.conditional = True
    fam = build_family(c, DataInfo((2,), n_classes=3))
    assert fam.labelled and fam.classes == 3
    params = perturb(fam.init(jax.random.key(0), jax.random.normal(jax.random.key(1), (64, 2))), 0.1)
    g = np.linspace(-10, 10, 401, dtype=np.float32)
    grid = jnp.asarray(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2))
    cell = (g[1] - g[0]) ** 2
    lp = jax.jit(lambda x, y: fam.log_prob(params, x, None, y))
    dens = []
    for k in range(3):
        p = np.exp(np.asarray(lp(grid, jnp.full((len(grid),), k))))
        dens.append(p)
        np.testing.assert_allclose(p.sum() * cell, 1.0, atol=2e-3)
    assert np.abs(dens[0] - dens[1]).sum() * cell > 0.05  # the condition changes the density
    # samples of a class follow that class's density: their mean log density beats the others'
    x0 = fam.sample(params, jax.random.key(2), 4000, jnp.zeros(4000, jnp.int32))
    own = lp(x0, jnp.zeros(4000, jnp.int32)).mean()
    assert all(float(own) > float(lp(x0, jnp.full(4000, k)).mean()) for k in (1, 2))


def test_conditional_flow_on_images_and_its_context():
    c = base_config()
    c.model.family = "flow"
    c.model.flow.kind = "realnvp_ms"
    c.model.flow.levels, c.model.flow.steps, c.model.flow.channels = 1, 2, 8
    c.model.flow.conditional = True
    fam = build_family(c, DataInfo((8, 8, 1), n_classes=10))
    x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 1), minval=0.05, maxval=0.95)
    params = perturb(fam.init(jax.random.key(1), x), 0.05)
    a, b = fam.log_prob(params, x, None, jnp.zeros(4, jnp.int32)), fam.log_prob(params, x, None, jnp.ones(4, jnp.int32))
    assert bool(jnp.all(jnp.isfinite(a))) and float(jnp.abs(a - b).max()) > 1e-4
    s = class_samples(fam, params, jax.random.key(2), 10, 2)
    assert s.shape == (10, 2, 8, 8, 1)


def test_free_bits_infovae_and_autoencoder_losses_are_their_formulas():
    x = binary(32, 2)
    batch = {"x": x}
    ctx = lambda **hp: Context(jnp.int32(10**6), {k: jnp.float32(v) for k, v in hp.items()})  # noqa: E731
    fb = vae(free_bits=50.0)  # far above every unit's KL: the KL term is K x lambda
    assert fb.hparams == {"beta": 1.0, "free_bits": 50.0} and "free_bits" in fb.sweepable()
    p = fb.init(jax.random.key(0))
    loss, m = fb.players[0].loss(p, batch, jax.random.key(1), ctx(beta=1.0, free_bits=50.0))
    np.testing.assert_allclose(loss, m["rec"] + 3 * 50.0, rtol=1e-6)
    g = jax.grad(lambda d: fb.players[0].loss(d, batch, jax.random.key(1), ctx(beta=1.0, free_bits=50.0))[0])(p)
    g0 = jax.grad(lambda d: fb.players[0].loss(d, batch, jax.random.key(1), ctx(beta=0.0, free_bits=50.0))[0])(p)
    # no gradient from the KL below lambda: the same gradient as beta = 0 (reconstruction only)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g0)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    iv = vae(objective="infovae", info_alpha=0.5, info_lambda=10.0)
    assert set(iv.hparams) == {"beta", "info_alpha", "info_lambda"}
    loss, m = iv.players[0].loss(p, batch, jax.random.key(2), ctx(beta=1.0, info_alpha=0.5, info_lambda=10.0))
    np.testing.assert_allclose(loss, m["rec"] + 0.5 * m["kl"] + 9.5 * m["mmd"], rtol=1e-5)
    assert float(m["mmd"]) > 0
    # the deterministic autoencoder: -log p(x | decoder(mu(x))); the DAE with no noise is the AE
    ae = vae(objective="ae")
    assert ae.log_prob is None and ae.hparams == {}
    lo, mo = ae.players[0].loss(p, batch, jax.random.key(3), ctx())
    mod = ae.modules(p)
    want = -jnp.mean(bernoulli_log_prob(mod.decoder(mod.encoder(x)[0]), x))
    np.testing.assert_allclose(lo, want, rtol=1e-5)
    np.testing.assert_allclose(ae.latent.reconstruct(p, x), jax.nn.sigmoid(mod.decoder(mod.encoder(x)[0])), rtol=1e-5)
    dae0 = vae(objective="dae", noise=0.0)
    np.testing.assert_allclose(dae0.players[0].loss(p, batch, jax.random.key(3), ctx())[0], want, rtol=1e-5)
    dae = vae(objective="dae", noise=0.5)
    assert float(dae.players[0].loss(p, batch, jax.random.key(3), ctx())[0]) != pytest.approx(float(want))


def test_adversarial_autoencoder_players_and_the_encoder_only_update():
    aae = vae(objective="aae")
    assert [pl.name for pl in aae.players] == ["ae", "disc", "reg"] and aae.log_prob is None
    assert aae.players[0].params == ("enc", "dec") and aae.players[2].params == ("enc",)
    params = aae.init(jax.random.key(0))
    assert set(params) == {"enc", "dec", "disc"}
    batch = {"x": binary(16)}

    def one_step(players):
        txs = {pl.name: optax.adam(1e-2) for pl in players}
        st = init_state(params, txs, jax.random.key(1), players=players)
        return jax.jit(make_step(players, txs))(st, batch)

    changed = lambda a, b: any(float(jnp.abs(u - v).max()) > 0 for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    after, m = one_step((aae.players[2],))  # the regularization player alone
    assert changed(after.params["enc"], params["enc"])
    assert not changed(after.params["dec"], params["dec"]) and not changed(after.params["disc"], params["disc"])
    after, m = one_step(aae.players)  # all three
    assert all(changed(after.params[k], params[k]) for k in ("enc", "dec", "disc"))
    assert {"ae/loss", "disc/loss", "reg/loss", "disc/d_prior"} <= set(m)
    # the discriminator's loss is the minimax loss of prior draws against codes
    mod = aae.modules(params)
    code = mod.encoder(batch["x"])[0]
    assert code.shape == (16, 3)


def test_max_unpool_inverts_max_pool_at_the_switches():
    x = jax.random.normal(jax.random.key(0), (2, 4, 6, 3))
    pooled, sw = max_pool_switches(x)
    assert pooled.shape == (2, 2, 3, 3) and sw.shape == (2, 2, 3, 3, 4)
    up = max_unpool(pooled, sw)
    win = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    is_max = x == jnp.repeat(jnp.repeat(win, 2, 1), 2, 2)
    np.testing.assert_allclose(up, jnp.where(is_max, x, 0.0))
    np.testing.assert_allclose(pooled, win)
    top_left = max_unpool(pooled)
    np.testing.assert_allclose(top_left[:, ::2, ::2], pooled)
    assert float(jnp.abs(top_left[:, 1::2]).sum()) == 0.0
    ae = vae(objective="ae", arch="pool", channels=(4, 8))
    p = ae.init(jax.random.key(1))
    x = binary(3)
    rec = ae.latent.reconstruct(p, x)
    assert rec.shape == x.shape and ae.sample(p, jax.random.key(0), 2).shape == (2, 8, 8, 1)
    with pytest.raises(ValueError, match="arch='pool'"):
        vae(arch="pool")


def test_two_layer_vae_bound_climbs_with_k_and_samples():
    fam = vae(latent_dim=4, latent_dim2=2, hidden2=(8,), objective="iwae", k=3)
    assert fam.latent.dim == 2
    p = fam.init(jax.random.key(0))
    x = binary(8, 3)
    lp = jax.jit(lambda key, k: fam.log_prob(p, x, key, k=k, chunk=k), static_argnums=1)
    means = {k: np.mean([np.asarray(lp(jax.random.key(s), k)) for s in range(20)], 0) for k in (1, 5, 500)}
    assert np.all(means[1] < means[5]) and np.all(means[5] < means[500])
    assert fam.sample(p, jax.random.key(1), 5).shape == (5, 8, 8, 1)
    loss, m = fam.players[0].loss(p, {"x": x}, jax.random.key(2), Context(jnp.int32(0), {"beta": jnp.float32(1)}))
    assert np.isfinite(float(loss)) and float(m["iwae"]) >= float(m["elbo"]) - 1e-4


def test_latent_diagnostics_on_a_constructed_posterior(tmp_path):
    rng = np.random.default_rng(0)
    n = 1000
    means = np.zeros((n, 4), np.float32)
    means[:, 0] = rng.normal(size=n)  # active
    means[:, 1] = 0.3 * rng.normal(size=n)  # active (0.09)
    means[:, 2] = 0.05 * rng.normal(size=n)  # inactive (0.0025)
    log_vars = np.zeros((n, 4), np.float32)
    log_vars[:, 0] = -2.0
    fake = Latent(4, lambda params, x: (x[:, :4], x[:, 4:]), lambda params, z: z)
    d = latent_diagnostics(fake, None, np.concatenate([means, log_vars], 1), out_dir=tmp_path, batch=300)
    assert d["active_units"] == 2 and d["latent_dim"] == 4
    np.testing.assert_allclose(d["activity"], means.var(0), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(d["kl_total"], float(np.mean(gaussian_kl(means, log_vars))), rtol=1e-5)
    np.testing.assert_allclose(d["kl_per_dim"][3], 0.0, atol=1e-7)
    assert (tmp_path / "latent_usage.png").is_file()


def test_pluralistic_diversity_against_brute_force():
    rng = np.random.default_rng(1)
    x = rng.random((7, 3, 3, 1))
    flat = x.reshape(7, -1)
    brute = np.mean([min(np.linalg.norm(flat[i] - flat[j]) for j in range(7) if j != i) for i in range(7)])
    assert pluralistic_diversity(x) == pytest.approx(brute, rel=1e-9)
    assert pluralistic_diversity(x[rng.permutation(7)]) == pytest.approx(brute, rel=1e-9)
    assert pluralistic_diversity(2 * x) == pytest.approx(2 * brute, rel=1e-9)
    assert pluralistic_diversity(np.repeat(x[:1], 5, 0)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        pluralistic_diversity(x[:1])


@pytest.mark.slow
def test_cvae_samples_are_classified_as_their_class_after_a_short_digits_run(classifier_dir):
    import genjax
    from genjax.eval.classifier import get_classifier

    cfg = genjax.default_config("vae")
    cfg.data.binarize = "static"
    cfg.model.vae.conditional = True
    cfg.model.vae.hidden = (128,)
    cfg.model.vae.latent_dim = 4
    cfg.model.vae.val_samples = 2
    cfg.train.epochs = 20
    cfg.train.batch_size = 64
    cfg.train.patience = 0
    data = genjax.load_data(cfg)
    model = genjax.fit(cfg, data, progress=False)
    assert model.family.labelled and model.family.classes == 10
    ev = genjax.evaluate(model, data)  # -log p(x | y) on the labelled test split
    assert np.isfinite(ev["nll"])
    x01 = np.asarray(data.eval_view(data.train["x"]))
    clf = get_classifier("digits_binarized", (x01, data.train["y"]), (data.test["x"], data.test["y"]),
                         classifier_dir, log=lambda *_: None)  # fmt: skip
    m = conditional_metrics(model.family, model.params, jax.random.key(0), x01, data.train["y"], clf, per_class=20)
    assert m["class_accuracy"] > 0.6, m["accuracy"]  # chance: 0.1
    assert 0 < m["pixel"]["model_mean"] and 0 < m["features"]["model_mean"]


def test_conditional_metrics_on_a_constructed_model():
    """A 'model' whose samples are noisy class prototypes, every fifth sample of classes 0-2 the
    next class's: the classifier check and the diversities equal their direct computation."""
    import dataclasses

    rng = np.random.default_rng(0)
    protos = rng.random((10, 4, 4, 1))  # one prototype image per class

    @dataclasses.dataclass
    class Clf:  # assigns the nearest prototype; features = the pixels
        name: str = "toy"

        def probs(self, x):
            d = ((np.asarray(x)[:, None] - protos[None]) ** 2).reshape(len(x), 10, -1).sum(-1)
            return np.eye(10)[d.argmin(1)]

        def features(self, x):
            return np.asarray(x).reshape(len(x), -1)

    def sample(params, key, n, cond):
        cond = jnp.asarray(cond)
        wrong = (jnp.arange(n) % 5 == 0) & (cond < 3)  # classes 0-2: every fifth sample is the next class
        noise = 0.01 * jax.random.normal(key, (n, 4, 4, 1))
        return jnp.asarray(protos)[jnp.where(wrong, (cond + 1) % 10, cond)] + noise

    fake = dataclasses.replace(vae(conditional=True), sample=sample)
    real_x = np.concatenate([protos[c] + 0.05 * rng.normal(size=(8, 4, 4, 1)) for c in range(10)])
    real_y = np.repeat(np.arange(10), 8)
    m = conditional_metrics(fake, None, jax.random.key(0), real_x, real_y, Clf(), per_class=10)
    np.testing.assert_allclose(m["accuracy"], [0.8] * 3 + [1.0] * 7)
    assert m["class_accuracy"] == pytest.approx((3 * 0.8 + 7) / 10) and m["chance"] == 0.1
    samples = class_samples(fake, None, jax.random.key(0), 10, 10)
    np.testing.assert_allclose(m["pixel"]["model"], [pluralistic_diversity(s) for s in samples])
    np.testing.assert_allclose(m["pixel"]["real"], [pluralistic_diversity(real_x[real_y == c]) for c in range(10)])
    assert m["pixel"]["model_mean"] == pytest.approx(np.mean(m["pixel"]["model"]))
    np.testing.assert_allclose(m["features"]["model"], m["pixel"]["model"])  # features = pixels here
