"""Benchmark: one jitted VAE training step, genjax versus plain JAX.

MLP VAE 784-512-512-32 (Bernoulli decoder, ELBO, Adam 1e-3) at batch 128 on random binary data.
Measured, for the same shapes:

* ``genjax scan``: genjax's ``make_step`` (nnx modules, the family protocol), ``steps`` steps in
  one ``lax.scan``, state donated;
* ``plain scan``: ``benchmarks/plain_vae.py`` (jnp + optax only), same ``lax.scan``;
* ``genjax dispatch``: the jitted genjax step called once per step from Python.

Compile time is reported apart from steady-state throughput (median of ``--reps`` timed calls
after one warm-up). Prints a table and writes JSON to benchmarks/results/.

    python benchmarks/train_step.py [--steps 50] [--reps 5] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

if __package__ in (None, ""):  # run as a script: python benchmarks/train_step.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import plain_vae  # noqa: E402
from benchmarks.timing import compile_and_time, dispatch, machine  # noqa: E402
from genjax.config import base_config  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.train import init_state, make_step  # noqa: E402

HIDDEN, LATENT, SHAPE = (512, 512), 32, (28, 28, 1)


def bench(steps: int, reps: int, batch: int) -> dict:
    key = jax.random.key(0)
    data = jax.random.bernoulli(key, 0.3, (steps, batch, *SHAPE)).astype(jnp.float32)
    tx = optax.adam(1e-3)

    cfg = base_config()
    cfg.model.vae.hidden, cfg.model.vae.latent_dim = HIDDEN, LATENT
    fam = build_family(cfg, DataInfo(SHAPE))
    state0 = init_state(fam.init(jax.random.key(1)), {"model": tx}, jax.random.key(2), fam.hparams)
    step = make_step(fam.players, {"model": tx})

    def g_train(state, batches):
        state, m = jax.lax.scan(step, state, {"x": batches})
        return state, m["loss"]

    plain = plain_vae.make_train(tx, LATENT)
    p0 = plain_vae.init(jax.random.key(1), 784, HIDDEN, LATENT)
    o0 = tx.init(p0)
    flat = data.reshape(steps, batch, -1)

    copy = lambda t: jax.tree.map(jnp.copy, t)  # noqa: E731
    variants = {
        "genjax scan": (jax.jit(g_train, donate_argnums=0), lambda: (copy(state0), data)),
        "plain scan": (jax.jit(plain, donate_argnums=(0, 1)), lambda: (copy(p0), copy(o0), flat, key)),
    }
    out = compile_and_time(variants, reps, steps * batch, steps)
    out["genjax dispatch"] = dispatch(step, state0, data, reps)
    out["ratio genjax/plain (scan)"] = out["genjax scan"]["examples_per_s"] / out["plain scan"]["examples_per_s"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    res = bench(a.steps, a.reps, a.batch)
    meta = {
        **machine(),
        "steps": a.steps,
        "reps": a.reps,
        "batch": a.batch,
        "model": "MLP VAE 784-512-512-32, Bernoulli, Adam",
    }
    print(f"# train_step on {meta['backend']} ({meta['device']}), batch {a.batch}, {a.steps} steps per call")
    print(f"{'variant':<18}{'compile s':>11}{'examples/s':>14}{'ms/step':>10}")
    for k, v in res.items():
        if isinstance(v, dict):
            print(f"{k:<18}{v['compile_s']:>11.2f}{v['examples_per_s']:>14.0f}{v['ms_per_step']:>10.3f}")
    print(f"ratio genjax/plain (scan): {res['ratio genjax/plain (scan)']:.3f}  (target >= 0.9)")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = Path(a.out) / f"train_step-{meta['backend']}.json"
    path.write_text(json.dumps({"meta": meta, "results": res}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
