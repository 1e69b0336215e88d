import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from genjax.models.base import Family, Player
from genjax.train import TrainingError, fit, init_state, make_epoch, make_step
from genjax.train.engine import early_stop_update
from genjax.train.optim import make_optimizer


class Scalar(nnx.Module):
    def __init__(self, v):
        self.w = nnx.Param(jnp.asarray(v, jnp.float32))
        self.calls = nnx.Variable(jnp.asarray(0, jnp.int32))  # a non-trainable variable


def _two_player_family(n_steps_b=3):
    """Player b fits the data mean (3 updates per step); player a chases 2 * b.
    With SGD(lr=0.1) on constant data c, b <- 0.8 b + 0.2 c (three times), then
    a <- 0.8 a + 0.4 b: the order and repetition of updates are visible in the numbers."""
    gd_a, _ = nnx.split(Scalar(0.0))

    def w(params, name):
        return nnx.merge(gd_a, params[name]).w[...]

    def loss_b(params, batch, key, ctx):
        m = nnx.merge(gd_a, params["b"])
        m.calls[...] = m.calls[...] + 1
        return jnp.mean((m.w[...] - batch["x"]) ** 2), {"_vars": nnx.split_state(nnx.split(m)[1], nnx.Param, ...)[1]}

    def loss_a(params, batch, key, ctx):
        return (w(params, "a") - 2 * jax.lax.stop_gradient(w(params, "b"))) ** 2, {}

    def init(key, example=None):
        return {"a": nnx.split(Scalar(0.0))[1], "b": nnx.split(Scalar(0.0))[1]}

    def log_prob(params, x, key):
        return -((x[:, 0] - w(params, "b")) ** 2)

    return Family("toy", init, (Player("b", loss_b, n_steps_b), Player("a", loss_a)), None, log_prob, "exact")


def test_two_players_update_in_order_with_n_steps():
    fam = _two_player_family()
    txs = {"a": optax.sgd(0.1), "b": optax.sgd(0.1)}
    state = init_state(fam.init(None), txs, jax.random.key(0))
    step = jax.jit(make_step(fam.players, txs))
    c = 1.5
    state, metrics = step(state, {"x": jnp.full((4,), c)})
    b = c * (1 - 0.8**3)
    a = 0.4 * b
    assert float(state.params["b"]["w"][...]) == pytest.approx(b, rel=1e-6)
    assert float(state.params["a"]["w"][...]) == pytest.approx(a, rel=1e-6)
    assert int(state.params["b"]["calls"][...]) == 3  # non-trainable variables come back through "_vars"
    assert set(metrics) >= {"a/loss", "b/loss", "a/grad_norm"}
    for _ in range(60):
        state, _ = step(state, {"x": jnp.full((4,), c)})
    assert float(state.params["b"]["w"][...]) == pytest.approx(c, abs=1e-4)
    assert float(state.params["a"]["w"][...]) == pytest.approx(2 * c, abs=1e-3)


def test_a_player_with_several_updates_has_its_loss_traced_once():
    """b's three updates a step call one jitted update: its loss is traced once, not three times
    (a WGAN critic's five updates traced its loss five times; the values are the test above's)."""
    fam = _two_player_family()
    traced = {"b": 0}
    loss_b = fam.players[0].loss

    def counted(*args):
        traced["b"] += 1
        return loss_b(*args)

    players = (fam.players[0]._replace(loss=counted), fam.players[1])
    txs = {"a": optax.sgd(0.1), "b": optax.sgd(0.1)}
    state = init_state(fam.init(None), txs, jax.random.key(0))
    state, _ = jax.jit(make_step(players, txs))(state, {"x": jnp.full((4,), 1.5)})
    assert traced["b"] == 1
    assert float(state.params["b"]["w"][...]) == pytest.approx(1.5 * (1 - 0.8**3), rel=1e-6)
    assert int(state.params["b"]["calls"][...]) == 3


