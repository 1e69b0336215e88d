"""Every random stream of genjax, named in one place.

JAX keys: a run's root key is ``jax.random.key(seed)``; each purpose is ``fold_in(root, id)``
with the id below, and indices (a step, an epoch, a fold, a player) are folded in after it:

    key(seed, "init")                 model initialization        (fit, seeds)
    key(seed, "train")                the training state's rng: its step/data/val streams
    key(seed, "fold", f)              fold f's root (cross-validation)
    key(seed, "eval")                 held-out NLL estimates
    key(seed, "figures")              sample grids and interpolations
    key(seed, "sample_metrics")       samples scored by FID/KID/IS, precision/recall, ...
    key(seed, "tb_samples")           TensorBoard sample grids
    key(seed, "easy_first")           a previous run's NLL estimates ranking the training examples
    key(seed, "pairs")                the noise a teacher run decodes into data.name='pairs:<run>'
    key(seed, "two_stage")            a two-stage bound's posterior draws (genjax eval of a latents:<run> model)
    key(seed, "latents")              data.latents='sample': the draws z ~ q(z | x) a latents:<run> source holds
    stream(rng, "step", t)            the training step t (inside the state)
    stream(rng, "data", e)            epoch e's shuffle and data transform
    stream(rng, "val", e)             epoch e's validation estimate
    update_key(step_key, player, j)   player i's j-th update within a step

Integer seeds for numpy (fixed data draws of ``genjax.data``): ``data_seed(seed, purpose)``.
Imports nothing of genjax, so every layer may use it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

_IDS = {
    "step": 0,
    "data": 1,
    "val": 2,
    "init": 3,
    "train": 4,
    "fold": 5,
    "eval": 6,
    "figures": 7,
    "sample_metrics": 8,
    "member": 9,
    "tb_samples": 10,
    "easy_first": 11,
    "pairs": 12,
    "two_stage": 13,
    "latents": 14,
}

# numpy seeds of the fixed draws of binarized / dequantized evaluation data: seed + offset
_DATA = {"val": 1, "test": 2, "train_static": 3, "eval_view": 4}


def stream(key: jax.Array, purpose: str, *index) -> jax.Array:
    """``fold_in(key, id(purpose))``, then each index folded in."""
    k = jax.random.fold_in(key, _IDS[purpose])
    for i in index:
        k = jax.random.fold_in(k, i)
    return k


def key(seed: int, purpose: str, *index) -> jax.Array:
    """The stream ``purpose`` of the root key ``jax.random.key(seed)``: the same key as
    ``stream(jax.random.key(seed), purpose, *index)``, hashed on the host (``root``)."""
    data = _host_key_data(seed, (_IDS[purpose], *index))
    return stream(jax.random.key(int(seed)), purpose, *index) if data is None else jax.random.wrap_key_data(data)


def root(seed: int) -> jax.Array:
    """``jax.random.key(seed)``, made on the host.

    Why: an eager ``jax.random.key`` or ``fold_in`` is a small XLA program, traced, lowered and
    read from the compilation cache in each new process: 17 ms for the key and 35 ms for each
    fold-in on the 2-core CPU, so ``key(seed, purpose)`` took 100-160 ms in a new process (3% of
    a whole 20-epoch ``genjax train`` of the MADE benchmark). Here the Threefry-2x32 hash of a
    fold-in runs in numpy (microseconds) and only its 2 x 32 bits become a key
    (``jax.random.wrap_key_data``, 0.3 ms), bit for bit JAX's (``tests/test_keys.py``). JAX's own
    path where the hash would differ or the input is outside it: another default PRNG
    (``jax_default_prng_impl``), a seed outside [-2^31, 2^32) or an index that is not an integer
    in [0, 2^32)."""
    data = _host_key_data(seed, ())
    return jax.random.key(int(seed)) if data is None else jax.random.wrap_key_data(data)


_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k0, k1, x0, x1) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32 with 20 rounds (Salmon et al., SC'11; Random123, JAX's ``threefry2x32_p``),
    in numpy uint32, elementwise over ``x0, x1``."""
    k0, k1, x0, x1 = (np.asarray(a, np.uint32) for a in (k0, k1, x0, x1))
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    with np.errstate(over="ignore"):
        x0, x1 = x0 + ks[0], x1 + ks[1]
        for block in range(5):
            for r in _ROTATIONS[block % 2]:
                x0 = x0 + x1
                x1 = (x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))
                x1 = x0 ^ x1
            x0 = x0 + ks[(block + 1) % 3]
            x1 = x1 + ks[(block + 2) % 3] + np.uint32(block + 1)
    return x0, x1


