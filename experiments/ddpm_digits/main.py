"""DDPM on digits: train, then the bound and the ODE likelihood in bits/dim, and sample quality
against sampling time for ancestral sampling and DDIM at 10, 50 and all steps.

    python experiments/ddpm_digits/main.py [--out experiments/ddpm_digits/results] [--epochs N]
                                           [--variant mnist] [--data npz:/path.npz]
"""

from __future__ import annotations

import argparse
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
from experiments.ddpm_digits.config import get_config  # noqa: E402
from genjax import keys  # noqa: E402
from genjax.data import load_splits  # noqa: E402
from genjax.eval import heldout_metrics, plots  # noqa: E402
from genjax.eval.suite import sample_metrics  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.train import fit  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="experiments/ddpm_digits/results")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--variant", default=None)
    ap.add_argument("--data", default=None)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = get_config(a.variant)
    if a.epochs:
        cfg.train.epochs = a.epochs
    if a.data:
        cfg.data.name = a.data
    splits = load_splits(cfg.data, cfg.train.batch_size)
    info = DataInfo.of(splits)
    fam = build_family(cfg, info)
    res = fit(cfg, fam, splits, progress=True)
    params = res.params
    plots.curves(res.history, out / "curves.png", cfg.name, fam.curves)
    t0 = time.perf_counter()
    m = heldout_metrics(
        fam,
        params,
        np.asarray(splits.test["x"]),
        keys.key(cfg.seed, "eval"),
        batch_size=int(cfg.eval.batch_size),
        num_dims=splits.num_dims,
        bin_width=splits.bin_width,
    )
    m["seconds"] = time.perf_counter() - t0
    print(json.dumps(m), flush=True)
    T = int(cfg.model.diffusion.timesteps)
    rows = []
    for sampler, steps in dict.fromkeys((("ancestral", T), ("ddim", min(10, T)), ("ddim", min(50, T)), ("ddim", T))):
        c = cfg.copy_and_resolve_references()
        c.model.diffusion.sampler, c.model.diffusion.sample_steps = sampler, steps
        f = build_family(c, info)
        draw = jax.jit(f.sample, static_argnums=2)
        n = len(splits.test["x"])
        draw(params, jax.random.key(0), n).block_until_ready()  # compile
        t0 = time.perf_counter()
        x = np.asarray(draw(params, jax.random.key(1), n))
        secs = time.perf_counter() - t0
        sm = sample_metrics(c, splits, f, params, keys.key(cfg.seed, "sample_metrics"), None, log=lambda s: None)
        name = f"{sampler}_{steps}"
        plots.image_grid(np.clip((x[:100] + 1) / 2, 0, 1), out / f"samples_{name}.png", f"{sampler}, {steps} steps")
        rows.append(
            {
                "sampler": sampler,
                "steps": steps,
                "seconds": secs,
                "images_per_s": n / secs,
                "n": n,
                "model": sm["model"],
                "real_vs_real": sm["real_vs_real"],
                "duplicates": sm["duplicates"],
            }
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("real_vs_real",)}), flush=True)
    tag = rows[0]["model"].keys()
    fid = next(k for k in tag if k.startswith("fid_"))
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for r in rows:
        ax.scatter(r["seconds"], r["model"][fid])
        ax.annotate(f"{r['sampler']} {r['steps']}", (r["seconds"], r["model"][fid]), fontsize=8)
    ax.axhline(rows[0]["real_vs_real"][fid], ls="--", c="grey", label="real vs real")
    ax.set_xscale("log")
    ax.set_xlabel(f"seconds for {rows[0]['n']} samples")
    ax.set_ylabel(fid)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "quality_vs_time.png", dpi=110)
    result = {
        "heldout": m,
        "samplers": rows,
        "epochs": len(res.history),
        "train_seconds": res.train_seconds,
        "compile_seconds": res.compile_seconds,
        "config": cfg.to_dict(),
    }
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    lines = [
        f"# DDPM on {splits.name} ({len(res.history)} epochs, {res.train_seconds:.0f} s of training)",
        "",
        f"Test split, n = {m['n']}: probability-flow ODE NLL {m['nll']:.2f} nats = {m['bits_per_dim']:.4f} bits/dim "
        f"({m['nll_kind']}, {cfg.model.diffusion.ode_steps} RK4 steps); DDPM bound "
        f"{-m['ddpm_bound']:.2f} nats = {m['ddpm_bound_bits_per_dim']:.4f} bits/dim ({m['bound_steps']} terms). "
        + (
            f"Trained on dequantized data: both are bounds on the discrete {splits.levels}-level NLL "
            "(the dequantization counted)."
            if cfg.data.dequantize
            else f"Trained on the {splits.levels} discrete levels; the ODE likelihood dequantizes inside, the bound's "
            "decoder is discretized: discrete likelihoods."
        ),
        "",
        f"| sampler | steps | seconds ({rows[0]['n']} images) | images/s | {fid} | KID | IS | precision | recall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    kid, is_ = fid.replace("fid_", "kid_"), fid.replace("fid_", "is_")
    for r in rows + [
        {
            "sampler": "real vs real",
            "steps": "",
            "seconds": float("nan"),
            "images_per_s": float("nan"),
            "model": rows[0]["real_vs_real"],
        }
    ]:
        mo = r["model"]
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {r['seconds']:.2f} | {r['images_per_s']:.1f} | {mo[fid]:.2f} | "
            f"{mo[kid]:.2f} | {mo[is_]:.2f} | {mo['precision']:.3f} | {mo['recall']:.3f} |"
        )
    lines += ["", "![quality vs time](quality_vs_time.png)", ""]
    lines += [f"![{r['sampler']} {r['steps']}](samples_{r['sampler']}_{r['steps']}.png)" for r in rows]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
