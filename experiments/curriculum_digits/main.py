"""With and without a resolution curriculum at equal compute: FID / KID against training steps.

    python experiments/curriculum_digits/main.py [--config experiments/vae_digits/config.py]
        [--stages 2,4] [--stage_epochs 20] [--fade 10] [--epochs 120] [--every 10]
        [--out experiments/curriculum_digits/results]

Trains the same config twice for ``--epochs`` epochs (the same steps and batches): once on the
data as they are, once with ``train.curriculum = stages`` (each stage ``--stage_epochs`` epochs,
``--fade`` of them blending in from the previous resolution; ``genjax.train.curriculum``), with
early stopping off. Every ``--every`` epochs both models' samples are scored by the eval suite's
FID / KID with the digits domain classifier (the same key for both), and the validation NLL is
logged where the family has one. Writes ``curves.png``, ``report.md`` and ``results.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from genjax import keys  # noqa: E402
from genjax.data import load_splits  # noqa: E402
from genjax.eval.plots import save  # noqa: E402
from genjax.eval.suite import sample_metrics  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.train import build_program, select_params, split_data  # noqa: E402


def load_config(spec: str):
    path, _, arg = spec.partition(":")
    mod_spec = importlib.util.spec_from_file_location("cfg", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod.get_config(arg or None)


def run(cfg, every: int, log=print) -> list[dict]:
    splits = load_splits(cfg.data, cfg.train.batch_size)
    family = build_family(cfg, DataInfo.of(splits))
    prog = build_program(cfg, family, splits)
    state = prog.init()
    data = jax.device_put(split_data(cfg, splits))
    epoch = jax.jit(prog.epoch, donate_argnums=0)
    rows, t0 = [], time.perf_counter()
    for e in range(1, int(cfg.train.epochs) + 1):
        state, m = epoch(state, data)
        if e % every == 0 or e == int(cfg.train.epochs):
            secs = time.perf_counter() - t0
            sm = sample_metrics(cfg, splits, family, select_params(state, False), keys.key(0, "sample_metrics"),
                                log=lambda s: None)  # fmt: skip
            fid = next(k for k in sm["model"] if k.startswith("fid_"))
            row = {"epoch": e, "steps": int(state.step), "train_s": secs, "fid": sm["model"][fid],
                   "kid": sm["model"][fid.replace("fid_", "kid_")], "fid_real": sm["real_vs_real"][fid]}  # fmt: skip
            if "val_nll" in m:
                row["val_nll"] = float(m["val_nll"])
            rows.append(row)
            log(json.dumps(row))
            t0 = time.perf_counter() - secs
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="experiments/vae_digits/config.py")
    ap.add_argument("--stages", default="2,4")
    ap.add_argument("--stage_epochs", type=int, default=20)
    ap.add_argument("--fade", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--out", default="experiments/curriculum_digits/results")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stages = tuple(int(s) for s in a.stages.split(","))
    results = {}
    for label in ("no curriculum", "curriculum"):
        cfg = load_config(a.config)
        cfg.train.epochs, cfg.train.patience = a.epochs, 0
        if label == "curriculum":
            cfg.train.curriculum, cfg.train.curriculum_epochs, cfg.train.curriculum_fade = (
                stages,
                a.stage_epochs,
                a.fade,
            )
        print(f"# {cfg.name}: {label}", flush=True)
        results[label] = run(cfg, a.every)
    import matplotlib.pyplot as plt

    keys_ = ["fid", "kid"] + (["val_nll"] if "val_nll" in results["curriculum"][0] else [])
    fig, axes = plt.subplots(1, len(keys_), figsize=(4.4 * len(keys_), 3.5), squeeze=False)
    spe = results["curriculum"][0]["steps"] / results["curriculum"][0]["epoch"]
    for ax, k in zip(axes[0], keys_):
        for label, rows in results.items():
            ax.plot([r["steps"] for r in rows], [r[k] for r in rows], marker="o", ms=3, label=label)
        if k == "fid":
            ax.axhline(results["curriculum"][-1]["fid_real"], ls="--", c="grey", label="real vs real")
        for i in range(len(stages)):
            ax.axvspan(i * a.stage_epochs * spe, (i + 1) * a.stage_epochs * spe, color=f"C{i + 2}", alpha=0.08)
            ax.text((i + 0.5) * a.stage_epochs * spe, ax.get_ylim()[1], f"{stages[i]}px", ha="center", va="top",
                    fontsize=7)  # fmt: skip
        ax.set(xlabel="training steps", ylabel=k, yscale="log" if k == "fid" else "linear")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{cfg.name}: resolution curriculum {stages} ({a.stage_epochs} epochs each, fade {a.fade})")
    fig.tight_layout()
    save(fig, out / "curves.png")
    lines = [
        f"# Resolution curriculum on {cfg.data.name}: {cfg.name}",
        "",
        f"Command: `python experiments/curriculum_digits/main.py --config {a.config} --stages {a.stages} "
        f"--stage_epochs {a.stage_epochs} --fade {a.fade} --epochs {a.epochs} --every {a.every}`",
        "",
        "| steps | " + " | ".join(f"{k} ({label})" for label in results for k in keys_) + " |",
        "| ---: | " + " | ".join("---:" for _ in results for _ in keys_) + " |",
    ]
    for i, r in enumerate(results["no curriculum"]):
        vals = [f"{results[label][i][k]:.2f}" for label in results for k in keys_]
        lines.append(f"| {r['steps']} | " + " | ".join(vals) + " |")
    lines += [
        "",
        f"Real train vs test FID: {results['curriculum'][-1]['fid_real']:.2f}.",
        "",
        "![curves](curves.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps({"args": vars(a), "results": results}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
