"""Class-conditional generation on the 8x8 digits: a conditional VAE and a conditional RealNVP,
trained by the same engine as every family. For each: the held-out -log p(x | class), a class
grid (one row per digit), the classifier check (the share of samples the domain classifier
assigns to the requested class; chance 0.1) and pluralistic diversity (mean nearest-neighbour
distance among the samples of one class, in pixels and in classifier features) beside the same
statistic of real digits of that class.

    python experiments/conditional_digits/main.py [--out DIR] [--epochs N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import genjax  # noqa: E402
from experiments.conditional_digits.config import get_config  # noqa: E402
from genjax import keys  # noqa: E402
from genjax.eval import plots  # noqa: E402
from genjax.eval.suite import sample_metrics  # noqa: E402

MODELS = {"conditional VAE": "cvae", "conditional RealNVP": "flow"}


def grid_images(model, data, key, per_row: int = 12):
    """[10, per_row, 8, 8, 1]: decoder means for a latent-variable model, samples otherwise."""
    fam, c = model.family, model.family.classes
    y = jnp.repeat(jnp.arange(c), per_row)
    if fam.latent is not None and fam.latent.conditional:
        x = fam.latent.decode_mean(model.params, jax.random.normal(key, (c * per_row, fam.latent.dim)), y)
    else:
        x = fam.sample(model.params, key, c * per_row, y)
    return np.clip(np.asarray(x), 0, 1).reshape(c, per_row, *data.shape)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "experiments/conditional_digits/results"))
    ap.add_argument("--epochs", type=int, default=0, help="override train.epochs (0: the config's)")
    ap.add_argument("--quick", action="store_true", help="smoke settings")
    ap.add_argument("--classifier_dir", default="runs/classifiers")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, real = [], None
    for label, variant in MODELS.items():
        cfg = get_config(variant + (",smoke" if a.quick else ""))
        cfg.eval.classifier_dir = a.classifier_dir
        if a.epochs:
            cfg.train.epochs = a.epochs
        data = genjax.load_data(cfg)
        t0 = time.time()
        model = genjax.fit(cfg, data, progress=not a.quick)
        train_s = time.time() - t0
        ev = genjax.evaluate(model, data)
        d = out / variant
        d.mkdir(exist_ok=True)
        sm = sample_metrics(cfg, data, model.family, model.params, keys.key(0, "sample_metrics"), d)
        cm = sm["conditional"]
        plots.class_grid(grid_images(model, data, keys.key(0, "figures")), out / f"grid_{variant}.png",
                         f"{label}: one row per class")  # fmt: skip
        rows.append((label, ev, cm, sm, int(model.result.state.es.best_epoch), train_s))
        real = cm
    cmd = " ".join(["python experiments/conditional_digits/main.py", *(argv if argv is not None else sys.argv[1:])])
    head = ("| model | test -log p(x given class) | bits/dim | classifier assigns the class | diversity, pixels "
            "(model / real) | diversity, features (model / real) | FID | best epoch | train s |")  # fmt: skip
    lines = ["# Class-conditional digits", "", f"`{cmd}`", "",
             f"Domain classifier per model's data view (last: `{real['classifier']}`); {real['per_class']} samples "
             "per class; diversity = mean nearest-neighbour distance within a class.", "",
             head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for label, ev, cm, sm, best, secs in rows:
        fid = next(v for k, v in sm["model"].items() if k.startswith("fid_"))
        lines.append(
            f"| {label} | {ev['nll']:.3f} | {ev['bits_per_dim']:.4f} | {cm['class_accuracy']:.3f} (chance 0.100) | "
            f"{cm['pixel']['model_mean']:.3f} / {cm['pixel']['real_mean']:.3f} | "
            f"{cm['features']['model_mean']:.3f} / {cm['features']['real_mean']:.3f} | {fid:.2f} | {best} | "
            f"{secs:.0f} |"
        )
    lines += ["", "Per class (classifier check; pixel diversity model / real):", "",
              "| model | " + " | ".join(str(c) for c in range(10)) + " |", "| --- |" + " ---: |" * 10]  # fmt: skip
    for label, _, cm, _, _, _ in rows:
        lines.append(f"| {label}, class share | " + " | ".join(f"{v:.2f}" for v in cm["accuracy"]) + " |")
        cells = [f"{m:.2f} / {r:.2f}" for m, r in zip(cm["pixel"]["model"], cm["pixel"]["real"])]
        lines.append(f"| {label}, diversity | " + " | ".join(cells) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    summary = {label: {"nll": ev["nll"], "conditional": cm} for label, ev, cm, _, _, _ in rows}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