def test_simultaneous_updates_take_every_gradient_at_the_old_parameters():
    """Hand-written Jacobi step on the same game (b fits c, a chases 2b, SGD lr 0.1):
    b <- 0.8 b + 0.2 c and a <- 0.8 a + 0.4 b_old, both from the incoming (a, b)."""
    fam = _two_player_family(n_steps_b=1)
    txs = {"a": optax.sgd(0.1), "b": optax.sgd(0.1)}
    state = init_state(fam.init(None), txs, jax.random.key(0))
    sim = jax.jit(make_step(fam.players, txs, order="simultaneous"))
    alt = jax.jit(make_step(fam.players, txs))
    c, a, b = 1.5, 0.0, 0.0
    s_sim, s_alt = state, state
    for _ in range(3):
        s_sim, m = sim(s_sim, {"x": jnp.full((4,), c)})
        s_alt, _ = alt(s_alt, {"x": jnp.full((4,), c)})
        a, b = 0.8 * a + 0.4 * b, 0.8 * b + 0.2 * c
    assert float(s_sim.params["a"]["w"][...]) == pytest.approx(a, rel=1e-6)
    assert float(s_sim.params["b"]["w"][...]) == pytest.approx(b, rel=1e-6)
    assert int(s_sim.params["b"]["calls"][...]) == 3 and set(m) >= {"a/loss", "b/loss"}
    assert abs(float(s_alt.params["a"]["w"][...]) - a) > 0.05  # alternating differs
    with pytest.raises(ValueError, match="player 'b' takes 3"):
        make_step(_two_player_family(3).players, txs, order="simultaneous")


@pytest.mark.parametrize("order", ["simultaneous", "alternating"])
@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_dirac_gan_follows_its_closed_form(order, gamma):
    """The engine on the Dirac-GAN (Wasserstein losses, plain SGD, step h) equals the closed-form
    linear map (theta, psi) <- M (theta, psi): simultaneous without penalty spirals outward by
    sqrt(1 + h^2) per step, alternating stays on a bounded orbit, R1 (gamma = 1 > h) converges."""
    from experiments.dirac_gan.dirac import init_params, linear_map, players, point
    from genjax.config import base_config

    h, steps = 0.1, 300
    oc = base_config().optim
    oc.name, oc.lr, oc.momentum = "sgd", h, 0.0
    txs = {n: make_optimizer(oc, steps) for n in ("disc", "gen")}
    step = make_step(players("wgan", gamma), txs, order=order)
    state = init_state(init_params(1.0, 0.5), txs, jax.random.key(0))

    def body(st, _):
        st, _ = step(st, {"x": jnp.zeros((4, 1))})
        return st, jnp.stack(point(st.params))

    _, path = jax.lax.scan(body, state, None, length=steps)
    M = linear_map(h, gamma, order)
    want = np.stack([np.linalg.matrix_power(M, t + 1) @ np.array([1.0, 0.5]) for t in range(steps)])
    np.testing.assert_allclose(np.asarray(path), want, rtol=1e-4, atol=1e-5)
    r = np.linalg.norm(np.asarray(path), axis=1)
    if gamma == 0 and order == "simultaneous":
        np.testing.assert_allclose(r[1:] / r[:-1], np.sqrt(1 + h * h), rtol=1e-5)  # outward spiral
    elif gamma == 0:
        assert r.max() < 1.2 * np.hypot(1.0, 0.5) and r[-100:].min() > 0.8 * np.hypot(1.0, 0.5)  # bounded, no decay
    else:
        assert r[-1] < 0.05 * r[0]  # converges to the equilibrium (0, 0)


def test_early_stopping_rule():
    p = {"w": jnp.zeros(())}
    upd = jax.jit(early_stop_update, static_argnums=(4, 5, 6))
    es = init_state(p, {}, jax.random.key(0), window=2).es
    es = upd(es, 10.0, {"w": jnp.ones(())}, 1, 2, 0.5)
    assert float(es.best) == 10.0 and int(es.best_epoch) == 1 and float(es.best_params["w"]) == 1.0
    es = upd(es, 9.5, {"w": 2 * jnp.ones(())}, 2, 2, 0.5)  # better by exactly min_delta: not "more than"
    assert float(es.best) == 10.0 and int(es.bad_epochs) == 1 and not bool(es.stopped)
    es = upd(es, jnp.nan, {"w": 3 * jnp.ones(())}, 3, 2, 0.5)  # non-finite never improves
    assert bool(es.stopped) and float(es.best_params["w"]) == 1.0
    es0 = init_state(p, {}, jax.random.key(0)).es
    for e in range(5):  # patience 0: never stops
        es0 = upd(es0, 1.0, p, e + 1, 0, 0.0)
    assert not bool(es0.stopped)


