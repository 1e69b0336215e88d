"""genjax's random streams: the Threefry hash JAX draws every random number with, lowered on CPU
by genjax (``genjax.keys.threefry_on_cpu``: straight-line for large hashes, a loop over the
flattened counters for small ones), gives the bits of the algorithm on every path."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry2x32_p

import genjax  # noqa: F401  (its import installs the CPU lowering)
from genjax import keys
from genjax.keys import threefry2x32 as threefry2x32_numpy  # genjax's numpy Threefry, checked below
from genjax.keys import threefry_on_cpu


def hash_jit(k0, k1, x0, x1):
    return jax.jit(lambda *a: threefry2x32_p.bind(*a))(*(jnp.asarray(a, jnp.uint32) for a in (k0, k1, x0, x1)))


def test_the_cpu_lowering_gives_the_published_threefry_bits():
    # Random123's known answers for Threefry-2x32-20 (kat_vectors), then random inputs of several shapes
    kat = [((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
           ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
           ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]  # fmt: skip
    for (k0, k1), (x0, x1), want in kat:
        assert tuple(int(v) for v in threefry2x32_numpy(k0, k1, x0, x1)) == want
        assert tuple(int(v) for v in hash_jit(k0, k1, x0, x1)) == want
    rng = np.random.default_rng(0)
    # small (the loop; rank 1 and flattened rank 3) and large (straight-line; rank 1 and rank 4)
    for shape in [(7,), (2, 3, 5), (100, 5), (3000,), (3, 3, 8, 16)]:
        k0, k1 = (np.uint32(v) for v in rng.integers(0, 2**32, 2))
        x0, x1 = (rng.integers(0, 2**32, shape).astype(np.uint32) for _ in range(2))
        got, want = hash_jit(k0, k1, x0, x1), threefry2x32_numpy(k0, k1, x0, x1)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(np.asarray(g), w)


def test_a_keys_draws_are_the_hash_of_their_index():
    assert threefry_on_cpu()
    # a key's draws are the hash of their flat index (JAX's partitionable Threefry: bits = y0 ^ y1 of the
    # hash of (index >> 32, index & 0xffffffff)), eagerly and jitted
    k = jax.random.key(5)
    k0, k1 = np.asarray(jax.random.key_data(k))
    for shape in [(4, 6), (4, 16, 32)]:  # below and above the straight-line threshold
        n = int(np.prod(shape))
        y0, y1 = threefry2x32_numpy(k0, k1, np.zeros(n, np.uint32), np.arange(n, dtype=np.uint32))
        want = (y0 ^ y1).reshape(shape)
        np.testing.assert_array_equal(np.asarray(jax.random.bits(k, shape)), want)
        np.testing.assert_array_equal(np.asarray(jax.jit(lambda k: jax.random.bits(k, shape))(k)), want)


def test_keys_made_on_the_host_are_jaxs_keys():
    """``keys.key`` and ``keys.root`` hash on the host (no XLA program in a new process): the same
    bits as JAX's ``fold_in`` chain from ``jax.random.key(seed)``, at the edges of the seeds JAX
    maps to ``(0, seed mod 2^32)`` and of the uint32 indices; JAX's own path outside them and under
    another default PRNG."""
    seeds = [0, 1, 42, 2**31 - 1, 2**31, 2**32 - 1, -1, -5, -(2**31), np.int64(7), np.uint32(9)]
    for s in seeds:
        assert np.array_equal(jax.random.key_data(keys.root(s)), jax.random.key_data(jax.random.key(int(s)))), s
        for purpose, idx in [("init", ()), ("tb_samples", ()), ("fold", (3,)), ("fold", (2**32 - 1, np.int32(7)))]:
            want = keys.stream(jax.random.key(int(s)), purpose, *idx)
            got = keys.key(s, purpose, *idx)
            assert jax.random.key_impl(got) == jax.random.key_impl(want)
            assert np.array_equal(jax.random.key_data(got), jax.random.key_data(want)), (s, purpose, idx)
    assert keys._host_key_data(0, (3,)) is not None  # the cases above took the host path
    for s, idx in [(2**32, ()), (-(2**31) - 1, ()), (0, (-1,)), (0, (2**32,)), (0, (jnp.int32(3),)), (1.5, ())]:
        assert keys._host_key_data(s, idx) is None, (s, idx)
    # beyond the host path JAX answers, as before
    assert np.array_equal(jax.random.key_data(keys.key(2**32, "eval")),
                          jax.random.key_data(keys.stream(jax.random.key(2**32), "eval")))  # fmt: skip
    assert np.array_equal(jax.random.key_data(keys.key(0, "fold", jnp.int32(3))),
                          jax.random.key_data(keys.stream(jax.random.key(0), "fold", 3)))  # fmt: skip
    old = jax.config.jax_default_prng_impl
    try:
        jax.config.update("jax_default_prng_impl", "rbg")
        assert keys._host_key_data(0, ()) is None
        assert jax.random.key_data(keys.root(3)).shape == jax.random.key_data(jax.random.key(3)).shape == (4,)
        assert np.array_equal(jax.random.key_data(keys.key(3, "eval")),
                              jax.random.key_data(keys.stream(jax.random.key(3), "eval")))  # fmt: skip
    finally:
        jax.config.update("jax_default_prng_impl", old)
