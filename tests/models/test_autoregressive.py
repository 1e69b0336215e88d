"""The autoregressive family: causality of every network (Jacobian sparsity / perturbation),
exact normalized likelihoods (brute force over every sequence), the entropy of a known Markov
chain, cached = uncached sampling, deterministic samples, mixed precision."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genjax.config import base_config
from genjax.models import DataInfo, build_family
from genjax.models.autoregressive import adjust_logits
from genjax.nn.autoregressive import MADE, PixelCNN, Transformer, conv_mask
from genjax.train.engine import split_trainable


def ar(info: DataInfo, **fields):
    c = base_config()
    c.model.family = "autoregressive"
    for k, v in fields.items():
        c.model.autoregressive[k] = v
    fam = build_family(c, info)
    return fam, fam.init(jax.random.key(0))


@pytest.mark.parametrize("random_order,which", [(False, 0), (True, 0), (False, 2)])
def test_made_output_depends_only_on_earlier_inputs(random_order, which):
    d = 7
    net = MADE(d, (23, 19), 3, n_orders=3, random_order=random_order, seed=1, rngs=nnx.Rngs(0))
    for layer in net.layers:  # non-zero weights everywhere, so a zero derivative is the mask's doing
        layer.kernel[...] = jax.random.normal(jax.random.key(3), layer.kernel[...].shape)
    x = jax.random.uniform(jax.random.key(1), (d,))
    jac = jax.jacobian(lambda v: net(v[None], which=which)[0])(x)  # [D, n_out, D]
    order = np.asarray(net.orders[...][which])  # position of each input in the ordering
    dep = np.abs(np.asarray(jac)).sum(1) > 0  # dep[i, j]: output i depends on input j
    allowed = order[None, :] < order[:, None]
    assert not np.any(dep & ~allowed)  # never on itself or later inputs
    assert dep[np.argmax(order)].sum() > 0  # and the last output does see earlier ones
    if which == 0 and not random_order:
        np.testing.assert_array_equal(order, np.arange(d))


def test_conv_masks():
    np.testing.assert_array_equal(conv_mask(3, "A"), [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(conv_mask(3, "B"), [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(conv_mask(3, "V"), [[1, 1, 1], [1, 1, 1], [0, 0, 0]])


@pytest.mark.parametrize("gated", [False, True])
def test_pixelcnn_output_never_sees_the_current_or_later_pixels(gated):
    h = w = 6
    net = PixelCNN(2, channels=8, n_layers=3, gated=gated, first_kernel=5, kernel=3, rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (1, h, w, 1))
    jac = jax.jacobian(lambda v: net(v)[0, ..., 0, :].sum(-1))(x)  # [h, w, 1, h, w, 1]
    dep = np.abs(np.asarray(jac)).reshape(h * w, h * w) > 0  # raster index: output p, input q
    later = np.arange(h * w)[None, :] >= np.arange(h * w)[:, None]
    assert not np.any(dep & later)
    assert dep[h * w - 1, : h * w - 1].sum() > 0
    # the plain network's blind spot: output (5, 1) never sees pixel (4, 5), up and to the right,
    # however deep; the gated stacks see it
    assert dep[(h - 1) * w + 1, (h - 2) * w + w - 1] == gated


def test_transformer_logits_at_t_ignore_later_tokens():
    net = Transformer(5, 1, 12, d_model=16, n_layers=2, n_heads=2, rngs=nnx.Rngs(0))
    a = jax.random.randint(jax.random.key(1), (2, 12), 0, 6)
    for t in (0, 4, 11):
        b = a.at[:, t + 1 :].set((a[:, t + 1 :] + 1) % 5)  # change the inputs after t
        np.testing.assert_allclose(net(a)[:, : t + 1], net(b)[:, : t + 1], atol=1e-6)
        if t < 11:
            assert not np.allclose(net(a)[:, t + 1 :], net(b)[:, t + 1 :], atol=1e-4)


@jax.jit  # one program per model, not an eager draw per weight shape
def jiggle(params):
    """Random trainable weights (the zero-initialized last layers would give a uniform model);
    masks and other non-trainable variables untouched."""
    diff, rest = split_trainable(params["model"])
    diff = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(5), a.shape), diff)
    return {"model": nnx.merge_state(diff, rest)}


def _all(k: int, d: int) -> np.ndarray:
    return np.array(list(itertools.product(range(k), repeat=d)), np.int32)


CASES = {
    "made binary": (DataInfo((4,), levels=2), dict(arch="made", hidden=(16,))),
    "made 3 orderings": (DataInfo((4,), levels=2), dict(arch="made", hidden=(16,), n_orders=3)),
    "made 3-level": (DataInfo((3,), levels=3), dict(arch="made", hidden=(16,))),
    "pixelcnn 2x2": (DataInfo((2, 2, 1), levels=2), dict(arch="pixelcnn", channels=4, n_layers=1)),
    "gated pixelcnn 2x2 3-level": (DataInfo((2, 2, 1), levels=3), dict(arch="pixelcnn", channels=4, gated=True)),
    "bigram text": (DataInfo((4,), vocab=3), dict(arch="bigram")),
    "transformer text": (DataInfo((4,), vocab=3), dict(arch="transformer", d_model=8, n_layers=1, n_heads=2)),
    "transformer conditional": (
        DataInfo((4,), levels=2, n_classes=3),
        dict(arch="transformer", d_model=8, n_layers=1, n_heads=2, conditional=True),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_log_prob_is_a_normalized_distribution(case):
    """exp(log_prob) over every possible example sums to 1: the chain rule is exact, nothing is
    skipped or counted twice (a shifted input, a leaked token or a missing start token fails)."""
    info, fields = CASES[case]
    fam, params = ar(info, **fields)
    params = jiggle(params)
    k = info.vocab or info.levels
    tok = _all(k, info.num_dims)
    x = tok.reshape(-1, *info.shape) if info.vocab else (tok / (k - 1)).reshape(-1, *info.shape).astype(np.float32)
    lp = np.asarray(fam.log_prob(params, jnp.asarray(x)), np.float64)
    assert lp.shape == (len(tok),)
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=2e-5)
    assert lp.std() > 0.01  # not the uniform distribution


def test_true_conditionals_score_the_chain_entropy():
    """A bigram table holding the log start and transition probabilities of a Markov chain is
    that chain: its mean NLL over every sequence, weighted by probability, is the entropy
    H = H(pi_0) + sum_t sum_i pi_{t-1}(i) H(P_i), pi_t = pi_0 P^t."""
    v, t = 3, 5
    fam, params = ar(DataInfo((t,), vocab=v), arch="bigram")
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(v), size=v)  # transitions
    pi0 = rng.dirichlet(np.ones(v))
    table = np.log(np.concatenate([p, pi0[None]]))  # row v: the start token
    params["model"]["table"] = params["model"]["table"].replace(jnp.asarray(table, jnp.float32))
    seqs = _all(v, t)
    lp = np.asarray(fam.log_prob(params, jnp.asarray(seqs)), np.float64)
    ent = lambda q: -np.sum(q * np.log(q))  # noqa: E731
    h, pi = ent(pi0), pi0
    for _ in range(t - 1):
        h += np.sum(pi * np.array([ent(row) for row in p]))
        pi = pi @ p
    assert -np.sum(np.exp(lp) * lp) == pytest.approx(h, rel=1e-5)
    # and a sample from it has that chain's statistics: first tokens ~ pi_0
    s = np.asarray(fam.sample(params, jax.random.key(1), 4000))
    np.testing.assert_allclose(np.bincount(s[:, 0], minlength=v) / 4000, pi0, atol=0.03)


def test_cached_sampling_equals_uncached_and_is_deterministic():
    info = DataInfo((10,), vocab=7, n_classes=2)
    fam, params = ar(info, arch="transformer", d_model=16, n_layers=2, n_heads=2, conditional=True, top_k=4)
    net = fam.modules(params)
    toks = jax.random.randint(jax.random.key(2), (3, 10), 0, 7)
    inp = jnp.concatenate([jnp.full((3, 1), 7), toks[:, :-1]], axis=1)
    full = net(inp)
    cache, rows = net.init_cache(3), []
    for i in range(10):  # the cache path, teacher-forced: the same logits at every position
        logits, cache = net.step(inp[:, i], cache, i)
        rows.append(logits)
    np.testing.assert_allclose(jnp.stack(rows, 1), full, atol=2e-5)
    key, cond = jax.random.key(4), jnp.array([0, 1, 1, 0, 1])
    a = fam.sample(params, key, 5, cond)
    b = fam.samplers["uncached"](params, key, 5, cond)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, fam.sample(params, key, 5, cond))
    assert not np.array_equal(a, fam.sample(params, jax.random.key(5), 5, cond))


@pytest.mark.parametrize("levels,conditional,random_order", [(2, False, False), (5, True, True)])
def test_made_sampler_updates_its_first_layer_and_equals_the_whole_network(levels, conditional, random_order):
    """MADE's sampler keeps its first layer's pre-activation up to date (one rank-one update per
    drawn input) and computes only the drawn position's outputs: teacher-forced in the sampling
    order, the same outputs as the whole network at every position; its samples are the
    whole-network sampler's (same keys, draws and order), on the data's levels."""
    info = DataInfo((4, 3, 1), levels=levels, n_classes=3 if conditional else 0)
    fam, params = ar(info, arch="made", hidden=(24, 20), conditional=conditional, random_order=random_order)

    def nudged(path, v):  # biases start at zero: give every weight and bias a value of its own
        name = jax.tree_util.keystr(path)
        if "bias" not in name and "kernel" not in name:
            return v  # the masks and orderings stay
        return v + 0.3 * jax.random.normal(jax.random.key(len(name)), v.shape, v.dtype)

    params = jax.jit(lambda p: jax.tree_util.tree_map_with_path(nudged, p))(params)  # one program, not a draw per shape
    net = fam.modules(params)
    d, k = 12, levels
    tok = jax.random.randint(jax.random.key(3), (5, d), 0, k)
    x = tok.astype(jnp.float32) / (k - 1)
    ctx = jax.nn.one_hot(jnp.array([0, 1, 2, 1, 0]), 3) if conditional else None
    full = net(x, ctx)  # [5, d, n_out]
    a, add, out = net.sampler(5, ctx)
    for p in np.argsort(np.asarray(net.orders[...][0])):  # the sampling order: position p sees what came before
        np.testing.assert_allclose(out(a, p), full[:, p], rtol=1e-5, atol=1e-5)
        a = add(a, p, x[:, p])
    key, cond = jax.random.key(4), (jnp.array([0, 1, 2, 2, 1, 0]) if conditional else None)
    s = fam.sample(params, key, 6, cond)
    np.testing.assert_array_equal(s, fam.samplers["uncached"](params, key, 6, cond))
    assert set(np.unique(np.round(np.asarray(s) * (k - 1), 4))) <= set(range(k))


@pytest.mark.parametrize("arch", ["made", "pixelcnn"])
def test_image_samples_are_deterministic_and_on_the_levels(arch):
    fam, params = ar(DataInfo((4, 4, 1), levels=3, n_classes=2), arch=arch, hidden=(8,), channels=4,
                     n_layers=1, conditional=True)  # fmt: skip
    a = np.asarray(fam.sample(params, jax.random.key(0), 6))
    np.testing.assert_array_equal(a, fam.sample(params, jax.random.key(0), 6))
    assert set(np.unique(a)) <= {0.0, 0.5, 1.0}
    assert a.shape == (6, 4, 4, 1)


def test_conditional_log_prob_changes_with_the_class_only():
    info = DataInfo((4, 4, 1), levels=2, n_classes=3)
    for arch in ("made", "pixelcnn", "transformer"):
        fam, params = ar(info, arch=arch, hidden=(8,), channels=4, n_layers=1, d_model=8, n_heads=2, conditional=True)
        params = jiggle(params)
        x = (jax.random.uniform(jax.random.key(1), (2, 4, 4, 1)) > 0.5).astype(jnp.float32)
        loss = lambda y: fam.players[0].loss(params, {"x": x, "y": y}, jax.random.key(0), None)[0]  # noqa: E731
        assert abs(float(loss(jnp.array([0, 0]))) - float(loss(jnp.array([2, 2])))) > 1e-3, arch


def test_temperature_and_top_k():
    logits = jnp.log(jnp.array([0.5, 0.3, 0.15, 0.05]))
    np.testing.assert_allclose(jax.nn.softmax(adjust_logits(logits, 1.0, 2)), [0.625, 0.375, 0, 0], atol=1e-6)
    cold = jax.nn.softmax(adjust_logits(logits, 0.5))
    np.testing.assert_allclose(
        cold, np.array([0.5, 0.3, 0.15, 0.05]) ** 2 / np.sum(np.array([0.5, 0.3, 0.15, 0.05]) ** 2), rtol=1e-5
    )
    # top_k = 1 samples the most likely token: a greedy decode
    fam, params = ar(DataInfo((6,), vocab=5), arch="transformer", d_model=8, n_layers=1, n_heads=2, top_k=1)
    s = np.asarray(fam.sample(params, jax.random.key(0), 4))
    assert (s == s[0]).all()


def test_loss_is_the_mean_nll_and_bits_per_token():
    info = DataInfo((8, 8, 1), levels=2)
    fam, params = ar(info, arch="made", hidden=(16,))
    x = (jax.random.uniform(jax.random.key(1), (5, 8, 8, 1)) > 0.5).astype(jnp.float32)
    loss, m = fam.players[0].loss(params, {"x": x}, jax.random.key(0), None)
    assert float(loss) == pytest.approx(-float(jnp.mean(fam.log_prob(params, x))), rel=1e-6)
    assert float(m["bits_per_token"]) == pytest.approx(float(loss) / (64 * math.log(2)), rel=1e-6)
    # an untrained MADE (zero-initialized? no: random) still gives about ln 2 per binary pixel
    assert 0.5 * 64 * math.log(2) < float(loss) < 2 * 64 * math.log(2)


def test_bfloat16_training_tracks_float32():
    from genjax.data import from_arrays, load_splits
    from genjax.train import fit

    rng = np.random.default_rng(0)
    x = (rng.random((600, 16)) < np.linspace(0.1, 0.9, 16)).astype(np.uint8)  # independent Bernoullis
    losses = {}
    for dt in ("float32", "bfloat16"):
        c = base_config()
        c.model.family = "autoregressive"
        c.model.autoregressive.update(arch="transformer", d_model=16, n_layers=1, n_heads=2)
        c.data.name = "arrays"
        c.train.update(epochs=4, batch_size=50, dtype=dt)
        c.optim.lr = 3e-3
        splits = load_splits(c.data, 50, source=from_arrays(x.reshape(600, 4, 4), name="bits"))
        fam = build_family(c, DataInfo.of(splits))
        res = fit(c, fam, splits, progress=False)
        losses[dt] = np.array([r["val_nll"] for r in res.history])
        assert res.state.params["model"]["tok"]["embedding"][...].dtype == jnp.float32  # parameters stay float32
    entropy = -np.sum([p * np.log(p) + (1 - p) * np.log(1 - p) for p in np.linspace(0.1, 0.9, 16)])
    assert losses["float32"][-1] < losses["float32"][0]  # it learns
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.02)
    assert losses["float32"][-1] > entropy - 0.5  # no model beats the source's entropy (up to noise)


def test_made_natural_degrees_use_every_input_even_with_fewer_hidden_units():
    """With h < D - 1 hidden units the deterministic degrees must still span 1..D-1: cycling
    them (1..h) would leave the inputs of degree > h connected to nothing."""
    from genjax.nn.autoregressive import made_masks

    masks = made_masks(784, (500,), np.arange(784), None, 1)
    used = masks[0].sum(1) > 0
    assert used[:783].all() and not used[783]  # every input but the last feeds some hidden unit
    assert (masks[1].sum(0) > 0)[1:].all()  # every output but the first sees some hidden unit
