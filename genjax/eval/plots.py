"""Figures written as PNG files (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _tile(images: np.ndarray, cols: int, pad: int = 1) -> np.ndarray:
    """[n, H, W, C] -> one [rows*(H+pad), cols*(W+pad), C] canvas."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    rows = math.ceil(n / cols)
    canvas = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
    for i in range(n):
        r, q = divmod(i, cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = images[i]
    return canvas


def _show(ax, canvas, title):
    canvas = np.clip(canvas, 0.0, 1.0)
    if canvas.shape[-1] == 1:
        ax.imshow(canvas[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(canvas, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG and close it."""
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def image_grid(images: np.ndarray, path: str | Path, title: str = "", cols: int | None = None) -> Path:
    """A grid of images ``[n, H, W, C]`` in [0, 1]."""
    cols = cols or int(math.ceil(math.sqrt(len(images))))
    fig, ax = plt.subplots(figsize=(6, 6 * math.ceil(len(images) / cols) / cols + 0.4))
    _show(ax, _tile(images, cols), title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def reconstructions(
    x: np.ndarray, x_rec: np.ndarray, path: str | Path, title: str = "inputs | reconstructions"
) -> Path:
    """Pairs side by side: each input followed by its reconstruction."""
    pairs = np.stack([x, x_rec], 1).reshape(-1, *x.shape[1:])
    return image_grid(pairs, path, title, cols=2 * int(math.ceil(math.sqrt(len(x)))))


def interpolation(rows: np.ndarray, path: str | Path, title: str = "latent interpolation", ends=None) -> Path:
    """``rows [R, S, H, W, C]``: each row a path through latent space decoded in S steps. With
    ``ends = (first [R, H, W, C], last [R, H, W, C])``, the inputs the paths join stand at both
    ends of their row, framed in orange, so the endpoints read as data and the rest as decodes."""
    r, s = rows.shape[:2]
    if ends is not None:
        rows = np.concatenate([np.asarray(ends[0])[:, None], rows, np.asarray(ends[1])[:, None]], 1)
    cols = rows.shape[1]
    h, w = rows.shape[2:4]
    fig, ax = plt.subplots(figsize=(6, 6 * r / cols + 0.6))
    _show(ax, _tile(rows.reshape(r * cols, *rows.shape[2:]), cols), title)
    if ends is not None:
        from matplotlib.patches import Rectangle

        for q in (0, cols - 1):  # the pad is 1 pixel: frame the column of inputs
            ax.add_patch(Rectangle((q * (w + 1) + 0.5, 0.5), w, r * (h + 1) - 1, fill=False, ec="tab:orange", lw=2))
        ax.set_title(f"{title}\nframed: the two test inputs; between: decodes of {s} points on the line joining "
                     "their encodings", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return save(fig, path)


def _outside(pts: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.any((pts < lo) | (pts > hi), axis=1)


def scatter2d(data: np.ndarray, samples: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Data and model samples side by side, for 2-D data, on the data's axes (their range plus a
    quarter on each side): a few far-off samples do not shrink the picture to a dot; how many
    fall outside, and how far, is written on the panel."""
    data, samples = np.asarray(data, np.float64), np.asarray(samples, np.float64)
    lo, hi = data.min(0), data.max(0)
    pad = 0.25 * np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad, hi + pad
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
    for ax, pts, name in ((axes[0], data, "data"), (axes[1], samples, "samples")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
        ax.set_title(name)
        ax.set_aspect("equal")
        out = _outside(pts, lo, hi)
        if out.any():
            far = np.abs(pts[out]).max()
            ax.text(0.02, 0.02, f"{int(out.sum())} of {len(pts)} outside this view (largest |coordinate| {far:.3g})",
                    transform=ax.transAxes, fontsize=8, color="tab:red")  # fmt: skip
    axes[0].set_xlim(lo[0], hi[0])
    axes[0].set_ylim(lo[1], hi[1])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def curves(history: list[dict], path: str | Path, title: str = "", spec=None) -> Path:
    """The training curve and, where the run has one, the validation NLL by epoch; the terms the
    family names (``spec``: a ``genjax.models.Curves``) in a side panel."""
    from genjax.models.base import Curves

    spec = spec or Curves()
    ep = [h["epoch"] for h in history]
    h0 = history[0] if history else {}
    terms = [k for k in spec.terms if k in h0]
    fig, axes = plt.subplots(1, 1 + bool(terms), figsize=(6 + 5 * bool(terms), 4), squeeze=False)
    ax = axes[0, 0]
    key = spec.metric if spec.metric in h0 else "loss"
    train = [spec.sign * h[key] if key == spec.metric else h[key] for h in history]
    ax.plot(ep, train, label=spec.label if key == spec.metric else "train loss")
    vals = list(train)
    if "val_nll" in h0:
        ax.plot(ep, [h["val_nll"] for h in history], label="validation NLL")
        best = min(history, key=lambda h: h["val_nll"])
        ax.axvline(best["epoch"], color="gray", ls=":", label=f"best val (epoch {best['epoch']})")
        ax.set_ylabel("nats / example")
        vals += [h["val_nll"] for h in history]
        lo, hi = min(vals), np.percentile(vals, 95)
        ax.set_ylim(lo - 0.05 * (hi - lo), hi)
    else:
        ax.set_ylabel("epoch mean")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    ax.set_title(title)
    if terms:
        for k in terms:
            axes[0, 1].plot(ep, [h[k] for h in history], label=k)
        axes[0, 1].set_xlabel("epoch")
        axes[0, 1].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0, 1].set_title(spec.terms_title)
        axes[0, 1].legend()
    fig.tight_layout()
    return save(fig, path)


def cv_curves(history: dict, fold: np.ndarray, setting: np.ndarray, labels: list[str], path, title: str = "") -> Path:
    """Validation NLL by epoch of every member (one line per fold, one colour per setting);
    dashed: the training-subset NLL where it was logged."""
    val = history["val_nll"]  # [epochs, members]
    ep = np.arange(1, val.shape[0] + 1)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for m in range(val.shape[1]):
        c = colors[int(setting[m]) % len(colors)]
        ax.plot(ep, val[:, m], color=c, alpha=0.8, lw=1.2, label=labels[int(setting[m])] if fold[m] == 0 else None)
        if "train_nll" in history:
            ax.plot(ep, history["train_nll"][:, m], color=c, alpha=0.5, lw=0.8, ls="--")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("NLL (nats / example)")
    finite = val[np.isfinite(val)]
    if finite.size:
        ax.set_ylim(finite.min() - 0.5, np.percentile(finite, 97) + 0.5)
    ax.set_title(title or "held-out fold NLL by epoch (solid), training subset (dashed)")
    if len(labels) > 1 or labels[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def sweep_plot(rows: list[dict], fields: list[str], path, metric: str = "heldout_nll") -> Path:
    """Held-out metric (mean +- std over folds) against each swept field."""
    fig, axes = plt.subplots(1, len(fields), figsize=(4.5 * len(fields), 3.8), squeeze=False)
    for ax, f in zip(axes[0], fields):
        others = [g for g in fields if g != f]
        groups: dict = {}
        for r in rows:
            groups.setdefault(tuple(str(r[g]) for g in others), []).append(r)
        width = 0.5 / max(len(groups), 1)  # each group's points side by side, so error bars never overlap
        for g, (key, rs) in enumerate(groups.items()):
            xs = [str(r[f]) if not isinstance(r[f], (int, float)) else r[f] for r in rs]
            ax.errorbar(
                np.arange(len(xs)) + (g - (len(groups) - 1) / 2) * width,
                [r[f"{metric}_mean"] for r in rs],
                yerr=[r[f"{metric}_std"] for r in rs],
                marker="o",
                capsize=3,
                label=", ".join(f"{g}={k}" for g, k in zip(others, key)) or None,
            )
            ax.set_xticks(range(len(xs)), [str(x) for x in xs], rotation=30)
        ax.set_xlabel(f)
        ax.set_ylabel(f"{metric} (mean +- std over folds)")
        if others:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def duplicate_pairs(images: np.ndarray, pairs, distances, path: str | Path, title: str = "") -> Path:
    """A montage of the closest pairs: each row one pair (left, right) with its distance."""
    n = len(pairs)
    fig, axes = plt.subplots(n, 2, figsize=(3, 1.5 * n), squeeze=False)
    for r, ((i, j), d) in enumerate(zip(pairs, distances)):
        for c, k in enumerate((i, j)):
            axes[r, c].imshow(np.squeeze(images[k]), cmap="gray", vmin=0, vmax=1)
            axes[r, c].axis("off")
        axes[r, 0].set_title(f"d = {d:.3f}", fontsize=7, loc="left")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def pca_plot(pca: dict, path: str | Path, title: str = "") -> Path:
    """Explained-variance spectra and the 2-D projection on the real set's principal axes."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    k = np.arange(1, len(pca["real_spectrum"]) + 1)
    axes[0].plot(k, pca["real_spectrum"], "o-", label="real")
    axes[0].plot(k, pca["fake_spectrum"], "s-", label="generated")
    axes[0].set(xlabel="component", ylabel="explained variance ratio", yscale="log", title="PCA spectra")
    axes[0].legend()
    axes[1].scatter(*pca["real_2d"].T, s=3, alpha=0.5, label="real")
    axes[1].scatter(*pca["fake_2d"].T, s=3, alpha=0.5, label="generated")
    axes[1].set(xlabel="PC 1 (real)", ylabel="PC 2 (real)", title="projection on the real PCs")
    axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def confusion(conf: np.ndarray, path: str | Path, title: str = "") -> Path:
    """A confusion matrix (rows: true class, columns: predicted), each row normalized to recall."""
    conf = np.asarray(conf, np.float64)
    rows = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    k = len(conf)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * k, 0.8 + 0.5 * k))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if conf[i, j]:
                ax.text(j, i, f"{int(conf[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")  # fmt: skip
    ax.set(xlabel="predicted", ylabel="true", xticks=range(k), yticks=range(k), title=title)
    fig.tight_layout()
    return save(fig, path)


def reliability(levels, observed, path: str | Path, title: str = "", series: dict | None = None) -> Path:
    """Calibration of predictive intervals: observed coverage against the nominal level, one
    line per model (``series``: name -> observed), the diagonal being perfect calibration."""
    series = series or {"model": observed}
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="gray", ls=":", label="calibrated")
    for name, obs in series.items():
        ax.plot(levels, obs, "o-", ms=3, label=name)
    ax.set(xlabel="nominal level of the central interval", ylabel="share of test targets inside",
           xlim=(0, 1), ylim=(0, 1), title=title)  # fmt: skip
    ax.legend()
    fig.tight_layout()
    return save(fig, path)


def regression_band(x, y, xs, mean, std, path: str | Path, title: str = "", truth=None) -> Path:
    """1-D regression: data points, the predictive mean and its +- 2 std band over ``xs``;
    ``truth``: optional (mean, std) of the true conditional on ``xs``, dashed."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(x, y, s=3, alpha=0.3, color="gray", label="data")
    ax.plot(xs, mean, color="C0", label="predictive mean")
    ax.fill_between(xs, mean - 2 * std, mean + 2 * std, color="C0", alpha=0.25, label="+- 2 std")
    if truth is not None:
        tm, ts = truth
        ax.plot(xs, tm, "k--", lw=1, label="true mean")
        ax.plot(xs, tm - 2 * ts, "k:", lw=1, label="true +- 2 std")
        ax.plot(xs, tm + 2 * ts, "k:", lw=1)
    ax.set(xlabel="x", ylabel="y", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def class_grid(images: np.ndarray, path: str | Path, title: str = "", row_labels=None) -> Path:
    """``images [C, M, H, W, C']``: one row per class (labelled on the left), M samples each."""
    images = np.asarray(images)
    c, m = images.shape[:2]
    fig, ax = plt.subplots(figsize=(0.55 * m + 0.8, 0.55 * c + 0.6))
    _show(ax, _tile(images.reshape(c * m, *images.shape[2:]), m), title)
    h = images.shape[2] + 1
    for i, lab in enumerate(row_labels if row_labels is not None else range(c)):
        ax.text(-1.5, 1 + i * h + h / 2, str(lab), ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def latent_usage(activity: np.ndarray, kl: np.ndarray, threshold: float, path: str | Path, title: str = "") -> Path:
    """Per latent dimension: the activity Cov_x(E_q[z_k]) (log scale, the active-unit threshold
    dotted) and the mean KL(q(z_k|x) || p(z_k)) in nats."""
    k = np.arange(len(kl))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].bar(k, np.maximum(activity, 1e-8), color=np.where(activity > threshold, "C0", "C7"))
    axes[0].axhline(threshold, color="k", ls=":", lw=1)
    axes[0].set(yscale="log", xlabel="latent dimension", ylabel="Cov_x E[z_k | x]",
                title=f"{int(np.sum(activity > threshold))} of {len(k)} units active")  # fmt: skip
    axes[1].bar(k, kl, color="C1")
    axes[1].set(xlabel="latent dimension", ylabel="nats", title=f"KL per dimension (total {kl.sum():.2f})")
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def code_usage(p: np.ndarray, path: str | Path, perplexity: float) -> Path:
    """The frequency of each code of a discrete bottleneck, sorted (a flat bar: every code used
    equally), against the uniform level 1/K."""
    k = len(p)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(np.arange(k), np.sort(p)[::-1], width=1.0)
    ax.axhline(1.0 / k, color="k", lw=0.8, ls="--", label="uniform 1/K")
    ax.set(xlabel="code (sorted by frequency)", ylabel="share of positions",
           title=f"code usage on the test split: perplexity {perplexity:.1f} of {k}")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    return save(fig, path)


def sample_panels(panels: dict, path: str | Path) -> Path:
    """One panel per model side by side: ``{name: (images [n, H, W, C] in [0, 1], subtitle)}``,
    each tiled in a square and titled with its name and subtitle (a study's samples figure)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0), squeeze=False)
    for ax, (name, (imgs, sub)) in zip(axes[0], panels.items()):
        imgs = np.asarray(imgs, np.float32)
        ax.imshow(_tile(imgs, int(math.sqrt(len(imgs)))), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name}\n{sub}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return save(fig, path)
