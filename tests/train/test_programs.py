"""Traced programs kept on disk (``genjax.train.programs``): a run that reads its programs back
trains bit for bit as one that traced them, and as one with the cache off; the key changes with
what the trace depends on; a bad entry is made again; what does not export is traced."""

import copy
import dataclasses
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.run.bench import persistent_cache
from genjax.run.prepare import prepare
from genjax.train import fit, programs
from genjax.train.loop import build_program, program_key


def leaves(tree):
    out = []
    for x in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        out.append(np.asarray(x))
    return out


def assert_leaves_equal(a, b):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def assert_same(a, b):
    assert [sorted(r) for r in a.history] == [sorted(r) for r in b.history]
    for ra, rb in zip(a.history, b.history):
        for k in ra:
            if isinstance(ra[k], float) and k != "time":
                assert ra[k] == rb[k] or (np.isnan(ra[k]) and np.isnan(rb[k])), k
    assert_leaves_equal(a.state, b.state)


@pytest.fixture
def kept(tmp_path, monkeypatch):
    """Programs kept in a folder of this test's own, none read yet in this process."""
    where = tmp_path / "programs"
    monkeypatch.setattr(programs, "folder", lambda: where)
    monkeypatch.setattr(programs, "_MEMO", {})
    monkeypatch.setattr(programs, "_COMPILED", {})
    return where


def as_a_new_process(monkeypatch) -> list:
    """Forget the programs this process read or compiled and refuse to trace any again (the
    folder's must serve); returns the list of the entries then read from the folder."""
    programs.forget()  # what genjax bench's "new process" calls: the programs read and the executables
    monkeypatch.setattr(programs, "_export", lambda *a, **k: pytest.fail("a kept program was traced again"))
    read, reads = programs._read, []
    monkeypatch.setattr(programs, "_read", lambda *a: reads.append(a[0]) or read(*a))
    return reads


@pytest.mark.parametrize("loop", ["scan", "host"])
def test_a_run_that_reads_its_programs_trains_as_one_that_traced_them(smoke_cfg, kept, monkeypatch, loop):
    cfg = copy.deepcopy(smoke_cfg)
    cfg.train.epochs, cfg.train.loop = 2, loop
    splits, family = prepare(cfg)
    made = fit(cfg, family, splits, progress=False)  # traced, exported and kept
    files = sorted(kept.glob("*.jaxexport"))
    # the initial state (read by prepare's check, then by fit), the epoch or its host pieces
    assert len(files) == (2 if loop == "scan" else 4), files

    as_a_new_process(monkeypatch)
    read = fit(cfg, family, splits, progress=False)
    assert sorted(kept.glob("*.jaxexport")) == files
    monkeypatch.setattr(programs, "folder", lambda: None)  # the cache off: jax.jit as before
    plain = fit(cfg, family, splits, progress=False)
    assert_same(made, read)
    assert_same(made, plain)


def test_a_bad_entry_is_made_again(smoke_cfg, kept, monkeypatch):
    cfg = copy.deepcopy(smoke_cfg)
    cfg.train.epochs = 1
    splits, family = prepare(cfg)
    first = fit(cfg, family, splits, progress=False)
    files = sorted(kept.glob("*.jaxexport"))
    files[0].write_bytes(b"")  # truncated
    files[1].write_bytes(files[1].read_bytes()[:100])  # cut short
    monkeypatch.setattr(programs, "_MEMO", {})
    monkeypatch.setattr(programs, "_COMPILED", {})
    again = fit(cfg, family, splits, progress=False)
    assert_same(first, again)
    assert all(f.stat().st_size > 1000 for f in files)  # both written whole again


def test_the_key_changes_with_what_the_trace_depends_on(smoke_cfg):
    cfg = copy.deepcopy(smoke_cfg)
    splits, family = prepare(cfg)
    key = program_key(cfg, family, splits)
    assert key is not None and key == program_key(copy.deepcopy(cfg), family, splits)
    other = copy.deepcopy(cfg)
    other.optim.lr = cfg.optim.lr * 2  # the optimizer's constant
    assert program_key(other, family, splits) not in (None, key)
    assert program_key(cfg, family, splits, frozenset({"optim.lr"}), None, 3, None) != key  # a members axis
    other = copy.deepcopy(cfg)
    other.train.epochs += 1  # the learning-rate schedule's length
    assert program_key(other, family, splits) not in (None, key)
    other = copy.deepcopy(cfg)
    other.name, other.eval.n_samples = "another", 7  # read by no training program
    assert program_key(other, family, splits) == key
    # a family not made from this config's block, or changed by hand, keeps nothing
    other = copy.deepcopy(cfg)
    other.model.vae.latent_dim = 5
    assert program_key(other, family, splits) is None
    assert program_key(cfg, dataclasses.replace(family, name="mine"), splits) is None
    # and the epoch the program builds carries it
    built = build_program(cfg, family, splits).epoch.program_key
    assert built == program_key(cfg, family, splits, frozenset(), None, None, None)


