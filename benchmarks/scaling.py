"""Benchmark: one model trained data-parallel over 1, 2, 4, ... devices (``train.mesh=data=d``).

Two models of MNIST's shapes on 28x28 binary images (random, so nothing is downloaded; the
throughput does not depend on the pixel values): the MLP VAE of Burda et al. (784-200-200-50,
``experiments/vae_mnist``) and a conv VAE (channels 32-64, latent 32). The global batch is fixed
(``--batch``, split over the devices), so ideal scaling keeps the step time falling as 1/d.
Throughput counts training examples per second of training (compile time apart), median of
``--reps`` runs of ``--epochs`` epochs.

On CPU the devices are forced host devices (``--xla_force_host_platform_device_count``): they
share the machine's cores, so the table shows the machinery (and its overhead), not a speed-up.
On a machine with several accelerators it gives the real figures.

    python benchmarks/scaling.py [--devices 1,2,4] [--epochs 3] [--batch 256]
"""

from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":
    _ap = argparse.ArgumentParser(add_help=False)
    _ap.add_argument("--devices", default="1,2,4")
    _n = max(int(d) for d in _ap.parse_known_args()[0].devices.split(","))
    if os.environ.get("JAX_PLATFORMS", "cpu") == "cpu" and "cuda" not in os.environ.get("JAX_PLATFORMS", ""):
        os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_n}"

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import genjax  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.train import build_program, drive, split_data  # noqa: E402


def config(model: str, batch: int, epochs: int, mesh: str):
    from experiments.vae_mnist.config import get_config

    c = get_config("npz")
    c.train.batch_size, c.train.epochs, c.train.patience, c.train.mesh = batch, epochs, 0, mesh
    c.model.vae.val_samples = 1
    if model == "conv":
        v = c.model.vae
        v.arch, v.channels, v.latent_dim, v.activation = "conv", (32, 64), 32, "relu"
    return c


def measure(model: str, d: int, a, x) -> dict:
    c = config(model, a.batch, a.epochs, f"data={d}")
    data = genjax.load_data(c, x=x)
    fam = build_family(c, DataInfo.of(data))
    prog = build_program(c, fam, data)
    runs = [drive(prog.epoch, prog.init(), split_data(c, data), prog.plan, epochs=a.epochs, progress=False)
            for _ in range(a.reps)]  # fmt: skip
    train_s = statistics.median(r.train_seconds for r in runs)
    examples = a.epochs * prog.steps * prog.per_step
    return {
        "model": model,
        "devices": d,
        "compile_s": round(runs[0].compile_seconds, 2),
        "train_s": round(train_s, 3),
        "examples_per_s": round(examples / train_s, 1),
        "ms_per_step": round(1000 * train_s / (a.epochs * prog.steps), 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", default="1,2,4")
    ap.add_argument("--models", default="mlp,conv")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--n", type=int, default=10_240, help="training-pool size (random 28x28 binary images)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    x = (np.random.default_rng(0).random((a.n, 28, 28)) < 0.13).astype(np.uint8)  # MNIST's mean ink
    rows = [measure(m, int(d), a, x) for m in a.models.split(",") for d in a.devices.split(",")]
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["devices"] == rows[0]["devices"])
        r["speedup"] = round(r["examples_per_s"] / base["examples_per_s"], 3)
    print(f"{'model':6s} {'devices':>7s} {'compile s':>9s} {'examples/s':>11s} {'ms/step':>8s} {'speed-up':>8s}")
    for r in rows:
        print(f"{r['model']:6s} {r['devices']:7d} {r['compile_s']:9.2f} {r['examples_per_s']:11,.0f} "
              f"{r['ms_per_step']:8.3f} {r['speedup']:8.3f}")  # fmt: skip
    out = Path(a.out) / f"scaling-{jax.default_backend()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(), "args": vars(a)}  # fmt: skip
    out.write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
