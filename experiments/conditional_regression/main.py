"""Conditional likelihoods p(y | x), two studies (the notes' conditional-generation part):

1. 1-D regression with input-dependent noise (``toy1d:hetero``): the fixed-variance (MSE) model,
   the heteroscedastic Gaussian and the Student-t, each an MLP trained by the same engine with
   early stopping; held-out NLL, RMSE and calibration (share of test targets inside the central
   50/90/95% intervals, and a reliability plot over 5..95%), the predictive band against the
   truth. Also on ``toy1d:hetero_t`` (heavy-tailed noise) with ``--data hetero_t``.
2. Digit classification on a class-imbalanced training set (class c keeps a share
   ``ratio^(c/9)`` of its training examples; the test split stays balanced): cross-entropy
   against the focal loss (gamma = 2) and the focal loss with inverse-frequency alpha; per-class
   recall, balanced accuracy and confusion matrices.

    python experiments/conditional_regression/main.py [--out DIR] [--data hetero|hetero_t] [--ratio 0.05]
    python experiments/conditional_regression/main.py --quick      # a minute, for a smoke check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import genjax  # noqa: E402
from experiments.conditional_regression.config import get_config  # noqa: E402
from genjax.data import load_splits  # noqa: E402
from genjax.data.sources import from_arrays, load_digits  # noqa: E402
from genjax.data.toy1d import toy1d_interval, toy1d_log_prob, toy1d_mean, toy1d_scale  # noqa: E402
from genjax.eval import plots  # noqa: E402
from genjax.eval.predictive import LEVELS, RELIABILITY_LEVELS, coverage, predictive_metrics  # noqa: E402

MODELS = {"MSE (one fixed variance)": "mse", "heteroscedastic Gaussian": "", "Student-t (nu = 4)": "student_t"}


def regression(out: Path, data: str, quick: bool) -> list[str]:
    rows, series, fitted = [], {}, {}
    grid = sorted(set(LEVELS) | set(RELIABILITY_LEVELS))
    for label, variant in MODELS.items():
        cfg = get_config(variant or None)
        cfg.data.name = f"toy1d:{data}"
        if quick:
            cfg.train.epochs, cfg.data.toy_n = 20, 600
        splits = load_splits(cfg.data, cfg.train.batch_size)
        t0 = time.time()
        model = genjax.fit(cfg, splits, progress=False)
        ev = genjax.evaluate(model, splits)
        pm = predictive_metrics(model.family, model.params, splits.test["x"], splits.test["y"], levels=grid)
        fitted[label] = model
        series[label] = [pm["coverage"][f"{a:g}"] for a in grid]
        rows.append((label, ev["nll"], pm["rmse"], *[pm["coverage"][f"{a:g}"] for a in LEVELS],
                     int(model.result.state.es.best_epoch), time.time() - t0))  # fmt: skip
    tx, ty = splits.test["x"], splits.test["y"]
    true_nll = -float(np.mean(toy1d_log_prob(data, tx, ty)))
    true_cov = [coverage(ty, *toy1d_interval(data, tx, a)) for a in grid]
    rows.append(("true p(y | x)", true_nll, float(np.sqrt(np.mean((toy1d_mean(tx) - ty) ** 2))),
                 *[true_cov[grid.index(a)] for a in LEVELS], "-", None))  # fmt: skip
    series["true p(y | x)"] = true_cov
    plots.reliability(grid, None, out / f"calibration_{data}.png", f"toy1d:{data}: calibration", series)
    xs = np.linspace(-4, 4, 400, dtype=np.float32)[:, None]
    for label, model in fitted.items():
        pred = model.family.predictor
        m = np.asarray(pred.mean(model.params, xs))[:, 0]
        s = np.asarray(pred.std(model.params, xs))[:, 0]
        tag = MODELS[label] or "hetero"
        true_std = toy1d_scale(xs[:, 0]) * (np.sqrt(3) if data == "hetero_t" else 1)  # t_3's std is sqrt(3) s
        plots.regression_band(tx[:, 0], ty[:, 0], xs[:, 0], m, s, out / f"band_{data}_{tag}.png",
                              f"{label}: predictive mean +- 2 std (dashed: truth)",
                              truth=(toy1d_mean(xs[:, 0]), true_std))  # fmt: skip
    head = "| model | test NLL (nats) | RMSE | 50% | 90% | 95% | best epoch | seconds |"
    lines = [f"### toy1d:{data} ({len(splits.train['x'])} train / {len(tx)} test)", "", head,
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]:.4f} | {r[2]:.4f} | " + " | ".join(f"{v:.3f}" for v in r[3:6])
                     + f" | {r[6]} | " + ("-" if r[7] is None else f"{r[7]:.1f}") + " |")  # fmt: skip
    return lines


def imbalanced_digits(ratio: float, seed: int = 0):
    """Digits with a geometric class imbalance in training: class c keeps ratio^(c/9) of its
    training examples; a balanced test split (a fifth of each class, fixed)."""
    src = load_digits()
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(src.y == c))
        n_test = len(idx) // 5
        te.append(idx[:n_test])
        keep = max(2, int(round((len(idx) - n_test) * ratio ** (c / 9))))
        tr.append(idx[n_test : n_test + keep])
    tr, te = np.concatenate(tr), np.concatenate(te)
    return from_arrays(src.x[tr], src.y[tr], src.x[te], src.y[te], name=f"digits_imbalanced_{ratio:g}")


def focal(out: Path, ratio: float, quick: bool) -> list[str]:
    src = imbalanced_digits(ratio)
    counts = np.bincount(src.y, minlength=10)
    inv = counts.sum() / (10 * counts)
    settings = {
        "cross-entropy": dict(likelihood="categorical"),
        "focal, gamma = 2": dict(likelihood="focal", gamma=2.0),
        "focal, gamma = 2, alpha = 1 / frequency": dict(
            likelihood="focal", gamma=2.0, class_weights=tuple(float(w) for w in inv / inv.mean())
        ),
    }  # fmt: skip
    rows = []
    for label, fields in settings.items():
        cfg = get_config("digits")
        cfg.data.val_fraction = 0.15
        for k, v in fields.items():
            cfg.model.predictor[k] = v
        if quick:
            cfg.train.epochs = 5
        splits = load_splits(cfg.data, cfg.train.batch_size, source=src)
        model = genjax.fit(cfg, splits, progress=False)
        ev = genjax.evaluate(model, splits)
        tag = label.split(",")[0].replace(" ", "_") + ("_alpha" if "alpha" in label else "")
        d = out / f"confusion_{tag}"
        d.mkdir(exist_ok=True)
        pm = predictive_metrics(model.family, model.params, splits.test["x"], splits.test["y"], d)
        (d / "confusion.png").rename(out / f"confusion_{tag}.png")
        d.rmdir()
        rows.append((label, ev["nll"], pm))
    lines = [f"### class-imbalanced digits (ratio {ratio:g}: training counts per class {counts.tolist()}; "
             f"balanced test, {len(src.test_y)} digits)", "",
             "| loss | test NLL | accuracy | balanced accuracy | " + " | ".join(f"recall {c}" for c in range(10))
             + " |",
             "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in range(10)) + " |"]  # fmt: skip
    for label, nll, pm in rows:
        rec = " | ".join(f"{r:.2f}" for r in pm["per_class_recall"])
        lines.append(f"| {label} | {nll:.4f} | {pm['accuracy']:.4f} | {pm['balanced_accuracy']:.4f} | {rec} |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "experiments/conditional_regression/results"))
    ap.add_argument("--data", default="hetero", choices=("hetero", "hetero_t"))
    ap.add_argument("--ratio", type=float, default=0.05)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python experiments/conditional_regression/main.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = ["# Conditional likelihoods p(y | x)", "", f"`{cmd.strip()}`", ""]
    lines += regression(out, a.data, a.quick) + [""]
    lines += focal(out, a.ratio, a.quick)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "run.json").write_text(json.dumps({"argv": sys.argv, "quick": a.quick}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
