"""End-to-end training on digits: learning, resume, checkpoints."""

import re

import jax
import numpy as np
import pytest

from genjax.data import load_splits
from genjax.eval import heldout_metrics
from genjax.models import DataInfo, build_family
from genjax.train import Checkpointer, CheckpointError, build_program, fit, split_data


def _setup(cfg):
    splits = load_splits(cfg.data, cfg.train.batch_size)
    return splits, build_family(cfg, DataInfo.of(splits))


def _nll(fam, params, splits):
    return heldout_metrics(fam, params, splits.test["x"], jax.random.key(7), batch_size=100, num_dims=splits.num_dims)[
        "nll"
    ]


def test_short_digits_run_lowers_heldout_nll(smoke_cfg):
    cfg = smoke_cfg
    cfg.model.vae.hidden = (128,)
    cfg.model.vae.latent_dim = 8
    cfg.train.epochs = 40
    splits, fam = _setup(cfg)
    untrained = _nll(fam, build_program(cfg, fam, splits).init().params, splits)
    res = fit(cfg, fam, splits, progress=False)
    trained = _nll(fam, res.params, splits)
    # 64 binary pixels: an untrained decoder sits near 64 ln 2 = 44 nats
    assert untrained > 40.0
    assert trained < untrained - 12.0, (untrained, trained)
    assert res.history[-1]["val_nll"] < res.history[0]["val_nll"]
    assert len(res.history) == 40 and res.compile_seconds > 0


def test_resume_equals_uninterrupted_run(smoke_cfg, tmp_path):
    cfg = smoke_cfg
    cfg.train.epochs = 5
    cfg.train.checkpoint_every = 2
    splits, fam = _setup(cfg)
    full = fit(cfg, fam, splits, tmp_path / "full", progress=False)
    part = fit(cfg, fam, splits, tmp_path / "part", progress=False, stop_after=3)
    assert int(part.state.epoch) == 3
    resumed = fit(cfg, fam, splits, tmp_path / "part", progress=False, resume=True)
    assert int(resumed.state.epoch) == 5
    for a, b in zip(jax.tree.leaves(full.state.params), jax.tree.leaves(resumed.state.params)):
        np.testing.assert_array_equal(a, b)  # bit for bit on CPU
    np.testing.assert_array_equal(full.state.es.best, resumed.state.es.best)
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert [r["val_nll"] for r in full.history] == pytest.approx(
        [__import__("json").loads(x)["val_nll"] for x in lines], rel=0, abs=0
    )


def test_checkpoint_roundtrip_and_mismatch(smoke_cfg, tmp_path):
    splits, fam = _setup(smoke_cfg)
    state = build_program(smoke_cfg, fam, splits).init()
    ck = Checkpointer(tmp_path / "ck")
    ck.save(0, state)
    ck.wait()
    back = ck.restore(state)
    assert jax.random.key_data(back.rng).tolist() == jax.random.key_data(state.rng).tolist()
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(back.params)):
        np.testing.assert_array_equal(a, b)
    smoke_cfg.model.vae.hidden = (16,)
    other = build_program(smoke_cfg, build_family(smoke_cfg, DataInfo.of(splits)), splits).init()
    with pytest.raises(CheckpointError, match="does not match") as e:
        ck.restore(other)
    # the first leaf that differs, named with its shape on both sides
    assert "the config, or the genjax version that wrote it, differs" in str(e.value)
    want = r"leaf 0 is \.params\['model'\]\['decoder'\]\S+ \(32,\) there and \S+ \(16,\) here"
    assert re.search(want, str(e.value)), str(e.value)
    ck.close()


def _mixed_state():
    """Leaves of every kind a state holds: small float32 / bfloat16 / int / bool arrays (packed),
    one over PACK_BYTES (saved alone), a scalar and a typed PRNG key, each with distinct values."""
    r = np.random.default_rng(0)
    return {
        "w": [jax.numpy.asarray(r.normal(size=s), jax.numpy.float32) for s in ((3, 4), (5,), (2, 2, 2))],
        "big": jax.numpy.asarray(r.normal(size=(300_000,)), jax.numpy.float32),  # 1.2 MB
        "half": jax.numpy.asarray(r.normal(size=(7, 3)), jax.numpy.bfloat16),
        "step": jax.numpy.asarray(12345, jax.numpy.int32),
        "seen": jax.numpy.asarray(r.random(9) < 0.5),
        "rng": jax.random.key(42),
        "w2": jax.numpy.asarray(r.normal(size=(6,)), jax.numpy.float32),
    }


