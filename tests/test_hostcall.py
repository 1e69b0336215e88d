"""Host functions called by name (``genjax.hostcall``): the same values as ``jax.pure_callback``,
one call for all vmapped members, errors raised by the program, and programs that call one are
exported and kept by the persistent compilation cache (which refuses a ``pure_callback``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src import monitoring

from genjax import hostcall
from genjax.run.bench import persistent_cache

CALLS: list = []


def _affine(x, y):
    CALLS.append((x.shape, y.shape))
    return 2.0 * x + y, np.sum(x, -1).astype(np.int32)


hostcall.register("test_affine", _affine)
hostcall.register("test_raises", lambda x: 1 / 0)
hostcall.register("test_wrong_shape", lambda x: np.zeros(x.shape[-1] + 1, x.dtype))


def affine(x, y):
    out = (jax.ShapeDtypeStruct(x.shape, x.dtype), jax.ShapeDtypeStruct(x.shape[:-1], jnp.int32))
    return hostcall.call("test_affine", out, x, y)


def test_a_host_function_gives_its_values_with_one_call_for_all_vmapped_members():
    x = jnp.arange(24.0, dtype=jnp.float32).reshape(2, 3, 4)
    y = jnp.full((4,), 0.5, jnp.float32)
    CALLS.clear()
    a, s = jax.jit(affine)(x[0, 0], y)
    np.testing.assert_array_equal(a, 2.0 * np.arange(4.0) + 0.5)
    assert int(s) == 6 and s.dtype == jnp.int32
    a, s = jax.jit(jax.vmap(jax.vmap(affine, (0, None)), (0, None)))(x, y)
    np.testing.assert_array_equal(a, 2.0 * np.asarray(x) + 0.5)
    np.testing.assert_array_equal(s, np.asarray(x).sum(-1))
    # one call each: the vmapped members arrive together, every argument with their axes in front
    assert CALLS == [((4,), (4,)), ((2, 3, 4), (2, 3, 4))]
    # what the same function gives through jax.pure_callback
    cb = jax.pure_callback(_affine, (jax.ShapeDtypeStruct((4,), jnp.float32), jax.ShapeDtypeStruct((), jnp.int32)),
                           x[1, 2], y)  # fmt: skip
    np.testing.assert_array_equal(jax.jit(affine)(x[1, 2], y)[0], cb[0])


def test_an_error_of_the_host_function_is_raised_by_the_program():
    f = jax.jit(lambda x: hostcall.call("test_raises", jax.ShapeDtypeStruct(x.shape, x.dtype), x))
    with pytest.raises(Exception, match=r"test_raises: ZeroDivisionError: division by zero"):
        jax.block_until_ready(f(jnp.ones(3)))
    g = jax.jit(lambda x: hostcall.call("test_wrong_shape", jax.ShapeDtypeStruct(x.shape, x.dtype), x))
    wrong = r"test_wrong_shape: ValueError: result 0 has shape \(4,\), the program expects \(3,\)"
    with pytest.raises(Exception, match=wrong):
        jax.block_until_ready(g(jnp.ones(3)))
    np.testing.assert_array_equal(jax.jit(affine)(jnp.ones(2), jnp.zeros(2))[0], [2.0, 2.0])  # and the process goes on


def test_names_are_checked():
    hostcall.register("test_affine", _affine)  # the same function again: nothing happens
    with pytest.raises(ValueError, match="already registered"):
        hostcall.register("test_affine", lambda x, y: (x, y))
    with pytest.raises(KeyError, match="no host function is registered as 'nowhere'"):
        hostcall.call("nowhere", jax.ShapeDtypeStruct((1,), jnp.float32), jnp.ones(1))


def test_a_program_calling_one_is_exported_and_kept_by_the_compilation_cache(tmp_path):
    from jax import export

    x, y = jnp.arange(3.0, dtype=jnp.float32), jnp.ones(3, jnp.float32)
    exported = export.export(jax.jit(affine), disabled_checks=hostcall.targets_allowed())(x, y)
    back = export.deserialize(exported.serialize())
    np.testing.assert_array_equal(back.call(x, y)[0], [1.0, 3.0, 5.0])

    def cb(x):
        return jax.pure_callback(lambda a: np.asarray(a) * 3, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    hits, counts = [], []
    listener = lambda event, **kw: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None
    jax.monitoring.register_event_listener(listener)
    try:
        with persistent_cache(str(tmp_path / "xla")):
            for fn in (lambda a: affine(a, a)[0] * 7.0, lambda a: cb(a) * 7.0):
                f = jax.jit(fn)
                want = np.asarray(f(x))
                jax.clear_caches()  # as a new process: the executable must come from the folder
                n = len(hits)
                np.testing.assert_array_equal(f(x), want)
                counts.append(len(hits) - n)
    finally:
        monitoring.unregister_event_listener(listener)
    assert counts == [1, 0]  # the named host function's program was read back; pure_callback's never is
