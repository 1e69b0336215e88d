"""Overfitting study: one command, one Markdown report with figures.

    python experiments/overfitting/main.py [--out runs/overfitting] [--smoke]

On 300 training images of digits (statically binarized), compares train and held-out NLL by
epoch for: model sizes (looped: each width compiles once), dropout rates and L2 strengths
(vmapped together with the folds), early stopping on and off, and the k-fold estimate of the
held-out NLL next to a single validation split's. Every held-out figure is an importance-
sampled NLL (nats per image); "test" is the 359-image test split no model selection touched.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.overfitting.config import get_config  # noqa: E402
from genjax.data import load_splits  # noqa: E402
from genjax.eval import heldout_metrics  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.sweep import param_count  # noqa: E402
from genjax.train import fit  # noqa: E402
from genjax.train.cv import cross_validate  # noqa: E402


def _curves(ax, res, labels, title):
    """Mean over folds: training-subset NLL (dashed) and held-out NLL (solid) per setting."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for g, lab in enumerate(labels):
        m = res.setting == g
        ep = np.arange(1, res.history["val_nll"].shape[0] + 1)
        ax.plot(ep, np.nanmean(res.history["val_nll"][:, m], 1), color=colors[g], label=f"{lab} held-out")
        ax.plot(ep, np.nanmean(res.history["train_nll"][:, m], 1), color=colors[g], ls="--", lw=1, label=f"{lab} train")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL (nats / image)")
    ax.set_title(title)
    v = np.concatenate([res.history["val_nll"].ravel(), res.history["train_nll"].ravel()])
    v = v[np.isfinite(v)]
    ax.set_ylim(np.percentile(v, 0.5) - 1, np.percentile(v, 90) + 1)
    ax.legend(fontsize=7, ncol=2)


def _rows(res, labels, field):
    out = []
    for g, lab in enumerate(labels):
        m = res.setting == g
        last = res.history["val_nll"][:, m]
        out.append(
            {
                field: lab,
                "heldout": float(res.heldout_nll[m].mean()),
                "heldout_std": float(res.heldout_nll[m].std(ddof=1)),
                "test": float(res.test_nll[m].mean()),
                "best_epoch": float(res.best_epoch[m].mean()),
                "final_val": float(np.nanmean(last[-1])),
                "final_train": float(np.nanmean(res.history["train_nll"][-1, m])),
            }
        )
    return out


