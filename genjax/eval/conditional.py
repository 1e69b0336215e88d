"""Class-conditional generation, for any family that samples given a class (``Family.classes``):

* the classifier check: draw M samples for each class c and report the share the domain
  classifier (``genjax.eval.classifier``) assigns to c — per class and averaged; chance is 1/C;
* pluralistic diversity (after Zheng et al. 2019, Pluralistic Image Completion): for the M
  samples x_1..M of one condition, the mean nearest-neighbour distance

      div = (1/M) sum_i min_{j != i} d(x_i, x_j),

  in pixel space (Euclidean over pixels in [0, 1]) and in the classifier's feature space, per
  class and averaged, with the same statistic of M real examples of that class beside it: a
  model that repeats itself for a condition scores near 0, one as varied as the data scores
  like the real column.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from genjax.train.sampling import sampler


def pluralistic_diversity(x) -> float:
    """(1/M) sum_i min_{j != i} ||x_i - x_j|| for ``M >= 2`` examples ``[M, ...]``."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    if len(x) < 2:
        raise ValueError(f"pluralistic diversity needs at least 2 samples of a condition, got {len(x)}.")
    sq = np.sum(x**2, 1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * x @ x.T, 0.0))
    np.fill_diagonal(d, np.inf)
    return float(d.min(1).mean())


def class_samples(family, params, key, n_classes: int, per_class: int) -> np.ndarray:
    """``[C, M, ...]``: ``per_class`` samples of each class, drawn with ``cond`` = the class."""
    cond = jnp.repeat(jnp.arange(n_classes), per_class)
    x = sampler(family, n_classes * per_class, True)(params, key, cond)
    return np.asarray(x).reshape(n_classes, per_class, *np.shape(x)[1:])


def conditional_metrics(family, params, key, real_x, real_y, clf=None, per_class: int = 50, to01=None) -> dict:
    """The classifier check and pluralistic diversity (module docstring) for ``family``'s
    ``family.classes`` classes, against the real examples ``real_x`` with labels ``real_y``
    (the test split); ``clf`` the domain classifier (None: pixel space only)."""
    to01 = to01 or (lambda a: a)
    c = int(family.classes)
    fake = to01(class_samples(family, params, key, c, per_class))  # [C, M, ...]
    real_x, real_y = np.asarray(real_x), np.asarray(real_y)
    out = {"per_class": per_class, "classes": c, "pixel": {"model": [], "real": []}}
    if clf is not None:
        out |= {"features": {"model": [], "real": []}, "accuracy": []}
    for k in range(c):
        real = real_x[real_y == k][:per_class]
        out["pixel"]["model"].append(pluralistic_diversity(fake[k]))
        out["pixel"]["real"].append(pluralistic_diversity(real) if len(real) >= 2 else float("nan"))
        if clf is not None:
            out["accuracy"].append(float(np.mean(clf.probs(fake[k]).argmax(-1) == k)))
            out["features"]["model"].append(pluralistic_diversity(clf.features(fake[k])))
            out["features"]["real"].append(
                pluralistic_diversity(clf.features(real)) if len(real) >= 2 else float("nan")
            )
    for space in ("pixel", "features"):
        if space in out:
            out[space] |= {f"{w}_mean": float(np.nanmean(out[space][w])) for w in ("model", "real")}
    if clf is not None:
        out |= {"class_accuracy": float(np.mean(out["accuracy"])), "chance": 1.0 / c, "classifier": clf.name}
    return out