def _host_key_data(seed, folds: tuple) -> np.ndarray | None:
    """The data of ``jax.random.key(seed)`` with ``folds`` folded in, hashed in numpy, as JAX's
    Threefry does it: the key of an integer seed is ``(0, seed mod 2^32)``, and ``fold_in(k, d)``
    is the hash under ``k`` of the counter pair ``(0, d)``. None where that is not JAX's answer
    (``root``)."""
    ints = (int, np.integer)
    if str(jax.config.jax_default_prng_impl) != "threefry2x32" or not isinstance(seed, ints):
        return None
    if not -(2**31) <= int(seed) < 2**32 or not all(isinstance(d, ints) and 0 <= int(d) < 2**32 for d in folds):
        return None
    k = (np.uint32(0), np.uint32(int(seed) % 2**32))
    for d in folds:
        k = threefry2x32(k[0], k[1], 0, int(d))
    return np.array(k, np.uint32)


def update_key(step_key: jax.Array, player: int, update: int) -> jax.Array:
    """The key of player ``player``'s ``update``-th update inside one training step."""
    return jax.random.fold_in(jax.random.fold_in(step_key, player), update)


def data_seed(seed: int, purpose: str) -> int:
    """A numpy seed for one fixed draw of the data pipeline (``val``, ``test``, ``train_static``,
    ``eval_view``)."""
    return int(seed) + _DATA[purpose]


def threefry_on_cpu() -> bool:
    """Lower JAX's Threefry-2x32 hash on CPU for compile and run speed: a hash of at least 1,024
    counters (a draw of noise, a dropout mask, initial weights) as straight-line code, JAX's own GPU
    and TPU lowering; a smaller one (deriving keys: ``fold_in``, ``split``) as JAX's CPU default, a
    loop of 5 x 4 rounds, over its counters flattened to one axis. The bits are the same either way
    (integer adds, rotations and xors; ``tests/test_keys.py`` checks them against Random123's known
    answers and a numpy Threefry).

    Why: XLA:CPU compiles JAX's loop slowly for arrays of rank > 1 and runs it slowly for large
    ones; unrolled everywhere, the many small key derivations of a large step swell its program.
    Measured on 2 cores (an empty compilation cache): one [3, 3, 64, 64] truncated-normal draw
    compiles in 1.05 s with JAX's default and 0.2 s unrolled; a [64, 8, 8, 64] normal draw inside a
    scan runs in 1.66 ms instead of 0.96 ms; the DDPM U-Net's initialization (eager, 17 kernels)
    16.7 -> 9.6 s; the WGAN-GP epoch compiles in 10.7 s with JAX's default, 16.6 s unrolled
    everywhere and 10.4-10.9 s with this rule.

    Called when genjax is imported; returns False (nothing changed) if this JAX lacks the pieces."""
    try:
        from jax._src.random import threefry2x32 as tf
        from jax.interpreters import mlir

        hash_ = tf._threefry2x32_lowering  # (k1, k2, x1, x2, use_rolled_loops) -> (y1, y2), broadcasting
    except (ImportError, AttributeError):  # pragma: no cover - a JAX without these internals
        return False

    def lowering(k1, k2, x1, x2):
        shape = jnp.broadcast_shapes(k1.shape, k2.shape, x1.shape, x2.shape)
        if math.prod(shape) >= 1024:
            return hash_(k1, k2, x1, x2, use_rolled_loops=False)
        flat = lambda a: jnp.broadcast_to(a, shape).reshape(-1) if a.shape else a  # noqa: E731
        y1, y2 = hash_(flat(k1), flat(k2), flat(x1), flat(x2), use_rolled_loops=True)
        return y1.reshape(shape), y2.reshape(shape)

    mlir.register_lowering(tf.threefry2x32_p, mlir.lower_fun(lowering, multiple_results=True), platform="cpu")
    return True
