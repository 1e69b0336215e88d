"""A family's sampler as a kept program, for TensorBoard's sample grids, the evaluation, the figures
and ``genjax sample``."""

from __future__ import annotations

from genjax.train import programs


def sampler(family, m: int, conditional: bool = False):
    """``(params, key[, cond]) -> m samples`` of ``family`` (with ``conditional``, given ``cond``:
    labels, or the inputs of a model of y given x): a kept program (``genjax.train.programs``)
    under the family's origin, so a later process reads it instead of tracing the sampler again;
    the plain jitted sampler for a family that carries no origin."""
    origin = getattr(family, "origin", None)
    key = None if origin is None else programs.digest("sampler", origin, m, conditional)
    if conditional:
        return programs.jit(lambda params, k, cond: family.sample(params, k, m, cond), key=key)
    return programs.jit(lambda params, k: family.sample(params, k, m), key=key)