def test_early_stopping_rise_rule_at_its_boundary():
    """The notes' rule: stop at t once NLL_val(t) > NLL_val(t - k) + eps (k = 2, eps = 0.5)."""
    p = {"w": jnp.zeros(())}
    upd = jax.jit(early_stop_update, static_argnums=(4, 5, 6))
    es = init_state(p, {}, jax.random.key(0), window=2).es
    stops = []
    for t, v in enumerate([10.0, 30.0, 10.5, 9.6, 9.0, 10.11], start=1):
        es = upd(es, v, p, t, 2, 0.5, "rise")
        stops.append(bool(es.stopped))
    # t=2: a rise of 20 but no t-2 yet; t=3: 10.5 = 10 + 0.5 is not above; t=4: 9.6 < 30.5;
    # t=5: 9.0 < 10.5 + 0.5; t=6: 10.11 > 9.6 + 0.5
    assert stops == [False, False, False, False, False, True]
    es = init_state(p, {}, jax.random.key(0), window=2).es
    for t, v in enumerate([10.0, 9.0, 10.51], start=1):  # 10.51 > 10 + 0.5 at t=3
        es = upd(es, v, p, t, 2, 0.5, "rise")
    assert bool(es.stopped) and float(es.best) == 9.0 and int(es.best_epoch) == 2
    es = init_state(p, {}, jax.random.key(0), window=1).es
    for t, v in enumerate([1.0, float("nan")], start=1):  # a non-finite NLL is a rise
        es = upd(es, v, p, t, 1, 0.0, "rise")
    assert bool(es.stopped)


def _toy_epoch(patience):
    fam = _two_player_family(1)
    txs = {"a": optax.sgd(0.1), "b": optax.sgd(0.1)}
    val_nll = lambda params, val, key: -jnp.mean(fam.log_prob(params, val["x"], key))
    epoch = jax.jit(
        make_epoch(make_step(fam.players, txs), val_nll, batch_size=4, steps=2, patience=patience, min_delta=0.0)
    )
    return fam, txs, epoch


def test_a_stopped_model_stays_frozen():
    fam, txs, epoch = _toy_epoch(patience=1)
    state = init_state(fam.init(None), txs, jax.random.key(0))
    # moving toward the training mean makes validation worse
    data = {"train": {"x": jnp.full((8,), 1.0)}, "val": {"x": jnp.full((4, 1), -5.0)}}
    state, m1 = epoch(state, data)
    state, m2 = epoch(state, data)
    assert bool(m2["stopped"])
    frozen = state
    for _ in range(3):
        state, m = epoch(state, data)
    for a, b in zip(jax.tree.leaves(frozen), jax.tree.leaves(state)):
        if hasattr(a, "dtype") and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)
    assert int(state.epoch) == 2 and int(state.es.best_epoch) == 1


def test_nonfinite_loss_is_caught(smoke_cfg):
    from genjax.data import load_splits
    from genjax.models import DataInfo, build_family

    splits = load_splits(smoke_cfg.data, smoke_cfg.train.batch_size)
    fam = build_family(smoke_cfg, DataInfo.of(splits))
    good = fam.players[0].loss
    bad = Player("model", lambda p, b, k, s: (good(p, b, k, s)[0] * jnp.nan, {}))
    fam = dataclasses.replace(fam, players=(bad,))
    with pytest.raises(TrainingError, match=r"diverged at step 1 \(epoch 1\): non-finite grad_norm, loss"):
        fit(smoke_cfg, fam, splits, progress=False)


