"""Benchmark: k-fold cross-validation, all folds trained at once (vmap) versus one by one (loop)
versus the fold axis sharded over devices (shard).

Digits, dynamically binarized; MLP VAE 64-256-128-16; batch 64; no early stopping, so every
strategy does the same work. ``vmap`` and ``loop`` run on the default device; on CPU, ``shard``
runs in a child process with ``--devices`` forced host devices (forcing them splits the CPU's
threads between devices, which would handicap the other two). Throughput counts training
examples of all folds per second of training (compile time reported apart). Prints a table and
writes JSON to benchmarks/results/.

    python benchmarks/kfold.py [--folds 5] [--epochs 30] [--devices 5]
"""

from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__" and "--child" in sys.argv:  # forced host devices: set before JAX starts
    _ap = argparse.ArgumentParser(add_help=False)
    _ap.add_argument("--devices", type=int, default=5)
    _n = _ap.parse_known_args()[0].devices
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_n}"

import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from genjax.config import base_config  # noqa: E402
from genjax.data import load_splits  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.train.cv import cross_validate  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--devices", type=int, default=5)
    ap.add_argument("--hidden", default="256,128")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    cfg = base_config()
    cfg.name = "kfold_bench"
    cfg.data.binarize = "dynamic"
    cfg.model.vae.hidden = tuple(int(h) for h in a.hidden.split(","))
    cfg.model.vae.latent_dim = 16
    cfg.train.batch_size = 64
    cfg.train.epochs = a.epochs
    cfg.train.patience = 0
    cfg.model.vae.nll_samples = 10
    cfg.model.vae.nll_chunk = 10
    cfg.cv.folds = a.folds
    splits = load_splits(cfg.data, cfg.train.batch_size)
    family = build_family(cfg, DataInfo.of(splits))

    def measure(strategy):
        r = cross_validate(cfg, family, splits, strategy=strategy, progress=False)
        return {
            "compile_s": r.compile_seconds,
            "train_s": r.train_seconds,
            "examples_per_s": r.examples_per_second,
            "heldout_nll_mean": float(r.heldout_nll.mean()),
            "devices": len(jax.devices()),
        }

    if a.child:
        print(json.dumps(measure("shard")))
        return
    res = {s: measure(s) for s in ("vmap", "loop")}
    if jax.default_backend() == "cpu":
        child = subprocess.run(
            [sys.executable, __file__, "--child", *sys.argv[1:]], capture_output=True, text=True, check=True
        )
        res["shard"] = json.loads(child.stdout.strip().splitlines()[-1])
    else:
        res["shard"] = measure("shard")
    res["ratio vmap/loop"] = res["vmap"]["examples_per_s"] / res["loop"]["examples_per_s"]
    meta = {
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "folds": a.folds,
        "epochs": a.epochs,
        "model": f"MLP VAE 64-{a.hidden.replace(',', '-')}-16, batch 64",
    }
    print(
        f"# kfold on {meta['backend']} ({meta['device']}, {meta['cpus']} CPUs), {a.folds} folds, "
        f"{a.epochs} epochs, {meta['model']}"
    )
    print(f"{'strategy':<10}{'devices':>8}{'compile s':>11}{'train s':>10}{'examples/s':>14}{'held-out NLL':>14}")
    for k in ("vmap", "loop", "shard"):
        v = res[k]
        print(
            f"{k:<10}{v['devices']:>8}{v['compile_s']:>11.2f}{v['train_s']:>10.2f}{v['examples_per_s']:>14,.0f}"
            f"{v['heldout_nll_mean']:>14.3f}"
        )
    print(f"ratio vmap/loop: {res['ratio vmap/loop']:.2f}  (must be >= 1 on CPU)")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = Path(a.out) / f"kfold-{meta['backend']}.json"
    path.write_text(json.dumps({"meta": meta, "results": res}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