def _table(rows, field):
    lines = [
        f"| {field} | held-out NLL (best epoch, mean +- std over folds) | test NLL | best epoch | "
        "final train NLL | final held-out NLL |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r[field]} | {r['heldout']:.2f} +- {r['heldout_std']:.2f} | {r['test']:.2f} | "
            f"{r['best_epoch']:.0f} | {r['final_train']:.2f} | {r['final_val']:.2f} |"
        )
    best = min(rows, key=lambda r: r["heldout"])
    worst = max(rows, key=lambda r: r["heldout"])
    lines += [
        "",
        f"Best: **{field} = {best[field]}**, held-out NLL {best['heldout']:.2f} nats, "
        f"{worst['heldout'] - best['heldout']:.2f} nats better than the worst ({worst[field]}); "
        f"on the untouched test split {best['test']:.2f} vs {worst['test']:.2f}.",
    ]
    return "\n".join(lines), best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/overfitting")
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run of every part (for tests)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = get_config("smoke" if a.smoke else None)
    splits = load_splits(cfg.data, cfg.train.batch_size)
    t0 = time.perf_counter()
    report = [
        f"# Overfitting study: {len(splits.train['x'])} training digits",
        "",
        f"Data: `digits`, statically binarized; {len(splits.train['x'])} train, {len(splits.val['x'])} validation, "
        f"{len(splits.test['x'])} test images. Base model: MLP VAE 64-{'-'.join(map(str, cfg.model.vae.hidden))}-"
        f"{cfg.model.vae.latent_dim}, Adam {cfg.optim.lr}, batch {cfg.train.batch_size}, {cfg.train.epochs} epochs. "
        f"Cross-validated studies use {cfg.cv.folds} folds of the {len(splits.train['x']) + len(splits.val['x'])} "
        f"train+validation images, all folds and settings trained at once (vmap). Held-out and test NLL: "
        f"importance-sampled with k = {cfg.model.vae.nll_samples}, at each model's best validation epoch; "
        "curves: 10-sample estimates on the held-out fold (solid) and on a fixed training subset of the same size "
        "(dashed).",
        "",
    ]
    summary = {}
    fig, axes = plt.subplots(1, 3, figsize=(18, 4.8))

    # 1. model size: shapes change, so each width is its own compiled run
    sizes = [(16,), (64,), (256, 128), (512, 256)] if not a.smoke else [(8,), (32,)]
    runs = []
    for h in sizes:
        c = copy.deepcopy(cfg)
        c.model.vae.hidden = h
        fam = build_family(c, DataInfo.of(splits))
        n = param_count(fam)
        runs.append((h, n, cross_validate(c, fam, splits, progress=False)))
    labels = [f"{'-'.join(map(str, h))} ({n:,} params)" for h, n, _ in runs]
    merged = runs[0][2]
    # one result object with settings = sizes, for the shared helpers
    merged = type(merged)(
        **{
            **merged.__dict__,
            "setting": np.concatenate([np.full(len(r.fold), i) for i, (_, _, r) in enumerate(runs)]),
            "fold": np.concatenate([r.fold for _, _, r in runs]),
            "heldout_nll": np.concatenate([r.heldout_nll for _, _, r in runs]),
            "test_nll": np.concatenate([r.test_nll for _, _, r in runs]),
            "best_epoch": np.concatenate([r.best_epoch for _, _, r in runs]),
            "history": {k: np.concatenate([r.history[k] for _, _, r in runs], 1) for k in ("val_nll", "train_nll")},
        }
    )
    _curves(axes[0], merged, labels, "model size")
    text, best = _table(_rows(merged, labels, "hidden widths"), "hidden widths")
    report += ["## Model size", "", text, ""]
    summary["model_size"] = best

    # 2 + 3. dropout rates and L2 strengths: continuous, vmapped with the folds in one run each
    fam = build_family(cfg, DataInfo.of(splits))
    for i, (field, values, title) in enumerate(
        (
            ("model.vae.dropout", [0.0, 0.1, 0.3, 0.5], "dropout rate"),
            ("objective.l2", [0.0, 1e-4, 1e-3, 1e-2], "L2 strength"),
        )
    ):
        c = copy.deepcopy(cfg)
        if field == "model.vae.dropout":
            c.model.vae.dropout = max(values)
        f = build_family(c, DataInfo.of(splits))
        res = cross_validate(c, f, splits, [{field: v} for v in values], progress=False)
        labels = [f"{v:g}" for v in values]
        _curves(axes[i + 1], res, labels, title)
        text, best = _table(_rows(res, labels, title), title)
        report += [
            f"## {title[0].upper() + title[1:]} ({len(values)} values x {cfg.cv.folds} folds in one vmapped "
            f"run, {res.train_seconds:.0f} s)",
            "",
            text,
            "",
        ]
        summary[field] = best
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    report += ["![train (dashed) and held-out (solid) NLL by epoch](curves.png)", ""]

    # 4. early stopping on and off, single validation split
    rows = []
    key = jax.random.key(1)
    for name, patience, keep in (("off (last epoch)", 0, False), ("on (patience 20, best epoch)", 20, True)):
        c = copy.deepcopy(cfg)
        c.train.patience, c.train.keep_best = patience, keep
        r = fit(c, fam, splits, progress=False)
        t = heldout_metrics(fam, r.params, splits.test["x"], key, batch_size=100, num_dims=splits.num_dims)
        rows.append((name, len(r.history), int(r.state.es.best_epoch), t["nll"], r.history))
    report += [
        "## Early stopping (single validation split)",
        "",
        "| early stopping | epochs run | best epoch | test NLL of the returned parameters |",
        "| --- | ---: | ---: | ---: |",
    ]
    report += [f"| {n} | {e} | {b} | {t:.2f} |" for n, e, b, t, _ in rows]
    gain = rows[0][3] - rows[1][3]
    report += [
        "",
        f"Early stopping returns parameters {gain:.2f} nats/image better on the test split "
        f"after {rows[1][1]} instead of {rows[0][1]} epochs.",
        "",
    ]
    summary["early_stopping_gain_nats"] = gain
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for _n, _, _, _, h in rows[:1]:
        ax.plot([x["epoch"] for x in h], [x["val_nll"] for x in h], label="validation NLL")
        ax.plot([x["epoch"] for x in h], [x["train_nll"] for x in h], ls="--", label="training-subset NLL")
    ax.axvline(rows[1][2], color="gray", ls=":", label=f"best epoch {rows[1][2]} (early stopping returns it)")
    ax.axvline(rows[1][1], color="k", ls=":", lw=0.8, label=f"stopped at epoch {rows[1][1]}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "early_stopping.png", dpi=110)
    plt.close(fig)
    report += ["![early stopping](early_stopping.png)", ""]

    # 5. k-fold estimate next to a single validation split
    c = copy.deepcopy(cfg)
    c.train.patience, c.train.keep_best = 20, True
    single = fit(c, fam, splits, progress=False)
    val = heldout_metrics(fam, single.params, splits.val["x"], key, batch_size=100, num_dims=splits.num_dims)["nll"]
    test = heldout_metrics(fam, single.params, splits.test["x"], key, batch_size=100, num_dims=splits.num_dims)["nll"]
    c.cv.folds = 5
    cvr = cross_validate(c, fam, splits, progress=False)
    report += [
        "## k-fold estimate versus a single validation split",
        "",
        "| estimate | held-out NLL | test NLL of the same model(s) | estimate - test |",
        "| --- | ---: | ---: | ---: |",
        f"| single split ({len(splits.val['x'])} validation images) | {val:.2f} | {test:.2f} | {val - test:+.2f} |",
        f"| 5-fold CV (mean +- std over folds) | {cvr.heldout_nll.mean():.2f} +- {cvr.heldout_nll.std(ddof=1):.2f} | "
        f"{cvr.test_nll.mean():.2f} | {cvr.heldout_nll.mean() - cvr.test_nll.mean():+.2f} |",
        "",
        "The single split gives one number with no error bar; the folds show how much that number moves "
        f"with the choice of held-out images (std {cvr.heldout_nll.std(ddof=1):.2f} nats).",
        "",
    ]
    summary["kfold"] = {
        "cv_mean": float(cvr.heldout_nll.mean()),
        "cv_std": float(cvr.heldout_nll.std(ddof=1)),
        "single_split": val,
        "test_single": test,
        "test_cv_mean": float(cvr.test_nll.mean()),
    }

    report += ["## Summary", ""]
    for k, v in summary.items():
        if isinstance(v, dict) and "heldout" in v:
            name = next(iter(v))
            report.append(f"- {k}: best {name} = {v[name]} (held-out {v['heldout']:.2f}, test {v['test']:.2f})")
    report.append(f"- early stopping: {summary['early_stopping_gain_nats']:+.2f} nats/image on test")
    report += [
        "",
        f"Total wall time {time.perf_counter() - t0:.0f} s on {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}).",
    ]
    (out / "report.md").write_text("\n".join(report) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print("\n".join(report))
    print(f"\nwrote {out / 'report.md'}")


if __name__ == "__main__":
    main()