def test_divergence_keeps_checkpoints_and_saves_the_last_finite_state(smoke_cfg, tmp_path, capsys):
    """A loss that goes NaN in epoch 3 (step 50) under halt: the error names step and terms,
    checkpoints of epochs 1 and 2 stay restorable, diverged/ holds the finite state of step 50;
    a loss that grows 5%/step without going NaN prints one warning and trains on."""
    from genjax.data import load_splits
    from genjax.models import DataInfo, build_family
    from genjax.train import Checkpointer, build_program

    smoke_cfg.train.epochs, smoke_cfg.train.checkpoint_every = 4, 1
    splits = load_splits(smoke_cfg.data, smoke_cfg.train.batch_size)
    fam = build_family(smoke_cfg, DataInfo.of(splits))
    good = fam.players[0].loss
    steps = len(splits.train["x"]) // smoke_cfg.train.batch_size

    def nan_late(p, b, k, ctx):
        loss, m = good(p, b, k, ctx)
        return loss * jnp.where(ctx.step == 2 * steps + 1, jnp.nan, 1.0), m

    bad = dataclasses.replace(fam, players=(Player("model", nan_late),))
    with pytest.raises(TrainingError, match=rf"at step {2 * steps + 2} \(epoch 3\): non-finite grad_norm, loss"):
        fit(smoke_cfg, bad, splits, tmp_path / "run", progress=False)
    template = build_program(smoke_cfg, fam, splits).init()
    ck = Checkpointer(tmp_path / "run" / "checkpoints")
    assert ck.epochs() == [1, 2] and int(ck.restore(template).epoch) == 2
    ck.close()
    d = Checkpointer(tmp_path / "run" / "diverged")
    last = d.restore(template)
    d.close()
    assert int(last.step) == 2 * steps + 1
    assert all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree.leaves(last.params))

    def rising(p, b, k, ctx):
        loss, m = good(p, b, k, ctx)
        return loss * 1.05 ** ctx.step.astype(jnp.float32), m

    capsys.readouterr()
    res = fit(smoke_cfg, dataclasses.replace(fam, players=(Player("model", rising),)), splits, progress=False)
    err = capsys.readouterr().err
    assert len(res.history) == 4 and err.count("warning: the training loss") == 1 and "may be diverging" in err


def _nan_at_step(bad_step: int, term: str = "rec"):
    """One scalar w fitting constant data c = 1 by SGD(0.1) on (w - c)^2 (w <- 0.8 w + 0.2 c), whose
    loss term ``term`` is NaN at global step ``bad_step``."""

    def loss(params, batch, key, ctx):
        w = params["m"]["w"][...]
        rec = jnp.mean((w - batch["x"]) ** 2) * jnp.where(ctx.step == bad_step, jnp.nan, 1.0)
        return rec, {term: rec, "ok_term": w}

    init = lambda key, example=None: {"m": nnx.split(Scalar(0.0))[1]}  # noqa: E731
    fam = Family("toy", init, (Player("m", loss),), None, None, "none")
    txs = {"m": optax.sgd(0.1)}
    return fam, txs


@pytest.mark.parametrize("policy", ["halt", "skip"])
def test_a_nonfinite_step_halts_or_is_skipped(policy):
    """halt: the epoch returns the state before the bad step (w after 2 updates) and names the
    step and the term; skip: that one update is dropped, the other 4 applied (w = 1 - 0.8^4)."""
    fam, txs = _nan_at_step(2)
    epoch = jax.jit(make_epoch(make_step(fam.players, txs), None, batch_size=4, steps=5, patience=0, min_delta=0.0,
                               on_nonfinite=policy))  # fmt: skip
    state = init_state(fam.init(None), txs, jax.random.key(0))
    state, m = epoch(state, {"train": {"x": jnp.ones((20,))}})
    updates = 2 if policy == "halt" else 4
    assert float(state.params["m"]["w"][...]) == pytest.approx(1 - 0.8**updates, rel=1e-6)
    assert int(state.step) == (2 if policy == "halt" else 5)
    assert int(m["nonfinite_steps"]) == 1 and int(m["nonfinite_at"]) == 2
    assert bool(m["nonfinite/rec"]) and bool(m["nonfinite/loss"]) and not bool(m["nonfinite/ok_term"])
    assert bool(m["halted"]) if policy == "halt" else int(m["skipped_steps"]) == 1
    # the epoch's means run over the applied updates only: w before each of them
    ws = [1 - 0.8**k for k in range(5)]
    seen = ws[:2] if policy == "halt" else [ws[0], ws[1], ws[2], ws[3]]
    assert float(m["ok_term"]) == pytest.approx(np.mean(seen), rel=1e-6)
    # a clean epoch reports no bad step
    fam, txs = _nan_at_step(-5)
    epoch = jax.jit(make_epoch(make_step(fam.players, txs), None, batch_size=4, steps=3, patience=0, min_delta=0.0,
                               on_nonfinite=policy))  # fmt: skip
    _, m = epoch(init_state(fam.init(None), txs, jax.random.key(0)), {"train": {"x": jnp.ones((20,))}})
    assert int(m["nonfinite_steps"]) == 0 and int(m["nonfinite_at"]) == -1 and not bool(m["nonfinite/rec"])


