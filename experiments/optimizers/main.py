"""Optimizers and learning-rate schedules on the same budget: the digits VAE's validation NLL.

    python experiments/optimizers/main.py [--epochs 150] [--out experiments/optimizers/results]

The demo VAE (``experiments/vae_digits/config.py``: MLP 256-128, 8 latents, dynamically binarized
digits) trained for ``--epochs`` epochs without early stopping, from the same initialization and
batches, with: Adam (lr 1e-3), SGD with momentum 0.9 and with Nesterov momentum (lr 0.05: SGD
takes a larger step than Adam), AdamW (weight decay 1e-4),
and Adam under each schedule of ``genjax.train.optim`` (warm-up + cosine, linear, exponential,
step, reduce-on-plateau). One figure with every validation-NLL curve (``curves.png``),
``report.md`` with the best and final validation NLL and the test NLL of the best weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.vae_digits.config import get_config  # noqa: E402
from genjax import keys  # noqa: E402
from genjax.data import load_splits  # noqa: E402
from genjax.eval import heldout_metrics  # noqa: E402
from genjax.eval.plots import save  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.train import fit  # noqa: E402

# name: optim overrides
RUNS = {
    "adam": {},
    "sgd momentum 0.9": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "sgd nesterov 0.9": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    "adamw wd 1e-4": {"name": "adamw", "weight_decay": 1e-4},
    "adam warmup_cosine": {"schedule": "warmup_cosine", "warmup_steps": 200, "final_lr_ratio": 0.01},
    "adam linear": {"schedule": "linear", "final_lr_ratio": 0.01},
    "adam exponential": {"schedule": "exponential", "final_lr_ratio": 0.01},
    "adam step": {"schedule": "step", "step_at": (0.5, 0.75), "step_factor": 0.1},
    "adam plateau": {"schedule": "plateau", "plateau_patience": 5, "plateau_factor": 0.5, "plateau_min_delta": 0.05},
}


def figure(results: dict, path: Path, epochs: int, steps_per_epoch: int) -> None:
    """Validation-NLL curves: the optimizers in one panel, Adam's schedules in the other."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), squeeze=False)
    for i, (name, r) in enumerate(results.items()):
        ep = np.arange(1, len(r["val_nll"]) + 1)
        ax = axes[0, 0] if i < 4 else axes[0, 1]
        ax.plot(ep, r["val_nll"], lw=1, label=name)
        if i == 0:
            axes[0, 1].plot(ep, r["val_nll"], lw=1, c="k", alpha=0.4, label="adam (constant)")
    lo = min(min(r["val_nll"]) for r in results.values())
    for ax, title in zip(axes[0], ("optimizers (constant lr)", "Adam under each schedule")):
        ax.set(xlabel=f"epoch ({steps_per_epoch} steps each)", ylabel="validation NLL (nats)", title=title,
               ylim=(lo - 0.3, lo + 5))  # fmt: skip
        ax.legend(fontsize=7)
    fig.suptitle(f"VAE on binarized digits, {epochs} epochs, same initialization and batches")
    fig.tight_layout()
    save(fig, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--out", default="experiments/optimizers/results")
    ap.add_argument("--replot", action="store_true", help="redraw curves.png from --out/results.json")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.replot:
        results = json.loads((out / "results.json").read_text())
        return figure(results, out / "curves.png", a.epochs, len(load_splits(get_config().data, 64).train["x"]) // 64)
    results = {}
    for name in a.runs.split(","):
        cfg = get_config()
        cfg.train.epochs, cfg.train.patience = a.epochs, 0
        for k, v in RUNS[name].items():
            cfg.optim[k] = v
        splits = load_splits(cfg.data, cfg.train.batch_size)
        family = build_family(cfg, DataInfo.of(splits))
        res = fit(cfg, family, splits, progress=False)
        m = heldout_metrics(family, res.params, np.asarray(splits.test["x"]), keys.key(cfg.seed, "eval"),
                            batch_size=500, num_dims=splits.num_dims, bin_width=splits.bin_width)  # fmt: skip
        h = res.history
        results[name] = {
            "val_nll": [r["val_nll"] for r in h],
            "train_loss": [r["loss"] for r in h],
            "lr_scale": [r.get("lr_scale", 1.0) for r in h],
            "best_val_nll": float(res.state.es.best),
            "best_epoch": int(res.state.es.best_epoch),
            "final_val_nll": h[-1]["val_nll"],
            "test_nll": m["nll"],
            "train_s": res.train_seconds,
            "optim": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.optim.to_dict().items()},
        }
        print(json.dumps({"run": name} | {k: results[name][k] for k in ("best_val_nll", "final_val_nll", "test_nll")}),
              flush=True)  # fmt: skip
    figure(results, out / "curves.png", a.epochs, len(splits.train["x"]) // cfg.train.batch_size)
    lines = [
        f"# Optimizers and schedules on the digits VAE ({a.epochs} epochs)",
        "",
        "Command: `python experiments/optimizers/main.py" + (f" --epochs {a.epochs}`" if a.epochs != 150 else "`"),
        "",
        "| run | best val NLL | at epoch | final val NLL | test NLL (best weights) | train s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['best_val_nll']:.2f} | {r['best_epoch']} | {r['final_val_nll']:.2f} | "
                     f"{r['test_nll']:.2f} | {r['train_s']:.0f} |")  # fmt: skip
    lines += ["", "![curves](curves.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