def test_the_environment_names_jax_config(smoke_cfg):
    before = programs.environment()
    with jax.default_matmul_precision("highest"):
        assert programs.environment() != before
    assert programs.environment() == before


def test_what_does_not_export_is_traced_and_marked(kept, monkeypatch):
    def doubled(x):
        return jax.pure_callback(lambda a: np.asarray(a) * 2, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    x = jnp.arange(3.0)
    np.testing.assert_array_equal(programs.lower(doubled, x, key="cb").compile()(x), [0.0, 2.0, 4.0])
    assert len(list(kept.glob("*.jaxexport"))) == 1  # the marker

    def no_export(*a, **k):
        raise AssertionError("tried to export a program marked as not exporting")

    monkeypatch.setattr(programs, "_MEMO", {})

    monkeypatch.setattr(programs, "_COMPILED", {})
    monkeypatch.setattr(programs, "_export", no_export)
    np.testing.assert_array_equal(programs.lower(doubled, x, key="cb").compile()(x), [0.0, 2.0, 4.0])


def test_the_ot_couplings_program_is_kept_and_read_back(kept, monkeypatch):
    """OT-CFM's step calls the host for its assignment by name (``genjax.hostcall``), so it is
    exported and read back like any other program, where a ``pure_callback`` is marked and traced."""
    from genjax.objectives import flow_matching as fm

    x = jax.random.normal(jax.random.key(0), (3, 16, 2))
    z = jax.random.normal(jax.random.key(1), (3, 16, 2))
    pair = jax.vmap(fm.ot_pairing)  # three members, as a k-fold run's
    got = programs.lower(pair, x, z, key="ot").compile()(x, z)
    (entry,) = kept.glob("*.jaxexport")
    assert b"genjax_ot_assignment" in entry.read_bytes()  # the program itself, not the marker
    reads = as_a_new_process(monkeypatch)
    np.testing.assert_array_equal(programs.lower(pair, x, z, key="ot").compile()(x, z), got)
    assert reads == [entry]
    for i in range(3):
        np.testing.assert_array_equal(got[i], fm._assignment(np.sum((x[i][:, None] - z[i][None]) ** 2, -1)))


def test_an_error_of_the_program_is_raised_and_leaves_nothing(kept):
    def bad(x):
        return x @ jnp.ones((4,))

    with pytest.raises(TypeError):
        programs.lower(bad, jnp.ones(3), key="bad")
    with pytest.raises(TypeError):
        programs.shapes(bad, jnp.ones(3), key="bad")
    assert not list(kept.glob("*.jaxexport"))


def test_kept_program_donates_and_gives_the_same_pytrees(kept):
    def f(state, x):
        return {"w": state["w"] + x, "n": state["n"] + 1}, {"sum": jnp.sum(x)}

    state = {"w": jnp.zeros(4), "n": jnp.int32(0)}
    x = jnp.arange(4.0)
    assert programs.shapes(f, state, x, key="f") == jax.eval_shape(f, state, x)
    compiled = programs.lower(f, state, x, key="f", donate_argnums=0).compile()
    new, m = compiled(state, x)
    assert state["w"].is_deleted()  # donated: updated in place
    np.testing.assert_array_equal(new["w"], np.arange(4.0))
    assert int(new["n"]) == 1 and float(m["sum"]) == 6.0


def test_a_folder_that_cannot_be_written_stops_nothing(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the programs' folder would be")
    monkeypatch.setattr(programs, "folder", lambda: blocker / "programs")
    monkeypatch.setattr(programs, "_MEMO", {})
    monkeypatch.setattr(programs, "_COMPILED", {})
    x = jnp.arange(3.0)
    np.testing.assert_array_equal(programs.lower(lambda a: a * 3, x, key="ro").compile()(x), [0.0, 3.0, 6.0])

    def doubled(a):
        return jax.pure_callback(lambda v: np.asarray(v) * 2, jax.ShapeDtypeStruct(a.shape, a.dtype), a)

    np.testing.assert_array_equal(programs.lower(doubled, x, key="ro-cb").compile()(x), [0.0, 2.0, 4.0])


def test_the_sample_grids_program_is_kept_too(smoke_cfg, kept, monkeypatch, tmp_path):
    cfg = copy.deepcopy(smoke_cfg)
    cfg.train.epochs, cfg.train.tb_images_every = 1, 1
    splits, family = prepare(cfg)
    fit(cfg, family, splits, tmp_path / "made", progress=False)
    files = sorted(kept.glob("*.jaxexport"))
    assert len(files) == 3  # the initial state, the epoch, TensorBoard's sample grid

    as_a_new_process(monkeypatch)
    fit(cfg, family, splits, tmp_path / "read", progress=False)
    assert sorted(kept.glob("*.jaxexport")) == files


def test_the_heldout_figures_programs_are_kept_and_read_back(smoke_cfg, kept, monkeypatch):
    """``genjax eval`` reads the NLL's and the bound's programs that an earlier evaluation kept,
    and reports the same figures as a traced one (a family without an origin is traced)."""
    from genjax.eval import metrics

    splits, family = prepare(copy.deepcopy(smoke_cfg))
    params = family.init(jax.random.key(0))
    x = splits.test["x"][:40]

    def figures(fam):
        m = metrics.heldout_metrics(fam, params, x, jax.random.key(1), batch_size=20, num_dims=64)
        return m["nll"], m[m["bound_name"]]

    before = set(kept.glob("*.jaxexport"))  # prepare's check keeps the initial state's
    made = figures(family)
    files = sorted(kept.glob("*.jaxexport"))
    assert len(set(files) - before) == 2  # the mean of log_prob, the mean of the bound

    reads = as_a_new_process(monkeypatch)
    assert figures(family) == made
    assert len(reads) == 2  # both read from the folder, none from this process's memory
    assert sorted(kept.glob("*.jaxexport")) == files
    traced = figures(dataclasses.replace(family))  # no origin: jax.jit as before
    assert traced == pytest.approx(made, rel=1e-6)


def test_the_sample_metrics_sampler_is_kept_and_read_back(smoke_cfg, kept, monkeypatch):
    """``genjax eval``'s sample-based metrics read the sampler an earlier evaluation kept (one
    program per batch size: the full batches and the rest) and draw the same samples as a traced
    one; a family without an origin is traced."""
    from genjax.eval import suite

    splits, family = prepare(copy.deepcopy(smoke_cfg))
    params = family.init(jax.random.key(0))
    before = set(kept.glob("*.jaxexport"))
    made = suite.draw(family, params, jax.random.key(3), 25, batch=10)  # batches of 10, 10 and 5
    assert made.shape == (25, *splits.shape)
    files = sorted(kept.glob("*.jaxexport"))
    assert len(set(files) - before) == 2

    reads = as_a_new_process(monkeypatch)
    np.testing.assert_array_equal(suite.draw(family, params, jax.random.key(3), 25, batch=10), made)
    assert len(reads) == 2 and sorted(kept.glob("*.jaxexport")) == files
    # the batches are drawn with their own keys: the first 10 of 25 are the draw of 10
    np.testing.assert_array_equal(suite.draw(family, params, jax.random.key(3), 10, batch=10), made[:10])
    traced = suite.draw(dataclasses.replace(family), params, jax.random.key(3), 25, batch=10)  # no origin
    np.testing.assert_allclose(traced, made, rtol=1e-6, atol=1e-6)


def test_a_process_that_reads_every_program_never_builds_the_network(tmp_path, kept, monkeypatch):
    """The U-Net's graphdef is built at its first use: a second ``genjax train`` of a diffusion
    config (init, epoch, TensorBoard grid, held-out NLL and bound, the figures' sampler), its
    programs all kept by the first, never constructs the network; the first did; nor does a
    ``genjax eval`` of the first run."""
    from genjax.cli import main
    from genjax.nn.score import UNet

    built = []
    init = UNet.__init__

    def counted(self, *a, **k):
        built.append(1)
        init(self, *a, **k)

    monkeypatch.setattr(UNet, "__init__", counted)
    # a one-level U-Net without attention: the same programs, compiled cold in 21 s instead of 36
    args = ["--config=experiments/ddpm_digits/config.py:smoke", "--noprogress", "--config.eval.sample_metrics=False",
            "--config.model.diffusion.channels=(8,)", "--config.model.diffusion.attention=False"]
    assert main(["genjax", "train", *args, f"--workdir={tmp_path / 'a'}"]) == 0
    assert built  # traced: the init, the epoch, the samplers, the held-out figures
    as_a_new_process(monkeypatch)
    built.clear()
    assert main(["genjax", "train", *args, f"--workdir={tmp_path / 'b'}"]) == 0
    assert not built
    # genjax eval restores the parameters onto the run's mesh, as training left them, so it reads
    # the held-out figures' and the sampler's programs training kept, and builds no network either
    assert main(["genjax", "eval", str(tmp_path / "a"), "--noprogress"]) == 0
    assert not built


def _update(state, x, c=1.5):
    """A small donated-state program for the executable tests."""
    return {"w": jnp.tanh(state["w"] * c + x), "n": state["n"] + 1}, {"sum": jnp.sum(x ** 2)}


def _fresh_state():
    return {"w": jnp.linspace(-1.0, 1.0, 5), "n": jnp.int32(0)}


@pytest.fixture
def xla_cache(tmp_path):
    """JAX's persistent compilation cache in a folder of this test's own (restored after)."""
    with persistent_cache(str(tmp_path / "xla")):
        yield tmp_path / "xla"


def test_a_kept_executable_is_loaded_without_lowering_and_only_a_fresh_one_is_kept(kept, xla_cache, monkeypatch):
    """A kept program's executable is kept beside it after a fresh compile; a new process loads it
    and lowers nothing (the same numbers, the state still donated); a truncated one is compiled
    again, and that compile, answered by XLA's persistent cache, is not kept (it would load
    without its kernels); with that cache emptied, the fresh compile is kept again."""
    f, fresh, x = _update, _fresh_state, jnp.arange(5.0) / 3
    want = programs.lower(f, fresh(), x, key="exe", donate_argnums=0).compile()(fresh(), x)
    (exe,) = kept.glob("*.xlaexec")
    as_a_new_process(monkeypatch)
    lower = programs.Kept.lower
    monkeypatch.setattr(programs.Kept, "lower", lambda self: pytest.fail("a kept executable was lowered again"))
    state = fresh()
    got = programs.lower(f, state, x, key="exe", donate_argnums=0).compile()(state, x)
    assert state["w"].is_deleted()  # still donated
    assert_leaves_equal(want, got)

    monkeypatch.setattr(programs.Kept, "lower", lower)
    size = exe.stat().st_size
    exe.write_bytes(exe.read_bytes()[:100])  # truncated: compiled again (XLA's cache answers)...
    programs.forget()
    got = programs.lower(f, fresh(), x, key="exe", donate_argnums=0).compile()(fresh(), x)
    assert_leaves_equal(want, got)
    assert exe.stat().st_size == 100  # ... and that executable is not kept
    exe.unlink()
    shutil.rmtree(xla_cache)  # XLA's cache misses: a fresh compile, kept
    xla_cache.mkdir()
    jax.clear_caches()
    programs.forget()
    got = programs.lower(f, fresh(), x, key="exe", donate_argnums=0).compile()(fresh(), x)
    assert_leaves_equal(want, got)
    assert len(list(kept.glob("*.xlaexec"))) == 1 and next(kept.glob("*.xlaexec")).stat().st_size > size // 2


def test_a_program_compiled_under_another_key_keeps_that_fresh_executable(kept, xla_cache, monkeypatch):
    """Two keys, one lowered program (a config change that leaves a program as it was, e.g. the
    init under another ``train.epochs``): the second key's compile is answered by XLA's cache,
    whose executable does not serialize whole, so the fresh executable kept for the first key is
    kept for the second too (found by the lowered program's fingerprint); a new process loads it
    without lowering, with the same numbers. A program that differs (another constant) is not."""
    f, fresh, x = _update, _fresh_state, jnp.arange(5.0) / 3
    want = programs.lower(f, fresh(), x, key="a", donate_argnums=0).compile()(fresh(), x)
    for key, g in (("c", lambda s, x: f(s, x, 2.5)), ("b", f)):  # c's fresh compile comes between a's and b's
        jax.clear_caches()  # JAX's in-memory caches: the compile asks the persistent one
        programs.forget()
        programs.lower(g, fresh(), x, key=key, donate_argnums=0).compile()(fresh(), x)
    assert len(list(kept.glob("*.xlaexec"))) == 3 and len(list(kept.glob("*.xlaprog"))) == 2  # a's (= b's), c's
    as_a_new_process(monkeypatch)
    monkeypatch.setattr(programs.Kept, "lower", lambda self: pytest.fail("a kept executable was lowered again"))
    state = fresh()
    got = programs.lower(f, state, x, key="b", donate_argnums=0).compile()(state, x)
    assert state["w"].is_deleted()  # still donated
    assert_leaves_equal(want, got)