@pytest.mark.parametrize("policy", ["halt", "skip"])
@pytest.mark.parametrize("members", [None, 3])
@pytest.mark.parametrize("host_loop", [False, True])
def test_the_checked_epoch_equals_the_guarded_one(policy, members, host_loop):
    """compile_epoch runs an epoch unguarded (scanned, or as a host loop of steps) and reruns it
    guarded only when a step was not finite: over a clean epoch, a bad one and a clean one again
    (one model, or 3 vmapped members of which only member 1 goes bad), states and metrics equal
    the per-step guarded epoch's, the rerun happens once, and the fast epoch's state is not
    donated (the start survives for the rerun)."""
    from genjax.train.driver import CheckedEpoch, compile_epoch

    fam, txs = _nan_at_step(5)
    epoch = make_epoch(make_step(fam.players, txs), None, batch_size=4, steps=3, patience=0, min_delta=0.0,
                       on_nonfinite=policy)  # fmt: skip
    state = init_state(fam.init(None), txs, jax.random.key(0))
    data = {"train": {"x": jnp.ones((20,))}}
    if members:  # member 1 starts 3 steps before 0, so its step 5 comes in the third epoch; the others are past 5
        state = jax.tree.map(lambda a: jnp.stack([a] * members), state)
        state = state._replace(step=jnp.array([6, -3, 6], jnp.int32))
    checked = compile_epoch(epoch, state, data, stacked=bool(members), host_loop=host_loop)
    assert isinstance(checked, CheckedEpoch)
    guarded = jax.jit(jax.vmap(epoch, in_axes=(0, None)) if members else epoch)
    def same(x, y):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        if jnp.issubdtype(x.dtype, jnp.floating):  # two compilations: sums may round apart by an ulp
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=0)
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    a, b = state, jax.tree.map(jnp.copy, state)
    bad_epoch = 2 if members else 1  # the epoch holding global step 5
    for e in range(bad_epoch + (1 if policy == "halt" else 2)):  # a halted model is not run on
        a, ma = checked(a, data)
        b, mb = guarded(b, data)
        jax.tree.map(same, (a, ma), (b, mb))
        assert checked.reruns == (e >= bad_epoch)
        assert int(np.sum(mb["nonfinite_steps"])) == (e == bad_epoch)
    assert checked.reruns == 1
    fast_in = jax.tree.map(jnp.copy, state)
    checked.fast(fast_in, data)
    assert not any(x.is_deleted() for x in jax.tree.leaves(fast_in))  # the start survives the fast epoch


@pytest.mark.parametrize("policy", ["halt", "skip"])
def test_a_nan_gradient_behind_a_finite_loss_without_the_logged_norm(policy):
    """With train.grad_norm off the fast epoch's step has no gradient norm; a NaN gradient behind a
    finite loss at the epoch's last step (no later step sees it) is still found — by the final
    state — and the rerun halts or skips exactly that step, naming grad_norm, which the
    epoch's means leave out."""
    from genjax.train.driver import compile_epoch

    def loss(params, batch, key, ctx):
        w = params["m"]["w"][...]
        rec = jnp.mean((w - batch["x"]) ** 2)
        bad = ctx.step == 2
        u = jnp.where(bad, jnp.abs(w - jax.lax.stop_gradient(w)), 1.0)  # the safe-where: no NaN on other steps
        return rec + jnp.where(bad, jnp.sqrt(u), 0.0), {"rec": rec}  # at step 2: value 0, gradient NaN

    init = lambda key, example=None: {"m": nnx.split(Scalar(0.0))[1]}  # noqa: E731
    fam = Family("toy", init, (Player("m", loss),), None, None, "none")
    txs = {"m": optax.sgd(0.1)}
    kw = dict(batch_size=4, steps=3, patience=0, min_delta=0.0, on_nonfinite=policy, log_grad_norm=False)
    epoch = make_epoch(make_step(fam.players, txs), None, fast_step=make_step(fam.players, txs, grad_norm=False), **kw)
    state = init_state(fam.init(None), txs, jax.random.key(0))
    data = {"train": {"x": jnp.ones((20,))}}
    checked = compile_epoch(epoch, state, data)
    copy = lambda: jax.tree.map(jnp.copy, state)  # noqa: E731  (a rerun consumes the state it is given)
    new, m = checked(copy(), data)
    assert checked.reruns == 1
    # step 2 is the epoch's last: halt and skip both keep the 2 updates before it
    assert float(new.params["m"]["w"][...]) == pytest.approx(1 - 0.8**2, rel=1e-6)
    assert int(new.step) == (2 if policy == "halt" else 3)
    assert int(m["nonfinite_steps"]) == 1 and int(m["nonfinite_at"]) == 2 and bool(m["nonfinite/grad_norm"])
    assert not bool(m["nonfinite/rec"]) and "grad_norm" not in m and "rec" in m
    ref, mr = jax.jit(epoch)(copy(), data)
    assert float(ref.params["m"]["w"][...]) == float(new.params["m"]["w"][...]) and set(mr) == set(m)
    # a clean epoch from there: no rerun, and the same keys
    _, m2 = checked(copy()._replace(step=jnp.int32(3)), data)
    assert checked.reruns == 1 and set(m2) == set(m)


