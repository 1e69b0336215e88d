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

import jax

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
    """The stream ``purpose`` of the root key ``jax.random.key(seed)``."""
    return stream(jax.random.key(int(seed)), purpose, *index)


def update_key(step_key: jax.Array, player: int, update: int) -> jax.Array:
    """The key of player ``player``'s ``update``-th update inside one training step."""
    return jax.random.fold_in(jax.random.fold_in(step_key, player), update)


def data_seed(seed: int, purpose: str) -> int:
    """A numpy seed for one fixed draw of the data pipeline (``val``, ``test``, ``train_static``,
    ``eval_view``)."""
    return int(seed) + _DATA[purpose]


def unrolled_threefry_on_cpu() -> bool:
    """Lower JAX's Threefry-2x32 hash on CPU as straight-line code, as JAX already does on GPU and
    TPU, instead of its CPU default, a 5-iteration loop of 4 rounds. The bits are the same
    (integer adds, rotations and xors, exact either way; ``tests/test_keys.py`` checks them against
    a numpy Threefry), but XLA:CPU compiles the loop form slowly: measured on 2 cores, a program
    drawing one [3, 3, 64, 64] array compiled in 1.08 s rolled and 0.16 s unrolled, and every
    program that draws random numbers (a model's initialization, a training step's noise or
    dropout, a sampler) pays it per draw site. Called when genjax is imported; returns False
    (nothing changed) if this JAX lacks the pieces."""
    try:
        from jax._src.random import threefry2x32 as tf
        from jax.interpreters import mlir

        rule = tf._threefry2x32_lowering_rule  # JAX's own unrolled lowering (its GPU fallback and TPU rule)
        mlir.register_lowering(tf.threefry2x32_p, rule, platform="cpu")
    except (ImportError, AttributeError):  # pragma: no cover - a JAX without these internals
        return False
    return True