def _same(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_small_leaves_are_packed_per_dtype_and_restore_exactly(tmp_path):
    """Orbax pays ~1.3 ms per array written: leaves up to PACK_BYTES go into one array per dtype;
    every leaf (each with distinct values, so a wrong offset or shape fails) comes back bit for
    bit, in its dtype, placed as the template's."""
    from genjax.train.checkpoint import _flat, _packing

    state = _mixed_state()
    where, length = _packing(_flat(state)[0])
    assert sorted(length) == ["pack_bfloat16", "pack_bool", "pack_float32", "pack_int32", "pack_uint32"]
    assert length["pack_float32"][0] == 12 + 5 + 8 + 6  # the three small w, then w2; "big" saved alone
    assert len(where) == len(jax.tree.leaves(state)) - 1
    ck = Checkpointer(tmp_path / "ck")
    ck.save(3, state)
    ck.wait()
    saved = sorted(ck.manager.item_metadata(3).keys())  # the arrays orbax wrote
    back = ck.restore(jax.tree.map(jax.numpy.zeros_like, state) | {"rng": jax.random.key(0)})
    ck.close()
    _same(state, back)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(back))
    assert saved == ["leaf_00000", *sorted(length)]  # "big" (the first leaf) alone, then the packs


def test_a_checkpoint_saved_one_array_per_leaf_still_restores(tmp_path):
    """Checkpoints written before packing (one array per leaf: ``leaf_00000`` ...), also in a folder
    whose newer checkpoints are packed (a run resumed after the change)."""
    import json

    import orbax.checkpoint as ocp

    from genjax.train.checkpoint import _flat

    state = _mixed_state()
    arrays, spec, _, _ = _flat(state)
    with ocp.CheckpointManager(tmp_path / "ck", options=ocp.CheckpointManagerOptions(create=True)) as m:
        m.save(2, args=ocp.args.StandardSave(arrays))
        m.wait_until_finished()
    (tmp_path / "ck" / "structure.json").write_text(json.dumps(spec))
    ck = Checkpointer(tmp_path / "ck")
    _same(state, ck.restore(state))
    ck.save(3, jax.tree.map(lambda x: x, state))
    ck.wait()
    _same(state, ck.restore(state, 2))
    _same(state, ck.restore(state, 3))
    ck.close()


def test_vmapped_epoch_equals_separate_runs(smoke_cfg):
    """The epoch is one pure function of the state: vmap over two seeds gives each seed's run."""
    splits, fam = _setup(smoke_cfg)
    prog = build_program(smoke_cfg, fam, splits)
    data = split_data(smoke_cfg, splits)
    seeds = []
    for s in (0, 1):
        smoke_cfg.seed = s
        seeds.append(build_program(smoke_cfg, fam, splits).init())
    stacked = jax.tree.map(lambda *a: jax.numpy.stack(a), *seeds)
    vepoch = jax.jit(jax.vmap(prog.epoch, in_axes=(0, None)))
    epoch = jax.jit(prog.epoch)
    for _ in range(2):
        stacked, vm = vepoch(stacked, data)
    for i, st in enumerate(seeds):
        for _ in range(2):
            st, m = epoch(st, data)
        np.testing.assert_allclose(vm["val_nll"][i], m["val_nll"], rtol=1e-4)
        for a, b in zip(jax.tree.leaves(st.params), jax.tree.leaves(stacked.params)):
            np.testing.assert_allclose(a, b[i], rtol=1e-4, atol=1e-5)