def test_checkpoint_policy_and_loss_rise_rule():
    from genjax.train.driver import loss_rose, should_checkpoint

    # epoch 1 always; then every 3 epochs, or after 2 minutes, whichever comes first
    assert [e for e in range(1, 10) if should_checkpoint(e, 3, 0.0, 0.0)] == [1, 3, 6, 9]
    assert should_checkpoint(2, 3, 2.0, 120.0) and not should_checkpoint(2, 3, 2.0, 119.9)
    assert not should_checkpoint(2, 3, 0.0, 1e9)  # 0 minutes: no time rule
    # loss - best > factor |best|: 110 over 10 is exactly 10 x |10| above (not more); 110.01 is
    assert not loss_rose(110.0, 10.0, 10.0) and loss_rose(110.01, 10.0, 10.0)
    assert loss_rose(-5.0 + 10.0 * 5.0 + 0.01, -5.0, 10.0) and not loss_rose(44.0, -5.0, 10.0)
    assert not loss_rose(1e9, 1.0, 0.0) and not loss_rose(float("nan"), 1.0, 10.0)


def test_optimizers_from_config(smoke_cfg):
    o = smoke_cfg.optim
    params = {"layer": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}}
    zero = jax.tree.map(jnp.zeros_like, params)
    o.name, o.lr, o.weight_decay = "adamw", 0.1, 0.5
    tx = make_optimizer(o, 100)
    upd, _ = tx.update(zero, tx.init(params), params)
    new = optax.apply_updates(params, upd)
    # decoupled decay shrinks kernels by lr * wd even with zero gradient; biases are not decayed
    np.testing.assert_allclose(new["layer"]["kernel"], 1 - 0.1 * 0.5)
    np.testing.assert_allclose(new["layer"]["bias"], 1.0)
    o.name = "sgd"
    o.schedule, o.warmup_steps, o.final_lr_ratio = "warmup_cosine", 10, 0.0
    o.clip_norm, o.momentum = 1.0, 0.0
    tx = make_optimizer(o, 100)
    g = {"layer": {"kernel": jnp.full((2, 2), 10.0), "bias": jnp.zeros((2,))}}
    s = tx.init(params)
    for _ in range(10):
        upd, s = tx.update(g, s, params)
    assert float(optax.global_norm(upd)) <= 0.1 * 1.0 + 1e-6  # clipped to norm 1, lr <= 0.1
    o.name = "rmsprop"
    with pytest.raises(ValueError, match="optim.name"):
        make_optimizer(o, 100)
    o.name, o.warmup_steps = "adam", 500
    with pytest.raises(ValueError, match="optim.warmup_steps"):
        make_optimizer(o, 100)


