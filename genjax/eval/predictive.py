"""Scores and figures of a predictor p(y | x) (``Family.predictor``) on held-out pairs.

* classes: accuracy, per-class recall r_c = #(pred = c, y = c) / #(y = c), balanced accuracy
  (their mean) and the confusion matrix C[i, j] = #(y = i, pred = j), pred = argmax p(y | x);
* real targets: RMSE of the predictive mean, and calibration — for each level a in
  ``LEVELS`` the share of test targets inside the model's central a-interval, which a
  calibrated model puts at a (Kuleshov et al. 2018); per target dimension, averaged.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from genjax.eval import plots

LEVELS = (0.5, 0.9, 0.95)
RELIABILITY_LEVELS = tuple(np.round(np.arange(0.05, 1.0, 0.05), 2))


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """C[i, j] = number of examples of class i predicted as j."""
    c = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(c, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return c


def per_class_recall(conf: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix (NaN for a class with no examples)."""
    n = conf.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.diag(conf) / n, np.nan)


def coverage(y, lo, hi) -> float:
    """Share of targets inside [lo, hi] (all arrays shaped alike)."""
    y, lo, hi = (np.asarray(a, np.float64) for a in (y, lo, hi))
    return float(np.mean((y >= lo) & (y <= hi)))


def _batched(fn, x, batch: int = 1000):
    out = [jax.tree.map(np.asarray, fn(x[i : i + batch])) for i in range(0, len(x), batch)]
    return jax.tree.map(lambda *a: np.concatenate(a), *out)


def predictive_metrics(family, params, x, y, out_dir=None, levels=LEVELS) -> dict:
    """The scores of the module docstring on ``(x, y)``; with ``out_dir``, the figures (a
    confusion matrix, or a calibration (reliability) plot and, for 1-D inputs, the predictive
    band over the data)."""
    pred = family.predictor
    x, y = np.asarray(x), np.asarray(y)
    if pred.kind == "class":
        probs = _batched(jax.jit(lambda xb: pred.probs(params, xb)), x)
        guess = probs.argmax(-1)
        conf = confusion_matrix(y, guess, probs.shape[-1])
        recall = per_class_recall(conf)
        out = {
            "accuracy": float(np.mean(guess == y)),
            "balanced_accuracy": float(np.nanmean(recall)),
            "per_class_recall": [None if np.isnan(r) else float(r) for r in recall],
            "confusion": conf.tolist(),
        }
        if out_dir is not None:
            plots.confusion(conf, Path(out_dir) / "confusion.png", f"test confusion (accuracy {out['accuracy']:.3f})")
        return out
    y = y.reshape(len(y), -1)
    mean = _batched(jax.jit(lambda xb: pred.mean(params, xb)), x).reshape(y.shape)
    grid = sorted(set(levels) | set(RELIABILITY_LEVELS))
    # every level's interval from one compiled function (one network pass per batch)
    bounds = _batched(jax.jit(lambda xb: [pred.interval(params, xb, a) for a in grid]), x)
    cov = {a: coverage(y, lo.reshape(y.shape), hi.reshape(y.shape)) for a, (lo, hi) in zip(grid, bounds)}
    out = {
        "rmse": float(np.sqrt(np.mean((mean - y) ** 2))),
        "coverage": {f"{a:g}": cov[a] for a in levels},
    }
    if out_dir is not None:
        plots.reliability(grid, [cov[a] for a in grid], Path(out_dir) / "calibration.png", "predictive intervals")
        if x.reshape(len(x), -1).shape[1] == 1 and y.shape[1] == 1:
            xs = np.linspace(x.min(), x.max(), 400, dtype=np.float32).reshape(-1, *x.shape[1:])
            m = np.asarray(pred.mean(params, xs)).reshape(-1)
            s = np.asarray(pred.std(params, xs)).reshape(-1)
            plots.regression_band(x.reshape(-1), y.reshape(-1), xs.reshape(-1), m, s,
                                  Path(out_dir) / "predictive.png", "test data, predictive mean +- 2 std")  # fmt: skip
    return out
