"""GAN variants on the PacGAN mixtures, every seed trained at once; a table beside PacGAN Table 1.

    python experiments/gan_mixtures/main.py [--seeds 10] [--variants gan,nsgan,wgan_gp,sngan]
        [--data ring,grid] [--epochs N] [--update_order alternating] [--out runs/gan_mixtures]

A packed variant (``pacgan<m>``) trains m x the epochs, so every variant takes the same number of
generator steps (a packed discriminator draws m batches per step).

For each variant and dataset, ``genjax.train.cv.train_seeds`` trains the seeds in one vmapped,
jitted program; each seed's generator then draws 2,500 samples (as in PacGAN) scored with
``genjax.eval.sample_quality.mode_coverage``: modes captured, share of high-quality samples
(within 3 std of their nearest mode) and the reverse KL between the mode histogram of the
high-quality samples and the uniform one. Writes ``report.md``, ``results.json`` and one scatter
plot per dataset to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.gan_mixtures.config import get_config  # noqa: E402
from genjax import keys as genjax_keys  # noqa: E402
from genjax.data.pipeline import load_splits  # noqa: E402
from genjax.data.toy2d import mixture_modes  # noqa: E402
from genjax.eval.plots import save  # noqa: E402
from genjax.eval.sample_quality import mode_coverage  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.train.cv import train_seeds  # noqa: E402

# Lin et al. 2018 (PacGAN), Table 1: (modes, high-quality %, reverse KL)
PACGAN = {
    ("GAN", "ring"): (6.3, 98.2, 0.45),
    ("PacGAN4", "ring"): (7.8, 95.9, 0.07),
    ("GAN", "grid"): (17.3, 94.8, 0.70),
    ("PacGAN4", "grid"): (24.8, 93.6, 0.04),
}


def run_one(
    variant: str, data: str, seeds: list[int], epochs: int | None, n_eval: int, progress=True, order="alternating"
):
    """Train ``seeds`` of one variant on one dataset; per-seed mode statistics and samples."""
    cfg = get_config(f"{variant},{data}")
    if epochs is not None:
        cfg.train.epochs = epochs
    cfg.train.epochs *= int(cfg.model.gan.pack)  # the same generator steps as an unpacked variant
    cfg.train.update_order = order
    splits = load_splits(cfg.data, cfg.train.batch_size)
    family = build_family(cfg, DataInfo.of(splits))
    res = train_seeds(cfg, family, splits, seeds, progress=progress)
    means, std = mixture_modes(data)
    keys = jnp.stack([genjax_keys.key(s, "eval") for s in seeds])
    online = family.samplers.get("online", family.sample)  # the raw generator (EMA runs)
    xs = np.asarray(jax.jit(jax.vmap(lambda p, k: family.sample(p, k, n_eval)))(res.params(), keys))
    xo = np.asarray(jax.jit(jax.vmap(lambda p, k: online(p, k, n_eval)))(res.params(), keys))
    stats = [mode_coverage(x, means, std) for x in xs]
    stats_online = [mode_coverage(x, means, std) for x in xo]
    return {
        "variant": variant,
        "update_order": order,
        "data": data,
        "seeds": seeds,
        "epochs": int(cfg.train.epochs),
        "generator_steps": int(res.state.step[0]),
        "compile_s": round(res.compile_seconds, 2),
        "train_s": round(res.train_seconds, 2),
        "modes": [s["modes"] for s in stats],
        "high_quality": [s["high_quality"] for s in stats],
        "reverse_kl": [s["reverse_kl"] for s in stats],
        "ema": float(cfg.model.gan.ema),
        "online": {k: [s[k] for s in stats_online] for k in ("modes", "high_quality", "reverse_kl")},
    }, xs


def mean_se(v):
    v = np.asarray(v, float)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def report(rows: list[dict]) -> str:
    lines = [
        "| model | data | modes | high-quality % | reverse KL | seeds | gen. steps | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for data in [d for d in ("ring", "grid") if any(r["data"] == d for r in rows)]:
        for r in (r for r in rows if r["data"] == data):
            for label, st in ((f"EMA {r['ema']}", r), ("raw weights", r["online"])):
                m, hq = mean_se(st["modes"]), mean_se(np.array(st["high_quality"]) * 100)
                kl = mean_se(st["reverse_kl"])
                name = r["variant"] + (", simultaneous" if r.get("update_order") == "simultaneous" else "")
                lines.append(
                    f"| genjax {name}, {label} | {data} | {m[0]:.1f} +- {m[1]:.1f} | "
                    f"{hq[0]:.1f} +- {hq[1]:.1f} | {kl[0]:.3f} +- {kl[1]:.3f} | {len(r['seeds'])} | "
                    f"{r['generator_steps']} | {r['train_s']:.0f} |"
                )
        for (name, d), (m, hq, kl) in PACGAN.items():
            if d == data:
                lines.append(f"| PacGAN paper: {name} | {data} | {m} | {hq} | {kl} | 10 | | |")
    return "\n".join(lines) + "\n"


def scatter(data: str, samples: dict[str, np.ndarray], path: Path):
    import matplotlib.pyplot as plt

    means, _ = mixture_modes(data)
    fig, axes = plt.subplots(1, len(samples), figsize=(3.2 * len(samples), 3.2), squeeze=False)
    lim = 1.6 if data == "ring" else 6.0
    for ax, (name, x) in zip(axes[0], samples.items()):
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
        ax.scatter(means[:, 0], means[:, 1], s=12, c="red", marker="x")
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=f"{name} (seed 0)", aspect="equal")
    fig.tight_layout()
    save(fig, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--variants", default="gan,nsgan,wgan_gp,sngan,sngan_hinge")
    ap.add_argument("--data", default="ring,grid")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--n_eval", type=int, default=2500)
    ap.add_argument("--update_order", default="alternating", help="alternating | simultaneous | both")
    ap.add_argument("--out", default="runs/gan_mixtures")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()
    device = jax.devices()[0].device_kind
    cmd = " ".join(["python experiments/gan_mixtures/main.py", *(argv if argv is not None else sys.argv[1:])])

    def write(done: bool) -> str:
        """report.md and results.json of the rows so far (after every variant: a stopped study
        keeps what it finished)."""
        text = f"# GANs on the PacGAN mixtures\n\nCommand: `{cmd}`\n\n"
        state = "total" if done else "unfinished; so far"
        text += f"Device: {device}; {state} {time.perf_counter() - t0:.0f} s.\n\n"
        text += report(rows)
        (out / "report.md").write_text(text)
        (out / "results.json").write_text(json.dumps(rows, indent=1))
        return text

    for data in args.data.split(","):
        samples = {}
        orders = ("alternating", "simultaneous") if args.update_order == "both" else (args.update_order,)
        for variant in args.variants.split(","):
            for order in orders:
                row, xs = run_one(variant, data, list(range(args.seeds)), args.epochs, args.n_eval, order=order)
                rows.append(row)
                samples[variant + ("" if order == "alternating" else ", simultaneous")] = xs[0]
                print("\n".join(report([row]).splitlines()[2:4]), flush=True)
                write(False)
        scatter(data, samples, out / f"scatter_{data}.png")
    print(write(True))


if __name__ == "__main__":
    main()