@pytest.mark.parametrize(
    "kind,extra,want",
    [
        # total 110 steps, 10 of warm-up: u = (s - 10) / 100 after it; final_lr_ratio r = 0.1
        ("constant", {}, {0: 0.0, 5: 0.5, 10: 1.0, 60: 1.0, 109: 1.0}),
        ("warmup_cosine", {}, {5: 0.5, 10: 1.0, 35: 0.1 + 0.9 * (1 + np.cos(np.pi / 4)) / 2, 60: 0.55, 110: 0.1}),
        ("linear", {}, {5: 0.5, 10: 1.0, 35: 0.775, 60: 0.55, 110: 0.1}),
        ("exponential", {}, {10: 1.0, 35: 0.1**0.25, 60: 0.1**0.5, 110: 0.1}),
        ("step", {"step_at": (0.5, 0.75), "step_factor": 0.2}, {10: 1.0, 59: 1.0, 60: 0.2, 84: 0.2, 85: 0.04}),
    ],
)
def test_schedule_values_at_chosen_steps(smoke_cfg, kind, extra, want):
    from genjax.train.optim import make_schedule

    o = smoke_cfg.optim
    o.schedule, o.warmup_steps, o.final_lr_ratio = kind, 10, 0.1
    for k, v in extra.items():
        o[k] = v
    f = make_schedule(o, 110)
    for step, value in want.items():
        assert float(f(step)) == pytest.approx(value, rel=1e-5, abs=1e-7), (kind, step)


def test_reduce_on_plateau_scales_the_update_after_patience_epochs(smoke_cfg):
    from genjax.train.optim import observe_plateau, plateau_scale

    o = smoke_cfg.optim
    o.name, o.lr, o.momentum, o.schedule = "sgd", 1.0, 0.0, "plateau"
    o.plateau_factor, o.plateau_patience, o.plateau_min_delta = 0.5, 2, 0.1
    tx = make_optimizer(o, 100)
    params = {"w": jnp.zeros(())}
    s = tx.init(params)
    # best 5.0; 4.95 is not better by more than 0.1, 5.3 is worse: two bad epochs -> x 0.5
    scales = []
    for v in (5.0, 4.95, 5.3, -1.0, -1.0, -1.05, -1.2):
        s = observe_plateau(o, s, jnp.asarray(v))
        scales.append(float(plateau_scale(s)))
    assert scales == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]  # negative NLLs: the threshold is absolute
    upd, _ = tx.update({"w": jnp.ones(())}, s, params)
    assert float(upd["w"]) == pytest.approx(-0.25)  # the step: -lr x scale x g


def test_plateau_schedule_runs_in_training_and_needs_a_likelihood(smoke_cfg):
    from genjax.data.pipeline import load_splits
    from genjax.models import DataInfo, build_family
    from genjax.train.optim import make_optimizers

    smoke_cfg.optim.schedule, smoke_cfg.optim.plateau_patience = "plateau", 1
    smoke_cfg.train.epochs = 3
    splits = load_splits(smoke_cfg.data, smoke_cfg.train.batch_size)
    res = fit(smoke_cfg, build_family(smoke_cfg, DataInfo.of(splits)), splits, progress=False)
    sc = [r["lr_scale"] for r in res.history]
    assert all(b in (a, a * 0.5) for a, b in zip(sc, sc[1:])) and sc[0] == 1.0
    fam = _two_player_family(1)
    smoke_cfg.optim.players = {"a": {"lr": 0.5, "schedule": "linear"}}
    txs = make_optimizers(smoke_cfg.optim, fam.players, 10)
    assert float(txs["a"].init({"w": jnp.zeros(())}).hyperparams["learning_rate"]) == 0.5
    smoke_cfg.optim.players = {"z": {"lr": 0.5}}
    with pytest.raises(ValueError, match="optim.players names 'z'"):
        make_optimizers(smoke_cfg.optim, fam.players, 10)


def test_batched_mean_is_the_masked_mean_and_checks_the_per_example_shape():
    from genjax.train import batched_mean

    x = jnp.arange(12.0).reshape(3, 4)  # 3 batches of 4, the last 2 padded
    mask = jnp.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]])
    got = batched_mean(lambda p, xb, k: xb * p, 2.0, {"x": x, "mask": mask}, jax.random.key(0))
    assert float(got) == pytest.approx(2 * np.arange(10.0).mean())
    with pytest.raises(AssertionError, match="shape"):  # a family returning a scalar per batch
        batched_mean(lambda p, xb, k: jnp.sum(xb), 1.0, {"x": x, "mask": mask}, jax.random.key(0))


