"""Curricula: the data get harder as training goes on (Bengio et al. 2009).

**Resolution** (``train.curriculum``): at epoch t the training images are shown at resolution
r(t), average-pooled from H x W down to r x (W r / H) and up-sampled back by repetition, so the
model's shapes never change. r(t) climbs the stages ``train.curriculum`` (e.g. ``(2, 4)`` on 8x8
digits, ``(7, 14)`` on 28x28), ``train.curriculum_epochs`` epochs each, then stays at full
resolution; with ``train.curriculum_fade = F`` the first F epochs of each later stage blend the
two resolutions, x = (1 - a) x_prev + a x_new with a = (e + 1) / (F + 1) at its e-th epoch
(ProGAN's fade-in, Karras et al. 2018, applied to the data). The generator loss of a GAN is
then L_G(t) = E[-log D(G(z), r(t))] on data of resolution r(t); VAEs and diffusion models take
the same transform.

**Easy first** (``train.easy_first``): the training examples are ranked by a per-example score
(low = easy; e.g. a previous model's NLL) and epoch t draws its batches from the easiest
fraction c(t) = min(1, c0 + (1 - c0) t / T) of them (c0 = ``train.easy_start``,
T = ``train.easy_epochs``; competence-based curriculum, Platanios et al. 2019, with a linear
competence), cycling through that subset in random order, so every epoch takes the same steps.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def resolution(x: jax.Array, r: int) -> jax.Array:
    """``x [..., H, W, C]`` average-pooled to ``r x (W r / H)`` and up-sampled back to H x W
    (each pooled value repeated over its f x f block, f = H / r). ``r = H``: the identity."""
    h, w = x.shape[-3], x.shape[-2]
    if r == h:
        return x
    f = h // r
    lead, c = x.shape[:-3], x.shape[-1]
    pooled = x.reshape(*lead, r, f, w // f, f, c).mean(axis=(-4, -2))
    return jnp.repeat(jnp.repeat(pooled, f, axis=-3), f, axis=-2)


def check_stages(stages, shape) -> tuple[int, ...]:
    """The stages as ints, checked against the image shape (H, W, C)."""
    if not isinstance(stages, tuple | list) or not all(isinstance(r, int) and not isinstance(r, bool) for r in stages):
        raise ValueError(f"train.curriculum must be a tuple of resolutions (integers), got {stages!r}.")
    stages = tuple(stages)
    if not stages:
        return stages
    if len(shape) != 3:
        raise ValueError(f"train.curriculum={stages} down-samples images, and the data have shape {tuple(shape)}.")
    h, w = int(shape[0]), int(shape[1])
    for r in stages:
        if not (0 < r < h and h % r == 0 and w % (h // r) == 0):
            raise ValueError(
                f"train.curriculum={stages}: each resolution must divide the image height {h} (and the width "
                f"{w} by the same factor) and be below it, got {r}."
            )
    if list(stages) != sorted(set(stages)):
        raise ValueError(f"train.curriculum={stages} must be increasing.")
    return stages


def stage_at(epoch, n_stages: int, per_stage: int, fade: int):
    """(stage index, previous stage index, blend weight a) at 0-based ``epoch``; the stage after
    the last listed one (index ``n_stages``) is full resolution."""
    s = jnp.minimum(epoch // per_stage, n_stages)
    into = epoch - s * per_stage  # epochs into this stage
    a = jnp.where((s > 0) & (fade > 0), jnp.minimum(1.0, (into + 1) / (fade + 1)), 1.0)
    return s, jnp.maximum(s - 1, 0), a


def resolution_curriculum(stages, shape, per_stage: int, fade: int = 0) -> Callable | None:
    """``(epoch, x) -> x`` for ``make_epoch``, or ``None`` without stages."""
    stages = check_stages(stages, shape)
    if not stages:
        return None
    if per_stage < 1:
        raise ValueError(f"train.curriculum_epochs must be >= 1, got {per_stage}.")
    if not 0 <= fade <= per_stage:
        raise ValueError(f"train.curriculum_fade must lie in [0, train.curriculum_epochs={per_stage}], got {fade}.")
    res = stages + (int(shape[0]),)
    branches = [lambda x, r=r: resolution(x, r) for r in res]

    def apply(epoch, x):
        s, prev, a = stage_at(epoch, len(stages), per_stage, fade)
        new = jax.lax.switch(s, branches, x)
        if fade == 0:
            return new
        old = jax.lax.switch(prev, branches, x)
        return (1.0 - a) * old + a * new

    return apply


def competence(epoch, start: float, epochs: int):
    """c(t) = min(1, c0 + (1 - c0) t / T): the fraction of the ranked examples epoch t draws from."""
    if epochs <= 0:
        return jnp.ones(())
    return jnp.minimum(1.0, start + (1.0 - start) * epoch / epochs)


def easy_first(start: float, epochs: int) -> Callable:
    """``(epoch, n) -> n_t``: how many of the ``n`` ranked examples epoch t draws from (>= 1)."""
    if not 0.0 < start <= 1.0:
        raise ValueError(f"train.easy_start must lie in (0, 1], got {start}.")
    if epochs < 1:
        raise ValueError(f"train.easy_epochs must be >= 1, got {epochs}.")
    return lambda epoch, n: jnp.maximum(1, jnp.ceil(competence(epoch, start, epochs) * n).astype(jnp.int32))


def nll_scores(
    log_prob: Callable, params, x: np.ndarray, key: jax.Array, batch_size: int = 500, y=None
) -> np.ndarray:
    """Per-example ``-log_prob(params, x, key)`` ``[N]`` over ``x`` in batches (a labelled
    family's ``-log_prob(params, x, key, y)`` given ``y``): a trained model's ranking of
    examples from easy (likely) to hard, for ``train.easy_first``."""
    from genjax.data.batching import eval_set

    b = eval_set(np.asarray(x), batch_size, y)
    labels = (lambda i: (b["y"][i],)) if y is not None else (lambda i: ())
    f = jax.jit(lambda xi, k, *yi: -log_prob(params, xi, k, *yi))
    out = [np.asarray(f(b["x"][i], jax.random.fold_in(key, i), *labels(i))) for i in range(len(b["x"]))]
    return np.concatenate(out)[np.asarray(b["mask"]).reshape(-1) > 0]