def test_unrolled_epoch_equals_the_scanned_one(smoke_cfg):
    """``train.unroll`` only changes how XLA sees the loop over steps, not what is computed."""
    smoke_cfg.train.epochs = 2
    smoke_cfg.data.train_size = 320  # 5 steps per epoch: the fully unrolled epoch compiles in seconds
    splits, fam = _setup(smoke_cfg)
    scanned = fit(smoke_cfg, fam, splits, progress=False)
    smoke_cfg.train.unroll = 0
    unrolled = fit(smoke_cfg, fam, splits, progress=False)
    smoke_cfg.train.unroll, smoke_cfg.train.loop = 1, "host"  # one compiled step dispatched per step
    hosted = fit(smoke_cfg, fam, splits, progress=False)
    for other in (unrolled, hosted):
        for a, b in zip(jax.tree.leaves(scanned.params), jax.tree.leaves(other.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
        assert [h["loss"] for h in scanned.history] == pytest.approx([h["loss"] for h in other.history], rel=1e-5)
        assert [h["val_nll"] for h in scanned.history] == pytest.approx([h["val_nll"] for h in other.history], rel=1e-5)


def test_host_loop_members_equal_the_scanned_members(smoke_cfg):
    """Folds vmapped as members run the same in a host loop of steps as in one scan."""
    from genjax.train.cv import cross_validate

    smoke_cfg.train.epochs, smoke_cfg.cv.folds, smoke_cfg.data.train_size = 2, 2, 512
    splits, fam = _setup(smoke_cfg)
    scanned = cross_validate(smoke_cfg, fam, splits, progress=False)
    smoke_cfg.train.loop = "host"
    hosted = cross_validate(smoke_cfg, fam, splits, progress=False)
    np.testing.assert_allclose(hosted.heldout_nll, scanned.heldout_nll, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(scanned.state.params), jax.tree.leaves(hosted.state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_the_epoch_compiles_with_the_garbage_collector_paused_and_restored(monkeypatch):
    import gc

    from genjax.train import driver

    seen = []
    monkeypatch.setattr(driver, "_compile_epoch", lambda *a: seen.append(gc.isenabled()) or "compiled")
    assert gc.isenabled()
    assert driver.compile_epoch(None, None, {}) == "compiled"
    assert seen == [False] and gc.isenabled()
    with pytest.raises(KeyError), driver.gc_paused():  # restored when the block raises
        assert not gc.isenabled()
        raise KeyError("x")
    assert gc.isenabled()
    gc.disable()  # a caller that paused it itself gets it back paused
    try:
        with driver.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_compiled_init_equals_the_op_by_op_one(smoke_cfg):
    """``Program.init`` runs as one compiled program; its state is what running the initializers
    op by op gives: the same integers and keys, floats to float32 rounding; another root key gives
    other parameters."""
    cfg = smoke_cfg
    splits, fam = _setup(cfg)
    prog = build_program(cfg, fam, splits)
    state = prog.init()
    with jax.disable_jit():
        ref = prog.init()
    leaves, tree = jax.tree.flatten(state)
    ref_leaves, ref_tree = jax.tree.flatten(ref)
    assert tree == ref_tree and len(leaves) > 10
    for a, b in zip(leaves, ref_leaves):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        if np.issubdtype(a.dtype, np.floating):
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(a, b)
    other = jax.tree.leaves(prog.init(jax.random.key(cfg.seed + 1)).params)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(state.params), other))


def test_the_live_mean_skips_stopped_members_and_nan_values():
    """What TensorBoard and the progress bar show of a stacked run: the mean over the members
    still training, NaN values skipped (np.nanmean of the live values), NaN when none is left."""
    from genjax.train.driver import _live_mean

    v = np.array([1.0, np.nan, 4.0, 100.0])
    was = np.array([False, False, False, True])
    assert _live_mean(v, was) == 2.5 == np.nanmean(np.where(was, np.nan, v))
    assert np.isnan(_live_mean(v, np.ones(4, bool))) and np.isnan(_live_mean(np.array([np.nan]), np.zeros(1, bool)))
    assert _live_mean(np.array([1, 2, 9], np.int32), np.array([False, False, True])) == 1.5


def test_rows_are_written_while_the_next_epoch_runs_and_before_every_checkpoint(smoke_cfg, tmp_path, monkeypatch):
    """The driver writes an epoch's row (metrics.jsonl, TensorBoard, the history) after the next
    epoch is dispatched, so the device does not wait for it; but a checkpoint is only saved once
    its epoch's row is written (a resume keeps the rows up to its checkpoint), and every row is
    written by the end."""
    import json

    import genjax.train.driver as driver

    cfg = smoke_cfg
    cfg.train.epochs, cfg.train.checkpoint_every = 7, 3
    splits, fam = _setup(cfg)
    metrics = tmp_path / "run" / "metrics.jsonl"
    lines = lambda: len(metrics.read_text().splitlines()) if metrics.exists() else 0  # noqa: E731
    at_dispatch, at_save = [], {}
    run_epoch, save = driver._run_epoch, driver.Checkpointer.save

    def spy_run(compiled, state, data, meanwhile):
        at_dispatch.append(lines())
        return run_epoch(compiled, state, data, meanwhile)

    def spy_save(self, epoch, state):
        at_save[epoch] = [json.loads(x)["epoch"] for x in metrics.read_text().splitlines()][-1]
        return save(self, epoch, state)

    monkeypatch.setattr(driver, "_run_epoch", spy_run)
    monkeypatch.setattr(driver.Checkpointer, "save", spy_save)
    res = fit(cfg, fam, splits, tmp_path / "run", progress=False)
    assert at_save == {1: 1, 3: 3, 6: 6, 7: 7}  # each checkpoint after its own epoch's row
    # when epoch k + 1 is dispatched, row k is still to be written unless epoch k was checkpointed
    assert at_dispatch == [0, 1, 1, 3, 3, 4, 6]
    assert [r["epoch"] for r in res.history] == list(range(1, 8)) and lines() == 7