@pytest.mark.parametrize("family", ["vae", "flow", "gan", "diffusion", "autoregressive"])
def test_bfloat16_mixed_precision_step_for_every_family(family):
    """train.dtype='bfloat16': the loss computes in bf16 (it differs from float32 by rounding, not
    by more), while parameters, optimizer state, gradients and metrics stay float32."""
    from genjax.config import base_config
    from genjax.models import DataInfo, build_family

    c = base_config()
    c.model.family = family
    # the MLP GAN takes vectors; the flow, a density, dequantized (continuous) images
    info = DataInfo((16,)) if family == "gan" else DataInfo((4, 4, 1), levels=0 if family == "flow" else 2)
    if family in ("vae", "flow", "gan"):
        c.model[family].hidden = (16,)
    c.model.vae.arch = c.model.gan.arch = "mlp"
    c.model.gan.disc_hidden = (16,)
    c.model.diffusion.update(arch="mlp", hidden=(16,))
    c.model.autoregressive.update(arch="made", hidden=(16,))
    fam = build_family(c, info)
    x = (jax.random.uniform(jax.random.key(0), (8, *info.shape)) > 0.5).astype(jnp.float32)
    txs = {p.name: optax.sgd(1e-2) for p in fam.players}
    st0 = init_state(fam.init(jax.random.key(1), x), txs, jax.random.key(2), fam.hparams)
    out = {}
    for dt in ("float32", "bfloat16"):
        new, m = jax.jit(make_step(fam.players, txs, dtype=dt))(st0, {"x": x})
        out[dt] = m
        assert all(v.dtype == jnp.float32 for v in m.values() if jnp.issubdtype(v.dtype, jnp.floating))
        assert all(a.dtype == b.dtype for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(st0)))
    for k, v in out["float32"].items():
        if k.endswith("loss") and k in out["bfloat16"]:
            assert np.isfinite(out["bfloat16"][k])
            np.testing.assert_allclose(out["bfloat16"][k], v, rtol=0.05, atol=0.05, err_msg=k)
    assert any(out["bfloat16"][k] != v for k, v in out["float32"].items() if k.endswith("loss"))  # it did use bf16


def test_fixed_hyperparameters_are_constants_with_the_states_values():
    """make_step(fixed=...) reads those hyperparameters as constants: the same update as reading
    them from state.hparams, and a value written into the state afterwards is not seen (what
    build_program relies on for every hyperparameter a sweep does not vary)."""
    gd, _ = nnx.split(Scalar(0.0))

    def loss(params, batch, key, ctx):
        w = nnx.merge(gd, params["m"]).w[...]
        pen = jax.lax.cond(ctx.hp["r"] > 0, lambda: w**2, lambda: jnp.zeros(()))  # a weight-gated branch
        return ctx.hp["c"] * jnp.mean((w - batch["x"]) ** 2) + ctx.hp["r"] * pen, {}

    init = lambda key, example=None: {"m": nnx.split(Scalar(1.0))[1]}  # noqa: E731
    pl = (Player("m", loss),)
    txs = {"m": optax.sgd(0.1)}
    batch = {"x": jnp.full((4,), 1.5)}

    def w_after(hp_state, fixed=None):
        state = init_state(init(None), txs, jax.random.key(0), hp_state)
        new, _ = jax.jit(make_step(pl, txs, fixed=fixed))(state, batch)
        return float(new.params["m"]["w"][...])

    def want(c, r):  # one SGD step from w = 1: w - 0.1 d/dw [c (w - 1.5)^2 + r w^2] = 1 + 0.1 c - 0.2 r
        return 1.0 + 0.1 * c - 0.2 * r

    assert w_after({"c": 2.0, "r": 0.5}) == pytest.approx(want(2.0, 0.5), rel=1e-6)
    assert w_after({"c": 2.0, "r": 0.5}, fixed={"c": 2.0, "r": 0.5}) == pytest.approx(want(2.0, 0.5), rel=1e-6)
    # fixed values win over the state's; the others still come from the state
    assert w_after({"c": 7.0, "r": 3.0}, fixed={"c": 2.0, "r": 0.5}) == pytest.approx(want(2.0, 0.5), rel=1e-6)
    assert w_after({"c": 2.0, "r": 3.0}, fixed={"c": 2.0}) == pytest.approx(want(2.0, 3.0), rel=1e-6)
    assert w_after({"c": 3.0, "r": 0.4}, fixed={"r": 0.0}) == pytest.approx(want(3.0, 0.0), rel=1e-6)
